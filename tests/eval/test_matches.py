"""One test (a hit and a near miss) per match the evaluator supports."""

from __future__ import annotations

import pytest

from ..helpers import only, pkt, tables, tracer


def verdict_for(rule: str, packet, in_iface="cni0", **kw) -> str:
    """DROP in filter/FORWARD when ``rule`` matches: the verdict tells whether it matched."""
    t = tracer(tables(filter=f"-A FORWARD {rule} -j DROP"), **kw)
    return only(t.trace(packet, in_iface=in_iface)).verdict


@pytest.mark.parametrize("rule,hit,miss", [
    ("-s 10.0.0.0/24", pkt("10.0.0.9", "192.168.0.9"), pkt("10.0.1.9", "192.168.0.9")),
    ("! -s 10.0.0.0/24", pkt("10.0.1.9", "192.168.0.9"), pkt("10.0.0.9", "192.168.0.9")),
    ("-d 192.168.0.0/255.255.255.0", pkt("10.0.0.9", "192.168.0.9"), pkt("10.0.0.9", "192.168.1.9")),
    ("-d 192.168.0.9", pkt("10.0.0.9", "192.168.0.9"), pkt("10.0.0.9", "192.168.0.8")),
    ("-p udp", pkt("10.0.0.9", "192.168.0.9", proto="udp"), pkt("10.0.0.9", "192.168.0.9")),
    ("! -p tcp", pkt("10.0.0.9", "192.168.0.9", proto="udp"), pkt("10.0.0.9", "192.168.0.9")),
    ("-p tcp --dport 80", pkt("10.0.0.9", "192.168.0.9"), pkt("10.0.0.9", "192.168.0.9", dport=81)),
    ("-p tcp -m tcp --dport 80:90", pkt("10.0.0.9", "192.168.0.9", dport=90), pkt("10.0.0.9", "192.168.0.9", dport=91)),
    ("-p tcp --dport :1023", pkt("10.0.0.9", "192.168.0.9", dport=0), pkt("10.0.0.9", "192.168.0.9", dport=1024)),
    ("-p tcp ! --dport 80", pkt("10.0.0.9", "192.168.0.9", dport=81), pkt("10.0.0.9", "192.168.0.9")),
    ("-p udp -m udp --sport 53", pkt("10.0.0.9", "192.168.0.9", proto="udp", sport=53), pkt("10.0.0.9", "192.168.0.9", proto="udp")),
    ("-p sctp -m sctp --dport 80", pkt("10.0.0.9", "192.168.0.9", proto="sctp"), pkt("10.0.0.9", "192.168.0.9", proto="sctp", dport=8)),
    ("-p tcp --syn", pkt("10.0.0.9", "192.168.0.9"), pkt("10.0.0.9", "192.168.0.9", tcp_flags=0x10)),
    ("-p tcp --tcp-flags SYN,ACK ACK", pkt("10.0.0.9", "192.168.0.9", tcp_flags=0x10), pkt("10.0.0.9", "192.168.0.9")),
    ("-p tcp -m multiport --dports 22,80:90,443", pkt("10.0.0.9", "192.168.0.9", dport=85), pkt("10.0.0.9", "192.168.0.9", dport=444)),
    ("-p tcp -m multiport --sports 1000:2000", pkt("10.0.0.9", "192.168.0.9", sport=1500), pkt("10.0.0.9", "192.168.0.9")),
    ("-p tcp -m multiport --ports 40000", pkt("10.0.0.9", "192.168.0.9", sport=40000), pkt("10.0.0.9", "192.168.0.9", sport=1)),
    ("-p tcp -m multiport ! --dports 80", pkt("10.0.0.9", "192.168.0.9", dport=81), pkt("10.0.0.9", "192.168.0.9")),
    ("-i cni0", pkt("10.0.0.9", "192.168.0.9"), pkt("10.0.0.9", "192.168.0.9")),
    ("-i cni+", pkt("10.0.0.9", "192.168.0.9"), pkt("10.0.0.9", "192.168.0.9")),
    ("-o eth0", pkt("10.0.0.9", "192.168.0.9"), pkt("10.0.0.9", "10.0.0.8")),
    ("! -o eth+", pkt("10.0.0.9", "10.0.0.8"), pkt("10.0.0.9", "192.168.0.9")),
    ("-m iprange --dst-range 192.168.0.5-192.168.0.10", pkt("10.0.0.9", "192.168.0.9"), pkt("10.0.0.9", "192.168.0.11")),
    ("-m iprange ! --src-range 10.0.0.1-10.0.0.8", pkt("10.0.0.9", "192.168.0.9"), pkt("10.0.0.8", "192.168.0.9")),
    ("-m conntrack --ctstate NEW", pkt("10.0.0.9", "192.168.0.9"), pkt("10.0.0.9", "192.168.0.9", tcp_flags=0x14)),
    ("-m conntrack --ctstate INVALID", pkt("10.0.0.9", "192.168.0.9", tcp_flags=0x03), pkt("10.0.0.9", "192.168.0.9")),
    ("-m state --state NEW", pkt("10.0.0.9", "192.168.0.9"), pkt("10.0.0.9", "192.168.0.9", tcp_flags=0x04)),
    ("-m comment --comment \"any packet\" -p tcp", pkt("10.0.0.9", "192.168.0.9"), pkt("10.0.0.9", "192.168.0.9", proto="udp")),
    ("-p icmp -m icmp --icmp-type echo-request", pkt("10.0.0.9", "192.168.0.9", proto="icmp", sport=0, dport=0, icmp_type=8, icmp_code=0),
     pkt("10.0.0.9", "192.168.0.9", proto="icmp", sport=0, dport=0, icmp_type=13, icmp_code=0)),
    ("-p icmp --icmp-type 13/0", pkt("10.0.0.9", "192.168.0.9", proto="icmp", sport=0, dport=0, icmp_type=13, icmp_code=0),
     pkt("10.0.0.9", "192.168.0.9", proto="icmp", sport=0, dport=0, icmp_type=8, icmp_code=0)),
    ("-m addrtype --dst-type UNICAST", pkt("10.0.0.9", "192.168.0.9"), None),
    ("-m addrtype --src-type LOCAL", None, pkt("10.0.0.9", "192.168.0.9")),
    ("-m recent --name x --set", pkt("10.0.0.9", "192.168.0.9"), None),
    ("-m recent --name x --rcheck --seconds 10800 --reap", None, pkt("10.0.0.9", "192.168.0.9")),
])
def test_match_hit_and_near_miss(rule, hit, miss):
    if "cni" in rule and "-i" in rule:
        assert verdict_for(rule, hit) == "drop"
        assert verdict_for(rule.replace("cni", "eth"), miss) == "forward"
        return
    if hit is not None:
        assert verdict_for(rule, hit) == "drop"
    if miss is not None:
        assert verdict_for(rule, miss) != "drop"


def test_mark_match_sees_mark_set_earlier():
    t = tracer(tables(mangle="-A FORWARD -j MARK --set-xmark 0x4000/0xffffffff",
                      filter="-A FORWARD -m mark --mark 0x4000/0x4000 -j DROP"))
    assert only(t.trace(pkt("10.0.0.9", "192.168.0.9"), in_iface="cni0")).verdict == "drop"
    t = tracer(tables(mangle="-A FORWARD -j MARK --set-xmark 0x2000/0xffffffff",
                      filter="-A FORWARD -m mark --mark 0x4000/0x4000 -j DROP"))
    assert only(t.trace(pkt("10.0.0.9", "192.168.0.9"), in_iface="cni0")).verdict == "forward"


def test_addrtype_local_includes_all_of_127_8_and_limit_iface():
    t = tracer(tables(nat="-A OUTPUT -m addrtype --dst-type LOCAL -p tcp -j DNAT --to-destination 10.0.0.7"))
    assert only(t.trace(pkt("127.0.0.1", "127.0.0.53"), in_iface=None)).packet.dst == 0x0A000007
    # --limit-iface-in: 192.168.0.2 is LOCAL only through eth0's own local route.
    t = tracer(tables(filter="-A INPUT -m addrtype --dst-type LOCAL --limit-iface-in -j DROP"))
    assert only(t.trace(pkt("192.168.0.9", "192.168.0.2"), in_iface="eth0")).verdict == "drop"
    assert only(t.trace(pkt("10.0.0.9", "192.168.0.2"), in_iface="cni0")).verdict == "local"


def test_addrtype_broadcast():
    t = tracer(tables(filter="-A INPUT -m addrtype --dst-type BROADCAST -j DROP"))
    assert only(t.trace(pkt("192.168.0.9", "192.168.0.255", proto="udp"), in_iface="eth0")).verdict == "drop"


def test_statistic_random_uses_the_kernels_exact_probability():
    t = tracer(tables(nat="""
        -A PREROUTING -p tcp -m statistic --mode random --probability 0.33333333349 -j DNAT --to-destination 10.0.0.5
        -A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.6"""))
    outs = t.trace(pkt("192.168.0.9", "192.168.0.2"), in_iface="eth0").outcomes
    probs = {o.packet.dst: o.probability for o in outs}
    assert probs[0x0A000005] == round(0.33333333349 * 2**31) / 2**31
    assert abs(sum(probs.values()) - 1.0) < 1e-12


def test_statistic_nth_is_its_long_run_share():
    t = tracer(tables(nat="""
        -A PREROUTING -p tcp -m statistic --mode nth --every 3 --packet 0 -j DNAT --to-destination 10.0.0.5
        -A PREROUTING -p tcp -m statistic --mode nth --every 2 --packet 0 -j DNAT --to-destination 10.0.0.6
        -A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.7"""))
    outs = t.trace(pkt("192.168.0.9", "192.168.0.2"), in_iface="eth0").outcomes
    assert sorted(round(o.probability, 9) for o in outs) == [round(1 / 3, 9)] * 3


def test_scapy_udp_and_icmp_packets_convert():
    # A UDP scapy packet once crashed the converter (an import was missing).
    from scapy.layers.inet import ICMP, IP, UDP
    from pktverify.packets import packet_from_scapy
    udp = packet_from_scapy(IP(src="10.0.0.9", dst="10.96.0.10") / UDP(sport=5353, dport=53))
    assert (udp.proto, udp.sport, udp.dport) == (17, 5353, 53)
    icmp = packet_from_scapy(IP(src="10.0.0.9", dst="10.96.0.10") / ICMP(type=8, id=7))
    assert (icmp.proto, icmp.icmp_type, icmp.sport) == (1, 8, 7)
