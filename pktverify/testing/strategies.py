"""Hypothesis strategies for Kubernetes clusters, faults, rule sets, packets and flows.

For property-based tests in your own repository::

    from hypothesis import given
    from pktverify import strategies
    from pktverify.testing import assert_invariants

    @given(strategies.clusters(max_nodes=3))
    def test_the_network_model_holds(cluster):
        assert_invariants(cluster)

Every :func:`clusters` draw is a valid cluster, so every invariant holds on it;
:func:`faulty_clusters` plants one fault and records it (``cluster.fault``, with the
invariants it must break). All strategies take keyword-only arguments, check them
(``InvalidArgument``), and shrink towards few nodes, few pods and simple services.
"""

from __future__ import annotations

from dataclasses import replace

import hypothesis.errors
from hypothesis import strategies as st

from .. import errors
from ..generate.node_state import generate_node
from ..model.cluster import ClusterSpec, NodeSpec, PodSpec, ServicePortSpec, ServiceSpec
from ..model.packet import PROTO_NUMBERS, Packet
from ..model.path import Endpoint
from .faults import FAULTS, NEEDS_TWO_NODES, Fault, FaultyCluster, fault_modes, plant
from .iptables_draw import rule_sets as _drawn_rule_sets

__all__ = ["clusters", "faulty_clusters", "node_networks", "pods", "services", "rule_sets", "packets", "flows",
           "Fault", "FaultyCluster", "FAULTS", "PROXY_MODES"]

PROXY_MODES = ("userspace", "iptables", "nftables")
_MAX_PODS_PER_NODE = 60        # a /26 pod CIDR (the smallest drawn) holds 61 pods after its bridge
_MAX_SERVICES = 250

# Container ports pods draw from; the named ones carry their name and protocol (as a pod spec
# would: {name: http, containerPort: 8080}), so services can target them by name.
_PORTS = (8080, 9090, 53, 5000, 6443)
_PORT_NAMES = {8080: ("http", "tcp"), 9090: ("metrics", "tcp"), 53: ("dns", "udp")}
_APPS = ("web", "db", "cache")
_NAMESPACES = ("default", "prod")
_SERVICE_PORTS = ((80, "tcp"), (443, "tcp"), (53, "udp"), (8080, "tcp"), (53, "tcp"))

class InvalidArgument(errors.InvalidArgument, hypothesis.errors.InvalidArgument):
    """pktverify's :class:`~pktverify.InvalidArgument`, raised when a strategy is built with a bad
    argument; also Hypothesis's ``InvalidArgument``, which Hypothesis users catch from strategies."""


# ------------------------------------------------------------------ argument checks
def _check_int(name: str, value, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise InvalidArgument(f"{name}={value!r} (type={type(value).__name__}): use an integer from {low} to {high}")


def _check_range(low_name: str, low: int, high_name: str, high: int) -> None:
    if low > high:
        raise InvalidArgument(f"{low_name}={low} is more than {high_name}={high}")


def _check_modes(proxy_modes) -> tuple[str, ...]:
    modes = (proxy_modes,) if isinstance(proxy_modes, str) else tuple(proxy_modes)
    if not modes or any(m not in PROXY_MODES for m in modes):
        raise InvalidArgument(f"proxy_modes={proxy_modes!r}: use some of {', '.join(PROXY_MODES)}")
    return modes


# ------------------------------------------------------------------ the address plan and nodes
@st.composite
def _node_networks(draw, min_nodes: int, max_nodes: int, proxy_modes: tuple[str, ...], docker: bool) -> ClusterSpec:
    n = draw(st.integers(min_nodes, max_nodes))
    cluster_octet = draw(st.integers(0, 127))                  # cluster CIDR 10.<0-127>.0.0/16
    pod_prefix = draw(st.sampled_from((24, 25, 26)))
    service_octet = draw(st.integers(128, 255))                # service CIDR 10.<128-255>.x.0/20-24
    service_prefix = draw(st.sampled_from((24, 20, 22)))
    node_octet = draw(st.integers(0, 255))                     # node network 192.168.<x>.0/24
    size = 1 << (32 - pod_prefix)
    base = (10 << 24) | (cluster_octet << 16)
    docker_node = draw(st.integers(0, n - 1)) if docker and draw(st.booleans()) else -1
    nodes = tuple(NodeSpec(f"node-{i}", (192 << 24) | (168 << 16) | (node_octet << 8) | (10 + i), 24,
                           (base + i * size, (0xFFFFFFFF << (32 - pod_prefix)) & 0xFFFFFFFF),
                           draw(st.sampled_from(("cbr0", "cni0"))), docker=i == docker_node)
                  for i in range(n))
    service_mask = (0xFFFFFFFF << (32 - service_prefix)) & 0xFFFFFFFF
    service_net = ((10 << 24) | (service_octet << 16)) & service_mask
    return ClusterSpec("<drawn by pktverify.strategies>", (base, 0xFFFF0000), (service_net, service_mask),
                       draw(st.sampled_from(proxy_modes)), "direct", nodes, (), ())


def node_networks(*, min_nodes: int = 1, max_nodes: int = 4, proxy_modes=PROXY_MODES,
                  docker: bool = False) -> st.SearchStrategy[ClusterSpec]:
    """Clusters with nodes and no pods or services: a drawn cluster CIDR (a /16), service CIDR
    (a /20-/24, disjoint from it), pod CIDR size (/24-/26, one per node, in order) and node
    network (one /24, every node on it). ``docker``: one node may run docker's bridge too."""
    _check_int("min_nodes", min_nodes, 1, 200)
    _check_int("max_nodes", max_nodes, 1, 200)
    _check_range("min_nodes", min_nodes, "max_nodes", max_nodes)
    return _node_networks(min_nodes, max_nodes, _check_modes(proxy_modes), bool(docker))


# ------------------------------------------------------------------ pods
@st.composite
def _pods(draw, cluster: ClusterSpec, min_per_node: int, max_per_node: int) -> tuple[PodSpec, ...]:
    out: list[PodSpec] = []
    for node in cluster.nodes:
        capacity = min(max_per_node, (~node.pod_cidr[1] & 0xFFFFFFFF) - 2)
        for j in range(draw(st.integers(min(min_per_node, capacity), capacity))):
            index = len(out)
            ports = draw(st.lists(st.sampled_from(_PORTS), unique=True, max_size=3))
            named = tuple((*_PORT_NAMES[p], p) for p in ports if p in _PORT_NAMES and draw(st.booleans()))
            labels = {"app": draw(st.sampled_from(_APPS))}
            if draw(st.booleans()):
                labels["tier"] = draw(st.sampled_from(("front", "back")))
            host = draw(st.integers(0, 9)) == 0                   # 1 in 10 runs in the node's network
            out.append(PodSpec(f"pod-{index}", draw(st.sampled_from(_NAMESPACES)), node.name,
                               node.ip if host else node.pod_cidr[0] + 2 + j, tuple(sorted(labels.items())),
                               tuple(ports), draw(st.integers(0, 7)) != 0, named_ports=named, host_network=host))
    return tuple(out)


def pods(cluster: ClusterSpec, *, min_pods_per_node: int = 0,
         max_pods_per_node: int = 4) -> st.SearchStrategy[tuple[PodSpec, ...]]:
    """Pods for ``cluster``'s nodes: each in its node's pod CIDR (after the bridge address), with
    labels, container ports (some named), some not ready, some on the host network."""
    _check_cluster(cluster)
    _check_int("min_pods_per_node", min_pods_per_node, 0, _MAX_PODS_PER_NODE)
    _check_int("max_pods_per_node", max_pods_per_node, 0, _MAX_PODS_PER_NODE)
    _check_range("min_pods_per_node", min_pods_per_node, "max_pods_per_node", max_pods_per_node)
    return _pods(cluster, min_pods_per_node, max_pods_per_node)


# ------------------------------------------------------------------ services
@st.composite
def _services(draw, cluster: ClusterSpec, min_services: int, max_services: int) -> tuple[ServiceSpec, ...]:
    all_pods = cluster.pods + cluster.host_pods
    out = []
    for k in range(draw(st.integers(min_services, max_services))):
        namespace = draw(st.sampled_from(_NAMESPACES))
        chosen = draw(st.lists(st.sampled_from(_SERVICE_PORTS), unique=True, min_size=1, max_size=3))
        ports = []
        for n, (port, proto) in enumerate(chosen):
            names_for = [name for number, (name, p) in _PORT_NAMES.items() if p == proto]
            target = draw(st.one_of(st.sampled_from(_PORTS), st.sampled_from(names_for))) if names_for and \
                draw(st.booleans()) else draw(st.sampled_from(_PORTS))
            ports.append(ServicePortSpec(f"p{n}" if len(chosen) > 1 else "", port, target, proto))
        how = draw(st.sampled_from(("selector", "selector", "selector", "endpoints", "none")))
        selector = endpoints = None
        if how == "selector":
            selector = (("app", draw(st.sampled_from(_APPS))),)
        elif how == "endpoints":
            same_ns = [p.key for p in all_pods if p.namespace == namespace]
            endpoints = tuple(draw(st.lists(st.sampled_from(same_ns), unique=True, max_size=3))) if same_ns else ()
        out.append(_exposed(draw, cluster, ServiceSpec(f"svc-{k}", namespace, cluster.service_cidr[0] + 1 + k,
                                                       tuple(ports), selector, endpoints), k, out))
    return tuple(out)


def _exposed(draw, cluster: ClusterSpec, svc: ServiceSpec, k: int, earlier: list[ServiceSpec]) -> ServiceSpec:
    """How ``svc`` is exposed, drawn: its type (NodePorts unique per protocol in the node-port
    range), external IPs, LoadBalancer ingress IPs and source ranges, and the policies the
    cluster keeps clean: ClientIP affinity in both modes, internalTrafficPolicy: Local in iptables
    mode, externalTrafficPolicy: Local in iptables mode on one node (on several, a pod's NodePort
    traffic through another node returns by another path: the fault ``etp-local-pod-detour``)."""
    kind = draw(st.sampled_from(("ClusterIP", "ClusterIP", "NodePort", "LoadBalancer")))
    ports = svc.ports
    if kind != "ClusterIP":
        taken = {(p.protocol, p.node_port) for s in earlier for p in s.ports}
        chosen = []
        for p in ports:
            number = draw(st.integers(*cluster.node_port_range).filter(lambda n, p=p: (p.protocol, n) not in taken))
            taken.add((p.protocol, number))
            chosen.append(replace(p, node_port=number))
        ports = tuple(chosen)
    external_ips = (0xC0000200 | (k + 1),) if draw(st.integers(0, 5)) == 0 else ()          # 192.0.2.<k+1>
    lb_ips = (0xC6336400 | (k + 100),) if kind == "LoadBalancer" else ()                   # 198.51.100.<k+100>
    ranges = tuple(draw(st.lists(st.sampled_from(((0xCB007100, 0xFFFFFF00), (0xC6120000, 0xFFFE0000))),
                                 unique=True, max_size=2))) if lb_ips else ()             # 203.0.113.0/24, 198.18/15
    iptables = cluster.proxy_mode in ("iptables", "nftables")      # kube-proxy modes with traffic policies
    external = kind != "ClusterIP" or bool(external_ips)
    etp = "Local" if iptables and external and len(cluster.nodes) == 1 and draw(st.booleans()) else "Cluster"
    itp = "Local" if iptables and draw(st.integers(0, 4)) == 0 else "Cluster"
    affinity = draw(st.sampled_from((0, 0, 0, 10800, 60)))
    return replace(svc, ports=ports, type=kind, external_ips=external_ips, lb_ips=lb_ips, lb_source_ranges=ranges,
                   external_policy=etp, internal_policy=itp, affinity_timeout=affinity)


def services(cluster: ClusterSpec, *, min_services: int = 0,
             max_services: int = 4) -> st.SearchStrategy[tuple[ServiceSpec, ...]]:
    """Services for ``cluster`` (give it its pods first): ClusterIPs in order from the service CIDR,
    one to three ports (TCP/UDP, numeric or named target ports), selecting no, one or many
    pods by label, listing pods, or neither (no endpoints: kube-proxy rejects)."""
    _check_cluster(cluster)
    _check_int("min_services", min_services, 0, _MAX_SERVICES)
    _check_int("max_services", max_services, 0, _MAX_SERVICES)
    _check_range("min_services", min_services, "max_services", max_services)
    return _services(cluster, min_services, max_services)


def _check_cluster(cluster) -> None:
    if not isinstance(cluster, ClusterSpec):
        raise InvalidArgument(f"cluster={cluster!r} (type={type(cluster).__name__}): give a cluster "
                              "(from node_networks(), clusters() or pktverify.load_cluster)")


# ------------------------------------------------------------------ whole clusters
@st.composite
def _clusters(draw, min_nodes, max_nodes, min_pods, max_pods, min_services, max_services, modes, docker,
              given: bool = True):
    cluster = draw(_node_networks(min_nodes, max_nodes, modes, docker))
    drawn = draw(_pods(cluster, min_pods, max_pods))
    cluster = replace(cluster, pods=tuple(p for p in drawn if not p.host_network),
                      host_pods=tuple(p for p in drawn if p.host_network))
    cluster = replace(cluster, services=draw(_services(cluster, min_services, max_services)))
    return _given_dumps(draw, cluster) if given else cluster


def _given_dumps(draw, cluster: ClusterSpec) -> ClusterSpec:
    """Some nodes give some of their dumps (inline, as a real node would: what pktverify would
    generate for it), the rest generated — both ways into the verifier are drawn."""
    nodes = []
    for node in cluster.nodes:
        kinds = draw(st.lists(st.sampled_from(("iptables", "addrs", "routes")), unique=True, max_size=3))
        if kinds:
            gen = generate_node(cluster, node)
            node = replace(node, inline=tuple((kind, getattr(gen, kind)) for kind in sorted(kinds)))
        nodes.append(node)
    return replace(cluster, nodes=tuple(nodes))


def clusters(*, min_nodes: int = 1, max_nodes: int = 4, min_pods_per_node: int = 0, max_pods_per_node: int = 4,
             min_services: int = 0, max_services: int = 4, proxy_modes=PROXY_MODES,
             docker: bool = False) -> st.SearchStrategy[ClusterSpec]:
    """Valid clusters: every invariant holds on each (see :func:`node_networks`, :func:`pods`,
    :func:`services` for what is drawn); some nodes give some of their dumps (inline text, what
    such a node has), the rest is generated. ``proxy_modes``: kube-proxy modes to draw from."""
    for name, value, high in (("min_nodes", min_nodes, 200), ("max_nodes", max_nodes, 200),
                              ("min_pods_per_node", min_pods_per_node, _MAX_PODS_PER_NODE),
                              ("max_pods_per_node", max_pods_per_node, _MAX_PODS_PER_NODE),
                              ("min_services", min_services, _MAX_SERVICES),
                              ("max_services", max_services, _MAX_SERVICES)):
        _check_int(name, value, 1 if name.endswith("nodes") else 0, high)
    _check_range("min_nodes", min_nodes, "max_nodes", max_nodes)
    _check_range("min_pods_per_node", min_pods_per_node, "max_pods_per_node", max_pods_per_node)
    _check_range("min_services", min_services, "max_services", max_services)
    return _clusters(min_nodes, max_nodes, min_pods_per_node, max_pods_per_node, min_services, max_services,
                     _check_modes(proxy_modes), bool(docker))


@st.composite
def _faulty_clusters(draw, names: tuple[str, ...], max_nodes: int, max_pods: int, max_services: int, modes):
    name = draw(st.sampled_from(names))
    min_nodes = 2 if name in NEEDS_TWO_NODES else 1
    # No given dumps in the base: planting changes the topology, and dumps of the old one would be stale.
    modes = fault_modes(name, modes)
    base = draw(_clusters(min_nodes, max(min_nodes, max_nodes), 0, max_pods, 0, max_services, modes, False, False))
    return plant(draw, name, base)


def faulty_clusters(*, faults=None, max_nodes: int = 4, max_pods_per_node: int = 4, max_services: int = 4,
                    proxy_modes=PROXY_MODES) -> st.SearchStrategy[FaultyCluster]:
    """A valid cluster with one fault planted (``faults``: names from :data:`FAULTS`, default any).
    The result's ``fault`` says which, what was changed, and the invariants it must break.
    Faults in a node's rules or routes are planted in that node's dumps (held inline, so
    :func:`pktverify.cluster_to_yaml` writes one self-contained file)."""
    names = tuple(FAULTS) if faults is None else ((faults,) if isinstance(faults, str) else tuple(faults))
    if not names or any(n not in FAULTS for n in names):
        raise InvalidArgument(f"faults={faults!r}: use names from pktverify.strategies.FAULTS ({', '.join(FAULTS)})")
    _check_int("max_nodes", max_nodes, 1, 200)
    _check_int("max_pods_per_node", max_pods_per_node, 0, _MAX_PODS_PER_NODE)
    _check_int("max_services", max_services, 0, _MAX_SERVICES)
    return _faulty_clusters(names, max_nodes, max_pods_per_node, max_services, _check_modes(proxy_modes))


# ------------------------------------------------------------------ rule sets, packets, flows
def rule_sets(*, client: str = "pod") -> st.SearchStrategy[str]:
    """Random ``iptables-save`` text (all five tables, user chains, NAT, marks, conntrack, ...)
    from :mod:`pktverify.testing.iptables_draw` (the kernel campaign's generator), keeping only
    the rules ``iptables-restore`` accepts (pktverify refuses exactly what the kernel refuses; the
    campaign checks that), so every draw loads. ``client`` (pod, lan, node) aims the addresses at the kernel lab's packets from there."""
    if client not in ("pod", "lan", "node"):
        raise InvalidArgument(f"client={client!r}: use pod, lan or node")
    return _drawn_rule_sets(client).map(_loadable)


def _loadable(text: str) -> str:
    """``text`` without the rule lines that iptables-restore would refuse (one at a time)."""
    from ..errors import InputError
    from ..parse.iptables_save import parse_iptables_save

    while True:
        try:
            parse_iptables_save(text, source="drawn")
            return text
        except InputError as exc:
            lines = text.split("\n")
            if not 0 < exc.line <= len(lines) or not lines[exc.line - 1].startswith("-A "):
                raise
            del lines[exc.line - 1]
            text = "\n".join(lines)


def _endpoints(cluster: ClusterSpec) -> list[tuple[Endpoint, int]]:
    """Every pod and node that can send, with its address."""
    return ([(Endpoint("pod", p.key, p.node), p.ip) for p in cluster.pods]
            + [(Endpoint("node", n.name, n.name), n.ip) for n in cluster.nodes])


@st.composite
def _flows(draw, cluster: ClusterSpec) -> tuple[Endpoint, Packet]:
    senders = _endpoints(cluster)
    client, src = draw(st.sampled_from(senders))
    targets = [(ip, port, proto) for _e, ip in senders for port, proto in ((8080, "tcp"), (53, "udp"))]
    targets += [(s.cluster_ip, sp.port, sp.protocol) for s in cluster.services for sp in s.ports]
    dst, dport, proto = draw(st.sampled_from(targets))
    return client, Packet(PROTO_NUMBERS[proto], src, dst, draw(st.integers(1024, 65535)), dport)


def flows(cluster: ClusterSpec) -> st.SearchStrategy[tuple[Endpoint, Packet]]:
    """(sender, first packet) pairs between the cluster's pods, nodes and service ports, as
    header records (for ``pktverify.eval.cluster_walk.ClusterWalker.walk``)."""
    _check_cluster(cluster)
    if not cluster.nodes:
        raise InvalidArgument("cluster has no nodes, so no flows")
    return _flows(cluster)


def packets(cluster: ClusterSpec):
    """Scapy packets (``IP()/TCP()`` or ``IP()/UDP()``, every field set) between the cluster's
    pods, nodes and service ports, for :func:`pktverify.trace_packet` and the testing helpers."""
    from ..packets import packet_to_scapy
    return flows(cluster).map(lambda flow: packet_to_scapy(flow[1]))
