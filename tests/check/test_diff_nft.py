"""pktverify diff on nft rulesets: nft against nft, iptables against its nft translation, mixed
nodes (an iptables-save or an nft ruleset unchanged beside the two sides), the CLI's exit codes and
JSON, and a property: on random small nft ruleset pairs, every class diff reports really differs
when its example is traced on both sides, and when diff says "same" (exactly) no sampled packet gets
different fates. The nft evaluator the cells are traced with is kernel-checked on its own
(tests/kernel/test_nft_*.py); diff adds no kernel semantics of its own."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pktverify.check.diff import diff_rulesets, run_diff
from pktverify.check.diff.compare import _fate
from pktverify.cli import main
from pktverify.errors import InputError, InvalidArgument
from pktverify.eval.node_trace import NodeTracer
from pktverify.load.nft_node import node_nft
from pktverify.load.node import build_node
from pktverify.model.addresses import parse_ip
from pktverify.model.packet import Packet
from pktverify.oracle.kernel_lab import LAB_ADDRS, LAB_ROUTES
from pktverify.parse.ipaddr import parse_ip_addr
from pktverify.parse.iproute import parse_routes
from pktverify.parse.iptables_save import parse_iptables_save
from pktverify.parse.nft_text import parse_nft_text
from pktverify.testing.nft_draw import mixed_rulesets

ROOT = Path(__file__).resolve().parents[2]

INPUT = """table ip t {{
  chain input {{
    type filter hook input priority 0; policy {policy};
{rules}  }}
}}
"""


def nft(rules: str, policy: str = "accept") -> str:
    return INPUT.format(policy=policy, rules="".join(f"    {r}\n" for r in rules.split("\n") if r))


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def diff(tmp_path: Path, old: str, new: str, **kw):
    return run_diff(write(tmp_path, "old.nft", old), write(tmp_path, "new.nft", new), **kw)


# ------------------------------------------------------------------ nft against nft
def test_a_changed_prefix_is_the_packets_between_the_two(tmp_path):
    run = diff(tmp_path, nft("ip saddr 10.0.0.0/8 tcp dport 22 drop"), nft("ip saddr 10.0.0.0/16 tcp dport 22 drop"))
    [cls] = run.result.classes
    assert run.verdict == "different" and cls.old == ("drop",) and cls.new == ("local",)
    assert cls.spans[0] == ((parse_ip("10.1.0.0"), parse_ip("10.255.255.255")),)
    assert cls.spans[2] == ((6, 6),) and cls.spans[4] == ((22, 22),)
    assert any(r.endswith("old.nft:4 (ip t/input #1 DROP)") for r in cls.old_rules)      # FILE:LINE of the nft rule
    assert run.result.exact


def test_the_same_ruleset_and_a_reorder_that_does_not_matter_are_the_same(tmp_path):
    rules = "ip saddr 10.0.0.0/8 drop\nip saddr 192.168.0.0/16 accept"
    assert diff(tmp_path, nft(rules), nft(rules)).same
    swapped = "ip saddr 192.168.0.0/16 accept\nip saddr 10.0.0.0/8 drop"
    run = diff(tmp_path, nft(rules), nft(swapped))
    assert run.same and run.result.cells > 0 and run.result.exact


def test_a_reordered_pair_that_overlaps_is_one_class_with_its_rules(tmp_path):
    rules = "ip saddr 10.0.0.0/8 accept\nip saddr 10.1.0.0/16 drop"
    run = diff(tmp_path, nft(rules, "drop"), nft("ip saddr 10.1.0.0/16 drop\nip saddr 10.0.0.0/8 accept", "drop"))
    [cls] = run.result.classes
    assert cls.old == ("local",) and cls.new == ("drop",)
    assert cls.spans[0] == ((parse_ip("10.1.0.0"), parse_ip("10.1.255.255")),)
    assert any("#1 ACCEPT" in r for r in cls.old_rules) and any("#1 DROP" in r for r in cls.new_rules)


@pytest.mark.parametrize("named", [False, True])
def test_a_changed_verdict_map_element_is_that_element_only(tmp_path, named):
    def text(verdict: str) -> str:
        elements = f"10.9.0.1 : drop, 10.9.0.2 : {verdict}, 10.9.0.3 : accept"
        if not named:
            return nft(f"ip saddr vmap {{ {elements} }}")
        return nft("ip saddr vmap @m").replace("  chain input", f"  map m {{\n    type ipv4_addr : verdict\n"
                                                              f"    elements = {{ {elements} }}\n  }}\n  chain input")
    run = diff(tmp_path, text("accept"), text("drop"))
    [cls] = run.result.classes
    assert cls.old == ("local",) and cls.new == ("drop",)
    assert cls.spans[0] == ((parse_ip("10.9.0.2"),) * 2,)
    assert diff(tmp_path, text("accept"), text("accept")).same


def test_base_chain_priorities_decide_the_order_two_tables_run_in(tmp_path):
    # t sets a mark that u drops on: only when t runs first.
    def text(prio: int) -> str:
        return ("table ip t {\n  chain c {\n    type filter hook input priority %d; policy accept;\n"
                "    ip saddr 10.0.0.0/8 meta mark set 0x1\n  }\n}\n"
                "table ip u {\n  chain c {\n    type filter hook input priority 0; policy accept;\n"
                "    meta mark 0x1 drop\n  }\n}\n") % prio
    run = diff(tmp_path, text(-10), text(10))
    assert run.verdict == "different"
    [cls] = run.result.classes
    assert cls.old == ("drop",) and cls.new == ("local",)
    assert cls.spans[0] == ((parse_ip("10.0.0.0"), parse_ip("10.255.255.255")),)
    assert diff(tmp_path, text(-10), text(-20)).same          # still first: the same order


def test_a_changed_policy_is_every_packet_the_chain_does_not_decide(tmp_path):
    run = diff(tmp_path, nft("ip saddr 10.0.0.0/8 accept"), nft("ip saddr 10.0.0.0/8 accept", "drop"))
    assert run.verdict == "different"
    assert all(c.new == ("drop",) and c.old == ("local",) for c in run.result.classes)
    for c in run.result.classes:        # no packet from 10/8 changes: the rule accepts it on both sides
        assert all(hi < parse_ip("10.0.0.0") or lo > parse_ip("10.255.255.255") for lo, hi in c.spans[0])


def test_a_changed_named_set_changes_the_rules_that_read_it(tmp_path):
    def text(elements: str) -> str:
        declared = f"  set blocked {{\n    type ipv4_addr\n    elements = {{ {elements} }}\n  }}\n  chain input"
        return nft("ip saddr @blocked drop").replace("  chain input", declared)
    run = diff(tmp_path, text("10.0.0.1, 10.0.0.2"), text("10.0.0.1"))
    [cls] = run.result.classes
    assert cls.spans[0] == ((parse_ip("10.0.0.2"),) * 2,) and cls.old == ("drop",)


def test_a_payload_rewrite_puts_every_packet_in_the_region(tmp_path):
    # A rewritten port meets the changed rule with a port its box does not hold: every packet is
    # compared, and the evaluator follows the rewrite: port 80 (rewritten to 8080) differs too.
    old = nft("tcp dport 80 tcp dport set 8080\ntcp dport 8080 accept")
    new = nft("tcp dport 80 tcp dport set 8080\ntcp dport 8080 drop")
    run = diff(tmp_path, old, new)
    assert any("rewrites a header field" in note for note in run.result.notes)
    assert run.result.cells > 1000
    assert sorted(c.spans[4] for c in run.result.classes) == [((80, 80),), ((8080, 8080),)]
    assert diff(tmp_path, old, nft("tcp dport 80 tcp dport set 8080\ntcp dport 8081 drop")).verdict == "different"


def test_json_dumps_name_rules_by_their_index_and_handle(tmp_path):
    def dump(length: int) -> str:
        return json.dumps({"nftables": [
            {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
            {"table": {"family": "ip", "name": "t", "handle": 1}},
            {"chain": {"family": "ip", "table": "t", "name": "input", "handle": 1, "type": "filter",
                       "hook": "input", "prio": 0, "policy": "accept"}},
            {"rule": {"family": "ip", "table": "t", "chain": "input", "handle": 7, "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                           "right": {"prefix": {"addr": "10.0.0.0", "len": length}}}}, {"drop": None}]}}]})
    old, new = write(tmp_path, "old.json", dump(8)), write(tmp_path, "new.json", dump(16))
    run = run_diff(old, new)
    [cls] = run.result.classes
    assert cls.old_rules == (f"{old}: nftables[3] (ip t/input #1 DROP, handle 7)",)
    assert run.result.place(run.result.changed_old[0]) == f"{old}: nftables[3]"


# ------------------------------------------------------------------ iptables against nft
IPT = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j DROP
-A FORWARD -i eth1 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.1.1.5:8080
COMMIT
"""
TRANSLATED = """table ip filter {
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr 10.0.0.0/8 tcp dport 22 drop
  }
  chain forward {
    type filter hook forward priority 0; policy drop;
    iifname "eth1" accept
  }
}
table ip nat {
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    ip daddr 10.96.0.10 tcp dport 80 dnat to 10.1.1.5:8080
  }
}
"""


def test_an_equivalent_nft_translation_is_the_same(tmp_path, capsys):
    old, new = write(tmp_path, "iptables-save.txt", IPT), write(tmp_path, "ruleset.nft", TRANSLATED)
    assert main(["diff", old, new]) == 0
    assert "no packet is treated differently" in capsys.readouterr().out
    run = run_diff(old, new)
    assert run.same and run.result.cells > 100 and run.result.exact


def test_a_translation_that_is_not_equivalent_is_the_class_and_its_rule(tmp_path, capsys):
    old = write(tmp_path, "iptables-save.txt", IPT)
    new = write(tmp_path, "ruleset.nft", TRANSLATED.replace("dnat to 10.1.1.5:8080", "dnat to 10.1.1.6:8080"))
    assert main(["diff", old, new, "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "different"
    for cls in out["classes"]:
        assert cls["example"]["dst"] == "10.96.0.10" and cls["example"]["dport"] == 80
        assert any("DNAT" in r for r in cls["old_rules"]) and any(f"{new}:14 (ip nat/prerouting #1 DNAT" in r
                                                                   for r in cls["new_rules"])
        assert any("10.1.1.5" in f for f in cls["old"]) and any("10.1.1.6" in f for f in cls["new"])


# ------------------------------------------------------------------ mixed nodes
def test_an_iptables_save_beside_two_nft_sides_takes_part(tmp_path):
    beside = write(tmp_path, "iptables-save.txt", "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
                                                  ":OUTPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.5/32 -j DROP\nCOMMIT\n")
    old, new = nft("ip saddr 10.0.0.0/24 accept"), nft("ip saddr 10.0.0.0/24 drop")
    alone = diff(tmp_path, old, new)
    mixed = diff(tmp_path, old, new, iptables=beside)
    five = parse_ip("10.0.0.5")
    assert any(lo <= five <= hi for c in alone.result.classes for lo, hi in c.spans[0])
    assert mixed.verdict == "different"
    # iptables drops 10.0.0.5 on both sides: it is in no class
    assert not any(lo <= five <= hi for c in mixed.result.classes for lo, hi in c.spans[0])


def test_an_nft_ruleset_beside_two_iptables_sides_takes_part(tmp_path):
    beside = write(tmp_path, "beside.nft", nft("ip saddr 10.0.0.5 drop"))
    old = IPT
    new = IPT.replace("-s 10.0.0.0/8", "-s 10.0.0.0/30")
    paths = write(tmp_path, "old.txt", old), write(tmp_path, "new.txt", new)
    alone, run = run_diff(*paths), run_diff(*paths, nft_beside=beside)
    assert run.verdict == "different"
    five = parse_ip("10.0.0.5")
    assert any(lo <= five <= hi for c in alone.result.classes for lo, hi in c.spans[0])
    assert not any(lo <= five <= hi for c in run.result.classes for lo, hi in c.spans[0])      # dropped by nft
    assert any(lo <= parse_ip("10.0.0.4") <= hi for c in run.result.classes for lo, hi in c.spans[0])


def test_the_beside_options_are_checked(tmp_path):
    ipt, rules = write(tmp_path, "a.txt", IPT), write(tmp_path, "a.nft", nft("accept"))
    with pytest.raises(InvalidArgument, match="--iptables goes beside nft rulesets"):
        run_diff(ipt, rules, iptables=ipt)
    with pytest.raises(InvalidArgument, match="--nft-beside goes beside iptables-save"):
        run_diff(ipt, rules, nft_beside=rules)
    assert main(["diff", rules, rules, "--iptables", ipt, "--nft-beside", rules]) == 2


def test_a_node_of_a_cluster_keeps_its_iptables_save_and_compares_invariants(tmp_path):
    harmless = nft("ip saddr 192.0.2.0/24 drop").replace("input", "forward")
    dropping = nft("ip saddr 10.1.0.0/16 ip daddr 10.1.20.0/24 drop").replace("input", "forward")
    run = diff(tmp_path, harmless, dropping, cluster=ROOT / "rules" / "seed" / "cluster-iptables.yaml", node="node2")
    assert run.verdict == "different" and run.node == "node2"
    assert run.invariants and run.result.classes
    assert all(c.old != c.new for c in run.result.classes)


def test_xt_statements_without_an_iptables_save_are_refused_in_one_line(tmp_path, capsys):
    dump = json.dumps({"nftables": [
        {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
        {"table": {"family": "ip", "name": "filter", "handle": 1}},
        {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "handle": 1, "type": "filter",
                   "hook": "input", "prio": 0, "policy": "accept"}},
        {"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 2, "expr": [
            {"xt": {"type": "match", "name": "comment"}}, {"accept": None}]}}]})
    path = write(tmp_path, "x.json", dump)
    with pytest.raises(InputError, match="iptables-nft"):
        run_diff(path, path)
    assert main(["diff", path, path]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nftables[3]" in err[0]


def test_nft_forces_nft_reading(tmp_path):
    ipt = write(tmp_path, "a.txt", IPT)
    with pytest.raises(InputError, match="not an nftables ruleset"):
        run_diff(ipt, ipt, force_nft=True)


def test_the_stand_in_node_has_the_interfaces_nft_rules_name(tmp_path):
    run = diff(tmp_path, nft('iifname "wg0" drop'), nft('iifname "wg1" drop'))
    assert {i for c in run.result.classes for i in c.interfaces} == {"wg0", "wg1"}
    # names in a set (the view leaves such a test to the trace): each is an interface of its own
    run = diff(tmp_path, nft('iifname { "wg0", "wg1" } drop'), nft('iifname { "wg0", "wg2" } drop'))
    assert sorted((c.interfaces, c.old, c.new) for c in run.result.classes) == [
        (("wg1",), ("drop",), ("local",)), (("wg2",), ("local",), ("drop",))]


# ------------------------------------------------------------------ the property
_MUTATIONS = ("same", "drop", "swap", "policy", "priority", "duplicate")


def _mutate(script: str, how: str, at: int) -> str:
    lines = script.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("add rule ")]
    chains = [i for i, line in enumerate(lines) if " policy " in line]
    if how == "drop" and rules:
        del lines[rules[at % len(rules)]]
    elif how == "swap":             # two rules next to each other in one chain
        pairs = [(i, j) for i, j in zip(rules, rules[1:]) if lines[i].split()[:5] == lines[j].split()[:5]]
        if pairs:
            i, j = pairs[at % len(pairs)]
            lines[i], lines[j] = lines[j], lines[i]
    elif how == "duplicate" and rules:
        i = rules[at % len(rules)]
        lines.insert(i, lines[i])
    elif how == "policy" and chains:
        i = chains[at % len(chains)]
        lines[i] = lines[i].replace("policy accept", "policy DROPX").replace("policy drop", "policy accept") \
            .replace("policy DROPX", "policy drop")
    elif how == "priority" and chains:
        i = chains[at % len(chains)]
        head, _, rest = lines[i].partition(" priority ")
        lines[i] = f"{head} priority 7 ;{rest.split(';', 1)[1]}"
    return "\n".join(lines) + "\n"


_BOXED_MATCHES = ["ip saddr 10.0.0.0/24", "ip saddr != 192.168.0.0/24", "ip daddr 10.96.0.10", "ip daddr 192.168.0.2",
                  "tcp dport 80", "udp dport 53", "tcp dport { 80, 443 }", "tcp sport 1000-50000", 'iifname "eth0"',
                  'iifname "cni0"', "ip daddr { 10.96.0.0/16, 192.168.0.40 }", "meta l4proto udp", "ct state new"]
_BOXED_ACTIONS = ["accept", "drop", "jump u", "meta mark set 0x1", "meta mark 0x1 drop", "counter"]


@st.composite
def boxed_rulesets(draw) -> str:
    """Small ``nft -f`` scripts whose matches the view puts in boxes exactly (prefixes, ports, sets
    of them, interfaces, ct state): where diff can say "same" exactly."""
    lines = []
    for t in range(draw(st.integers(1, 2))):
        lines += [f"add table ip t{t}", f"add chain ip t{t} u"]
        lines += [f"add rule ip t{t} u {r}" for r in draw(st.lists(
            st.builds(lambda ms, a: " ".join([*ms, a]), st.lists(st.sampled_from(_BOXED_MATCHES), max_size=2),
                      st.sampled_from(["accept", "drop", "return", "meta mark set 0x1"])), max_size=2))]
        for b in range(draw(st.integers(1, 2))):
            hook = draw(st.sampled_from(["input", "forward", "prerouting"]))
            prio = draw(st.sampled_from(["-10", "0", "10"]))
            policy = draw(st.sampled_from(["accept", "accept", "drop"]))
            lines.append(f"add chain ip t{t} b{b} {{ type filter hook {hook} priority {prio} ; policy {policy} ; }}")
            lines += [f"add rule ip t{t} b{b} {r}" for r in draw(st.lists(
                st.builds(lambda ms, a: " ".join([*ms, a]), st.lists(st.sampled_from(_BOXED_MATCHES), max_size=2),
                          st.sampled_from(_BOXED_ACTIONS)), max_size=4))]
    return "\n".join(lines) + "\n"


def _lab_node():
    dump = parse_routes(LAB_ROUTES, source="routes")
    return build_node("n", parse_ip_addr(LAB_ADDRS, source="addrs"), dump.routes,
                      parse_iptables_save("", source="<none>"))


_POOL = ["10.96.0.10", "10.96.0.11", "192.168.0.40", "10.0.0.20", "192.168.0.2", "10.0.0.1", "10.0.0.9",
         "192.168.0.9", "192.168.0.43", "10.0.0.7", "8.8.8.8", "10.96.0.200"]


def test_classes_really_differ_and_same_means_no_sampled_packet_differs():
    """Random small nft rulesets (the kernel campaign's, some beside an iptables-save: a mixed node;
    and ones of box-expressible matches only) and a mutation of each (a rule dropped, swapped with its
    neighbour or doubled, a policy flipped, a priority moved): every class's example traced again on
    both sides changes as the class says; where diff says "same" exactly, 200 drawn packets
    (addresses of the drawer's pool, ports, protocols, in-interfaces) get the same fates on both sides."""
    seen: Counter = Counter()

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              phases=[Phase.explicit, Phase.generate], database=None)
    @given(st.one_of(mixed_rulesets(), st.tuples(boxed_rulesets(), st.none())), st.sampled_from(_MUTATIONS),
           st.integers(0, 50), st.randoms(use_true_random=False))
    def check(drawn, how, at, rnd):
        script, iptables = drawn          # an iptables-save beside both sides in a third of the draws
        base = _lab_node()
        if iptables is not None:
            base = replace(base, ruleset=parse_iptables_save(iptables, source="iptables-save"))
        sides = []
        for name, text in (("old.nft", script), ("new.nft", _mutate(script, how, at))):
            tables, _notes = node_nft(parse_nft_text(text, name), iptables_given=iptables is not None)
            sides.append(replace(base, nft=tables))
        result = diff_rulesets(*sides, max_cells=5_000)
        tracers = (NodeTracer(sides[0]), NodeTracer(sides[1]))
        for cls in result.classes:
            fa = _fate(cls.example, tracers[0].trace(cls.example, in_iface=cls.in_iface).outcomes)
            fb = _fate(cls.example, tracers[1].trace(cls.example, in_iface=cls.in_iface).outcomes)
            assert fa != fb and (fa, fb) == (cls.old, cls.new)
            seen["classes"] += 1
        if not (result.same and result.exact and result.cells):
            return
        seen["same"] += 1
        for _ in range(200):
            proto = rnd.choice((6, 17, 1))
            ports = proto != 1
            pkt = Packet(proto, parse_ip(rnd.choice(_POOL)), parse_ip(rnd.choice(_POOL)),
                         rnd.choice((40000, 80, 53, 443, 8080)) if ports else 0,
                         rnd.choice((80, 443, 8080, 53, 22)) if ports else 0,
                         0x02 if proto == 6 else 0, 8 if proto == 1 else -1, 0 if proto == 1 else -1)
            iface = rnd.choice(("eth0", "cni0", None))
            fa = _fate(pkt, tracers[0].trace(pkt, in_iface=iface).outcomes)
            fb = _fate(pkt, tracers[1].trace(pkt, in_iface=iface).outcomes)
            assert fa == fb, (pkt.describe(), iface, fa, fb)

    check()
    assert seen["classes"] >= 20 and seen["same"] >= 10, seen       # the draws test both claims


def test_a_set_the_packet_path_changes_still_cuts_the_cells_by_its_elements(tmp_path):
    # The view leaves a lookup in a set rules add to opaque; its elements still cut the cells, so
    # the one packet traced per cell stands for its addresses.
    def text(verdict: str) -> str:
        declared = ("  set seen {\n    type ipv4_addr\n    flags dynamic\n    elements = { 10.0.0.7 }\n  }\n"
                    "  chain input")
        return nft(f"ip saddr @seen {verdict}\nip daddr 192.0.2.1 add @seen {{ ip saddr }}").replace(
            "  chain input", declared)
    run = diff(tmp_path, text("accept"), text("drop"))
    assert any(lo <= parse_ip("10.0.0.7") <= hi for c in run.result.classes for lo, hi in c.spans[0])
    assert all(c.spans[0] == ((parse_ip("10.0.0.7"),) * 2,) for c in run.result.classes)
    # The path adds the key it looks up (ip saddr): every packet of a cell answers alike, exactly.
    assert run.result.exact


def test_a_lookup_of_another_key_than_the_path_adds_is_not_exact(tmp_path):
    # add the destination, look the source up: a packet whose source is its destination would
    # match after its own add, its cell's other packets not -- the cell cannot stand for them.
    def text(verdict: str) -> str:
        declared = ("  set seen {\n    type ipv4_addr\n    flags dynamic\n    elements = { 10.0.0.7 }\n  }\n"
                    "  chain input")
        return nft(f"add @seen {{ ip daddr }}\nip saddr @seen {verdict}").replace("  chain input", declared)
    run = diff(tmp_path, text("accept"), text("drop"))
    assert not run.result.exact
    assert any("ip saddr @seen" in note for note in run.result.notes)


def test_no_difference_found_with_a_match_no_packet_field_decides_is_inexact_not_same(tmp_path, capsys):
    """`meta skuid 1000` tells packets of one cell apart (the traced one is root's): finding
    no difference is then not "same" but inexact, exit 2, the reason on stderr."""
    old = write(tmp_path, "old.nft", nft("meta skuid 1000 drop"))
    new = write(tmp_path, "new.nft", nft("meta skuid 1000 accept"))
    assert main(["diff", old, new]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("inexact: no difference found") and "no packet field decides" in captured.err
    assert "no packet is treated differently" not in captured.out
    run = run_diff(old, new)
    assert (run.verdict, run.same, run.result.complete, run.result.exact) == ("inexact", False, True, False)
