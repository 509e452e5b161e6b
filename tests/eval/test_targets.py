"""Kernel semantics of each target, chain traversal and the hook pipeline."""

from __future__ import annotations

import pytest

from pktverify.model.addresses import parse_ip

from ..conftest import STANDARD_ROUTES
from ..helpers import endpoint, only, pkt, tables, tracer


def test_return_from_user_chain_continues_and_from_builtin_applies_policy():
    t = tracer(tables(filter="""
        :FORWARD DROP [0:0]
        :A - [0:0]
        -A FORWARD -j A
        -A FORWARD -p tcp --dport 80 -j ACCEPT
        -A A -p tcp --dport 80 -j RETURN
        -A A -j ACCEPT"""))
    assert only(t.trace(pkt("10.0.0.9", "192.168.0.9"), in_iface="cni0")).verdict == "forward"
    t = tracer(tables(filter="""
        :FORWARD DROP [0:0]
        -A FORWARD -p tcp --dport 80 -j RETURN
        -A FORWARD -j ACCEPT"""))
    out = only(t.trace(pkt("10.0.0.9", "192.168.0.9"), in_iface="cni0"))
    assert out.verdict == "drop" and "policy" in out.reason


def test_goto_does_not_return_to_the_caller():
    t = tracer(tables(filter="""
        :A - [0:0]
        :B - [0:0]
        -A FORWARD -j A
        -A FORWARD -j DROP
        -A A -g B
        -A A -j DROP
        -A B -j RETURN"""))
    # B returns to FORWARD (A's caller), skipping A's DROP; then FORWARD's DROP.
    out = only(t.trace(pkt("10.0.0.9", "192.168.0.9"), in_iface="cni0"))
    assert out.verdict == "drop" and out.steps[-1].chain == "FORWARD" and out.steps[-1].rule_index == 2


def test_reject_answers_and_drop_is_silent():
    t = tracer(tables(filter="-A FORWARD -p tcp -j REJECT --reject-with tcp-reset\n-A FORWARD -j DROP"))
    r = only(t.trace(pkt("10.0.0.9", "192.168.0.9"), in_iface="cni0"))
    assert r.verdict == "reject" and "tcp-reset" in r.reason
    d = only(t.trace(pkt("10.0.0.9", "192.168.0.9", proto="udp"), in_iface="cni0"))
    assert d.verdict == "drop"


def test_log_continues():
    t = tracer(tables(filter='-A FORWARD -j LOG --log-prefix "x: "\n-A FORWARD -j DROP'))
    out = only(t.trace(pkt("10.0.0.9", "192.168.0.9"), in_iface="cni0"))
    assert out.verdict == "drop" and [s.action for s in out.steps if s.table] == ["LOG", "DROP"]


def test_dnat_without_port_keeps_the_port_and_with_port_range_takes_first():
    t = tracer(tables(nat="-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.5"))
    assert endpoint(only(t.trace(pkt("192.168.0.9", "192.168.0.2", dport=8080), in_iface="eth0"))) == "10.0.0.5:8080"
    t = tracer(tables(nat="-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.5:9000-9010"))
    assert endpoint(only(t.trace(pkt("192.168.0.9", "192.168.0.2", dport=8080), in_iface="eth0"))) == "10.0.0.5:9000"
    assert endpoint(only(t.trace(pkt("192.168.0.9", "192.168.0.2", dport=9005), in_iface="eth0"))) == "10.0.0.5:9005"


def test_redirect_goes_to_first_address_of_incoming_interface_or_loopback():
    addrs = ("1: lo inet 127.0.0.1/8 scope host lo\n"
             "2: eth0 inet 192.168.0.2/24 brd 192.168.0.255 scope global eth0\n"
             "2: eth0 inet 192.168.0.3/24 brd 192.168.0.255 scope global secondary eth0\n"
             "3: cni0 inet 10.0.0.1/8 scope global cni0\n")
    rules = tables(nat="-A PREROUTING -p tcp -j REDIRECT --to-ports 15001\n-A OUTPUT -p tcp -d 10.96.0.1 -j REDIRECT --to-ports 15001")
    t = tracer(rules, addrs=addrs)
    out = only(t.trace(pkt("192.168.0.9", "8.8.8.8"), in_iface="eth0"))
    assert out.verdict == "local" and endpoint(out) == "192.168.0.2:15001"
    out = only(t.trace(pkt("192.168.0.2", "10.96.0.1"), in_iface=None))
    assert out.verdict == "local" and endpoint(out) == "127.0.0.1:15001"


def test_masquerade_prefers_primary_address_in_next_hop_subnet_never_secondary():
    addrs = ("1: lo inet 127.0.0.1/8 scope host lo\n"
             "2: eth0 inet 192.168.0.2/24 scope global eth0\n"
             "2: eth0 inet 172.16.0.2/24 scope global eth0\n"
             "2: eth0 inet 172.16.0.3/24 scope global secondary eth0\n"
             "3: cni0 inet 10.0.0.1/8 scope global cni0\n")
    routes = STANDARD_ROUTES + "172.16.0.0/24 dev eth0 proto kernel scope link src 172.16.0.2\n" \
        "8.8.0.0/16 via 172.16.0.1 dev eth0\n"
    t = tracer(tables(nat="-A POSTROUTING -o eth0 -j MASQUERADE"), addrs=addrs, routes=routes)
    out = only(t.trace(pkt("10.0.0.9", "8.8.8.8"), in_iface="cni0"))
    assert out.masquerade and out.packet.src == parse_ip("172.16.0.2") and out.packet.sport == 40000
    out = only(t.trace(pkt("10.0.0.9", "9.9.9.9"), in_iface="cni0"))   # default via 192.168.0.1
    assert out.packet.src == parse_ip("192.168.0.2")


def test_snat_and_random_fully_port_is_reported_as_a_range():
    t = tracer(tables(nat="-A POSTROUTING -p tcp -j SNAT --to-source 192.168.0.50 --random-fully"))
    out = only(t.trace(pkt("10.0.0.9", "9.9.9.9"), in_iface="cni0"))
    assert out.packet.src == parse_ip("192.168.0.50") and out.random_ports == (("sport", 1024, 65535),)
    t = tracer(tables(nat="-A POSTROUTING -p tcp -j SNAT --to-source 192.168.0.50:2000-2999"))
    out = only(t.trace(pkt("10.0.0.9", "9.9.9.9", sport=2500), in_iface="cni0"))
    assert out.packet.sport == 2500 and out.random_ports == ()


def test_mark_target_variants():
    rules = tables(mangle="""
        -A PREROUTING -j MARK --set-mark 0xff
        -A PREROUTING -j MARK --and-mark 0xf0
        -A PREROUTING -j MARK --or-mark 0x100
        -A PREROUTING -j MARK --xor-mark 0x1
        -A PREROUTING -j MARK --set-xmark 0x4000/0x4000""")
    out = only(tracer(rules).trace(pkt("10.0.0.9", "9.9.9.9"), in_iface="cni0"))
    assert out.mark == (((0xFF & 0xF0) | 0x100) ^ 0x1) | 0x4000


def test_nat_sees_only_new_connections_and_null_binding():
    t = tracer(tables(nat="-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.5"))
    # An INVALID packet (RST with nothing tracked) is not NATed.
    out = only(t.trace(pkt("192.168.0.9", "192.168.0.2", tcp_flags=0x04), in_iface="eth0"))
    assert out.packet.dst == parse_ip("192.168.0.2")


def test_reply_is_un_nated_from_conntrack():
    from pktverify.eval.conntrack import ConntrackTable
    t = tracer(tables(nat="-A PREROUTING -d 10.96.0.10 -p tcp --dport 80 -j DNAT --to-destination 10.0.0.5:8080\n"
                          "-A POSTROUTING -d 10.0.0.5 -j MASQUERADE"))
    ct = ConntrackTable()
    first = only(t.trace(pkt("10.0.0.9", "10.96.0.10"), in_iface="cni0"))
    assert endpoint(first) == "10.0.0.5:8080" and first.packet.src == parse_ip("10.0.0.1")
    ct.add(first.connection)
    reply = only(t.trace(first.packet.reversed(), in_iface="cni0", conntrack=ct))
    assert reply.verdict == "forward"
    assert reply.packet.src == parse_ip("10.96.0.10") and reply.packet.sport == 80
    assert reply.packet.dst == parse_ip("10.0.0.9") and reply.packet.dport == 40000


def test_martian_loopback_destination_on_a_wire_interface_is_dropped():
    t = tracer(tables())
    out = only(t.trace(pkt("10.0.0.9", "127.0.0.1"), in_iface="cni0"))
    assert out.verdict == "drop" and "martian" in out.reason
    t = tracer(tables(), route_localnet=True)
    assert only(t.trace(pkt("10.0.0.9", "127.0.0.1"), in_iface="cni0")).verdict == "local"


def test_local_source_arriving_from_outside_is_martian():
    out = only(tracer(tables()).trace(pkt("192.168.0.2", "10.0.0.9"), in_iface="eth0"))
    assert out.verdict == "drop" and "martian source" in out.reason


def test_routing_errors():
    routes = STANDARD_ROUTES + "blackhole 10.9.0.0/16\nunreachable 10.8.0.0/16\nprohibit 10.7.0.0/16\n"
    routes = routes.replace("default via 192.168.0.1 dev eth0\n", "")
    t = tracer(tables(), routes=routes)
    cases = {"10.9.1.1": "drop", "10.8.1.1": "reject", "10.7.1.1": "reject", "8.8.8.8": "reject"}
    for dst, verdict in cases.items():
        assert only(t.trace(pkt("192.168.0.9", dst), in_iface="eth0")).verdict == verdict, dst


def test_longest_prefix_then_metric():
    routes = STANDARD_ROUTES + "10.50.0.0/16 via 192.168.0.20 dev eth0 metric 200\n" \
        "10.50.0.0/16 via 192.168.0.10 dev eth0 metric 100\n10.50.1.0/24 via 192.168.0.30 dev eth0\n"
    t = tracer(tables(), routes=routes.replace("10.0.0.0/8 dev cni0", "10.0.0.0/16 dev cni0"))
    assert only(t.trace(pkt("10.0.0.9", "10.50.2.2"), in_iface="cni0")).next_hop == parse_ip("192.168.0.10")
    assert only(t.trace(pkt("10.0.0.9", "10.50.1.2"), in_iface="cni0")).next_hop == parse_ip("192.168.0.30")


def test_ttl_expires_when_forwarding():
    out = only(tracer(tables()).trace(pkt("10.0.0.9", "9.9.9.9", ttl=1), in_iface="cni0"))
    assert out.verdict == "reject" and "TTL" in out.reason


def test_output_dnat_reroutes_and_local_traffic_loops_through_input():
    t = tracer(tables(nat="-A OUTPUT -d 10.96.0.1 -p tcp -j DNAT --to-destination 192.168.0.2:6443",
                      filter="-A INPUT -p tcp --dport 6443 -j DROP"))
    out = only(t.trace(pkt("10.0.0.1", "10.96.0.1", dport=443), in_iface=None))
    assert out.verdict == "drop" and out.steps[-1].chain == "INPUT"


def test_lenient_unknown_match_explores_both_branches_inexact():
    t = tracer(tables(filter="-A FORWARD -m nosuchmodule --foo veth0 -j DROP"), lenient=True)
    outs = t.trace(pkt("10.0.0.9", "9.9.9.9"), in_iface="cni0").outcomes
    assert {o.verdict for o in outs} == {"drop", "forward"} and not any(o.exact for o in outs)


def test_probabilities_sum_to_one_and_equal_outcomes_merge():
    t = tracer(tables(nat="""
        :SVC - [0:0]
        -A PREROUTING -j SVC
        -A SVC -p tcp -m statistic --mode random --probability 0.5 -j DNAT --to-destination 10.0.0.5
        -A SVC -p tcp -j DNAT --to-destination 10.0.0.5"""))
    out = only(t.trace(pkt("192.168.0.9", "192.168.0.2"), in_iface="eth0"))
    assert out.probability == 1.0


# Found by the kernel campaign: REJECT's answer is a locally generated packet (ctstate
# RELATED) and the OUTPUT chain can stop it; then the client sees nothing, as after DROP.
@pytest.mark.parametrize("output,answered", [
    (":OUTPUT DROP [0:0]", False),
    ("-A OUTPUT -m conntrack --ctstate RELATED -j DROP", False),
    ("-A OUTPUT -m conntrack --ctstate NEW -j DROP", True),
    ("-A OUTPUT -s 10.0.0.1 -j DROP", False),         # the ICMP comes from the address towards the client
    ("-A OUTPUT -s 192.168.0.9 -j DROP", True),       # ... not from the rejected packet's destination
])
def test_reject_answer_crosses_output(output, answered):
    t = tracer(tables(filter=f"-A FORWARD -p tcp -j REJECT\n{output}"))
    out = only(t.trace(pkt("10.0.0.9", "192.168.0.9"), in_iface="cni0"))
    assert out.verdict == ("reject" if answered else "drop")
    if not answered:
        assert "answer was stopped" in out.reason


def test_tcp_reset_answer_comes_from_the_rejected_destination():
    stop_rst_from_dst = "-A OUTPUT -s 192.168.0.9 -j DROP"
    t = tracer(tables(filter=f"-A FORWARD -p tcp -j REJECT --reject-with tcp-reset\n{stop_rst_from_dst}"))
    assert only(t.trace(pkt("10.0.0.9", "192.168.0.9"), in_iface="cni0")).verdict == "drop"


def test_reject_answer_to_the_node_itself_leaves_by_lo():
    # Found by the kernel campaign (seed 77): a locally generated packet rejected in OUTPUT gets
    # its ICMP answer through lo, where "! -o eth0 -j REJECT" stops the answer too: a drop.
    t = tracer(tables(filter="-A OUTPUT ! -o eth0 -j REJECT --reject-with icmp-host-prohibited"))
    out = only(t.trace(pkt("10.0.0.1", "10.0.0.20", 443)))
    assert out.verdict == "drop" and "answer was stopped" in out.reason
    t = tracer(tables(filter="-A OUTPUT -o cni0 -j REJECT"))
    assert only(t.trace(pkt("10.0.0.1", "10.0.0.20", 443))).verdict == "reject"


@pytest.mark.parametrize("user_chain", ["-A PV -p udp -j ACCEPT", "-A PV -j RETURN"])
def test_goto_chain_ending_applies_the_builtin_policy(user_chain):
    # Found by the kernel campaign (seed 4242): after -g there is no caller to return to, so
    # falling off the end (or RETURN) of the goto'd chain applies the built-in chain's policy.
    t = tracer(tables(filter=f":FORWARD DROP [0:0]\n:PV - [0:0]\n{user_chain}\n-A FORWARD -g PV\n-A FORWARD -j ACCEPT"))
    out = only(t.trace(pkt("10.0.0.9", "192.168.0.9"), in_iface="cni0"))
    assert out.verdict == "drop" and "FORWARD policy" in out.reason


def test_one_token_limit_used_by_the_packet_is_empty_for_rejects_answer():
    # Kernel campaign seed 4242: the REJECT answer walks OUTPUT again; with --limit-burst 1 the
    # packet took the only token, so the limit rule does not match the answer and it gets out.
    rule = "-A OUTPUT -m limit --limit 10/sec --limit-burst {} -j REJECT --reject-with icmp-host-prohibited"
    one = tracer(tables(filter=rule.format(1))).trace(pkt("192.168.0.2", "10.96.0.10", 443))
    assert [o.verdict for o in one.outcomes] == ["reject"]
    two = tracer(tables(filter=rule.format(2))).trace(pkt("192.168.0.2", "10.96.0.10", 443))
    assert [o.verdict for o in two.outcomes] == ["drop"] and "answer was stopped" in two.outcomes[0].reason
