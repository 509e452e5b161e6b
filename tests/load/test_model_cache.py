"""The opt-in model cache (--cache-dir): a hit gives the very rule set a parse gives, and the cache
is only ever trusted when it is the user's own and holds nothing but pktverify's model."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import stat
import subprocess
import sys
import typing
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pktverify.cli import main
from pktverify.errors import InputError, InvalidArgument
from pktverify.load.model_cache import ModelCache
from pktverify.load.model_codec import BadEntry, decode_ruleset, encode_ruleset
from pktverify.model.rules import Jump, MultiportMatch, Target, Verdict
from pktverify.parse.iptables_save import parse_iptables_save
from pktverify.strategies import clusters, faulty_clusters
from pktverify.testing.iptables_draw import rule_sets

from ..conftest import STANDARD_ADDRS, STANDARD_ROUTES

DUMP = """*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-SEP-A - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "default/web:http" -m tcp --dport 80 -j KUBE-SVC-A
-A KUBE-SVC-A -m comment --comment "default/web:http" -j KUBE-SEP-A
-A KUBE-SEP-A -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.1.20.5:8080
COMMIT
"""


def _cache(tmp_path: Path) -> ModelCache:
    directory = tmp_path / "cache"
    return ModelCache(directory)


def test_a_hit_is_the_rule_set_a_parse_gives(tmp_path):
    cache = _cache(tmp_path)
    first = parse_iptables_save(DUMP, source="dump", cache=cache)
    assert (cache.hits, cache.misses) == (0, 1)
    second = parse_iptables_save(DUMP, source="dump", cache=cache)
    assert (cache.hits, cache.misses) == (1, 1)
    assert second == first == parse_iptables_save(DUMP, source="dump")
    assert second is not first
    assert oct(os.stat(tmp_path / "cache").st_mode & 0o777) == "0o700"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in (tmp_path / "cache").iterdir())


@pytest.mark.parametrize("change", [
    lambda text, source, lenient: (text.replace("8080", "8081"), source, lenient),
    lambda text, source, lenient: (text, "other-name", lenient),
    lambda text, source, lenient: (text, source, True),
])
def test_anything_the_parse_depends_on_is_in_the_key(tmp_path, change):
    cache = _cache(tmp_path)
    parse_iptables_save(DUMP, source="dump", cache=cache)
    text, source, lenient = change(DUMP, "dump", False)
    assert cache.key(text, source, lenient) != cache.key(DUMP, "dump", False)
    got = parse_iptables_save(text, source=source, lenient=lenient, cache=cache)
    assert cache.hits == 0
    assert got == parse_iptables_save(text, source=source, lenient=lenient)


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_tampered_entry_runs_nothing_and_is_parsed_again(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cache = _cache(tmp_path)
    key = cache.key(DUMP, "dump", False)
    entry = tmp_path / "cache" / key
    entry.write_bytes(pickle.dumps(_Boom()))
    entry.chmod(0o600)
    got = parse_iptables_save(DUMP, source="dump", cache=cache)
    assert not (tmp_path / "pwned").exists()
    assert got == parse_iptables_save(DUMP, source="dump")
    assert cache.hits == 0
    assert decode_ruleset(entry.read_bytes()) == got          # overwritten with the real model


def test_entries_others_could_write_or_that_are_links_are_not_loaded(tmp_path):
    cache = _cache(tmp_path)
    parse_iptables_save(DUMP, source="dump", cache=cache)
    entry = tmp_path / "cache" / cache.key(DUMP, "dump", False)
    entry.chmod(0o666)
    parse_iptables_save(DUMP, source="dump", cache=cache)
    assert cache.hits == 0
    entry.chmod(0o600)
    target = tmp_path / "elsewhere"
    entry.rename(target)
    entry.symlink_to(target)
    parse_iptables_save(DUMP, source="dump", cache=cache)
    assert cache.hits == 0
    if os.geteuid() == 0:               # root can give the entry away: someone else's is refused too
        entry.unlink()
        parse_iptables_save(DUMP, source="dump", cache=cache)
        os.chown(entry, 65534, 65534)
        parse_iptables_save(DUMP, source="dump", cache=cache)
        assert cache.hits == 0


def test_a_cache_directory_others_may_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(InvalidArgument, match="writable by group or others"):
        ModelCache(shared)


def test_trace_with_cache_dir_prints_what_trace_without_it_prints(tmp_path, capsys):
    (tmp_path / "dump").write_text(DUMP)
    (tmp_path / "addrs").write_text(STANDARD_ADDRS)
    (tmp_path / "routes").write_text(STANDARD_ROUTES)
    argv = ["trace", "--iptables", str(tmp_path / "dump"), "--addrs", str(tmp_path / "addrs"),
            "--routes", str(tmp_path / "routes"), "--in-iface", "cni0", "--src", "10.1.10.5",
            "--dst", "10.96.0.10", "--proto", "tcp", "--dport", "80", "--format", "json"]
    outputs = []
    for extra in ([], ["--cache-dir", str(tmp_path / "c")], ["--cache-dir", str(tmp_path / "c")]):
        assert main(argv + extra) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2]
    assert len(list((tmp_path / "c").iterdir())) == 1
    (tmp_path / "open").mkdir(mode=0o777)
    (tmp_path / "open").chmod(0o777)
    assert main(argv + ["--cache-dir", str(tmp_path / "open")]) == 2
    err = capsys.readouterr().err
    assert "writable by group or others" in err and err.count("\n") == 1


def _node_texts(cluster) -> list[str]:
    from pktverify.generate.node_state import generate_node
    texts = []
    for node in cluster.nodes:
        inline = dict(node.inline)
        texts.append(inline.get("iptables") or generate_node(cluster, node).iptables)
    return texts


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(faulty_clusters(max_nodes=3).map(_node_texts),
                 clusters(max_nodes=3).map(_node_texts),
                 rule_sets("pod").map(lambda text: [text])))
def test_a_cache_hit_equals_a_fresh_parse_on_drawn_rule_sets(tmp_path_factory, texts):
    """Rule sets of drawn clusters (both proxy modes, with planted faults) and of the kernel
    campaign: stored, then loaded, each equals parsing it again without a cache; one the kernel
    would refuse gives the same error with a cache and leaves no entry."""
    directory = tmp_path_factory.mktemp("cache")
    cache = ModelCache(directory)
    stored = 0
    for i, text in enumerate(texts):
        source = f"node{i}"
        try:
            fresh = parse_iptables_save(text, source=source)
        except InputError as exc:
            for _ in range(2):
                with pytest.raises(InputError) as again:
                    parse_iptables_save(text, source=source, cache=cache)
                assert str(again.value) == str(exc)
            assert not (directory / cache.key(text, source, False)).exists()
            continue
        stored += 1
        assert parse_iptables_save(text, source=source, cache=cache) == fresh
        assert parse_iptables_save(text, source=source, cache=cache) == fresh
    assert cache.hits == stored


@pytest.mark.parametrize("kind", ["file", "symlink", "fifo", "device", "newline"])
def test_hostile_cache_dirs_give_one_line_and_touch_nothing(tmp_path, capsys, kind):
    """--cache-dir that is a regular file, a symlink to a folder, a FIFO or a device is refused with
    exit 2 and one line, before anything is parsed or written; a name with a newline is a folder
    like any other (created 0700) and the error line stays one line."""
    (tmp_path / "dump").write_text(DUMP)
    (tmp_path / "addrs").write_text(STANDARD_ADDRS)
    (tmp_path / "routes").write_text(STANDARD_ROUTES)
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    target = {"file": tmp_path / "plain", "symlink": tmp_path / "link", "fifo": tmp_path / "fifo",
              "device": Path("/dev/null"), "newline": tmp_path / "a\nb"}[kind]
    if kind == "file":
        target.write_text("keep me")
    elif kind == "symlink":
        target.symlink_to(real)
    elif kind == "fifo":
        os.mkfifo(target)
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = ["trace", "--iptables", str(tmp_path / "dump"), "--addrs", str(tmp_path / "addrs"),
            "--routes", str(tmp_path / "routes"), "--in-iface", "cni0", "--src", "10.1.10.5",
            "--dst", "10.96.0.10", "--proto", "tcp", "--dport", "80", "--cache-dir", str(target)]
    code = main(argv)
    out = capsys.readouterr()
    if kind == "newline":
        assert code == 0 and oct(target.stat().st_mode & 0o777) == "0o700"
        assert len(list(target.iterdir())) == 1
        return
    assert code == 2 and out.out == ""
    assert out.err.count("\n") == 1 and "not a folder" in out.err and "Traceback" not in out.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert list(real.iterdir()) == []
    if kind == "file":
        assert target.read_text() == "keep me"


# ---------------------------------------------------------------- a hostile cache folder (issue #21)
# Whatever is found in an entry's place, the run is the run without a cache plus one warning line
# naming the entry, and the entry is replaced when it can be.

def _trace_argv(tmp_path: Path) -> list[str]:
    (tmp_path / "dump").write_text(DUMP)
    (tmp_path / "addrs").write_text(STANDARD_ADDRS)
    (tmp_path / "routes").write_text(STANDARD_ROUTES)
    return ["trace", "--iptables", str(tmp_path / "dump"), "--addrs", str(tmp_path / "addrs"),
            "--routes", str(tmp_path / "routes"), "--in-iface", "cni0", "--src", "10.1.10.5",
            "--dst", "10.96.0.10", "--proto", "tcp", "--dport", "80"]


def _entry_key(tmp_path: Path) -> str:
    """The entry name the trace of _trace_argv uses (its source is the dump's path)."""
    return ModelCache(tmp_path / "keys").key(DUMP, str(tmp_path / "dump"), False)


class _Hung(Exception):
    """Raised by the alarm (not an OSError: the code under test must not take it for one)."""


class _Deadline:
    """Fail (instead of hanging the suite) when the block takes more than ``seconds``: a blocking
    open() of a FIFO is interrupted by the alarm."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __enter__(self):
        def expired(signum, frame):
            raise _Hung(f"still running after {self.seconds} s")
        self.previous = signal.signal(signal.SIGALRM, expired)
        signal.alarm(self.seconds)

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


def _plant(kind: str, path: Path, tmp_path: Path) -> None:
    if kind == "FIFO":
        os.mkfifo(path, 0o600)
    elif kind == "socket":
        here = os.getcwd()
        os.chdir(path.parent)          # the full path is longer than a socket address may be
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(path.name)
            sock.close()
        finally:
            os.chdir(here)
    elif kind == "character device":
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))     # /dev/null's numbers
    elif kind == "folder":
        path.mkdir(mode=0o700)
        (path / "inside").write_text("keep me")
    elif kind == "symlink":
        (tmp_path / "target").write_text("keep me")
        path.symlink_to(tmp_path / "target")


def _uncached_run(tmp_path, capsys) -> tuple[list[str], str, Path, str]:
    """The trace's argv and its output without a cache, an empty cache folder of the user's own,
    and the name the trace's entry will have there."""
    argv = _trace_argv(tmp_path)
    assert main(argv) == 0
    plain = capsys.readouterr().out
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    return argv, plain, folder, _entry_key(tmp_path)


@pytest.mark.parametrize("kind", ["FIFO", "socket", "character device", "folder", "symlink"])
def test_a_special_file_in_an_entrys_place_is_a_miss_said_once_never_a_hang(tmp_path, capsys, kind):
    if kind == "character device" and os.geteuid() != 0:
        pytest.skip("mknod needs root")
    argv, plain, folder, key = _uncached_run(tmp_path, capsys)
    _plant(kind, folder / key, tmp_path)
    with _Deadline(20):
        code = main(argv + ["--cache-dir", str(folder)])
    out = capsys.readouterr()
    assert (code, out.out) == (0, plain)
    what = "a " + kind if kind != "character device" else "a character device"
    if kind == "folder":            # a folder cannot be renamed over: said, and left as it is
        assert out.err == f"pktverify: warning: cache entry {key} ignored: a folder; could not be replaced: " \
                          f"Is a directory\n"
        assert (folder / key / "inside").read_text() == "keep me"
        assert not [p for p in folder.iterdir() if p.name.startswith(".tmp-")]
        return
    assert out.err == f"pktverify: warning: cache entry {key} ignored: {what}\n"
    assert stat.S_ISREG(os.lstat(folder / key).st_mode)          # replaced by the real entry
    if kind == "symlink":
        assert (tmp_path / "target").read_text() == "keep me"
    assert main(argv + ["--cache-dir", str(folder)]) == 0
    again = capsys.readouterr()
    assert (again.out, again.err) == (plain, "")


def test_a_folder_swapped_for_a_symlink_after_it_was_opened_redirects_nothing(tmp_path):
    """The cache works relative to the folder it opened: whoever owns the parent can swap the
    path for a link to elsewhere, and nothing is written (or read) there."""
    cache = ModelCache(tmp_path / "cache")
    (tmp_path / "cache").rename(tmp_path / "opened")
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "cache").symlink_to(tmp_path / "elsewhere")
    first = parse_iptables_save(DUMP, source="dump", cache=cache)
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert [p.name for p in (tmp_path / "opened").iterdir()] == [cache.key(DUMP, "dump", False)]
    assert parse_iptables_save(DUMP, source="dump", cache=cache) == first
    assert (cache.hits, cache.misses, cache.warnings) == (1, 1, [])


def _dag(depth: int) -> tuple:
    node = (1, 1)
    for _ in range(depth):
        node = (node, node)
    return node


def _pickled_tuple_bomb() -> bytes:
    """The old cache's allow-list took this: a rule set whose KUBE-SERVICES rule matches a
    multiport range list that is a DAG of 2-tuples 100 deep (each level shared through the
    pickle memo: 2**100 leaves in ~420 bytes)."""
    ruleset = parse_iptables_save(DUMP, source="x")
    chain = ruleset.tables["nat"].chains["KUBE-SERVICES"]
    bomb = replace(chain.rules[0], matches=chain.rules[0].matches + (MultiportMatch("dport", _dag(100)),))
    ruleset.tables["nat"].chains["KUBE-SERVICES"] = replace(chain, rules=(bomb,))
    return pickle.dumps(ruleset, protocol=5)


def _pickled_hash_bomb() -> bytes:
    """A frozenset holding a DAG of 2-tuples 64 deep: unpickling it hashes 2**64 tuples (no check
    after loading can stop that; the old cache hung in pickle.load)."""
    body = pickle.dumps(_dag(64), protocol=2)[2:-1]        # without PROTO and STOP
    return b"\x80\x04(" + body + b"\x91."                  # PROTO 4, MARK, the DAG, FROZENSET, STOP


@pytest.mark.parametrize("bomb", [_pickled_tuple_bomb, _pickled_hash_bomb])
def test_a_bomb_in_an_entry_is_a_miss_said_once(tmp_path, bomb):
    """Run as a command with a timeout: the old cache ran without bound on both."""
    argv = _trace_argv(tmp_path)
    command = [sys.executable, "-m", "pktverify", *argv]
    plain = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    key = _entry_key(tmp_path)
    (folder / key).write_bytes(bomb())
    (folder / key).chmod(0o600)
    done = subprocess.run([*command, "--cache-dir", str(folder)], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, plain.stdout)
    assert done.stderr == f"pktverify: warning: cache entry {key} ignored: not a cache entry of this version\n"
    assert decode_ruleset((folder / key).read_bytes()) == parse_iptables_save(DUMP, source=str(tmp_path / "dump"))


def _hollow(change):
    def make(source: str) -> bytes:
        ruleset = parse_iptables_save(DUMP, source=source)
        return encode_ruleset(change(ruleset))
    return make


def _with_chain(ruleset, table, chain):
    tables = dict(ruleset.tables)
    chains = dict(tables[table].chains)
    chains[chain.name] = chain
    tables[table] = replace(tables[table], chains=chains)
    return replace(ruleset, tables=tables)


def _retarget(ruleset, chain_name, target):
    chain = ruleset.tables["nat"].chains[chain_name]
    return _with_chain(ruleset, "nat", replace(chain, rules=(replace(chain.rules[0], target=target),)))


def _edited(edit):
    """An entry written by this version, then edited as JSON (what encode_ruleset never writes)."""
    def make(source: str) -> bytes:
        doc = json.loads(encode_ruleset(parse_iptables_save(DUMP, source=source)))
        edit(doc)
        return json.dumps(doc).encode()
    return make


def _loop(doc):
    """KUBE-SEP-A jumps back to KUBE-SERVICES (PREROUTING reaches the loop); ranks all 1."""
    strings, sections, (_, _, tables) = doc[1], doc[2], doc[3]
    nat = next(t for t in tables if strings[t[0]] == "nat")
    jumps = next(s for s in sections if s[0] == "Jump")
    jumps[2].append(strings.index("KUBE-SERVICES"))
    jumps[3].append(False)
    jumps[1] += 1
    targets = {cls.__name__ for cls in typing.get_args(Target)}
    before = sections[:sections.index(jumps) + 1]
    nat[11][-1] = sum(s[1] for s in before if s[0] in targets)      # (target 0 is None) the new jump:
                                                                    # KUBE-SEP-A's rule jumps back
    nat[6] = [1] * len(nat[6])


HOLLOW = {
    "no filter table": _hollow(lambda rs: replace(rs, tables={k: v for k, v in rs.tables.items() if k != "filter"})),
    "a jump to an undeclared chain": _hollow(lambda rs: _retarget(rs, "KUBE-SVC-A", Jump("KUBE-SEP-NONE"))),
    "a jump to a built-in chain": _hollow(lambda rs: _retarget(rs, "KUBE-SVC-A", Jump("OUTPUT"))),
    "a built-in chain without policy": _hollow(
        lambda rs: _with_chain(rs, "nat", replace(rs.tables["nat"].chains["PREROUTING"], policy=None))),
    "a verdict that is none": _hollow(lambda rs: _retarget(rs, "KUBE-SVC-A", Verdict("MAYBE"))),
    "a loop between chains": _edited(_loop),
}


@pytest.mark.parametrize("name", HOLLOW)
def test_a_well_typed_hollow_rule_set_is_a_miss_said_once(tmp_path, capsys, name):
    argv, plain, folder, key = _uncached_run(tmp_path, capsys)
    (folder / key).write_bytes(HOLLOW[name](str(tmp_path / "dump")))
    (folder / key).chmod(0o600)
    with _Deadline(30):
        code = main(argv + ["--cache-dir", str(folder)])
    out = capsys.readouterr()
    assert (code, out.out) == (0, plain)
    assert out.err.startswith(f"pktverify: warning: cache entry {key} ignored: ") and out.err.count("\n") == 1
    assert main(argv + ["--cache-dir", str(folder)]) == 0             # replaced: a hit, nothing said
    again = capsys.readouterr()
    assert (again.out, again.err) == (plain, "")


def _entry_doc() -> list:
    return json.loads(encode_ruleset(parse_iptables_save(DUMP, source="dump")))


def _section(doc: list, name: str) -> list:
    return next(s for s in doc[2] if s[0] == name)


def _nat(doc: list) -> list:
    return next(t for t in doc[3][2] if doc[1][t[0]] == "nat")


def _nested_where_ints_go(doc):
    """A Dnat's port is arrays nested 100 deep (the annotation says int | None): JSON cannot share
    what the pickled DAG shared, so this is as far as it goes; refused at the first level."""
    nested = [1, 1]
    for _ in range(100):
        nested = [nested, [1, 1]]
    _section(doc, "Dnat")[5][0] = nested


def _deep(doc):
    doc[3][1] = json.loads("[" * 50 + "]" * 50)


def _extra_rule_count(doc):
    _nat(doc)[5][0] = 10 ** 9


ENTRY_EDITS = {
    "an array where an int goes": (_nested_where_ints_go, "int expected"),
    "a bool where an int goes": (lambda d: _section(d, "AddrMatch").__setitem__(3, [True] * _section(d, "AddrMatch")[1]),
                                 "int expected"),
    "a negative int": (lambda d: _section(d, "AddrMatch")[3].__setitem__(0, -1), "integer out of range"),
    "an int of 2**64": (lambda d: _section(d, "AddrMatch")[3].__setitem__(0, 2 ** 64), "integer out of range"),
    "a string where an int goes": (lambda d: _nat(d)[8][0].__setitem__(0, "5"), "int expected"),
    "line runs that do not add up": (lambda d: _nat(d)[8][1].__setitem__(0, 7), "one line per rule"),
    "warnings nested where strings go": (_deep, "str expected"),
    "a match past the end": (lambda d: _nat(d)[10].__setitem__(0, [10 ** 6]), "a reference to nothing"),
    "a target past the end": (lambda d: _nat(d)[11].__setitem__(0, 10 ** 6), "a reference to nothing"),
    "a match referred to by a string": (lambda d: _nat(d)[10].__setitem__(0, ["0"]), "wrong type"),
    "a class outside the model": (lambda d: d[2].append(["system", 1, ["id"]]), "no match or target"),
    "a rule class in a section": (lambda d: d[2].append(["Rule", 0, [], [], [], [], [], [], [], []]),
                                  "no match or target"),
    "a column too short": (lambda d: _section(d, "AddrMatch")[2].pop(), "wrong length"),
    "a count past the entry's size": (_extra_rule_count, "more rules than the entry could hold"),
    "a table twice": (lambda d: d[3][2].append(d[3][2][0]), "its tables are"),
    "a chain twice": (lambda d: (_nat(d)[1].__setitem__(5, _nat(d)[1][4])), "appears twice"),
    "a string table holding a number": (lambda d: d[1].append(5), "string table"),
    "another format": (lambda d: d.__setitem__(0, "pktverify model 1"), "not a cache entry of this version"),
}


@pytest.mark.parametrize("name", ENTRY_EDITS)
def test_an_edited_entry_is_refused_saying_why(name):
    edit, why = ENTRY_EDITS[name]
    doc = _entry_doc()
    edit(doc)
    with pytest.raises(BadEntry, match=why):
        decode_ruleset(json.dumps(doc).encode())


@pytest.mark.parametrize("text, why", [
    (b'{"a": 1}', "JSON object"),
    (b'["pktverify model 2", [], [], [NaN, [], []]]', "finite"),
    (b'["pktverify model 2", [], [["RandomMatch", 1, [1e999], [false]]], [0, [], []]]', "not finite"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deep"),
    (b"\x80\x05\x95", "not a cache entry"),
    (b"", "not a cache entry"),
])
def test_what_is_no_entry_at_all_is_refused_saying_why(text, why):
    with pytest.raises(BadEntry, match=why):
        decode_ruleset(text)


def test_an_entry_larger_than_its_dump_could_make_it_is_not_read(tmp_path):
    cache = _cache(tmp_path)
    key = cache.key(DUMP, "dump", False)
    entry = tmp_path / "cache" / key
    entry.write_bytes(encode_ruleset(parse_iptables_save(DUMP, source="dump")) + b" " * (5 * len(DUMP) + 2 ** 20))
    entry.chmod(0o600)
    assert parse_iptables_save(DUMP, source="dump", cache=cache) == parse_iptables_save(DUMP, source="dump")
    assert cache.hits == 0
    assert len(cache.warnings) == 1 and "more than its dump could need" in cache.warnings[0]
    assert decode_ruleset(entry.read_bytes()) == parse_iptables_save(DUMP, source="dump")     # replaced
