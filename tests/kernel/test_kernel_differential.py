"""pktverify against the real kernel: the same rules and SYN, the same post-NAT tuple.

Each probe loads a rule set into an isolated node namespace, sends a TCP SYN
from the pod or LAN namespace, reads the post-NAT tuple from conntrack events,
and compares it with ``pktverify trace`` on the same node description.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pktverify.model.addresses import format_ip
from pktverify.testing.kernel_lab import LAB_ADDRS, LAB_ROUTES

from ..helpers import pkt, tracer

pytestmark = pytest.mark.kernel

NAT_HEAD = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
CLIENTS = {"pod": ("10.0.0.9", "cni0"), "lan": ("192.168.0.9", "eth0")}


def predicted(rules: str, client: str, sport: int, dst: str, dport: int):
    src, iface = CLIENTS[client]
    outcomes = tracer(rules, addrs=LAB_ADDRS, routes=LAB_ROUTES).trace(
        pkt(src, dst, dport, sport=sport), in_iface=iface).outcomes
    assert len(outcomes) == 1, outcomes
    o = outcomes[0]
    if o.verdict not in ("forward", "local"):
        return None
    ports = {"sport": (o.packet.sport, o.packet.sport), "dport": (o.packet.dport, o.packet.dport)}
    for field, low, high in o.random_ports:     # the kernel draws these uniformly from the range
        ports[field] = (low, high)
    return (format_ip(o.packet.src), ports["sport"], format_ip(o.packet.dst), ports["dport"])


def agree(lab, rules: str, client: str, sport: int, dst: str, dport: int) -> None:
    src, _ = CLIENTS[client]
    kernel = lab.probe(rules, client=client, src=src, sport=sport, dst=dst, dport=dport).post_nat
    model = predicted(rules, client, sport, dst, dport)
    if model is None or kernel is None:
        assert model == kernel, f"kernel {kernel} != pktverify {model}\n{rules}"
        return
    (m_src, (s_lo, s_hi), m_dst, (d_lo, d_hi)), (k_src, k_sport, k_dst, k_dport) = model, kernel
    assert (m_src, m_dst) == (k_src, k_dst), f"kernel {kernel} != pktverify {model}\n{rules}"
    assert s_lo <= k_sport <= s_hi and d_lo <= k_dport <= d_hi, f"kernel {kernel} != pktverify {model}\n{rules}"


FIXED = [
    # DNAT to an address range: the kernel's jhash choice (found exact on the first kernel run).
    ("-A PREROUTING -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination 192.168.0.20-192.168.0.29:8080",
     "pod", 40000, "10.96.0.10", 80),
    ("-A PREROUTING -p tcp -j DNAT --to-destination 192.168.0.20-192.168.0.120 --persistent",
     "pod", 40001, "10.96.0.11", 80),
    # DNAT keeps the port without one; a port range keeps an in-range port.
    ("-A PREROUTING -p tcp -j DNAT --to-destination 192.168.0.30", "pod", 40002, "10.96.0.12", 8443),
    ("-A PREROUTING -p tcp -j DNAT --to-destination 192.168.0.30:9000-9010", "pod", 40003, "10.96.0.12", 9005),
    ("-A PREROUTING -p tcp -j DNAT --to-destination 192.168.0.30:9000-9010", "pod", 40004, "10.96.0.12", 80),
    # REDIRECT: the incoming interface's first address.
    ("-A PREROUTING -p tcp -j REDIRECT --to-ports 15001", "pod", 40005, "10.96.0.13", 80),
    ("-A PREROUTING -p tcp -j REDIRECT --to-ports 15001", "lan", 40006, "10.96.0.13", 80),
    # MASQUERADE picks the outgoing interface's address; SNAT in range keeps the tuple.
    ("-A POSTROUTING -o eth0 -j MASQUERADE", "pod", 40007, "192.168.0.40", 80),
    ("-A POSTROUTING -p tcp -j SNAT --to-source 192.168.0.50:2000-2999", "pod", 40008, "192.168.0.40", 80),
    ("-A POSTROUTING -p tcp -j SNAT --to-source 192.168.0.50:2000-2999", "pod", 2500, "192.168.0.40", 80),
    # No NAT at all: a null binding, the tuple is unchanged.
    ("-A PREROUTING -d 10.1.1.1/32 -p tcp -j DNAT --to-destination 192.168.0.30", "pod", 40009, "192.168.0.41", 80),
]


@pytest.mark.parametrize("rule,client,sport,dst,dport", FIXED)
def test_fixed_probes_agree_with_kernel(lab, rule, client, sport, dst, dport):
    agree(lab, NAT_HEAD + rule + "\nCOMMIT\n", client, sport, dst, dport)


def test_filter_drop_creates_no_connection(lab):
    rules = "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -p tcp --dport 81 -j DROP\nCOMMIT\n"
    agree(lab, rules, "pod", 40010, "192.168.0.40", 81)


addresses = st.sampled_from(["192.168.0.20", "192.168.0.33", "192.168.0.77", "192.168.0.200"])


@st.composite
def nat_rule_sets(draw):
    """A DNAT (single address or range, optional ports) and an optional source NAT."""
    low = draw(st.integers(20, 200))
    high = draw(st.integers(low, 254))
    port = draw(st.one_of(st.just(""), st.integers(1000, 1010).map(lambda p: f":{p}"),
                          st.just(":1000-1020")))
    persistent = draw(st.sampled_from(["", " --persistent"]))
    rules = [f"-A PREROUTING -p tcp -d 10.96.0.0/24 -j DNAT --to-destination "
             f"192.168.0.{low}-192.168.0.{high}{port}{persistent}"]
    # SNAT to an address *range* is left out: the kernel's choice there was seen to differ
    # from ours on a first probe (conntrack's find_appropriate_src reuse); open in issue #3.
    snat = draw(st.sampled_from(["", "-A POSTROUTING -o eth0 -j MASQUERADE",
                                 "-A POSTROUTING -p tcp -j SNAT --to-source 192.168.0.60"]))
    if snat:
        rules.append(snat)
    return NAT_HEAD + "\n".join(rules) + "\nCOMMIT\n"


def test_random_nat_rule_sets_agree_with_kernel(lab, kernel_examples):
    @settings(max_examples=kernel_examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(rules=nat_rule_sets(), client=st.sampled_from(["pod", "lan"]), sport=st.integers(30000, 60000),
           last=st.integers(1, 254), dport=st.sampled_from([80, 1005, 1015, 8080]))
    def check(rules, client, sport, last, dport):
        agree(lab, rules, client, sport, f"10.96.0.{last}", dport)
    check()
