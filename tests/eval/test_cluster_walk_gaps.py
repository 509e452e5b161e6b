"""Model gaps the cluster lab (``pktverify selftest-cluster``, drawn clusters) found in verify,
each closed here with the lab's reproducer:

* a REJECT refuses a flow only if its answer (ICMP error, RST) gets back to the client: the
  answer is walked from the rejecting node, the ICMP error RELATED to the connection;
* a userspace proxy without endpoints: TCP accepted and closed (refused), UDP read and dropped
  (silence: the proxy's socket is open, so no ICMP error);
* two pods holding one address behind one bridge: either may get the packet (the first ARP
  answer wins; no input says whose), so both are possible, neither promised.
"""

from __future__ import annotations

from collections import Counter

import pktverify
from pktverify.eval.cluster_walk import ClusterWalker
from pktverify.eval.conntrack import ConntrackTable, translate_related
from pktverify.load.cluster_nodes import cluster_nodes
from pktverify.model.addresses import parse_ip
from pktverify.model.packet import ICMP, TCP, UDP, Packet
from pktverify.model.trace import Connection
from pktverify.oracle.cluster_compare import expectation_of, judge
from pktverify.parse.cluster_yaml import parse_cluster

NODES = """nodes:
  - {name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24}
  - {name: node2, ip: 192.168.1.20/24, pod_cidr: 10.1.20.0/24}
"""
NODEPORT = ("  - {name: web, type: NodePort, cluster_ip: 10.152.183.10, selector: {app: web}, "
            "ports: [{port: 80, target_port: 8080, node_port: 30080}]}\n")


def _cluster(mode: str, pods: str, services: str = NODEPORT):
    return parse_cluster(f"cluster: {{cidr: 10.1.0.0/16, service_cidr: 10.152.183.0/24, proxy_mode: {mode}}}\n"
                         + NODES + "pods:\n" + pods + "services:\n" + services)


def with_filter_rule(cluster, node: str, rule: str):
    """``cluster`` with ``rule`` first in ``node``'s generated filter table."""
    text = pktverify.generated_dumps(cluster)[node]["iptables"]
    head, sep, tail = text.partition("*filter\n")
    lines = tail.split("\n")
    at = next(i for i, line in enumerate(lines) if not line.startswith(":"))
    lines.insert(at, rule)
    return pktverify.with_node_dumps(cluster, node, iptables=head + sep + "\n".join(lines))


def _walk(cluster, pod: str, proto: int, dst: str, dport: int):
    walker = ClusterWalker(cluster, cluster_nodes(cluster))
    p = cluster.pods_by_key[pod]
    return walker.walk(walker.pod_endpoint(p), Packet(proto, p.ip, parse_ip(dst), 40000, dport))


CLIENT = "  - {name: client, node: node1, ip: 10.1.10.5}\n"


def test_a_rejects_answer_dropped_on_its_way_back_is_silence_where_it_died():
    """node2 rejects the NodePort without endpoints (ICMP port unreachable); node1 forwards the
    error to the pod and drops it (kernel: 3/3 connections silent, none refused)."""
    plain = _cluster("iptables", CLIENT)
    ends = _walk(plain, "default/client", TCP, "192.168.1.20", 30080)
    # The error crosses node1's FORWARD as RELATED to the connection (kube-proxy's KUBE-FORWARD
    # drops INVALID): refused.
    assert [e.kind for e in ends] == ["reject"], [e.reason for e in ends]
    dropped = with_filter_rule(plain, "node1", "-A FORWARD -d 10.1.10.5/32 -j DROP")
    ends = _walk(dropped, "default/client", TCP, "192.168.1.20", 30080)
    assert [e.kind for e in ends] == ["drop"]
    assert ends[0].probability == 1.0
    assert "reject on node2" in ends[0].reason and "never reaches pod default/client" in ends[0].reason
    assert "drop on node1: dropped by filter/FORWARD #1" in ends[0].reason
    # The answer's way back is part of the path: the client knows where it died.
    assert any(h.point.startswith("node1:") and h.packet.proto == ICMP for h in ends[0].hops)


def test_the_answer_is_related_to_the_connection_on_every_node_back():
    """The ICMP error is RELATED (not INVALID) on node1, which forwarded the SYN, and node1
    un-masquerades it back to the pod: both as the kernel does (a dropped INVALID or an answer
    left at node1's own address would be silence)."""
    plain = _cluster("iptables", CLIENT)
    strict = with_filter_rule(plain, "node1", "-A FORWARD -m conntrack --ctstate INVALID -j DROP")
    assert [e.kind for e in _walk(strict, "default/client", TCP, "192.168.1.20", 30080)] == ["reject"]
    text = pktverify.generated_dumps(plain)["node1"]["iptables"]
    head, sep, tail = text.partition("*nat\n")
    lines = tail.split("\n")
    at = next(i for i, line in enumerate(lines) if not line.startswith(":"))
    lines.insert(at, "-A POSTROUTING -s 10.1.10.0/24 -d 192.168.1.0/24 -j MASQUERADE")
    masq = pktverify.with_node_dumps(plain, "node1", iptables=head + sep + "\n".join(lines))
    ends = _walk(masq, "default/client", TCP, "192.168.1.20", 30080)
    assert [e.kind for e in ends] == ["reject"], [e.reason for e in ends]


def test_an_answer_to_a_pod_outside_its_nodes_cidr_follows_the_fib_away():
    """A pod whose address is outside its node's pod CIDR: node2's ICMP error goes where node2
    routes that address (its default route, out of the cluster), not back to the pod."""
    cluster = _cluster("iptables", "  - {name: client, node: node1, ip: 10.116.255.254}\n")
    ends = _walk(cluster, "default/client", TCP, "192.168.1.20", 30080)
    assert [e.kind for e in ends] == ["drop"], [e.reason for e in ends]
    assert "never reaches pod default/client" in ends[0].reason and "left" in ends[0].reason


def test_an_icmp_error_is_related_to_its_connection_and_un_natted_by_it():
    """nf_nat_icmp_reply_translation: the error's destination goes back to the client's address
    where the connection was SNATed, its source to the address the client sent to where DNATed."""
    conn = Connection(Packet(TCP, parse_ip("10.1.10.5"), parse_ip("10.152.183.10"), 40000, 80),
                      Packet(TCP, parse_ip("10.1.20.9"), parse_ip("192.168.1.10"), 8080, 61000))
    table = ConntrackTable()
    table.add(conn)
    error = Packet(ICMP, parse_ip("192.168.1.20"), parse_ip("192.168.1.10"), 0, 0, 0, 3, 3)
    assert table.related(error) == conn
    assert table.related(error._replace(icmp_type=8)) is None        # an echo request is no error
    assert table.related(error._replace(dst=parse_ip("10.9.9.9"))) is None
    back = translate_related(translate_related(error, conn, "dst"), conn, "src")
    assert (back.src, back.dst) == (parse_ip("10.152.183.10"), parse_ip("10.1.10.5"))


def test_userspace_proxy_without_endpoints_closes_tcp_and_swallows_udp():
    """kube-proxy's proxysocket.go: the TCP proxy accepts and closes; the UDP proxy reads the
    datagram and drops it, with its socket open (no ICMP port unreachable)."""
    services = ("  - {name: dns, cluster_ip: 10.152.183.53, selector: {app: dns}, "
                "ports: [{name: u, port: 53, target_port: 53, protocol: UDP}, {name: t, port: 53, target_port: 53}]}\n")
    cluster = _cluster("userspace", CLIENT, services)
    udp = _walk(cluster, "default/client", UDP, "10.152.183.53", 53)
    assert [e.kind for e in udp] == ["drop"] and "no ICMP error" in udp[0].reason
    tcp = _walk(cluster, "default/client", TCP, "10.152.183.53", 53)
    assert [e.kind for e in tcp] == ["reject"] and "accepts the connection and closes it" in tcp[0].reason


TWINS = """  - {name: a, node: node1, ip: 10.1.10.5, labels: {app: web}, containers: [{name: c, ports: [8080]}]}
  - {name: b, node: node1, ip: 10.1.10.5, labels: {app: web}, containers: [{name: c, ports: [8080]}]}
  - {name: client, node: node2, ip: 10.1.20.7}
"""


def test_two_pods_with_one_address_behind_one_bridge_are_both_possible():
    cluster = _cluster("iptables", TWINS)
    ends = _walk(cluster, "default/client", TCP, "10.1.10.5", 8080)
    assert sorted(e.at.name for e in ends) == ["default/a", "default/b"]
    assert all(not e.exact and e.probability == 0.5 for e in ends)
    # From a pod behind the same bridge too (on-link, bridged).
    near = _cluster("iptables", TWINS.replace("node: node2, ip: 10.1.20.7", "node: node1, ip: 10.1.10.7"))
    ends = _walk(near, "default/client", TCP, "10.1.10.5", 8080)
    assert sorted(e.at.name for e in ends) == ["default/a", "default/b"] and not any(e.exact for e in ends)


def test_the_lab_comparison_takes_either_twin_and_nothing_else():
    cluster = _cluster("iptables", TWINS)
    report = pktverify.verify(cluster, keep_flows=True)
    flow = next(f for res in report.results for f in res.flows or ()
                if f.label == "pod default/client: tcp 10.1.20.7:40000 > 10.1.10.5:8080")
    exp = expectation_of("x", flow, cluster)
    a, b = ("default/a", "10.1.20.7", "reply"), ("default/b", "10.1.20.7", "reply")
    assert set(exp.possible) == {a, b}
    assert judge(exp, Counter({a: 10})).agrees
    assert judge(exp, Counter({b: 10})).agrees
    assert judge(exp, Counter({a: 4, b: 6})).agrees
    assert not judge(exp, Counter({("-", "-", "silence"): 10})).agrees
    assert not judge(exp, Counter({a: 9, ("default/client", "10.1.20.7", "reply"): 1})).agrees
