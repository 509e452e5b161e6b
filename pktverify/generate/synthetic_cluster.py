"""Synthetic clusters of any size, for benchmarks and property tests.

Node *i* has 192.168.<i/250>.<i%250+10>/16 and pod CIDR 10.1.<i>.0/24 (so at most
256 nodes); pod *j* lives on node *j mod N*; service *k* selects the pods
labelled ``app=svc<k>`` (pod *j* gets ``app=svc<j mod S>``).
"""

from __future__ import annotations

from ..model.cluster import ClusterSpec, NodeSpec, PodSpec, ServicePortSpec, ServiceSpec

__all__ = ["synthetic_cluster"]


def synthetic_cluster(nodes: int, services: int, pods: int, *, proxy_mode: str = "iptables") -> ClusterSpec:
    """A clean cluster (every invariant holds) of the given size."""
    if not 1 <= nodes <= 256:
        raise ValueError("synthetic clusters have 1-256 nodes")
    if pods > nodes * 250:
        raise ValueError("at most 250 pods per node")
    node_specs = tuple(
        NodeSpec(f"node{i}", (192 << 24) | (168 << 16) | ((i // 250) << 8) | (i % 250 + 10), 16,
                 ((10 << 24) | (1 << 16) | (i << 8), 0xFFFFFF00), "cbr0")
        for i in range(nodes))
    pod_specs = tuple(
        PodSpec(f"pod{j}", "default", f"node{j % nodes}", (10 << 24) | (1 << 16) | ((j % nodes) << 8) | (j // nodes + 2),
                (("app", f"svc{j % services}"),) if services else (), (8080,))
        for j in range(pods))
    svc_specs = tuple(
        ServiceSpec(f"svc{k}", "default", (10 << 24) | (152 << 16) | ((k // 250) << 8) | (k % 250 + 1),
                    (ServicePortSpec("http", 80, 8080, "tcp"),), (("app", f"svc{k}"),))
        for k in range(services))
    return ClusterSpec("<synthetic>", ((10 << 24) | (1 << 16), 0xFFFF0000), ((10 << 24) | (152 << 16), 0xFFFF0000),
                       proxy_mode, "direct", node_specs, pod_specs, svc_specs)
