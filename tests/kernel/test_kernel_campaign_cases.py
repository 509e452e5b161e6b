"""Divergences the random kernel campaign found (``pktverify selftest-kernel --seed S``), kept as
fixed cases: each failed before its fix, in the lab or in the evaluator.

Same harness as ``test_kernel_differential.py``: load the rules into the lab's node, send one
packet, compare what the kernel did with ``pktverify trace`` on the lab's own dumps.
"""

from __future__ import annotations

import pytest

from pktverify.oracle.kernel_campaign import Probe

from .cli_campaign import run_probe

pytestmark = pytest.mark.kernel


def table(name: str, *rules: str, chains: str = "") -> str:
    return f"*{name}\n" + chains + "".join(r + "\n" for r in rules) + "COMMIT\n"


# The node's own packet to its own address or REDIRECTed to 127.0.0.1: conntrack confirms its entry
# at POSTROUTING, then lo brings it back through PREROUTING and INPUT, where a rule still drops it.
# The lab read "entry confirmed, no peer received it" as local delivery (seeds 20261207 and 99991);
# it now counts the packet on the input hook by its connection's original tuple. Each drop has a
# twin without the dropping rule, delivered locally after NAT (the counter must see NATed packets).
# (rules, client, proto, sport, dst, dport, kernel verdict)
LOOPED_BACK = [
    # seed 20261207: masqueraded (random source port) on its way out of lo, dropped by raw PREROUTING
    (table("raw", "-A PREROUTING -p udp -j DROP")
     + table("nat", "-A POSTROUTING -m pkttype ! --pkt-type multicast -j MASQUERADE --random-fully"),
     "node", "udp", 36734, "192.168.0.2", 443, "drop"),
    (table("nat", "-A POSTROUTING -m pkttype ! --pkt-type multicast -j MASQUERADE --random-fully"),
     "node", "udp", 36735, "192.168.0.2", 443, "local"),
    # seed 99991: REDIRECTed to 127.0.0.1:80 in nat OUTPUT, dropped by raw PREROUTING on lo
    (table("raw", "-A PREROUTING -m connmark ! --mark 0x5 -j DROP")
     + table("nat", "-A OUTPUT -m connmark ! --mark 0x5/0xf -o c+ -j REDIRECT"),
     "node", "tcp", 20000, "10.0.0.20", 80, "drop"),
    (table("nat", "-A OUTPUT -m connmark ! --mark 0x5/0xf -o c+ -j REDIRECT"),
     "node", "tcp", 20001, "10.0.0.20", 80, "local"),
    # the same blind spot kept INPUT rules out of the campaign's node probes: filter INPUT drops it
    (table("filter", "-A INPUT -p tcp --dport 443 -j DROP"), "node", "tcp", 20002, "192.168.0.2", 443, "drop"),
    (table("filter", "-A INPUT -p tcp --dport 443 -j DROP"), "node", "tcp", 20003, "192.168.0.2", 80, "local"),
    # nft campaign, seeds 1 and 7: REJECT answers the node's own packet; its ICMP error comes back by
    # lo through INPUT, where a DROP silences it (pktverify said reject: it followed OUTPUT only)
    (table("filter", "-A OUTPUT -p tcp --dport 80 -j REJECT", "-A INPUT -p icmp -j DROP"),
     "node", "tcp", 20004, "10.0.0.20", 80, "drop"),
    (table("filter", "-A OUTPUT -p tcp --dport 80 -j REJECT"), "node", "tcp", 20005, "10.0.0.20", 80, "reject"),
]


@pytest.mark.parametrize("case", LOOPED_BACK, ids=[f"{c[2]}-{c[4]}-{c[6]}-{c[3]}" for c in LOOPED_BACK])
def test_node_packet_back_through_lo_agrees_with_kernel(lab, case):
    rules, client, proto, sport, dst, dport, verdict = case
    res = run_probe(lab, Probe(rules, client, proto, sport, dst, dport))
    assert res.kernel is not None and res.kernel.verdict == verdict, res.kernel
    assert res.agrees, f"{res.explanation}\n{res.probe.reproducer()}"


# seed 99991: REJECT's ICMP error crosses OUTPUT, where `-m length` cannot be decided (the error
# quotes a packet whose size is a range). pktverify followed both worlds (dropped by filter, or
# dropped later by security) and gave each probability 1, exact: outcomes summing to 2.
REJECT_ANSWER_WORLDS = (
    table("security", "-A OUTPUT -s 192.168.0.2/32 -j DROP")
    + table("filter", "-A FORWARD -m length --length 0:100 -m ttl --ttl-gt 63 -j REJECT",
            "-A FORWARD -j REJECT",
            "-A OUTPUT -m length --length 0:100 -m ttl --ttl-gt 63 -j DROP",
            "-A OUTPUT -m limit --limit 1/hour --limit-burst 1 -m length --length 1000:65535 -j ACCEPT"))


def test_reject_answer_in_two_assumed_worlds_agrees_with_kernel(lab):
    res = run_probe(lab, Probe(REJECT_ANSWER_WORLDS, "lan", "udp", 20000, "10.96.0.10", 8080))
    assert res.kernel is not None and res.kernel.verdict == "drop", res.kernel
    assert res.agrees, f"{res.explanation}\n{res.probe.reproducer()}"
    assert not any(o["exact"] for o in res.prediction.outcomes)     # alternatives, not shares


# seed 424242: two tcp matches on one field. The kernel runs both (`tcp sport != 53 tcp sport
# 8000-9000`), but iptables-nft's iptables-save merges them into `-m tcp ! --sport 8000:9000`, the
# opposite test, and that text is all pktverify reads. The lab now says so instead of reporting a
# plain divergence; an iptables-save that prints both matches makes pktverify agree.
TWO_SPORT_MATCHES = table("nat", "-A PREROUTING -p tcp -m tcp ! --sport 53 -m tcp --sport 8000:9000 "
                                 "-j DNAT --to-destination 10.0.0.20:9000")


@pytest.mark.parametrize("sport", [20000, 8500])
def test_iptables_save_misprint_is_named(lab, sport):
    res = run_probe(lab, Probe(TWO_SPORT_MATCHES, "lan", "tcp", sport, "10.96.0.10", 80))
    dnat = sport == 8500
    assert res.kernel is not None and (res.kernel.post_nat[2] == "10.0.0.20") == dnat, res.kernel
    assert res.agrees or res.explanation.startswith("iptables-save does not print what the kernel runs in table nat"), \
        res.explanation


def test_misprinted_is_empty_for_a_faithful_dump(lab):
    lab.load(table("nat", "-A PREROUTING -p tcp -m tcp ! --sport 53 --dport 80 -j DNAT --to-destination 10.0.0.20"))
    assert lab.misprinted(lab.dump().iptables_save) == ""
    lab.load(TWO_SPORT_MATCHES)
    saved = lab.dump().iptables_save
    if "--sport 53" not in saved:           # this iptables-save dropped one of the two matches
        assert "'tcp sport != 53 tcp sport 8000-9000" in lab.misprinted(saved)


# -m length in a table no other rule can fork: the straight walk took it for "matches" and dropped
# every packet. The lab's SYN is 60 bytes, its datagram 37 (pktverify cannot know a datagram's
# size: it follows both worlds, inexact).
LENGTH_ALONE = [
    (table("filter", "-A FORWARD -m length --length 1000:65535 -j DROP"), "lan", "tcp", 20010, "forward"),
    (table("filter", "-A FORWARD -m length --length 0:100 -j DROP"), "lan", "tcp", 20011, "drop"),
    (table("filter", "-A FORWARD -m length --length 1000:65535 -j DROP"), "pod", "udp", 20012, "forward"),
]


@pytest.mark.parametrize("case", LENGTH_ALONE, ids=[f"{c[2]}-{c[4]}-{c[3]}" for c in LENGTH_ALONE])
def test_length_match_alone_agrees_with_kernel(lab, case):
    rules, client, proto, sport, verdict = case
    res = run_probe(lab, Probe(rules, client, proto, sport, "192.168.0.40" if client == "pod" else "10.0.0.20", 80))
    assert res.kernel is not None and res.kernel.verdict == verdict, res.kernel
    assert res.agrees, f"{res.explanation}\n{res.probe.reproducer()}"


# seed 424242: REJECT's answer has no owner (the kernel's ICMP socket has no file, the RST no
# socket), so `-m owner --uid-owner` does not match it and `! --uid-owner` does. pktverify gave it
# the node socket's uid 0: the rule that rejected the node's SYN rejected its answer too (a drop).
# (rules, client, proto, sport, dst, dport, kernel verdict)
ANSWER_OWNER = [
    (table("nat", "-A OUTPUT -m owner --uid-owner 0-10 -j DNAT --to-destination 192.168.0.20-192.168.0.30",
           "-A POSTROUTING -j SNAT --to-source 192.168.0.60")
     + table("filter", "-A OUTPUT -m mark ! --mark 0x1 -m owner --uid-owner 0-10 -j REJECT"),
     "node", "tcp", 20000, "10.96.0.10", 443, "reject"),
    (table("filter", "-A OUTPUT -p tcp -m owner --uid-owner 0 -j REJECT --reject-with tcp-reset"),
     "node", "tcp", 20020, "192.168.0.40", 80, "reject"),
    (table("filter", "-A FORWARD -j REJECT", "-A OUTPUT -m owner ! --uid-owner 0 -j DROP"),
     "lan", "udp", 20021, "10.0.0.20", 53, "drop"),
]


@pytest.mark.parametrize("case", ANSWER_OWNER, ids=[f"{c[1]}-{c[2]}-{c[6]}-{c[3]}" for c in ANSWER_OWNER])
def test_reject_answer_has_no_owner_agrees_with_kernel(lab, case):
    rules, client, proto, sport, dst, dport, verdict = case
    res = run_probe(lab, Probe(rules, client, proto, sport, dst, dport))
    assert res.kernel is not None and res.kernel.verdict == verdict, res.kernel
    assert res.agrees, f"{res.explanation}\n{res.probe.reproducer()}"


# seed 2718281: raw PREROUTING runs before conntrack, so connmark has no connection to read there:
# xt_connmark matches neither --mark nor ! --mark (pktverify read mark 0, so `! --mark 0x5` matched
# and NOTRACKed the packet). A packet looped back through lo does carry its connection there (NEW,
# not INVALID; CT --notrack leaves it alone), which pktverify's raw walk had forgotten.
# (rules, client, proto, sport, dst, dport, kernel verdict)
NO_CONNECTION_YET = [
    (table("raw", "-A PREROUTING -m connmark ! --mark 0x5 -j CT --notrack")
     + table("filter", "-A INPUT -m conntrack ! --ctstate NEW,ESTABLISHED -j DROP"),
     "lan", "udp", 20001, "10.0.0.1", 80, "local"),
    (table("raw", "-A PREROUTING -m connmark ! --mark 0x5 -j CT --notrack")
     + table("nat", "-A PREROUTING -j DNAT --to-destination 192.168.0.40"),
     "lan", "udp", 20030, "192.168.0.2", 80, "forward"),
    (table("raw", "-A PREROUTING -m conntrack --ctstate INVALID -j DROP"),
     "node", "tcp", 20031, "192.168.0.2", 80, "local"),
    (table("raw", "-A PREROUTING -i lo -j CT --notrack")
     + table("filter", "-A INPUT -m conntrack --ctstate UNTRACKED -j DROP"),
     "node", "udp", 20032, "192.168.0.2", 53, "local"),
]


@pytest.mark.parametrize("case", NO_CONNECTION_YET, ids=[f"{c[1]}-{c[2]}-{c[6]}-{c[3]}" for c in NO_CONNECTION_YET])
def test_raw_table_connection_agrees_with_kernel(lab, case):
    rules, client, proto, sport, dst, dport, verdict = case
    res = run_probe(lab, Probe(rules, client, proto, sport, dst, dport))
    assert res.kernel is not None and res.kernel.verdict == verdict, res.kernel
    assert res.agrees, f"{res.explanation}\n{res.probe.reproducer()}"
