"""May-match rules (unknown modules under --lenient; socket, u32, ipvs, sets without contents, ...):
every affected outcome is inexact with a probability that is an upper bound in (0, 1]; where both
worlds of a may-match rule meet again, the assumption is dropped and the outcome is exact again."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ..helpers import pkt, tables, tracer

_MATCHES = ["", "-m nosuchmodule --x 1", "-m socket --transparent", "-m u32 --u32 0x0&0x0=0x0",
            "-m statistic --mode random --probability 0.5", "-p tcp --dport 80", "-m mark --mark 0x1",
            "-m ipvs --ipvs", "-s 10.0.0.0/24", "-m set --match-set nosuchset src"]
_TARGETS = ["-j LOG", "-j ACCEPT", "-j DROP", "-j MARK --set-mark 0x1", "-j RETURN", "-j C1", "-j C2",
            "-j REJECT"]


@st.composite
def rule_sets(draw):
    def rules(chain: str, targets: list[str]) -> list[str]:
        return [f"-A {chain} {draw(st.sampled_from(_MATCHES))} {draw(st.sampled_from(targets))}"
                for _ in range(draw(st.integers(0, 5)))]
    body = rules("FORWARD", _TARGETS) + rules("C1", [t for t in _TARGETS if t != "-j C1"]) + \
        rules("C2", [t for t in _TARGETS if t not in ("-j C1", "-j C2")])
    return tables(filter=":C1 - [0:0]\n:C2 - [0:0]\n" + "\n".join(body))


@settings(max_examples=150, deadline=None)
@given(rule_sets())
def test_may_match_probabilities_are_upper_bounds_and_exact_ones_sum_to_one(rules):
    outcomes = tracer(rules, lenient=True).trace(pkt("10.0.0.9", "9.9.9.9"), in_iface="cni0").outcomes
    assert outcomes
    for o in outcomes:
        assert 0.0 < o.probability <= 1.0 + 1e-12, o
    if all(o.exact for o in outcomes):
        assert abs(sum(o.probability for o in outcomes) - 1.0) < 1e-9, outcomes


def test_an_outcome_reached_in_both_worlds_is_certain():
    t = tracer(tables(filter="-A FORWARD -m nosuchmodule --x 1 -j LOG\n-A FORWARD -p tcp -j ACCEPT"), lenient=True)
    (o,) = t.trace(pkt("10.0.0.9", "9.9.9.9"), in_iface="cni0").outcomes
    assert o.verdict == "forward" and o.exact and o.probability == 1.0


def test_an_outcome_of_one_world_is_an_inexact_upper_bound():
    t = tracer(tables(filter="-A FORWARD -m socket -j DROP"))        # no --lenient needed for socket
    outs = {o.verdict: o for o in t.trace(pkt("10.0.0.9", "9.9.9.9"), in_iface="cni0").outcomes}
    assert set(outs) == {"drop", "forward"}
    assert not outs["drop"].exact and not outs["forward"].exact
    assert outs["drop"].probability == outs["forward"].probability == 1.0


def test_the_same_question_gets_the_same_answer_in_one_world():
    # Two rules asking the same may-match question of the same packet: two worlds, not four.
    t = tracer(tables(filter=":C - [0:0]\n-A FORWARD -j C\n-A FORWARD -j C\n-A C -m socket -j MARK --or-mark 0x1\n"
                             "-A C -m socket -j RETURN\n-A C -j DROP"))
    outs = t.trace(pkt("10.0.0.9", "9.9.9.9"), in_iface="cni0").outcomes
    assert sorted(o.verdict for o in outs) == ["drop", "forward"]


def test_a_set_without_contents_may_match_and_says_how_to_pass_them():
    from pktverify.load.node import build_node
    from pktverify.parse.ipaddr import parse_ip_addr
    from pktverify.parse.iproute import parse_routes
    from pktverify.parse.iptables_save import parse_iptables_save

    from ..conftest import STANDARD_ADDRS, STANDARD_ROUTES

    rules = parse_iptables_save(tables(filter="-A FORWARD -m set --match-set S dst -j DROP"))
    node = build_node("n", parse_ip_addr(STANDARD_ADDRS), parse_routes(STANDARD_ROUTES).routes, rules)
    assert any("ipset save" in w for w in node.warnings)


def test_worlds_that_end_alike_make_an_exact_outcome():
    # Both worlds of the may-match rule end at the chain's policy with the same packet.
    t = tracer(tables(filter="-A FORWARD -m u32 --u32 0x0&0x0=0x0 -j ACCEPT"))
    (o,) = t.trace(pkt("10.0.0.9", "9.9.9.9"), in_iface="cni0").outcomes
    assert o.verdict == "forward" and o.exact and o.probability == 1.0


def test_time_match_is_exact_with_trace_at_and_may_match_without():
    import datetime as dt
    t = tracer(tables(filter="-A FORWARD -m time --timestart 08:00 --timestop 18:00 --weekdays Mon,Tue,Wed,Thu,Fri "
                             "-j DROP"))
    packet = pkt("10.0.0.9", "9.9.9.9")
    unknown = t.trace(packet, in_iface="cni0").outcomes
    assert {o.verdict for o in unknown} == {"drop", "forward"} and not any(o.exact for o in unknown)

    def at(text):
        return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp())
    (work,) = t.trace(packet, in_iface="cni0", at=at("2026-11-27T09:30")).outcomes      # a Friday morning
    (night,) = t.trace(packet, in_iface="cni0", at=at("2026-11-27T20:00")).outcomes
    (sunday,) = t.trace(packet, in_iface="cni0", at=at("2026-11-29T09:30")).outcomes
    assert (work.verdict, night.verdict, sunday.verdict) == ("drop", "forward", "forward")
    assert work.exact and night.exact and sunday.exact
