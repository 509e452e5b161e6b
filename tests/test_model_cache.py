"""The opt-in model cache (--cache-dir): a hit gives the very rule set a parse gives, and the cache
is only ever trusted when it is the user's own and holds nothing but pktverify's model."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pktverify.cli import main
from pktverify.errors import InputError, InvalidArgument
from pktverify.parse.iptables_save import parse_iptables_save
from pktverify.parse.model_cache import ModelCache
from pktverify.strategies import clusters, faulty_clusters
from pktverify.testing.kernel_campaign import rule_sets

from .conftest import STANDARD_ADDRS, STANDARD_ROUTES

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
    assert pickle.loads(entry.read_bytes()) == got          # overwritten with the real model


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
