"""pktverify against the real kernel: the same rules and packet, the same verdict, tuple and interface.

Each probe loads a rule set into an isolated node namespace, sends a TCP SYN
or UDP datagram from the pod or LAN namespace or from the node itself, and
compares what the kernel did with ``pktverify trace`` run on the namespace's
own dumps (see pktverify.oracle.kernel_campaign).
"""

from __future__ import annotations

import pytest

from pktverify.oracle.kernel_campaign import Probe, binomial_consistent
from pktverify.oracle.kernel_lab import CLIENT_ADDRESSES

from ..helpers import pkt, tracer
from .cli_campaign import run_campaign, run_probe

pytestmark = pytest.mark.kernel

NAT_HEAD = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"


def nat(*rules: str) -> str:
    return NAT_HEAD + "".join(r + "\n" for r in rules) + "COMMIT\n"


def filt(*rules: str, policies: str = "") -> str:
    return "*filter\n" + policies + "".join(r + "\n" for r in rules) + "COMMIT\n"


FIXED = [
    # DNAT to an address range: the kernel's jhash choice.
    (nat("-A PREROUTING -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination 192.168.0.20-192.168.0.29:8080"),
     "pod", "tcp", 40000, "10.96.0.10", 80),
    (nat("-A PREROUTING -p tcp -j DNAT --to-destination 192.168.0.20-192.168.0.120 --persistent"),
     "pod", "tcp", 40001, "10.96.0.11", 80),
    # DNAT keeps the port without one; a port range keeps an in-range port.
    (nat("-A PREROUTING -p tcp -j DNAT --to-destination 192.168.0.30"), "pod", "tcp", 40002, "10.96.0.12", 8443),
    (nat("-A PREROUTING -p tcp -j DNAT --to-destination 192.168.0.30:9000-9010"), "pod", "tcp", 40003, "10.96.0.12", 9005),
    (nat("-A PREROUTING -p tcp -j DNAT --to-destination 192.168.0.30:9000-9010"), "pod", "tcp", 40004, "10.96.0.12", 80),
    # REDIRECT: the incoming interface's first address; 127.0.0.1 for local packets.
    (nat("-A PREROUTING -p tcp -j REDIRECT --to-ports 15001"), "pod", "tcp", 40005, "10.96.0.13", 80),
    (nat("-A PREROUTING -p udp -j REDIRECT --to-ports 15001"), "lan", "udp", 40006, "10.96.0.13", 53),
    (nat("-A OUTPUT -p tcp -d 10.96.0.13 -j REDIRECT --to-ports 15001"), "node", "tcp", 40007, "10.96.0.13", 80),
    # MASQUERADE picks the outgoing interface's address; SNAT to a port range draws a port.
    (nat("-A POSTROUTING -o eth0 -j MASQUERADE"), "pod", "tcp", 40008, "192.168.0.40", 80),
    (nat("-A POSTROUTING -p tcp -j SNAT --to-source 192.168.0.50:2000-2999"), "pod", "tcp", 40009, "192.168.0.40", 80),
    (nat("-A POSTROUTING -p tcp -j SNAT --to-source 192.168.0.50:2000-2999"), "pod", "tcp", 2500, "192.168.0.40", 80),
    # No NAT at all: a null binding, the tuple is unchanged; DNAT back out of the arrival interface.
    (nat("-A PREROUTING -d 10.1.1.1/32 -p tcp -j DNAT --to-destination 192.168.0.30"), "pod", "tcp", 40010, "192.168.0.41", 80),
    (nat("-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.20"), "pod", "tcp", 40011, "192.168.0.41", 80),
    # DROP is silent, REJECT answers; a user chain with RETURN and a goto.
    (filt("-A FORWARD -p tcp --dport 81 -j DROP"), "pod", "tcp", 40012, "192.168.0.40", 81),
    (filt("-A FORWARD -p udp -j REJECT"), "pod", "udp", 40013, "192.168.0.40", 53),
    (filt("-A INPUT -p tcp -j REJECT --reject-with tcp-reset"), "lan", "tcp", 40014, "192.168.0.2", 22),
    (filt("-A PV -s 10.0.0.9 -j RETURN", "-A PV -j DROP", "-A FORWARD -g PV", policies=":PV - [0:0]\n"),
     "pod", "tcp", 40015, "192.168.0.40", 80),
    # Locally generated: OUTPUT DROP versus REJECT, and delivery to a local address.
    (filt("-A OUTPUT -p udp -j DROP"), "node", "udp", 40016, "192.168.0.40", 53),
    (filt("-A OUTPUT -p tcp -j REJECT"), "node", "tcp", 40017, "192.168.0.40", 80),
    (filt(), "node", "tcp", 40018, "127.0.0.1", 80),
    # Regressions found by the campaign: REJECT's answer crosses OUTPUT, which can stop it.
    (filt("-A FORWARD -j REJECT", policies=":OUTPUT DROP [0:0]\n"), "pod", "tcp", 40019, "192.168.0.40", 80),
    (filt("-A FORWARD -j REJECT", "-A OUTPUT -m conntrack --ctstate RELATED -j DROP"), "pod", "udp", 40020,
     "192.168.0.40", 80),
    # A chain entered by -g from a built-in chain ends with the built-in's policy (seed 4242).
    (filt("-A PV -p udp -j ACCEPT", "-A FORWARD -g PV", policies=":FORWARD DROP [0:0]\n:PV - [0:0]\n"),
     "pod", "tcp", 40024, "192.168.0.40", 80),
    (filt("-A PV -j RETURN", "-A FORWARD -g PV", "-A FORWARD -j ACCEPT",
          policies=":FORWARD DROP [0:0]\n:PV - [0:0]\n"), "pod", "tcp", 40025, "192.168.0.40", 80),
    # ... and the answer to a local packet leaves by lo (campaign seed 77).
    (filt("-A OUTPUT ! -o eth0 -j REJECT --reject-with icmp-host-prohibited"), "node", "tcp", 40022, "10.0.0.20", 443),
    (filt("-A OUTPUT -o cni0 -j REJECT --reject-with icmp-host-prohibited"), "node", "tcp", 40023, "10.0.0.20", 443),
]


@pytest.mark.parametrize("rules,client,proto,sport,dst,dport", FIXED)
def test_fixed_probes_agree_with_kernel(lab, rules, client, proto, sport, dst, dport):
    res = run_probe(lab, Probe(rules, client, proto, sport, dst, dport))
    assert res.agrees, res.explanation + "\n" + rules


def test_kernel_refusal_is_pktverify_refusal(lab):
    # Found by the campaign: iptables-restore refuses "multiple -s flags"; so must we.
    res = run_probe(lab, Probe(filt("-A FORWARD -s 10.0.0.9 -s 10.0.0.8 -j DROP"), "pod", "tcp", 40021,
                               "192.168.0.40", 80))
    assert res.kernel is None and res.prediction.load_error and res.agrees, res.explanation


def test_random_rule_sets_agree_with_kernel(lab, kernel_examples, kernel_seed):
    result = run_campaign(lab, kernel_examples, seed=kernel_seed)
    assert result.sent == kernel_examples
    first = result.divergences[0] if result.divergences else None
    assert result.agreed == result.sent, (
        f"seed {result.seed}: {result.agreed}/{result.sent} agree; first divergence: "
        f"{first.explanation}\n{first.probe.reproducer()}")


def test_probabilistic_dnat_matches_predicted_frequencies(lab):
    """A 0.3 / 0.7 split over 120 connections: the endpoints seen are the predicted ones,
    in proportions consistent with the predicted probabilities. The endpoints do not exist
    (nobody answers), so every entry stays in the conntrack table to be listed."""
    rules = nat("-A PREROUTING -p tcp -d 10.96.0.10 -m statistic --mode random --probability 0.3 "
                "-j DNAT --to-destination 192.168.0.3:8080",
                "-A PREROUTING -p tcp -d 10.96.0.10 -j DNAT --to-destination 192.168.0.4:8080")
    src, iface = CLIENT_ADDRESSES["pod"]
    predicted = {f"{o.packet.dst >> 24}.{o.packet.dst >> 16 & 255}.{o.packet.dst >> 8 & 255}.{o.packet.dst & 255}":
                 o.probability for o in tracer(rules).trace(pkt(src, "10.96.0.10", 80), in_iface=iface).outcomes}
    assert set(predicted) == {"192.168.0.3", "192.168.0.4"}
    sports = list(range(41000, 41120))
    seen = lab.post_nat_many(rules, client="pod", proto="tcp", sports=sports, dst="10.96.0.10", dport=80)
    assert all(s is not None for s in seen), "every connection must be tracked"
    counts = {ep: sum(1 for s in seen if s[2] == ep) for ep in predicted}
    assert sum(counts.values()) == len(sports), f"endpoints outside the prediction: {seen}"
    for ep, p in predicted.items():
        assert binomial_consistent(counts[ep], len(sports), p), (ep, counts, predicted)


def test_binomial_check_rejects_a_wrong_probability():
    # The statistical check has teeth: 60 of 120 is not what p=0.3 gives.
    assert binomial_consistent(36, 120, 0.3)
    assert not binomial_consistent(60, 120, 0.3)


def test_lab_text_dumps_describe_the_lab(lab):
    """The reproducer's addrs/routes text gives the same node as the lab's own JSON dumps."""
    from dataclasses import replace

    from pktverify.oracle.kernel_lab import LAB_ADDRS, LAB_ROUTES
    from pktverify.parse.ipaddr import parse_ip_addr
    from pktverify.parse.iproute import parse_routes
    dump = lab.dump()
    assert parse_ip_addr(LAB_ADDRS) == parse_ip_addr(dump.ip_addr_json)
    def routes(text, table="main"):       # where a route was written down does not matter
        return {replace(r, line=0, source="") for r in parse_routes(text).routes if r.table == table}
    assert routes(LAB_ROUTES) == routes(dump.ip_route_json)
    # The dump is `ip -j route show table all`: its local table is what pktverify derives from the
    # addresses when a dump has none (fib_add_ifaddr).
    from pktverify.load.node import kernel_routes_for
    derived = {replace(r, line=0, source="") for r in kernel_routes_for(parse_ip_addr(LAB_ADDRS))[0]}
    kernel = {replace(r, line=0, source="") for r in routes(dump.ip_route_json, "local")}
    assert {(r.network, r.mask, r.kind, r.dev) for r in derived} == {(r.network, r.mask, r.kind, r.dev) for r in kernel}


def test_selftest_kernel_command_prints_the_agreement_figure(lab):
    import subprocess
    import sys
    res = subprocess.run([sys.executable, "-m", "pktverify.cli", "selftest-kernel", "--examples", "3", "--seed", "7"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("kernel agreement: 3/3 probes (100.0%), seed 7")
