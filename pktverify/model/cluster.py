"""A cluster as the YAML description says it: nodes, pods, services (immutable)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from .addresses import format_ip, in_network
from .network_policy import NAMESPACE_NAME_LABEL, NamespaceSpec, NetworkPolicy

__all__ = ["DUMP_KINDS", "NodeSpec", "PodSpec", "ServicePortSpec", "ServiceSpec", "ClusterSpec", "SERVICE_TYPES", "NODE_PORT_RANGE"]


# A node's dumps, in the order every reader and writer lists them (NodeSpec has a field for each).
DUMP_KINDS = ("iptables", "addrs", "routes", "ipsets", "rules", "nft")
_KIND_ORDER = {kind: n for n, kind in enumerate(DUMP_KINDS)}


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
    line: int = field(default=0, compare=False)   # where the input describes it (metadata)
    ipsets: str | None = None           # ``ipset save`` output (optional)
    rules: str | None = None            # ``ip rule`` output (optional; default rules otherwise)
    inline: tuple[tuple[str, str], ...] = ()    # dumps given as text (kind, text) instead of a path
    inline_lines: tuple[tuple[str, int], ...] = field(default=(), compare=False)   # (kind, YAML line of text line 1)
    pod_prefix: int | None = None       # the prefix length on each pod's eth0 (None: the pod CIDR's own)
    nft: str | None = None              # an nftables dump (nft -j list ruleset; optional)

    def __post_init__(self) -> None:
        # One order for inline dumps (that of DUMP_KINDS), whoever made the node: equal nodes compare equal.
        if len(self.inline) > 1:
            object.__setattr__(self, "inline", tuple(sorted(self.inline, key=lambda kv: _KIND_ORDER[kv[0]])))

    def dump_text(self, kind: str) -> str | None:
        """The text of dump ``kind`` given inline, or None."""
        for k, text in self.inline:
            if k == kind:
                return text
        return None

    @property
    def pod_prefixlen(self) -> int:
        """The prefix length a pod on this node carries on eth0: ``pod_prefix`` when the input
        states it, else the pod CIDR's (the bridge CNI's host-local range, kubenet and docker all
        give their pods the subnet of the node's range)."""
        return self.pod_prefix if self.pod_prefix is not None else bin(self.pod_cidr[1]).count("1")

    def has_dump(self, kind: str) -> bool:
        """Whether dump ``kind`` (iptables, addrs, routes, ipsets, rules, nft) is given, as a path or inline."""
        return getattr(self, kind) is not None or self.dump_text(kind) is not None


@dataclass(frozen=True)
class PodSpec:
    name: str
    namespace: str
    node: str
    ip: int
    labels: tuple[tuple[str, str], ...] = ()
    ports: tuple[int, ...] = ()         # container ports (all containers share the pod's namespace)
    ready: bool = True
    line: int = field(default=0, compare=False)
    named_ports: tuple[tuple[str, str, int], ...] = ()   # (name, protocol, number) of named container ports
    host_network: bool = False          # runs in its node's network namespace: its IP is the node's

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ServicePortSpec:
    name: str
    port: int
    target_port: int | str               # a number, or a container port's name (resolved per endpoint pod)
    protocol: str                        # "tcp" | "udp"
    node_port: int | None = None         # NodePort and LoadBalancer services: the port on every node


SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
NODE_PORT_RANGE = (30000, 32767)         # kube-apiserver's default --service-node-port-range


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    namespace: str
    cluster_ip: int
    ports: tuple[ServicePortSpec, ...]
    selector: tuple[tuple[str, str], ...] | None = None
    endpoints: tuple[str, ...] | None = None        # explicit "namespace/pod" keys
    endpoint_ips: tuple[int, ...] = ()              # explicit endpoint IPs (may be stale: no such pod)
    line: int = field(default=0, compare=False)
    type: str = "ClusterIP"                         # ClusterIP | NodePort | LoadBalancer
    external_ips: tuple[int, ...] = ()              # spec.externalIPs
    lb_ips: tuple[int, ...] = ()                    # status.loadBalancer.ingress[].ip
    lb_source_ranges: tuple[tuple[int, int], ...] = ()   # spec.loadBalancerSourceRanges
    external_policy: str = "Cluster"                # spec.externalTrafficPolicy: Cluster | Local
    internal_policy: str = "Cluster"                # spec.internalTrafficPolicy: Cluster | Local
    affinity_timeout: int = 0                       # sessionAffinity ClientIP: its timeout (s); 0: None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def has_node_ports(self) -> bool:
        return self.type in ("NodePort", "LoadBalancer")

    @property
    def external(self) -> bool:
        """Reachable from outside the cluster (what externalTrafficPolicy applies to)."""
        return self.has_node_ports or bool(self.external_ips or self.lb_ips)


@dataclass(frozen=True, repr=False)
class ClusterSpec:
    """A cluster. Equality is about the network, not where it was read from: ``source`` and
    the ``line`` of every object are not compared. ``host_pods``: pods with ``hostNetwork``
    (they are their node's network namespace, so only services see them, as endpoints at
    their node's address)."""
    source: str = field(compare=False)
    cidr: tuple[int, int]
    service_cidr: tuple[int, int]
    proxy_mode: str                      # "userspace" | "iptables" | "nftables"
    routing: str                         # "direct"
    nodes: tuple[NodeSpec, ...]
    pods: tuple[PodSpec, ...]
    services: tuple[ServiceSpec, ...]
    extras: dict = field(default_factory=dict, compare=False)
    host_pods: tuple[PodSpec, ...] = ()
    node_port_range: tuple[int, int] = NODE_PORT_RANGE
    namespaces: tuple[NamespaceSpec, ...] = ()          # those the input lists (with labels); others exist bare
    network_policies: tuple[NetworkPolicy, ...] = ()

    def __hash__(self) -> int:
        """The hash of what equality compares, made once (the generators' caches are keyed by the
        cluster, and hashing 30,000 pods and 10,000 services each time cost seconds)."""
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = self.__dict__["_hash"] = hash((self.cidr, self.service_cidr, self.proxy_mode, self.routing,
                                                    self.nodes, self.pods, self.services, self.host_pods,
                                                    self.node_port_range, self.namespaces, self.network_policies))
        return cached

    def __getstate__(self) -> dict:
        """Pickled without the cached hash (another process may hash strings differently)."""
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """The same summary in Hypothesis's "Falsifying example" (its printer otherwise lists every field)."""
        printer.text(repr(self))

    def __repr__(self) -> str:
        """A summary: the whole cluster is its YAML (``pktverify.cluster_to_yaml``), not a repr."""
        fault = getattr(self, "fault", None)
        what = f", fault {fault.name}: {fault.detail}" if fault is not None else ""
        return (f"{type(self).__name__}({self.source!r}: {len(self.nodes)} node(s), {len(self.pods)} pod(s)"
                f"{f' + {len(self.host_pods)} host-network' if self.host_pods else ''}, {len(self.services)} "
                f"service(s), {self.proxy_mode} mode{what})")

    def node(self, name: str) -> NodeSpec:
        return self._nodes_by_name[name]

    @cached_property
    def _nodes_by_name(self) -> dict[str, NodeSpec]:
        return {n.name: n for n in self.nodes}

    @cached_property
    def pods_by_key(self) -> dict[str, PodSpec]:
        """Pods by ``namespace/name`` (built once)."""
        return {p.key: p for p in self.pods}

    @cached_property
    def _pods_by_label(self) -> dict[tuple[str, str, str], list[PodSpec]]:
        """Ready pods (host-network ones too) by (namespace, label, value), for selectors (built once)."""
        index: dict[tuple[str, str, str], list[PodSpec]] = {}
        for p in self.pods + self.host_pods:
            if p.ready:
                for k, v in p.labels:
                    index.setdefault((p.namespace, k, v), []).append(p)
        return index

    @cached_property
    def _host_pods_by_key(self) -> dict[str, PodSpec]:
        return {p.key: p for p in self.host_pods}

    def _endpoint_pods(self, svc: ServiceSpec) -> list[PodSpec]:
        """The ready pods behind ``svc``: selected ones, then listed ones, in order."""
        out: list[PodSpec] = []
        if svc.selector:
            first, *rest = svc.selector
            candidates = self._pods_by_label.get((svc.namespace, *first), [])
            out += [p for p in candidates if all(dict(p.labels).get(k) == v for k, v in rest)]
        for key in svc.endpoints or ():
            pod = self.pods_by_key.get(key) or self._host_pods_by_key.get(key)
            if pod is not None and pod.ready:
                out.append(pod)
        return out

    def endpoints_of(self, svc: ServiceSpec) -> list[tuple[str, int]]:
        """The service's ready endpoints as (label, ip): selected pods, explicit pods, explicit IPs
        (a host-network pod's address is its node's)."""
        out = [(p.key, self.pod_address(p)) for p in self._endpoint_pods(svc)]
        out += [(f"ip {format_ip(ip)}", ip) for ip in svc.endpoint_ips]
        return out

    def port_endpoints(self, svc: ServiceSpec, port: ServicePortSpec) -> list[tuple[str, int, int]]:
        """The endpoints of one service port as (label, ip, target port number). A named target
        port is looked up in each pod's container ports by name and protocol, as Kubernetes does
        (``FindPort``); a pod without it is no endpoint of that port."""
        if isinstance(port.target_port, int):
            return [(label, ip, port.target_port) for label, ip in self.endpoints_of(svc)]
        out = []
        for pod in self._endpoint_pods(svc):
            number = next((n for name, proto, n in pod.named_ports
                           if name == port.target_port and proto == port.protocol), None)
            if number is not None:
                out.append((pod.key, self.pod_address(pod), number))
        return out

    def endpoint_node(self, label: str, ip: int) -> str | None:
        """The node an endpoint runs on: its pod's node, or for a bare address the node whose pod
        CIDR or own address it is (None: off every node)."""
        pod = self.pods_by_key.get(label) or self._host_pods_by_key.get(label)
        if pod is not None:
            return pod.node
        for node in self.nodes:
            if ip == node.ip or in_network(ip, *node.pod_cidr):
                return node.name
        return None

    def namespace_labels(self, name: str) -> dict[str, str]:
        """The labels of namespace ``name``: as listed, else only ``kubernetes.io/metadata.name``
        (a namespace a pod or policy names exists; the API server labels every namespace so)."""
        listed = self._namespaces_by_name.get(name)
        return dict(listed.labels) if listed is not None else {NAMESPACE_NAME_LABEL: name}

    @cached_property
    def _namespaces_by_name(self) -> dict[str, NamespaceSpec]:
        return {n.name: n for n in self.namespaces}

    def pod_address(self, pod: PodSpec) -> int:
        """The address the pod is reached at: its own, or its node's for a host-network pod."""
        return self.node(pod.node).ip if pod.host_network else pod.ip
