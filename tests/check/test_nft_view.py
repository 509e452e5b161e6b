"""The header-space view of nft rulesets (pktverify.check.nft_view): equal for each form of one
ruleset, and sound against pktverify's own nft evaluator: whenever a drawn rule acts on a drawn
packet the packet is in one of its view rules' boxes, and a packet in an exact view rule's box gets
that view rule's action when the rule is reached."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pktverify.check.headerspace import _CT_BASE, Universe, rule_box
from pktverify.check.nft_view import MAX_ELEMENTS, box_view, build_view
from pktverify.eval.fib import Fib
from pktverify.eval.nft_walk import NftTableEval
from pktverify.eval.state import CT_DNAT, CT_SNAT, CT_UNTRACKED, TraceMeta, WalkState
from pktverify.load.node import build_node
from pktverify.model import rules as m
from pktverify.model.addresses import parse_ip
from pktverify.model.packet import Packet
from pktverify.parse.ipaddr import parse_ip_addr
from pktverify.parse.iproute import parse_routes
from pktverify.parse.iptables_save import parse_iptables_save
from pktverify.parse.nft_json import parse_nft_json
from pktverify.parse.nft_text import parse_nft_text
from pktverify.testing.nft_draw import nft_rulesets

from ..parse.test_nft_parse import PAIRS

BASE = "table {fam} t {{\n set s4 {{ type ipv4_addr; flags interval; elements = {{ 10.0.0.0/8, 192.168.1.1-192.168.1.9 }} }}\n" \
       " chain c {{\n  type filter hook forward priority 0; policy drop;\n{rules} }}\n}}\n"


def view(text: str) -> m.Ruleset:
    return box_view(parse_nft_text(text, "r.nft"))


def rules_of(text: str, chain: str = "c", table: str = "ip t") -> tuple[m.Rule, ...]:
    return view(text).tables[table].chains[chain].rules


def one(body: str, fam: str = "ip") -> tuple[m.Rule, ...]:
    return rules_of(BASE.format(fam=fam, rules=f"  {body}\n"), table=f"{fam} t")


# ------------------------------------------------------------------ structure and translation
def test_tables_chains_and_rule_fields():
    text = BASE.format(fam="inet", rules="  ip saddr 10.0.0.0/8 tcp dport 80 accept\n  jump u\n") + \
        "table inet t {\n chain u {\n  return\n }\n}\ntable ip6 six {\n chain x {\n  accept\n }\n}\n"
    v = view(text)
    assert list(v.tables) == ["inet t"]                   # ip6 skipped; one table of the name
    chain = v.tables["inet t"].chains["c"]
    assert chain.policy == "DROP" and chain.builtin and v.tables["inet t"].chains["u"].policy is None
    r1, r2 = chain.rules
    assert (r1.table, r1.chain, r1.index, r1.source, r1.text) == ("inet t", "c", 1, "r.nft",
                                                                  "ip saddr 10.0.0.0/8 tcp dport 80 accept")
    assert r1.matches == (m.AddrMatch("src", 0x0A000000, 0xFF000000), m.ProtoMatch(6), m.PortMatch("dport", 80, 80))
    assert r1.target == m.Verdict("ACCEPT") and r2.target == m.Jump("u")


def box_of(rule: m.Rule, ruleset: m.Ruleset | None = None):
    return rule_box(rule, Universe.of(ruleset or m.Ruleset("x", {"t": m.Table("t", {"c": m.Chain("c", None, (rule,))})})))


@pytest.mark.parametrize(("body", "exact"), [
    ("ip saddr @s4 drop", True),
    ("ip daddr != { 1.1.1.1, 2.0.0.0/8 } drop", True),
    ("meta l4proto { tcp, udp } th dport 53 accept", True),
    ("th dport 53 accept", False),                         # nft reads any header's bytes there
    ("tcp flags syn drop", False),
    ("ct state established,related accept", True),
    ('iifname "eth*" oifname != "lo" accept', True),
    ("ip saddr & 255.255.0.0 == 10.1.0.0 drop", True),
    ("fib daddr type local drop", False),
    ("limit rate 10/second accept", False),
    ("ct mark 0x1 accept", False),
])
def test_exactness(body, exact):
    rules = one(body)
    assert len(rules) == 1
    assert box_of(rules[0])[1] is exact, rules[0].matches


def test_implied_protocols_and_ipv6_only_headers():
    (r,) = one("tcp dport != 80 drop")
    assert m.ProtoMatch(6) in r.matches                    # a UDP packet never matches tcp dport != 80
    (r,) = one("reject with tcp reset")
    assert r.matches == (m.ProtoMatch(6),) and r.target == m.Reject("tcp-reset")
    (r,) = one("ip6 saddr ::1 accept", "inet")
    box, exact = box_of(r)
    assert exact and not all(box)                          # no IPv4 packet: an empty box


def test_statement_order_matches_after_an_effect_do_not_guard_it():
    r1, r2 = one("ip saddr 10.0.0.0/8 meta mark set 0x20 tcp dport 22 accept")
    assert r1.target == m.SetMark(0x20, 0xFFFFFFFF) and r1.matches == (m.AddrMatch("src", 0x0A000000, 0xFF000000),)
    assert r2.target == m.Verdict("ACCEPT") and len(r2.matches) == 3
    r1, r2 = one("meta mark set meta mark | 0x4 ct mark set meta mark")
    assert r1.target == m.SetMark(0x4, 0x4) and r2.target == m.ConnMark("save")


def test_concatenations_and_verdict_maps_expand_per_element():
    text = BASE.format(fam="ip", rules="  ip daddr . meta l4proto . th dport vmap @svc\n").replace(
        " chain c", " map svc { type ipv4_addr . inet_proto . inet_service : verdict; elements = { "
                    "10.1.1.1 . tcp . 80 : goto x, 10.1.1.2 . udp . 53 : drop } }\n chain x { accept }\n chain c")
    v = build_view(parse_nft_text(text, "r.nft"))
    rules, infos = v.ruleset.tables["ip t"].chains["c"].rules, v.info[("ip t", "c")]
    assert [r.target for r in rules] == [m.Jump("x", True), m.Verdict("DROP")]
    assert [i.element for i in infos] == ["10.1.1.1 . tcp . 80", "10.1.1.2 . udp . 53"]
    assert all(i.entry for i in infos) and rules[0].text.endswith("[element 10.1.1.1 . tcp . 80]")
    assert all(box_of(r, v.ruleset)[1] for r in rules)     # th dport exact: the element fixes the protocol


def test_nat_map_expands_and_an_opaque_map_covers_every_address():
    r1, r2 = one("dnat to ip daddr map { 10.96.0.10 : 10.0.0.20, 10.96.0.11 : 10.0.0.21 }")
    assert r1.target == m.Dnat(parse_ip("10.0.0.20"), parse_ip("10.0.0.20"), None, None)
    assert r1.matches == (m.AddrMatch("dst", parse_ip("10.96.0.10"), 0xFFFFFFFF),)
    r1, r2 = one("dnat to numgen random mod 2 map { 0 : 10.0.0.20, 1 : 10.0.0.21 }")   # per element, opaque keys
    assert not box_of(r1)[1] and r1.target.addr_low == parse_ip("10.0.0.20") and r2.target.addr_low == r1.target.addr_low + 1
    text = BASE.format(fam="ip", rules="  dnat to ip daddr map @dyn\n").replace(
        " chain c", " map dyn { type ipv4_addr : ipv4_addr; flags dynamic; }\n chain c")
    (r,) = rules_of(text)
    assert not box_of(r)[1] and r.target == m.Dnat(0, 0xFFFFFFFF, 0, 65535)


def test_state_sets_are_opaque_and_the_cap_holds():
    text = BASE.format(fam="ip", rules="  ip saddr @seen drop\n  add @seen { ip saddr }\n").replace(
        " chain c", " set seen { type ipv4_addr; }\n chain c")
    r1 = rules_of(text)[0]
    assert not box_of(r1)[1]                                # the packet path adds to it: state
    many = ", ".join(f"10.{i >> 8 & 255}.{i & 255}.1 . {1 + i % 60000}" for i in range(MAX_ELEMENTS + 1))
    (r,) = one(f"ip daddr . tcp dport {{ {many} }} accept")
    assert not box_of(r)[1] and r.target == m.Verdict("ACCEPT")


# ------------------------------------------------------------------ one ruleset, three forms
def _strip(ruleset: m.Ruleset) -> list:
    return [(t, c, [dataclasses.replace(r, line=0, text="", source="") for r in ch.rules])
            for t, tab in ruleset.tables.items() for c, ch in tab.chains.items()]


@pytest.mark.parametrize(("family", "text", "exprs"), [p for p in PAIRS if "@" not in p[1]],
                         ids=[p[1][:50] for p in PAIRS if "@" not in p[1]])
def test_each_form_gives_one_view(family, text, exprs):
    listing = f"table {family} t {{\n chain c {{\n  type filter hook forward priority 0; policy accept;\n  {text}\n }}\n}}\n"
    script = f"add table {family} t\nadd chain {family} t c {{ type filter hook forward priority 0 ; policy accept ; }}\n" \
             f"add rule {family} t c {text}\n"
    doc = {"nftables": [{"metainfo": {"json_schema_version": 1}}, {"table": {"family": family, "name": "t"}},
                        {"chain": {"family": family, "table": "t", "name": "c", "type": "filter", "hook": "forward",
                                   "prio": 0, "policy": "accept"}},
                        {"rule": {"family": family, "table": "t", "chain": "c", "expr": json.loads(exprs)}}]}
    views = [_strip(box_view(parse_nft_text(listing, "l.nft"))), _strip(box_view(parse_nft_text(script, "s.nft"))),
             _strip(box_view(parse_nft_json(json.dumps(doc), "j.json")))]
    assert views[0] == views[1] == views[2]
    assert views[0][0][2]                                   # the rule is in the view


def test_mixed_node_iptables_tables_kept_and_iptables_nft_tables_left_to_them():
    ipt = parse_iptables_save("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j DROP\nCOMMIT\n", source="ipt.txt")
    nft = parse_nft_text(BASE.format(fam="ip", rules="  accept\n") +
                         "table ip filter {\n chain INPUT {\n  type filter hook input priority 0; policy accept;\n"
                         "  xt match \"conntrack\" accept\n }\n}\n", "r.nft")
    v = box_view(nft, ipt)
    assert set(v.tables) >= {"filter", "ip t"} and "ip filter" not in v.tables
    assert v.tables["filter"] is ipt.tables["filter"]


# ------------------------------------------------------------------ soundness against the evaluator
ADDRS = ("1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0    inet 192.168.0.2/24 scope global eth0\n"
         "3: cni0    inet 10.0.0.1/24 scope global cni0\n")
ROUTES = "default via 192.168.0.1 dev eth0\n10.0.0.0/24 dev cni0 proto kernel scope link src 10.0.0.1\n" \
         "192.168.0.0/24 dev eth0 proto kernel scope link src 192.168.0.2\n"
_POOL = ["10.96.0.10", "10.96.0.11", "192.168.0.40", "192.168.0.43", "10.0.0.20", "192.168.0.2", "10.0.0.1",
         "10.0.0.9", "192.168.0.9", "10.96.0.200", "8.8.8.8"]
_FIB: list = []


def fib() -> Fib:
    if not _FIB:
        dump = parse_routes(ROUTES)
        node = build_node("n", parse_ip_addr(ADDRS), dump.routes, parse_iptables_save("*filter\nCOMMIT\n", source="x"),
                          legacy_routes=dump.legacy)
        _FIB.append(Fib(node))
    return _FIB[0]


@st.composite
def states(draw) -> WalkState:
    proto = draw(st.sampled_from([6, 17, 1, 132, 47]))
    ports = st.sampled_from([80, 443, 8080, 53, 1500, 22, 15001, 40000])
    pkt = Packet(proto, parse_ip(draw(st.sampled_from(_POOL))), parse_ip(draw(st.sampled_from(_POOL))),
                 draw(ports) if proto != 1 else 0, draw(ports) if proto != 1 else 0)
    ifaces = st.sampled_from(["eth0", "cni0", "eth1", "", "cbr"])
    ct = draw(st.sampled_from([1, 2, 4, 8, CT_UNTRACKED])) | draw(st.sampled_from([0, CT_SNAT, CT_DNAT]))
    return WalkState(pkt, draw(ifaces), draw(ifaces), draw(st.sampled_from([0, 1, 2, 3, 5])), ct, 1.0, True, (),
                     ctmark=draw(st.sampled_from([0, 5])), meta=TraceMeta(pkt))


def _run(ops: tuple, st_: WalkState, j: int = 0, acts: tuple = ()) -> list[tuple[tuple, bool]]:
    """Every world of one rule on ``st_``: (what acted, in order; whether a may-match was assumed true)."""
    while j < len(ops):
        op = ops[j]
        code = op[0]
        if code == "pred":
            answer = op[1](st_)
            if answer is None:          # both worlds
                return [(a, True) for a, _x in _run(ops, st_, j + 1, acts)] + [(acts, False)]
            if not answer:
                return [(acts, False)]
        elif code == "fixed":
            if not op[1]:
                return [(acts, False)]
        elif code == "effect":
            done = op[1](st_, None)
            if done is None:
                return [(acts, False)]
            st_, acts = done[0], acts + ("effect",)
        elif code == "fork":
            return [w for _share, tail, _note in op[1] for w in _run(tail, st_, 0, acts)]
        elif code == "vmap":
            found, data = op[2].find(op[1](st_))
            if found is None:
                return [(acts + (f"{v.kind} {v.chain or ''}".strip(),), True) for v in {e.data for e in op[2].elements}]
            return [(acts + (f"{data.kind} {data.chain or ''}".strip(),) if found else acts, False)]
        elif code == "verdict":
            return [(acts + (f"{op[1]} {op[2] or ''}".strip(),), False)]
        elif code == "nat":
            return [(acts + ("nat",) if op[1](st_, None) is not None else acts, False)]
        else:
            return [(acts + (code,), False)]
        j += 1
    return [(acts, False)]


def _kind(target) -> str | None:
    t = type(target)
    if t is m.Verdict:
        return target.name.lower()
    if t is m.Jump:
        return f"{'goto' if target.goto else 'jump'} {target.chain}"
    if t in (m.Dnat, m.Snat, m.Masquerade, m.Redirect, m.Netmap):
        return "nat"
    if t is m.Nfqueue:
        return "queue"
    if t is m.Reject:
        return "reject"
    if t in (m.SetMark, m.ConnMark, m.SetTtl, m.NoTrack, m.NoOp):
        return "effect"
    return None                  # None (continue, matches only), UnknownTarget: no claim


def _point(st_: WalkState, u: Universe) -> tuple:
    p = st_.pkt
    base = {1: 0, 2: 1, 4: 2, 8: 3, CT_UNTRACKED: 4}[st_.ctbits & (15 | CT_UNTRACKED)]
    ct = base * 4 + (1 if st_.ctbits & CT_SNAT else 0) + (2 if st_.ctbits & CT_DNAT else 0)
    mark = sum(1 << i for i, bit in enumerate(u.mark_bits) if st_.mark >> bit & 1)
    return (p.src, p.dst, p.proto, p.sport, p.dport, u.interface_atom(st_.in_iface), u.interface_atom(st_.out_iface),
            ct, mark)


def _inside(point: tuple, box) -> bool:
    return all(any(lo <= v <= hi for lo, hi in values) for v, values in zip(point, box))


def check_rule(ops: tuple, views: list[m.Rule], st_: WalkState, u: Universe) -> None:
    worlds = _run(ops, st_)
    point = _point(st_, u)
    boxes = [rule_box(r, u) for r in views]
    for acts, _assumed in worlds:
        if acts:                                             # the rule acted: the packet is in a view box
            assert any(_inside(point, box) for box, _e in boxes), (acts, views)
    for r, (box, exact) in zip(views, boxes):
        want = _kind(r.target)
        if exact and want is not None and _inside(point, box):
            assert all(want in acts for acts, _x in worlds), (r.text, r.matches, want, worlds)


@pytest.mark.property
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(script=nft_rulesets(), packets=st.lists(states(), min_size=1, max_size=12))
def test_view_is_sound_against_the_evaluator(script, packets):
    assert _CT_BASE == ("INVALID", "ESTABLISHED", "RELATED", "NEW", "UNTRACKED")
    ruleset = parse_nft_text(script, "drawn.nft")
    v = build_view(ruleset)
    u = Universe.of(v.ruleset)
    for table in ruleset.tables:
        ev = NftTableEval(table, fib(), "drawn.nft")
        for chain in table.chains:
            compiled = ev.chain(chain.name)
            view_rules = v.ruleset.tables[f"{table.family} {table.name}"].chains[chain.name].rules
            for pos, (_rule, ops) in enumerate(compiled.rules, 1):
                mine = [r for r in view_rules if r.index == pos]
                assert mine, (chain.name, pos)
                for st_ in packets:
                    check_rule(ops, mine, st_, u)
