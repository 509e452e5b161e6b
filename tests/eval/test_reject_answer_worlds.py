"""REJECT's answer through OUTPUT where a rule cannot be decided (-m length of an ICMP error that
quotes a packet of unknown size): each assumed world is an alternative, so its outcome is inexact.

Found by the kernel campaign (seed 99991): both worlds came back exact with probability 1, two
drops summing to 2 (the kernel-checked case is in tests/kernel/test_kernel_campaign_cases.py).
"""

from __future__ import annotations

from ..helpers import pkt, tables, tracer

LENGTH_DROP = "-A OUTPUT -m length --length 0:100 -j DROP"


def _trace(filter_rules: str, security: str = ""):
    t = tracer(tables(filter=f"-A FORWARD -j REJECT\n{filter_rules}", security=security))
    return t.trace(pkt("192.168.0.9", "8.8.8.8", 8080, proto="udp", sport=20000), in_iface="eth0")


def test_answer_dropped_in_either_world_is_two_inexact_drops():
    trace = _trace(LENGTH_DROP, security="-A OUTPUT -s 192.168.0.2/32 -j DROP")
    assert [o.verdict for o in trace.outcomes] == ["drop", "drop"]
    assert {o.reason.split("stopped: ")[1].split(" (")[0] for o in trace.outcomes} == {
        "DROP by filter/OUTPUT #1", "DROP by security/OUTPUT #1"}
    assert not any(o.exact for o in trace.outcomes)


def test_answer_stopped_or_sent_is_drop_or_reject_both_inexact():
    trace = _trace(LENGTH_DROP)
    assert sorted(o.verdict for o in trace.outcomes) == ["drop", "reject"]
    assert not any(o.exact for o in trace.outcomes)


def test_answer_a_decided_rule_stops_stays_exact():
    trace = _trace("-A OUTPUT -p icmp -j DROP")
    assert [(o.verdict, o.probability, o.exact) for o in trace.outcomes] == [("drop", 1.0, True)]


def _local(filter_rules: str):
    """A packet the node sends itself, rejected on OUTPUT: the answer comes back in by lo."""
    t = tracer(tables(filter=f"-A OUTPUT -p tcp --dport 80 -j REJECT\n{filter_rules}"))
    return t.trace(pkt("192.168.0.2", "8.8.8.8", 80, sport=20000), in_iface=None)


def test_an_answer_to_the_node_itself_crosses_input_too():
    """The ICMP error REJECT sends the node's own socket enters by lo through PREROUTING and INPUT,
    where a DROP silences it: the socket sees nothing, as after DROP (kernel: the nft campaign,
    seeds 1 and 7; the iptables form in tests/kernel/test_kernel_campaign_cases.py)."""
    assert [o.verdict for o in _local("").outcomes] == ["reject"]
    dropped = _local("-A INPUT -p icmp -j DROP").outcomes
    assert [o.verdict for o in dropped] == ["drop"]
    assert "filter/INPUT #1" in dropped[0].reason
