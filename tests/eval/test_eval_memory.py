"""What the evaluator remembers is bounded by the rules, not by the packets traced. A chain of
2,000 port-only rules traced with 20,000 destinations used to keep a copy of its rule list per
destination (RSS 35 → 349 MB; now 35 → 42 MB, measured once by hand). The test asserts the
bound itself, not a size."""

from __future__ import annotations

from ..helpers import pkt, tracer

NAT = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"


def test_the_dispatch_cache_holds_only_destinations_a_rule_names():
    port_rules = [f"-A PREROUTING -p tcp --dport {10000 + i} -j DNAT --to-destination 10.0.0.9:80" for i in range(40)]
    named = [f"-A PREROUTING -d 10.96.0.{i}/32 -p tcp -j DNAT --to-destination 10.0.0.9:80" for i in range(1, 6)]
    t = tracer(NAT + "\n".join(port_rules + named) + "\nCOMMIT\n")
    for i in range(2000):
        t.trace(pkt("10.0.0.9", f"192.168.{i // 250}.{i % 250 + 1}", dport=9999), in_iface="cni0")
    for i in range(1, 6):
        (outcome,) = t.trace(pkt("10.0.0.9", f"10.96.0.{i}", dport=9999), in_iface="cni0").outcomes
        assert outcome.packet.dst == (10 << 24) | 9          # the named rule still matched
    chain = t.tables["nat"].chains["PREROUTING"]
    # one entry per named destination (and one for the rest), none per packet; the port 9999 no rule names
    named_ips = {(10 << 24) | (96 << 16) | i for i in range(1, 6)}
    assert chain.indexed and set(chain._cache) == {(None, None)} | {(ip, None) for ip in named_ips}


def test_many_rules_for_one_destination_are_split_by_their_port():
    """A LoadBalancer with thousands of ports: a packet is tested against the rules of its own
    port (and those that name none), not all of them; the answer is the same."""
    ports = [f"-A PREROUTING -d 10.96.0.1/32 -p tcp --dport {10000 + i} -j DNAT --to-destination 10.0.0.{i % 200 + 2}:80"
             for i in range(300)]
    loose = ["-A PREROUTING -d 10.96.0.1/32 -p udp -j DNAT --to-destination 10.0.0.250:53"]
    t = tracer(NAT + "\n".join(ports[:150] + loose + ports[150:]) + "\nCOMMIT\n")
    chain = t.tables["nat"].chains["PREROUTING"]
    for i in (0, 149, 150, 299):
        (outcome,) = t.trace(pkt("10.0.0.9", "10.96.0.1", dport=10000 + i), in_iface="cni0").outcomes
        assert outcome.packet.dst == (10 << 24) | (i % 200 + 2)
    (outcome,) = t.trace(pkt("10.0.0.9", "10.96.0.1", dport=53, proto="udp"), in_iface="cni0").outcomes
    assert outcome.packet.dst == (10 << 24) | 250
    assert chain.candidates((10 << 24) | (96 << 16) | 1, 10150) == [150, 151]    # the loose rule stays in order
    assert len(chain.candidates((10 << 24) | (96 << 16) | 1, 9)) == 1
