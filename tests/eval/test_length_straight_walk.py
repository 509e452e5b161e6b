"""-m length in a table whose other rules cannot fork: the straight walk (no worklist) counted it
among the plain matches, but it compiles to a may-match, not a predicate, so the rule matched every
packet (`--length 1000:65535 -j DROP` dropped a SYN). Found while checking the kernel campaign's
seed 99991; kernel-checked in tests/kernel/test_kernel_campaign_cases.py."""

from __future__ import annotations

from ..helpers import only, pkt, tables, tracer


def _trace(rule: str, proto: str):
    t = tracer(tables(filter=rule))
    flags = {"tcp_flags": 0x02} if proto == "tcp" else {}
    return t.trace(pkt("192.168.0.9", "8.8.8.8", 8080, proto=proto, sport=20000, **flags), in_iface="eth0")


def test_syn_too_short_for_the_length_range_passes():
    out = only(_trace("-A FORWARD -m length --length 1000:65535 -j DROP", "tcp"))
    assert (out.verdict, out.exact) == ("forward", True)


def test_syn_inside_the_length_range_is_dropped():
    out = only(_trace("-A FORWARD -m length --length 0:100 -j DROP", "tcp"))
    assert (out.verdict, out.exact) == ("drop", True)


def test_datagram_of_unknown_size_may_go_either_way():
    trace = _trace("-A FORWARD -m length --length 1000:65535 -j DROP", "udp")
    assert sorted((o.verdict, o.exact) for o in trace.outcomes) == [("drop", False), ("forward", False)]
