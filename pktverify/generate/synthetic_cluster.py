"""Synthetic clusters of any size, for benchmarks and property tests.

Node *i* has 192.168.<i/240>.<i%240+10>/16 and pod CIDR 10.1.<i>.0/24 in cluster CIDR
10.1.0.0/16 (up to 256 nodes; beyond, 10.<1+i/256>.<i%256>.0/24 in 10.0.0.0/9, up to 32,000
nodes); pod *j* lives on node *j mod N*; service *k* selects the pods labelled ``app=svc<k>``
(pod *j* gets ``app=svc<j mod S>``) and has ClusterIP 10.152.<k/250>.<k%250+1>.
"""

from __future__ import annotations

from ..model.cluster import ClusterSpec, NodeSpec, PodSpec, ServicePortSpec, ServiceSpec

__all__ = ["synthetic_cluster"]


def synthetic_cluster(nodes: int, services: int, pods: int, *, proxy_mode: str = "iptables") -> ClusterSpec:
    """A clean cluster (every invariant holds) of the given size."""
    if not 1 <= nodes <= 32_000:
        raise ValueError("synthetic clusters have 1-32,000 nodes")
    if pods > nodes * 250:
        raise ValueError("at most 250 pods per node")
    if services > 62_500:
        raise ValueError("at most 62,500 services (the service CIDR is a /16)")
    big = nodes > 256

    def pod_cidr(i: int) -> int:
        return (10 << 24) | ((1 + i // 256) << 16) | ((i % 256) << 8) if big else (10 << 24) | (1 << 16) | (i << 8)

    node_specs = tuple(
        NodeSpec(f"node{i}", (192 << 24) | (168 << 16) | ((i // 240) << 8) | (i % 240 + 10), 16,
                 (pod_cidr(i), 0xFFFFFF00), "cbr0")
        for i in range(nodes))
    pod_specs = tuple(
        PodSpec(f"pod{j}", "default", f"node{j % nodes}", pod_cidr(j % nodes) | (j // nodes + 2),
                (("app", f"svc{j % services}"),) if services else (), (8080,))
        for j in range(pods))
    svc_specs = tuple(
        ServiceSpec(f"svc{k}", "default", (10 << 24) | (152 << 16) | ((k // 250) << 8) | (k % 250 + 1),
                    (ServicePortSpec("http", 80, 8080, "tcp"),), (("app", f"svc{k}"),))
        for k in range(services))
    cidr = (10 << 24, 0xFF800000) if big else ((10 << 24) | (1 << 16), 0xFFFF0000)
    return ClusterSpec("<synthetic>", cidr, ((10 << 24) | (152 << 16), 0xFFFF0000),
                       proxy_mode, "direct", node_specs, pod_specs, svc_specs)
