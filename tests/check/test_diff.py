"""pktverify diff: exact behavioural differences between two rule sets of one node."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pktverify.check.diff import diff_rulesets
from pktverify.check.diff.compare import _fate
from pktverify.cli import main
from pktverify.eval.node_trace import NodeTracer
from pktverify.generate.node_state import generate_node
from pktverify.model.addresses import format_ip, parse_ip
from pktverify.parse.cluster_yaml import load_cluster
from pktverify.parse.iptables_save import parse_iptables_save

from ..helpers import pkt, tables, tracer

ROOT = Path(__file__).resolve().parents[2]


def _diff(old: str, new: str):
    node = tracer(old).node
    return diff_rulesets(node, replace(node, ruleset=parse_iptables_save(new, source="new.txt")))


FWD = "-A FORWARD -d 10.1.0.0/16 -j ACCEPT\n-A FORWARD -d 10.1.2.0/24 -j DROP"


def test_the_same_rules_reordered_where_it_does_not_matter_or_renamed_report_nothing():
    assert _diff(tables(filter=FWD), tables(filter=FWD)).same
    disjoint = "-A FORWARD -d 10.1.0.0/16 -j ACCEPT\n-A FORWARD -d 10.2.0.0/16 -j DROP"
    swapped = "-A FORWARD -d 10.2.0.0/16 -j DROP\n-A FORWARD -d 10.1.0.0/16 -j ACCEPT"
    result = _diff(tables(filter=disjoint), tables(filter=swapped))
    assert result.same and result.cells > 0 and result.changed_old
    renamed_a = ":KUBE-A - [0:0]\n-A FORWARD -j KUBE-A\n-A KUBE-A -d 10.1.2.0/24 -j DROP"
    renamed_b = ":KUBE-B - [0:0]\n-A FORWARD -j KUBE-B\n-A KUBE-B -d 10.1.2.0/24 -j DROP"
    assert _diff(tables(filter=renamed_a), tables(filter=renamed_b)).same


def test_a_reordering_that_matters_is_one_class_with_its_rules():
    swapped = "-A FORWARD -d 10.1.2.0/24 -j DROP\n-A FORWARD -d 10.1.0.0/16 -j ACCEPT"
    result = _diff(tables(filter=FWD), tables(filter=swapped))
    [cls] = result.classes
    assert cls.old == ("forward on cni0",) and cls.new == ("drop",)
    assert cls.spans[1] == ((parse_ip("10.1.2.0"), parse_ip("10.1.2.255")),)
    assert cls.example.dst >> 8 == parse_ip("10.1.2.0") >> 8
    assert any("#1 ACCEPT" in r for r in cls.old_rules) and any("#1 DROP" in r for r in cls.new_rules)
    assert result.exact


def test_a_filter_rule_behind_a_dnat_changes_the_service_address_too():
    nat = "-A PREROUTING -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination 10.1.2.7:8080"
    old = tables(nat=nat)
    new = tables(nat=nat, filter="-A FORWARD -d 10.1.2.7/32 -j DROP")
    result = _diff(old, new)
    dsts = {c.example.dst for c in result.classes}
    assert parse_ip("10.96.0.10") in dsts and parse_ip("10.1.2.7") in dsts


def test_dnat_and_snat_changes_are_reported_as_such():
    old = tables(nat="-A PREROUTING -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination 10.1.2.7:8080")
    new = tables(nat="-A PREROUTING -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination 10.1.2.8:8080\n"
                     "-A POSTROUTING -s 10.0.0.0/8 -o eth0 -j MASQUERADE")
    texts = [c.new for c in _diff(old, new).classes]
    assert any("DNAT to 10.1.2.8 port 8080" in t for c in texts for t in c)
    assert any("SNAT to" in t for c in texts for t in c)


# ------------------------------------------------------------------ the property
_NETS = ["10.0.0.0/8", "10.1.2.0/24", "10.1.2.7/32", "192.168.0.0/16", "10.96.0.10/32"]


@st.composite
def rule_sets(draw):
    filt, nat = [], []
    for _ in range(draw(st.integers(0, 4))):
        parts = ["-A FORWARD"]
        if draw(st.booleans()):
            parts.append(f"{draw(st.sampled_from(['', '! ']))}-d {draw(st.sampled_from(_NETS))}")
        if draw(st.booleans()):
            parts.append(f"-s {draw(st.sampled_from(_NETS))}")
        if draw(st.booleans()):
            parts.append(f"-p tcp --dport {draw(st.sampled_from(['80', '8080', '1:100']))}")
        parts.append(f"-j {draw(st.sampled_from(['ACCEPT', 'DROP', 'RETURN']))}")
        filt.append(" ".join(parts))
    for _ in range(draw(st.integers(0, 2))):
        target = draw(st.sampled_from(["10.1.2.7:8080", "10.1.2.8", "192.168.0.40:80"]))
        nat.append(f"-A PREROUTING -d {draw(st.sampled_from(_NETS))} -p tcp -j DNAT --to-destination {target}")
    if draw(st.booleans()):
        nat.append(f"-A POSTROUTING -s {draw(st.sampled_from(_NETS))} -o eth0 -j MASQUERADE")
    return tables(filter="\n".join(filt), nat="\n".join(nat))


_PACKET_ADDRS = ["10.0.0.5", "10.1.2.7", "10.1.2.8", "10.1.2.200", "10.96.0.10", "192.168.0.40", "8.8.8.8"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(rule_sets(), rule_sets(), st.lists(st.tuples(st.sampled_from(_PACKET_ADDRS), st.sampled_from(_PACKET_ADDRS),
                                                     st.sampled_from([80, 8080, 443]),
                                                     st.sampled_from(["eth0", "cni0", None])), min_size=5, max_size=5))
def test_the_diff_is_exact_on_random_rule_sets(a, b, probes):
    node_a = tracer(a).node
    node_b = replace(node_a, ruleset=parse_iptables_save(b, source="b.txt"))
    result = diff_rulesets(node_a, node_b)
    ta, tb = NodeTracer(node_a), NodeTracer(node_b)
    for cls in result.classes:             # every reported example really differs
        fa = _fate(cls.example, ta.trace(cls.example, in_iface=cls.in_iface).outcomes)
        fb = _fate(cls.example, tb.trace(cls.example, in_iface=cls.in_iface).outcomes)
        assert (fa, fb) == (cls.old, cls.new)
    for src, dst, dport, iface in probes:  # every packet that differs lies in a reported class
        p = pkt(src, dst, dport=dport)
        fa = _fate(p, ta.trace(p, in_iface=iface).outcomes)
        fb = _fate(p, tb.trace(p, in_iface=iface).outcomes)
        if fa == fb:
            continue
        assert any(c.old == fa and c.new == fb and (iface or "local") in c.interfaces
                   and all(any(lo <= v <= hi for lo, hi in span) for v, span in
                           zip((p.src, p.dst, p.proto, p.sport, p.dport), c.spans))
                   for c in result.classes), (format_ip(p.src), format_ip(p.dst), iface, fa, fb)


# ------------------------------------------------------------------ the command
def test_cli_text_json_exit_codes_and_a_cluster(tmp_path, capsys):
    cluster = load_cluster(ROOT / "rules/seed/cluster-iptables.yaml")
    old_text = generate_node(cluster, cluster.nodes[0]).iptables
    old, new = tmp_path / "old.rules", tmp_path / "new.rules"
    old.write_text(old_text)
    new.write_text(old_text.replace("--probability 0.50000000000", "--probability 0.20000000000"))
    assert main(["diff", str(old), str(old)]) == 0
    assert "no packet is treated differently" in capsys.readouterr().out
    assert main(["diff", str(old), str(new), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["classes"] and all("p=0.2" in " ".join(c["new"]) for c in doc["classes"])
    assert main(["diff", str(old), str(new), "--cluster", str(ROOT / "rules/seed/cluster-iptables.yaml"),
                 "--node", "node1"]) == 1
    out = capsys.readouterr().out
    assert "invariant service-reachability: 0 violation(s) before" in out
    assert main(["diff", str(old), str(new), "--addrs", str(old)]) == 2          # --routes missing
    assert main(["diff", str(old), str(tmp_path / "missing")]) == 2


# ------------------------------------------------------------------ representative examples
def test_examples_are_representative_packets_not_range_low_ends(tmp_path, capsys):
    swapped = "-A FORWARD -d 10.1.2.0/24 -j DROP\n-A FORWARD -d 10.1.0.0/16 -j ACCEPT"
    [cls] = _diff(tables(filter=FWD), tables(filter=swapped)).classes
    ex = cls.example
    assert ex.proto == 6 and ex.dst != parse_ip("10.1.2.0") and ex.dst >> 8 == parse_ip("10.1.2.0") >> 8
    assert ex.sport != 0 and ex.dport != 0 and ex.dport == 80            # a real port, a usual one
    assert ex.src >> 24 not in (0, 127) and ex.src & 0xFF != 0           # a host, not a special range's low end
    # A class only the node's own packets are in says so, and its example is one of them.
    old, new = tmp_path / "old.rules", tmp_path / "new.rules"
    old.write_text(tables(filter="-A OUTPUT -d 10.9.0.0/16 -j ACCEPT"))
    new.write_text(tables(filter="-A OUTPUT -d 10.9.0.0/16 -j DROP"))
    assert main(["diff", str(old), str(new)]) == 1
    out = capsys.readouterr().out
    example = next(line for line in out.splitlines() if line.strip().startswith("example:"))
    assert example.endswith("generated locally") and "10.9.0.1:80" in example and ":0 " not in example
    assert main(["diff", str(old), str(new), "--format", "json"]) == 1
    [doc] = json.loads(capsys.readouterr().out)["classes"]
    assert doc["example"]["in_iface"] is None and doc["interfaces"] == ["local"]
