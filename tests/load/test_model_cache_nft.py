"""nftables rulesets in the model cache (--cache-dir): a hit is the very ruleset a parse gives (every
field, those that do not compare too: handles, lines, rule texts), a cluster's nft dumps are read
from it on the next run, and an entry is trusted only when it holds model/nft.py's records, typed
as the model declares them, and nothing else."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pktverify.cli import main
from pktverify.cluster_api import load_cluster
from pktverify.load.cluster_nodes import cluster_nodes
from pktverify.load.model_cache import ModelCache
from pktverify.load.model_codec import BadEntry
from pktverify.load.nft_codec import decode_nft, encode_nft
from pktverify.load.nft_node import cached_parse_nft, parse_nft
from pktverify.model import nft as n
from pktverify.parse.iptables_save import parse_iptables_save
from pktverify.testing.nft_draw import nft_rulesets

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "rules" / "seed" / "cluster-iptables.yaml"
KUBE_PROXY_NFT = ROOT.parent / "shared" / "corpus" / "kube-proxy-nft"

LISTING = """table inet filter { # handle 3
\tset blocked { # handle 4
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 10.9.0.0/16, 192.0.2.7 }
\t}

\tchain forward { # handle 1
\t\ttype filter hook forward priority filter; policy accept;
\t\tct state established,related accept # handle 5
\t\tip saddr @blocked counter packets 7 bytes 420 drop # handle 6
\t\tmeta l4proto tcp th dport { 22, 80-90 } jump svc # handle 7
\t\tfib daddr type local ip ttl 1 reject with icmp type host-prohibited # handle 8
\t}

\tchain svc { # handle 2
\t\tmeta mark set meta mark | 0x00004000 numgen random mod 2 vmap { 0 : accept, 1 : drop } # handle 9
\t}
}
table ip nat {
\tchain post {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip saddr 10.1.0.0/16 oifname "eth*" masquerade fully-random
\t}
}
table ip6 v6 {
\tchain input {
\t\ttype filter hook input priority 0; policy drop;
\t\tip6 saddr fe80::/10 accept
\t}
}
"""
SCRIPT = """add table ip t
add chain ip t c { type filter hook output priority 0 ; policy accept ; }
add map ip t m { type ipv4_addr . inet_service : ipv4_addr . inet_service ; }
add element ip t m { 10.96.0.10 . 80 : 10.1.20.5 . 8080 }
add rule ip t c ip daddr . tcp dport vmap { 10.96.0.11 . 53 : goto d }
add chain ip t d
add rule ip t d update @m { ip daddr . tcp dport : 10.1.0.1 . 80 } counter comment "a comment"
"""


def same(a, b) -> bool:
    """``a`` and ``b`` equal in every field, those that do not compare too, and of the same types."""
    if type(a) is not type(b):
        return False
    if type(a) is tuple:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return a == b


def _cache(tmp_path: Path) -> ModelCache:
    return ModelCache(tmp_path / "cache")


def _rulesets() -> list[tuple[str, str]]:
    out = [("listing", LISTING), ("script", SCRIPT)]
    out += [(p.name, p.read_text()) for p in sorted((ROOT / "tests" / "corpus" / "nft").rglob("*.nft"))]
    if KUBE_PROXY_NFT.is_dir():
        cases = [(p.name, json.loads(p.read_text()).get("nft_ruleset")) for p in sorted(KUBE_PROXY_NFT.glob("*.json"))]
        out += [(name, text) for name, text in cases if text][:6]
    return out


@pytest.mark.parametrize("name,text", _rulesets(), ids=[name for name, _t in _rulesets()])
def test_a_hit_is_the_ruleset_a_parse_gives(tmp_path, name, text):
    cache = _cache(tmp_path)
    fresh = parse_nft(text, source=name)
    first = cached_parse_nft(text, source=name, cache=cache)
    assert (cache.hits, cache.misses) == (0, 1) and cache.warnings == []
    second = cached_parse_nft(text, source=name, cache=cache)
    assert (cache.hits, cache.misses) == (1, 1)
    assert second is not first
    assert second == fresh and same(second, fresh)


def test_the_json_form_is_cached_too():
    listing = parse_nft(LISTING, source="l")
    rules = [r for t in listing.tables for c in t.chains for r in c.rules]
    assert {r.handle for r in rules} >= {5, 6, 7, 8, 9} and any(r.text.startswith("ct state") for r in rules)
    counter = next(e for r in rules for e in r.exprs if type(e) is n.Counter)
    back = decode_nft(encode_nft(listing))
    assert same(back, listing)
    assert next(e for t in back.tables for c in t.chains for r in c.rules for e in r.exprs
                if type(e) is n.Counter).packets == counter.packets == 7


def test_equal_records_are_stored_once_and_one_is_never_true(tmp_path):
    ones = n.NftRuleset("s", "text", (n.NftTable("ip", "t", (n.NftChain("c", (
        n.NftRule(1, 2, "a", (n.Match(n.Meta("mark"), "==", 1),)),
        n.NftRule(1, 3, "b", (n.Match(n.Meta("mark"), "==", True),)),
        n.NftRule(1, 4, "c", (n.Match(n.Meta("mark"), "==", 1),)))),)),))
    back = decode_nft(encode_nft(ones))
    assert same(back, ones)
    rules = back.tables[0].chains[0].rules
    assert type(rules[1].exprs[0].right) is bool and type(rules[0].exprs[0].right) is int
    assert rules[0].exprs[0] is rules[2].exprs[0]           # equal records: one row
    rows = json.loads(encode_nft(ones))[1]
    assert [r[0] for r in rows].count(_row_kind(n.Meta)) == 1 and [r[0] for r in rows].count(_row_kind(n.Match)) == 2


def test_the_key_tells_nft_from_iptables_and_holds_the_text_and_source(tmp_path):
    cache = _cache(tmp_path)
    assert cache.key(LISTING, "x", False, kind="nft") != cache.key(LISTING, "x", False)
    assert cache.key(LISTING, "x", False, kind="nft") != cache.key(LISTING, "y", False, kind="nft")
    assert cache.key(LISTING, "x", False, kind="nft") != cache.key(LISTING + " ", "x", False, kind="nft")
    cached_parse_nft(LISTING, source="x", cache=cache)
    other = cached_parse_nft(LISTING.replace("192.0.2.7", "192.0.2.8"), source="x", cache=cache)
    assert cache.hits == 0 and same(other, parse_nft(LISTING.replace("192.0.2.7", "192.0.2.8"), source="x"))
    renamed = cached_parse_nft(LISTING, source="y", cache=cache)
    assert cache.hits == 0 and renamed.source == "y"


def test_an_iptables_entry_is_no_nft_entry_and_back(tmp_path):
    cache = _cache(tmp_path)
    key = cache.key(LISTING, "x", False, kind="nft")
    cache.store(key, parse_iptables_save("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", source="i"))
    got = cached_parse_nft(LISTING, source="x", cache=cache)
    assert same(got, parse_nft(LISTING, source="x"))
    assert cache.hits == 0 and len(cache.warnings) == 1 and "ignored" in cache.warnings[0]
    assert same(cache.load_nft(key), got)                      # replaced by the right entry
    assert cache.load(key) is None                             # and that one is no iptables entry
    with pytest.raises(BadEntry):
        encode_nft(parse_iptables_save("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", source="i"))


def _doc() -> list:
    return json.loads(encode_nft(parse_nft(LISTING, source="x")))


def _row_kind(cls: type) -> int:
    return sorted(c.__name__ for c in vars(n).values() if isinstance(c, type) and dataclasses.is_dataclass(c)
                  and c.__module__ == n.__name__).index(cls.__name__) + 1


def _row(doc: list, cls: type) -> list:
    return next(r for r in doc[1] if r[0] == _row_kind(cls))


def _set(cls: type, field: str, value):
    def edit(doc):
        row = _row(doc, cls)
        row[1 + [f.name for f in dataclasses.fields(cls)].index(field)] = value
        return doc
    return edit


def _forward_reference(doc):
    doc[1][0] = [0, [len(doc[1]) - 1]]
    return doc


def _rules_of_matches(doc):
    chain = _row(doc, n.NftChain)
    match = next(i for i, r in enumerate(doc[1]) if r == _row(doc, n.Match))
    doc[1].append([0, [match]])
    chain[2] = [len(doc[1]) - 1]
    doc[1].append(doc[1].pop(doc[1].index(chain)))              # after what it refers to now
    doc[2] = [len(doc[1]) + 5]
    return doc


HOSTILE = {
    "not json": lambda doc: b"\x80not json",
    "an object": lambda doc: json.dumps({"a": doc}).encode(),
    "another tag": lambda doc: [doc[0].replace("1", "9"), *doc[1:]],
    "a float": _set(n.Range, "low", 1.5),
    "no such class": lambda doc: [doc[0], doc[1] + [[999]], doc[2]],
    "a forward reference": _forward_reference,
    "a reference to nothing": lambda doc: [doc[0], doc[1] + [[0, [-1]]], doc[2]],
    "a str where an int goes": _set(n.Range, "low", "80"),
    "an int where a str goes": _set(n.Payload, "field", 7),
    "a bool where an int goes": _set(n.Range, "high", True),
    "None where none goes": _set(n.NftRule, "text", None),
    "an operator nft has not": _set(n.Match, "op", "=~"),
    "a policy nft has not": _set(n.NftChain, "policy", "reject"),
    "a jump without a chain": _set(n.NftVerdict, "kind", "jump"),
    "a huge int": _set(n.Range, "low", 2 ** 140),
    "too many fields": lambda doc: (_row(doc, n.Payload).append("x"), doc)[1],
    "chains of matches": _rules_of_matches,
    "a root that is no ruleset": lambda doc: [doc[0], doc[1], [0]],
    "nested too deep": lambda doc: [doc[0], doc[1] + [[0] + [[[[[]]]]]], doc[2]],
    "a pickle": lambda doc: pickle.dumps(doc),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_entry_is_a_miss_said_once(tmp_path, name):
    edited = HOSTILE[name](_doc())
    data = edited if isinstance(edited, bytes) else json.dumps(edited).encode()
    with pytest.raises(BadEntry):
        decode_nft(data)
    cache = _cache(tmp_path)
    key = cache.key(LISTING, "x", False, kind="nft")
    entry = tmp_path / "cache" / key
    entry.write_bytes(data)
    entry.chmod(0o600)
    got = cached_parse_nft(LISTING, source="x", cache=cache)
    assert same(got, parse_nft(LISTING, source="x"))
    assert len(cache.warnings) == 1 and cache.warnings[0].startswith(f"cache entry {key} ignored: ")
    assert entry.read_bytes() != data                          # replaced by a good one


def test_a_symlinked_entry_is_not_followed(tmp_path):
    cache = _cache(tmp_path)
    key = cache.key(LISTING, "x", False, kind="nft")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(encode_nft(parse_nft(LISTING, source="x")))
    (tmp_path / "cache" / key).symlink_to(elsewhere)
    assert cache.load_nft(key) is None and "a symlink" in cache.warnings[0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nft_rulesets())
@pytest.mark.property
def test_drawn_rulesets_come_back_whole(script):
    ruleset = parse_nft(script, source="drawn.nft")
    assert same(decode_nft(encode_nft(ruleset)), ruleset)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10 ** 6), st.sampled_from([0, 1, -1, "x", None, True, [0], [], 2 ** 64]))
@pytest.mark.property
def test_any_one_value_changed_is_a_ruleset_or_a_bad_entry(where, value):
    doc = _doc()
    rows = doc[1]
    row = rows[where % len(rows)]
    row[where % len(row)] = value
    try:
        back = decode_nft(json.dumps(doc).encode())
    except BadEntry:
        return
    assert type(back) is n.NftRuleset


def _cluster(tmp_path: Path) -> Path:
    text = SEED.read_text()
    for k, node in enumerate(("node1", "node2", "node3")):
        dump = tmp_path / node / "nft-ruleset.nft"
        dump.parent.mkdir()
        dump.write_text(LISTING.replace("192.0.2.7", f"192.0.2.{k + 10}"))
        text = text.replace(f"{{name: {node}, ", f"{{name: {node}, nft: {dump}, ", 1)
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return path


def test_a_clusters_nft_dumps_are_read_from_the_cache(tmp_path):
    cluster = load_cluster(_cluster(tmp_path))
    fresh = cluster_nodes(cluster)
    cache = _cache(tmp_path)
    cold = cluster_nodes(cluster, cache=cache)
    assert (cache.hits, cache.misses) == (0, 3)
    warm = cluster_nodes(cluster, cache=cache)
    assert (cache.hits, cache.misses) == (3, 3) and cache.warnings == []
    for name, state in fresh.items():
        assert same(warm[name].nft, state.nft) and same(cold[name].nft, state.nft)
        assert warm[name].warnings == state.warnings          # the ip6 table's note, as without the cache


def test_verify_with_cache_dir_prints_what_it_prints_without(tmp_path, capsys):
    path = str(_cluster(tmp_path))
    outputs = []
    for extra in ([], ["--cache-dir", str(tmp_path / "c")], ["--cache-dir", str(tmp_path / "c")]):
        for form in (["--format", "json"], []):
            code = main(["verify", path, *form, *extra])
            captured = capsys.readouterr()
            outputs.append((code, captured.out))
            assert "cache entry" not in captured.err
    assert outputs[0] == outputs[2] == outputs[4] and outputs[1] == outputs[3] == outputs[5]
    assert outputs[1][0] == 1 and "ip nat/post #1 MASQUERADE" in outputs[1][1]      # the nft rules were read
    assert len(list((tmp_path / "c").iterdir())) == 3
