"""``verify --compare-mode`` cuts each destination's packets by the rules they can meet only (issue
#25 at scale: ``diff_rulesets(local_cuts=True)``, :func:`pktverify.check.diff.region.cutting_boxes`).
The classes found must be those of the cells ``pktverify diff`` cuts (every rule's box cutting every
destination): the same fates, labels, spans, interfaces and example packets, in fewer cells -- on
kube-proxy's two modes as generated, and on planted differences that are not by design."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest

from pktverify.check.compare_mode import CELLS_PER_PORT, cell_bound, compare_modes
from pktverify.check.diff import MAX_CELLS, diff_rulesets
from pktverify.check.diff.deliberate import mode_facts
from pktverify.check.diff.region import _DstIndex
from pktverify.check.diff.run import read_sides
from pktverify.generate.synthetic_cluster import synthetic_cluster
from pktverify.load.cluster import load_cluster
from pktverify.load.node import build_node
from pktverify.model import rules as m
from pktverify.parse.ipaddr import parse_ip_addr
from pktverify.parse.iproute import parse_routes
from pktverify.parse.iptables_save import parse_iptables_save
from pktverify.parse.source import read_text

from .test_compare_mode import EVERY, SEED, _write_modes


def _classes(result) -> list:
    """What a diff says about each class, its cell count aside (coarser cells, the same packets)."""
    return sorted((c.old, c.new, c.deliberate, c.spans, c.interfaces, repr(c.example), c.in_iface, c.old_rules,
                   c.new_rules) for c in result.classes)


def _both(files, old="ipt", new="nft"):
    """The diff of two files on their node, cut as ``diff`` cuts and destination by destination."""
    a, b = read_sides(files[old], files[new])
    dump = parse_routes(read_text(files["routes"]), source=str(files["routes"]))
    base = build_node("node", parse_ip_addr(read_text(files["addrs"]), source=str(files["addrs"])), dump.routes,
                      a.ruleset, legacy_routes=dump.legacy)
    old_node, new_node = replace(base, ruleset=a.ruleset, nft=a.nft), replace(base, ruleset=b.ruleset, nft=b.nft)
    facts = mode_facts(old_node, new_node, None)
    label = facts.label if facts is not None else None
    return tuple(diff_rulesets(old_node, new_node, label=label, local_cuts=local) for local in (False, True))


def _same(whole, local) -> None:
    assert _classes(local) == _classes(whole)
    assert (local.complete, local.exact, local.notes) == (whole.complete, whole.exact, whole.notes)
    assert 0 < local.cells < whole.cells


def test_generated_modes_give_the_same_classes_in_fewer_cells(tmp_path):
    for i, path in enumerate((SEED, EVERY)):
        (tmp_path / str(i)).mkdir()
        files = _write_modes(path, tmp_path / str(i))
        whole, local = _both(files)
        _same(whole, local)
        assert local.classes
        back_whole, back_local = _both(files, "nft", "ipt")
        _same(back_whole, back_local)


def test_a_missing_endpoint_is_found_alike(tmp_path):
    spec = load_cluster(SEED)
    without = dataclasses.replace(spec, pods=tuple(p for p in spec.pods if p.name != "web-2"))
    whole, local = _both(_write_modes(SEED, tmp_path, cluster_nft=without))
    _same(whole, local)
    assert local.unexplained and any(any("10.1.20.5" in f for f in c.old) for c in local.unexplained)


def test_an_unserved_clusterip_and_a_missing_nodeport_address_are_found_alike(tmp_path):
    whole, local = _both(_write_modes(SEED, tmp_path, edit_nft=lambda t: "\n".join(
        line for line in t.splitlines() if not (line.startswith("add element ip kube-proxy service-ips")
                                                and "10.152.183.164" in line)) + "\n"))
    _same(whole, local)
    assert any(c.new == ("reject",) and not c.deliberate for c in local.classes)
    (tmp_path / "b").mkdir()
    whole, local = _both(_write_modes(EVERY, tmp_path / "b", edit_nft=lambda t: t.replace(
        "add element ip kube-proxy nodeport-ips { 192.168.1.10 }\n", "")))
    _same(whole, local)
    assert local.unexplained


def test_an_endpoints_hairpin_rule_changed_in_one_service_chain_is_found_alike(tmp_path):
    """A rule inside one service's endpoint chain (its cut met with that service's packets only):
    the hairpin masquerade of one endpoint dropped from the iptables side."""
    files = _write_modes(SEED, tmp_path)
    text = files["ipt"].read_text()
    line = next(x for x in text.splitlines() if x.startswith("-A KUBE-SEP-") and "-j KUBE-MARK-MASQ" in x)
    files["ipt"].write_text(text.replace(line + "\n", ""))
    whole, local = _both(files)
    _same(whole, local)
    assert local.unexplained


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_compare_modes_answers_alike_on_a_synthetic_cluster(mode):
    cluster = dataclasses.replace(synthetic_cluster(3, 6, 18), proxy_mode=mode)
    whole, local = compare_modes(cluster, local_cuts=False), compare_modes(cluster)
    for w, x in zip(whole.nodes, local.nodes):
        assert (w.node, w.same_as) == (x.node, x.same_as)
        _same(w.result, x.result)
    assert local.all_deliberate and local.complete


def test_dst_index_passes_exactly_the_rules_that_may_meet_a_destination():
    """A superset, in chain order: each rule whose -d range meets the destinations, and every rule
    without one or with a wide one (10.0.0.0/8: not indexed)."""
    text = "*filter\n:FORWARD ACCEPT [0:0]\n" + "".join(
        f"-A FORWARD -d 10.0.0.{i}/32 -j ACCEPT\n" for i in range(1, 9)) + \
        "-A FORWARD -d 10.0.1.0/24 -j ACCEPT\n-A FORWARD -p tcp -j ACCEPT\n-A FORWARD -d 10.0.0.0/8 -j DROP\n" \
        "COMMIT\n"
    chain = parse_iptables_save(text, source="t").tables["filter"].chains["FORWARD"]
    index = _DstIndex(chain)
    ip = lambda s: int.from_bytes(bytes(int(x) for x in s.split(".")), "big")  # noqa: E731
    lines = lambda rules: [r.index for r in rules]  # noqa: E731
    assert lines(index.near([((ip("10.0.0.3"), ip("10.0.0.3")),)])) == [3, 10, 11]
    assert lines(index.near([((ip("10.0.0.8"), ip("10.0.1.7")),)])) == [8, 9, 10, 11]
    assert lines(index.near([((ip("10.0.0.2"), ip("10.0.0.2")), (ip("10.0.1.9"), ip("10.0.1.9")))])) == [2, 9, 10, 11]
    assert lines(index.near([((ip("192.168.0.1"), ip("192.168.0.1")),)])) == [10, 11]
    assert lines(index.near([((0, 2 ** 32 - 1),)])) == list(range(1, 12))
    assert all(isinstance(r, m.Rule) for r in index.near([((0, 1),)]))
    # a chain of fewer than _DstIndex._SMALL rules is passed whole
    assert _DstIndex.of(chain).near([((ip("192.168.0.1"), ip("192.168.0.1")),)]) == list(chain.rules)


def test_the_default_bound_grows_with_the_service_ports_and_a_given_bound_is_kept():
    small, big = synthetic_cluster(2, 10, 30), synthetic_cluster(2, 1000, 500)
    assert cell_bound(small) == MAX_CELLS
    assert cell_bound(big) == CELLS_PER_PORT * sum(len(s.ports) for s in big.services) > MAX_CELLS
    bounded = compare_modes(small, nodes=["node0"], max_cells=100)
    assert bounded.nodes[0].result.cells == 100 and not bounded.complete
