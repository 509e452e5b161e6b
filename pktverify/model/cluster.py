"""A cluster as the YAML description says it: nodes, pods, services (immutable)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from .addresses import format_ip

__all__ = ["NodeSpec", "PodSpec", "ServicePortSpec", "ServiceSpec", "ClusterSpec"]


@dataclass(frozen=True)
class NodeSpec:
    """One node. Dump paths are absolute (resolved against the YAML file) or None: generated."""
    name: str
    ip: int
    prefixlen: int
    pod_cidr: tuple[int, int]           # (network, mask)
    bridge: str
    iptables: str | None = None
    addrs: str | None = None
    routes: str | None = None
    docker: bool = False                # docker's default bridge mode: docker0 172.17.0.0/16 + MASQUERADE
    line: int = 0
    ipsets: str | None = None           # ``ipset save`` output (optional)
    rules: str | None = None            # ``ip rule`` output (optional; default rules otherwise)


@dataclass(frozen=True)
class PodSpec:
    name: str
    namespace: str
    node: str
    ip: int
    labels: tuple[tuple[str, str], ...] = ()
    ports: tuple[int, ...] = ()         # container ports (all containers share the pod's namespace)
    ready: bool = True
    line: int = 0

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ServicePortSpec:
    name: str
    port: int
    target_port: int
    protocol: str                        # "tcp" | "udp"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    namespace: str
    cluster_ip: int
    ports: tuple[ServicePortSpec, ...]
    selector: tuple[tuple[str, str], ...] | None = None
    endpoints: tuple[str, ...] | None = None        # explicit "namespace/pod" keys
    endpoint_ips: tuple[int, ...] = ()              # explicit endpoint IPs (may be stale: no such pod)
    line: int = 0

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ClusterSpec:
    source: str
    cidr: tuple[int, int]
    service_cidr: tuple[int, int]
    proxy_mode: str                      # "userspace" | "iptables"
    routing: str                         # "direct"
    nodes: tuple[NodeSpec, ...]
    pods: tuple[PodSpec, ...]
    services: tuple[ServiceSpec, ...]
    extras: dict = field(default_factory=dict, compare=False)

    def node(self, name: str) -> NodeSpec:
        return next(n for n in self.nodes if n.name == name)

    @cached_property
    def pods_by_key(self) -> dict[str, PodSpec]:
        """Pods by ``namespace/name`` (built once)."""
        return {p.key: p for p in self.pods}

    @cached_property
    def _pods_by_label(self) -> dict[tuple[str, str, str], list[PodSpec]]:
        """Ready pods by (namespace, label, value), for selectors (built once)."""
        index: dict[tuple[str, str, str], list[PodSpec]] = {}
        for p in self.pods:
            if p.ready:
                for k, v in p.labels:
                    index.setdefault((p.namespace, k, v), []).append(p)
        return index

    def endpoints_of(self, svc: ServiceSpec) -> list[tuple[str, int]]:
        """The service's ready endpoints as (label, ip): selected pods, explicit pods, explicit IPs."""
        out: list[tuple[str, int]] = []
        if svc.selector:
            first, *rest = svc.selector
            candidates = self._pods_by_label.get((svc.namespace, *first), [])
            out += [(p.key, p.ip) for p in candidates if all(dict(p.labels).get(k) == v for k, v in rest)]
        for key in svc.endpoints or ():
            pod = self.pods_by_key.get(key)
            if pod is not None and pod.ready:
                out.append((pod.key, pod.ip))
        out += [(f"ip {format_ip(ip)}", ip) for ip in svc.endpoint_ips]
        return out
