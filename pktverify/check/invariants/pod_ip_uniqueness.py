"""``pod-ip-uniqueness``: the cluster's address plan, checked fact by fact (no flows).

Pod IPs unique and inside their node's pod CIDR; pod CIDRs pairwise disjoint, inside the
cluster CIDR, clear of the service CIDR, of node addresses and of other nodes' bridges (the
docker0 problem); each ClusterIP inside the service CIDR and clear of pods, nodes and other
ClusterIPs; each NodePort inside the node-port range and used once per protocol.
"""

from __future__ import annotations

from bisect import bisect_right

from ...model.addresses import format_ip, in_network, network_within, networks_overlap
from ...model.cluster import ClusterSpec
from .flows import cidr
from .results import InvariantResult, Violation

__all__ = ["pod_ip_uniqueness"]


def pod_ip_uniqueness(cluster: ClusterSpec, res: InvariantResult) -> InvariantResult:
    """The address facts of ``cluster`` into ``res``: each fact checked counts one, each broken one
    is a violation without a flow."""
    seen: dict[int, str] = {}
    nodes = {n.name: n for n in cluster.nodes}
    for pod in cluster.pods:
        res.checked += 1
        if pod.ip in seen:
            res.violations.append(Violation(f"pod {pod.key} has IP {format_ip(pod.ip)}, already used by {seen[pod.ip]}"))
        seen.setdefault(pod.ip, pod.key)
        node = nodes[pod.node]
        if not in_network(pod.ip, *node.pod_cidr):
            res.violations.append(Violation(f"pod {pod.key} IP {format_ip(pod.ip)} is outside node {node.name}'s"
                                            f" pod CIDR {cidr(node.pod_cidr)}"))
    node_ips = {n.ip: n.name for n in cluster.nodes}
    for i, a in enumerate(cluster.nodes):
        res.checked += 1
        if not network_within(a.pod_cidr, cluster.cidr):
            res.violations.append(Violation(f"node {a.name} pod CIDR {cidr(a.pod_cidr)} is not inside the cluster"
                                            f" CIDR {cidr(cluster.cidr)}"))
        if networks_overlap(a.pod_cidr, cluster.service_cidr):
            res.violations.append(Violation(f"node {a.name} pod CIDR {cidr(a.pod_cidr)} overlaps the service CIDR"
                                            f" {cidr(cluster.service_cidr)}"))
        for ip, name in node_ips.items():
            if in_network(ip, *a.pod_cidr):
                res.violations.append(Violation(f"node {a.name} pod CIDR {cidr(a.pod_cidr)} contains node {name}'s"
                                                f" address {format_ip(ip)}"))
        for b in cluster.nodes[i + 1:]:
            if networks_overlap(a.pod_cidr, b.pod_cidr):
                res.violations.append(Violation(f"nodes {a.name} and {b.name} have overlapping pod CIDRs"
                                                f" {cidr(a.pod_cidr)} and {cidr(b.pod_cidr)}"))
            for x, y in ((a, b), (b, a)):
                if x.docker and (y.docker or networks_overlap((0xAC110000, 0xFFFF0000), y.pod_cidr)):
                    res.violations.append(Violation(
                        f"node {x.name}'s docker0 (172.17.0.0/16) collides with node {y.name}'s "
                        f"{'docker0' if y.docker else 'pod CIDR'}: docker's default bridge is the same subnet on"
                        " every host"))
                    break
    _address_plan(cluster, res)
    return res


def _pod_cidr_lookup(cluster: ClusterSpec):
    """``ip -> the nodes whose pod CIDR holds it``, in node order: by bisection when the pod
    CIDRs are disjoint (every sane cluster), else by asking each node."""
    spans = sorted((n.pod_cidr[0], n.pod_cidr[0] | (~n.pod_cidr[1] & 0xFFFFFFFF), i) for i, n in enumerate(cluster.nodes))
    if any(spans[k][1] >= spans[k + 1][0] for k in range(len(spans) - 1)):
        return lambda ip: [n for n in cluster.nodes if in_network(ip, *n.pod_cidr)]
    firsts = [first for first, _last, _i in spans]

    def lookup(ip: int) -> list:
        k = bisect_right(firsts, ip) - 1
        return [cluster.nodes[spans[k][2]]] if k >= 0 and ip <= spans[k][1] else []
    return lookup


def _address_plan(cluster: ClusterSpec, res: InvariantResult) -> None:
    """Service addresses against the plan: each ClusterIP inside the service CIDR, clear of every
    pod CIDR, node address and other ClusterIP; the service and cluster CIDRs disjoint; each
    NodePort inside the node-port range and used once per protocol."""
    res.checked += 1
    if networks_overlap(cluster.cidr, cluster.service_cidr):
        res.violations.append(Violation(f"the service CIDR {cidr(cluster.service_cidr)} overlaps the cluster CIDR "
                                        f"{cidr(cluster.cidr)}: ClusterIPs and pod IPs can collide"))
    node_ips = {n.ip: n.name for n in cluster.nodes}
    owners: dict[int, str] = {}
    cidr_of = _pod_cidr_lookup(cluster)
    for svc in cluster.services:
        res.checked += 1
        cip, what = svc.cluster_ip, f"service {svc.key} ClusterIP {format_ip(svc.cluster_ip)}"
        if not in_network(cip, *cluster.service_cidr):
            res.violations.append(Violation(f"{what} is outside the service CIDR {cidr(cluster.service_cidr)}"))
        for node in cidr_of(cip):
                res.violations.append(Violation(f"{what} is inside node {node.name}'s pod CIDR {cidr(node.pod_cidr)}"
                                                ": a pod can get that address"))
        if cip in node_ips:
            res.violations.append(Violation(f"{what} is node {node_ips[cip]}'s address"))
        if cip in owners:
            res.violations.append(Violation(f"{what} is also the ClusterIP of service {owners[cip]}"))
        owners.setdefault(cip, svc.key)
    low, high = cluster.node_port_range
    node_ports: dict[tuple[str, int], str] = {}
    for svc in cluster.services:
        for sp in svc.ports:
            if not sp.node_port:
                continue
            res.checked += 1
            what = f"service {svc.key}:{sp.name or sp.port} NodePort {sp.node_port}/{sp.protocol}"
            if not low <= sp.node_port <= high:
                res.violations.append(Violation(f"{what} is outside the node-port range {low}-{high}"))
            key = (sp.protocol, sp.node_port)
            if key in node_ports:
                res.violations.append(Violation(f"{what} is also the NodePort of {node_ports[key]}: on every node, "
                                                "one of them takes the other's traffic"))
            node_ports.setdefault(key, f"service {svc.key}:{sp.name or sp.port}")
