"""PV163-PV165 (pktverify.check.lint.nft_reachability): duplicates, rules after an unconditional
verdict, and shadowed rules and set or map elements of nft rulesets. CASES are shared with the
kernel check (tests/kernel/test_nft_lint_kernel.py), which loads each in a network namespace with
counters and sends packets of the shadowed rule's box: its counter stays 0."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pktverify.check.lint import lint_files, lint_text
from pktverify.check.lint.cover_index import ShadowWork
from pktverify.check.lint.nft_reachability import nft_dead_rules
from pktverify.eval.node_trace import NodeTracer
from pktverify.load.node import build_node
from pktverify.model.addresses import parse_ip
from pktverify.model.packet import Packet
from pktverify.parse.ipaddr import parse_ip_addr
from pktverify.parse.iproute import parse_routes
from pktverify.parse.iptables_save import parse_iptables_save
from pktverify.parse.nft_text import parse_nft_text
from pktverify.testing.nft_draw import nft_rulesets

from .test_nft_view import _POOL, ADDRS, ROUTES

_NODE: list = []


def _node():
    if not _NODE:
        dump = parse_routes(ROUTES)
        _NODE.append(build_node("n", parse_ip_addr(ADDRS), dump.routes, parse_iptables_save("*filter\nCOMMIT\n",
                                                                                          source="x"),
                                legacy_routes=dump.legacy))
    return _NODE[0]


HEAD = "table ip t {\n chain forward {\n  type filter hook forward priority 0; policy accept;\n"


def forward(*rules: str, more: str = "") -> str:
    """A forward base chain holding ``rules``: rule i (1-based) is on line 3 + i."""
    return HEAD + "".join(f"  {r}\n" for r in rules) + " }\n" + more + "}\n"


# (name, rules of the forward chain, {rule index: id} lint finds (PV163-PV165), probes): a probe is
# (proto, destination, port, rule indices whose counter stays 0, rule indices whose counter moves),
# sent from the kernel lab's pod (10.0.0.9, in by cni0) to its lan side.
CASES = [
    ("prefix-in-wider-prefix", ["ip daddr 192.168.0.0/24 counter accept", "ip daddr 192.168.0.32/27 counter drop"],
     {2: "PV165"}, [("tcp", "192.168.0.40", 80, {2}, {1}), ("udp", "192.168.0.33", 53, {2}, {1})]),
    ("port-set-in-range", ["tcp dport 1-1000 counter accept", "tcp dport { 80, 443 } counter drop"],
     {2: "PV165"}, [("tcp", "192.168.0.40", 80, {2}, {1}), ("tcp", "192.168.0.40", 443, {2}, {1})]),
    ("iifname-wildcard", ['iifname "cni*" counter accept', 'iifname "cni0" ip daddr 192.168.0.40 counter drop'],
     {2: "PV165"}, [("tcp", "192.168.0.40", 80, {2}, {1})]),
    ("ct-state", ["ct state new counter accept", "ct state established,related counter accept",
                  "ct state { new, established } counter drop"],
     {3: "PV165"}, [("tcp", "192.168.0.40", 80, {3}, {1}), ("udp", "192.168.0.41", 53, {3}, {1})]),
    ("concatenation-element", ["ip daddr 192.168.0.40 counter accept",
                               "ip daddr . meta l4proto . th dport { 192.168.0.40 . tcp . 80, 192.168.0.41 . tcp . 80 } "
                               "counter drop"],
     {2: "PV165"}, [("tcp", "192.168.0.40", 80, {2}, {1}), ("tcp", "192.168.0.41", 80, set(), {2})]),
    ("duplicate", ["ip daddr 192.168.0.40 counter accept", "ip daddr 192.168.0.40 counter accept"],
     {2: "PV163"}, [("tcp", "192.168.0.40", 80, {2}, {1})]),
    ("after-catch-all", ["counter accept", "ip daddr 192.168.0.40 counter drop"],
     {2: "PV164"}, [("tcp", "192.168.0.40", 80, {2}, {1})]),
    # Negative cases: lint says nothing, and the rule's counter moves.
    ("narrower-cover", ["ip daddr 192.168.0.0/24 tcp dport 443 counter accept", "ip daddr 192.168.0.40 counter drop"],
     {}, [("tcp", "192.168.0.40", 80, {1}, {2})]),
    ("mark-set-ends-the-cover", ["meta mark 0x1 counter accept", "meta mark set 0x1 counter",
                                 "meta mark 0x1 counter drop"],
     {}, [("tcp", "192.168.0.40", 80, {1}, {2, 3})]),
]


def found(text: str) -> dict[int, str]:
    return {f.line - 3: f.id for f in lint_text(text, "r.nft") if f.id in ("PV163", "PV164", "PV165")}


@pytest.mark.parametrize(("name", "rules", "expected", "probes"), CASES, ids=[c[0] for c in CASES])
def test_case(name, rules, expected, probes):
    assert found(forward(*rules)) == expected


def test_messages_name_rules_as_nft_prints_them_and_elements_as_elements():
    text = forward("ip daddr 10.0.0.0/8 accept # handle 4", "ip daddr . tcp dport { 10.1.1.1 . 80, 11.1.1.1 . 80 } drop "
                   "# handle 7")
    (f,) = [f for f in lint_text(text, "r.nft") if f.id == "PV165"]
    assert f.message == ("element 10.1.1.1 . 80 of rule #2 (ip daddr . tcp dport { 10.1.1.1 . 80, 11.1.1.1 . 80 } drop "
                         "# handle 7) is shadowed: every packet of the element was already decided by rule #1 "
                         "(ip daddr 10.0.0.0/8 accept # handle 4) of chain forward of table ip t")
    assert (f.line, f.related) == (5, (("r.nft", 4, "covers part of rule #2"),))


def test_a_wholly_shadowed_rule_is_one_finding_and_elements_never_cover_their_own_rule():
    text = forward("ip daddr 10.0.0.0/8 accept", "counter ip daddr . tcp dport { 10.1.1.1 . 80, 10.1.1.2 . 80 } drop")
    out = [f.message.split(" is ")[0] for f in lint_text(text, "r.nft") if f.id == "PV165"]
    assert [m.split(" of ")[0] for m in out] == ["element 10.1.1.1 . 80", "element 10.1.1.2 . 80"]   # the counter counts
    text = forward("ip daddr 10.0.0.0/8 accept", "ip daddr 10.1.0.0/16 counter ip daddr . tcp dport "
                   "{ 10.1.1.1 . 80, 10.1.1.2 . 80 } drop")
    assert [f.message.split(" is ")[0] for f in lint_text(text, "r.nft") if f.id == "PV165"] == \
        ["rule #2 (ip daddr 10.1.0.0/16 counter ip daddr . tcp dport { 10.1.1.1 . 80, 10.1.1.2 . 80 } drop)"]
    overlapping = forward("ip daddr vmap { 10.0.0.0/8 : accept, 10.1.0.0/16 : drop }")
    assert found(overlapping) == {}


def test_json_findings_at_line_1_with_the_nftables_index():
    doc = {"nftables": [{"metainfo": {"json_schema_version": 1}}, {"table": {"family": "ip", "name": "t"}},
                        {"chain": {"family": "ip", "table": "t", "name": "c", "type": "filter", "hook": "forward",
                                   "prio": 0, "policy": "accept", "handle": 1}}]
                       + [{"rule": {"family": "ip", "table": "t", "chain": "c", "handle": h, "expr": [
                           {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                                      "right": {"prefix": {"addr": net, "len": plen}}}}, {"drop": None}]}}
                          for h, net, plen in ((2, "10.0.0.0", 8), (3, "10.1.0.0", 16))]}
    (f,) = [f for f in lint_text(json.dumps(doc), "r.json") if f.id == "PV165"]
    assert f.line == 1 and f.message.startswith("nftables[4]: rule #2 (ip daddr 10.1.0.0/16 drop # handle 3) is "
                                                "shadowed") and f.related == (("r.json", 1, "nftables[3]: covers part "
                                                                                             "of rule #2"),)


def test_what_the_box_cannot_say_hides_a_shadowing_but_never_makes_one():
    assert found(forward("ip daddr 10.0.0.0/8 fib saddr type local accept", "ip daddr 10.1.0.0/16 drop")) == {}
    assert found(forward("ip daddr 10.0.0.0/8 limit rate 1/second accept", "ip daddr 10.1.0.0/16 drop")) == {}
    assert found(forward("meta l4proto tcp th dport 80 accept", "tcp dport 80 drop")) == {2: "PV165"}
    assert found(forward("th dport 80 accept", "tcp dport 80 drop")) == {}          # no protocol: th is opaque
    assert found(forward("ip saddr @s accept", "ip saddr 10.1.1.1 drop",
                         more=" set s { type ipv4_addr; flags dynamic; elements = { 10.1.1.1 } }\n")) == {}
    assert found(forward("ip saddr @s accept", "ip saddr 10.1.1.1 drop",
                         more=" set s { type ipv4_addr; elements = { 10.1.1.1 } }\n")) == {2: "PV165"}
    assert found(forward("ip daddr 10.0.0.0/8 jump c", "ip daddr 10.1.0.0/16 drop",
                         more=" chain c { meta mark set 0x1 }\n")) == {}       # the jump may change the packet
    assert found(forward("notrack", "ct state untracked drop", "ct state untracked accept")) == {3: "PV165"}
    assert found(forward("ct state untracked drop", "notrack", "ct state untracked accept")) == {}


def test_copies_with_state_of_their_own_or_after_a_change_are_no_repeat():
    assert found(forward("limit rate 10/second accept", "limit rate 10/second accept")) == {}
    assert found(forward("meta mark set meta mark xor 0x4", "meta mark set meta mark xor 0x4")) == {}
    assert found(forward("meta mark set meta mark or 0x4", "meta mark set meta mark or 0x4")) == {2: "PV163"}
    assert found(forward("meta mark 0x1 return", "jump c", "meta mark 0x1 return",
                         more=" chain c { meta mark set 0x1 }\n")) == {}
    assert found(forward("meta mark 0x1 return", "jump c", "meta mark 0x1 return", more=" chain c { }\n")) == \
        {3: "PV163"}


def test_not_analysed_when_the_structure_does_not_hold_but_a_script_order_is_fine():
    assert found(forward("ip daddr 10.0.0.0/8 accept", "ip daddr 10.1.0.0/16 drop", "jump nochain")) == {}
    script = ("add table ip t\nadd chain ip t forward { type filter hook forward priority 0 ; }\n"
              "add rule ip t forward ip daddr 10.0.0.0/8 goto later\nadd rule ip t forward ip daddr 10.1.0.0/16 drop\n"
              "add chain ip t later\n")
    ids = {f.id for f in lint_text(script, "s.nft")}
    assert ids == {"PV151", "PV165"}          # PV151: the script adds the chain after the goto


def test_work_bound_note_and_select(tmp_path):
    text = forward("ip daddr 10.0.0.0/8 accept", "ip daddr 10.1.0.0/16 drop", "ip daddr 10.2.0.0/16 drop")
    notes: list[str] = []
    work = ShadowWork(max_pairs=0)
    out = nft_dead_rules(parse_nft_text(text, "r.nft"), [], notes, work)
    assert [f.line for f in out if f.id == "PV165"] == [5] and work.beyond      # rule #3 is past the bound
    assert notes == ["r.nft: PV165 (nft-shadowed-rule) not analysed: 1 rule(s) beyond the bound of 0 rule pairs "
                     "compared and 300,000 box intervals handled (first: r.nft:6); those rules may still be shadowed"]
    path = tmp_path / "r.nft"
    path.write_text(forward("ip daddr 10.0.0.0/8 accept", "ip daddr 10.1.0.0/16 drop"))
    assert {f.id for f in lint_files([path]).findings} == {"PV165"}
    assert lint_files([path], ignore_ids=["PV165"]).findings == []


def test_many_shadowed_elements_are_reported_five_then_counted():
    elements = ", ".join(f"10.1.{i}.1 . 80" for i in range(12))
    text = forward("ip daddr 10.0.0.0/8 accept", f"ip daddr . tcp dport {{ {elements} }} drop")
    out = [f for f in lint_text(text, "r.nft") if f.id == "PV165"]
    assert len(out) == 6 and out[-1].message == (f"7 more elements of rule #2 (ip daddr . tcp dport {{ {elements} }} "
                                                 "drop) are shadowed too")


def test_kube_proxy_style_ruleset_is_quick():
    svc = "".join(f"add element ip kube-proxy service-ips {{ 172.30.{i >> 8}.{i & 255} . tcp . 80 : goto s{i % 10} }}\n"
                  for i in range(3000))
    script = ("add table ip kube-proxy\n" + "".join(f"add chain ip kube-proxy s{i}\nadd rule ip kube-proxy s{i} drop\n"
                                                     for i in range(10))
              + "add chain ip kube-proxy services\n"
              "add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }\n"
              "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }\n"
              "add rule ip kube-proxy nat-prerouting jump services\n"
              "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips\n"
              "add rule ip kube-proxy services ip daddr 172.30.0.0 tcp dport 80 drop\n" + svc)
    start = time.perf_counter()
    out = lint_text(script, "kp.nft")
    assert [f.id for f in out] == ["PV165"] and time.perf_counter() - start < 20


# ------------------------------------------------------------------ never a false report, by the evaluator
@pytest.mark.property
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(script=nft_rulesets(), packets=st.lists(st.tuples(
    st.sampled_from([6, 17, 1]), st.sampled_from(_POOL), st.sampled_from(_POOL),
    st.sampled_from([80, 443, 53, 8080, 1500]), st.sampled_from(["cni0", "eth0", None])), min_size=1, max_size=8))
def test_a_rule_lint_calls_dead_never_acts_in_a_trace(script, packets):
    """Whole rules PV164/PV165 report never show in a trace step of pktverify's nft evaluator."""
    dead = {(f.line, f.id) for f in lint_text(script, "drawn.nft") if f.id in ("PV164", "PV165")
            and not f.message.startswith(("element ", "no packet reaches element"))
            and "more elements of rule" not in f.message}
    if not dead:
        return
    ruleset = parse_nft_text(script, "drawn.nft")
    lines = {(f"{t.family} {t.name}", c.name, pos): r.line for t in ruleset.tables for c in t.chains
             for pos, r in enumerate(c.rules, 1)}
    dead_lines = {line for line, _id in dead}
    tracer = NodeTracer(dataclasses.replace(_node(), nft=ruleset))
    for proto, src, dst, dport, iface in packets:
        pkt = Packet(proto, parse_ip(src), parse_ip(dst), 40000 if proto != 1 else 0, dport if proto != 1 else 0)
        for outcome in tracer.trace(pkt, in_iface=iface).outcomes:
            for step in outcome.steps:
                line = lines.get((step.table, step.chain, step.rule_index))
                assert line not in dead_lines, (step, dead, script)


def test_a_shadowed_rule_names_the_rules_that_shadow_it_not_every_earlier_rule_it_meets():
    """One earlier rule holding the whole box is named alone; two that hold it together are named
    without a third that only meets it (iptables and nft share this core)."""
    nft = ("table ip t {\n  chain input {\n    type filter hook input priority 0; policy accept;\n"
           "    ip saddr 192.0.2.0/25 drop\n    tcp dport { 80, 443 } accept\n    tcp dport 443 ip saddr 192.0.2.0/24 drop\n"
           "    ct state established,related accept\n    ct state established accept\n  }\n}\n")
    found = {f.line: f for f in lint_text(nft, "p.nft") if f.id == "PV165"}
    assert [r[1] for r in found[6].related] == [5]              # not rule #1: it holds only half the box
    assert [r[1] for r in found[8].related] == [7]
    ipt = ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.0/8 -j DROP\n-A INPUT -p tcp --dport 80 -j ACCEPT\n"
           "-A INPUT -p tcp --dport 81 -j ACCEPT\n-A INPUT -p tcp -m multiport --dports 80,81 -j DROP\nCOMMIT\n")
    shadowed = [f for f in lint_text(ipt, "p.txt") if f.id == "PV203"]
    assert [(f.line, [r[1] for r in f.related]) for f in shadowed] == [(6, [4, 5])]
