"""``service-reachability``: every client reaches every ready endpoint of every service port.

Through every door (ClusterIP, each NodePort, external and load-balancer IPs), with non-zero
probability, never dropping while endpoints exist, spread uniformly (within
:data:`UNIFORMITY_TOLERANCE`) in iptables and nftables mode (``numgen random mod N``), the reply from the address the client sent to,
traffic policies and session affinity kept; and no ClusterIP packet leaves a node un-DNATed.
One task per service.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...eval.cluster_walk import ClusterWalker
from ...eval.walk_notes import remembered
from ...model.addresses import format_ip, in_network
from ...model.cluster import ClusterSpec
from ...model.packet import PROTO_NUMBERS, Packet
from ...model.path import Endpoint, PathEnd
from .address_classes import AddressClasses, base_groups
from .flows import (
    CLIENT_SPORT,
    as_class,
    flow_label,
    flow_violation,
    pod_groups,
    short_list,
    walk_flow,
)
from .node_symmetry import NodeSymmetry
from .results import InvariantResult, Violation

__all__ = ["UNIFORMITY_TOLERANCE", "Door", "mode_notes", "service_tasks", "service_doors", "service_flow"]

UNIFORMITY_TOLERANCE = 1e-6


class _Scoped(list):
    """The endpoints a traffic policy leaves a client: those on ``node``."""

    def __init__(self, items, node: str) -> None:
        super().__init__(items)
        self.node = node


@dataclass(frozen=True)
class Door:
    """One way into a service port: ``label`` names it in messages (``NodePort 192.168.1.10:30080``);
    ``dst``/``dport`` are what clients send to; ``clients`` are (client, the pods or nodes it
    stands for, the endpoints it must reach — all of them, uniformly, and no other —, whether the
    endpoint must see the client's own address)."""
    label: str
    dst: int
    dport: int
    clients: tuple


def service_tasks(cluster: ClusterSpec, walker: ClusterWalker, classes: AddressClasses | None,
                  sym: NodeSymmetry | None = None, *, only: tuple[str, ...] | None = None):
    """The service-reachability checks as independent tasks: one per service (of ``only``, when given)."""
    nodes = [(walker.node_endpoint(n), (n,)) for n in cluster.nodes]
    bases = base_groups(cluster, classes) if classes is not None else None

    def for_service(svc):
        def run(res: InvariantResult) -> None:
            walker.forget_proxy_legs()          # another service's endpoints: its proxy legs are of no use
            atom = classes.for_destination(svc.cluster_ip) if classes is not None else None
            groups = atom.refine(bases) if atom is not None else pod_groups(cluster, None, by_port=False)
            pods = [(walker.pod_endpoint(g[0]), g) for g in groups]
            # NodePort doors: the destination is a node address, so the base classes apply
            node_pods = pods if atom is None or not svc.has_node_ports else \
                [(walker.pod_endpoint(g[0]), g) for g in bases]
            cip_pods, cip_nodes = pods, nodes
            if sym is not None:
                # The service's endpoints set their nodes apart: KUBE-SEP rules name them in iptables
                # mode, and in userspace mode the proxies' own table does.
                endpoints = [(ip, ip) for _label, ip in cluster.endpoints_of(svc)]
                cip_pods, cip_nodes = _merged_clients(walker, groups, nodes, sym.free([*atom.extra, *endpoints]))
            for sp in svc.ports:
                eps = cluster.port_endpoints(svc, sp)
                name = f"{svc.key}:{sp.name or sp.port}"
                if not eps:
                    res.notes.append(f"service {name} has no ready endpoints")
                for door in service_doors(cluster, walker, svc, sp, eps, cip_pods, cip_nodes, node_pods, nodes):
                    for client, group, wanted, keep_source in door.clients:
                        src = walker.source_address(client, door.dst)
                        pkt = Packet(PROTO_NUMBERS[sp.protocol], src, door.dst, CLIENT_SPORT, door.dport)
                        start = len(res.violations)
                        service_flow(cluster, walker, res, client, pkt, f"{name} via {door.label}", wanted,
                                     keep_source=keep_source, affinity=bool(svc.affinity_timeout))
                        as_class(res, start, len(group), (group, None))
        return run

    return [for_service(svc) for svc in cluster.services if only is None or svc.key in only]


def mode_notes(cluster: ClusterSpec) -> list[str]:
    """Where kube-proxy's nftables mode differs from its iptables mode on purpose, as one line
    when the cluster has what it concerns: the checks hold each mode to its own behaviour (the
    doors checked are the same in both: ClusterIPs, NodePorts on each node's address, external
    and LoadBalancer IPs)."""
    if cluster.proxy_mode != "nftables" or not any(s.has_node_ports for s in cluster.services):
        return []
    return ["kube-proxy's nftables mode (unlike its iptables mode, on purpose): NodePorts answer only on each "
            "node's primary address (--nodeport-addresses defaults to primary), never on 127.0.0.1 or the pod "
            "bridge's address; packets to a ClusterIP's undefined port are rejected and to an unallocated "
            "service address dropped"]


def _merged_clients(walker: ClusterWalker, groups: list, nodes: list, free: set[str]) -> tuple[list, list]:
    """ClusterIP clients with the interchangeable nodes' ones merged: the pods of every free node
    that holds one class are one class, and the free nodes one client class."""
    per_node: dict[str, int] = {}
    for g in groups:
        per_node[g[0].node] = per_node.get(g[0].node, 0) + 1
    merged: list = []
    pods = []
    for g in groups:
        if g[0].node in free and per_node[g[0].node] == 1:
            merged += g
        else:
            pods.append((walker.pod_endpoint(g[0]), g))
    if merged:
        pods.append((walker.pod_endpoint(merged[0]), merged))
    kept = [(client, group) for client, group in nodes if client.node not in free]
    loose = [group[0] for client, group in nodes if client.node in free]
    if loose:
        kept.append((walker.node_endpoint(loose[0]), tuple(loose)))
    return pods, kept


def service_doors(cluster: ClusterSpec, walker: ClusterWalker, svc, sp, eps, pods, nodes, node_pods,
                  every_node) -> list[Door]:
    """Every front door of one service port, with what each client must get through it.

    * the ClusterIP, from pods and nodes (``internalTrafficPolicy: Local``: only the endpoints on
      the client's own node, none at all dropping);
    * each NodePort on every node's address, from pods, nodes and an off-cluster client;
    * each external IP and LoadBalancer ingress IP, from an off-cluster client arriving at any node
      (outside ``loadBalancerSourceRanges``: blocked in iptables mode; userspace kube-proxy leaves the
      ranges to the load balancer, so such a client is not sent).

    ``externalTrafficPolicy: Local`` keeps off-cluster traffic (and another node's) on the node
    it arrives at, with the client's own address, and drops it where that node has no endpoint;
    pods and the node itself still reach every endpoint, as kube-proxy routes them."""
    def local(node: str) -> list:
        return _Scoped((e for e in eps if cluster.endpoint_node(e[0], e[1]) == node), node)

    doors = []
    internal = (lambda node: local(node)) if svc.internal_policy == "Local" else (lambda node: eps)
    doors.append(Door(f"ClusterIP {format_ip(svc.cluster_ip)}:{sp.port}", svc.cluster_ip, sp.port, tuple(
        (client, group, internal(client.node), False) for client, group in pods + nodes)))
    nodes = every_node          # the other doors: every node on its own
    ext_local = svc.external_policy == "Local"

    def outside(node) -> tuple:
        """What an off-cluster client (or another node) gets arriving at ``node``."""
        return (local(node.name), True) if ext_local else (eps, False)

    allowed = not svc.lb_source_ranges or any(in_network(walker.external_ip, *net) for net in svc.lb_source_ranges)
    for node in cluster.nodes:
        outsider = walker.external_endpoint(node)
        if svc.has_node_ports and sp.node_port:
            clients = [(client, group, eps, False) for client, group in node_pods]
            clients += [(client, group, *(outside(node) if client.node != node.name else (eps, False)))
                        for client, group in nodes]
            clients.append((outsider, (outsider,), *outside(node)))
            doors.append(Door(f"NodePort {format_ip(node.ip)}:{sp.node_port}", node.ip, sp.node_port, tuple(clients)))
        for ip in svc.external_ips:
            doors.append(Door(f"ExternalIP {format_ip(ip)}:{sp.port} at {node.name}", ip, sp.port,
                              ((outsider, (outsider,), *outside(node)),)))
        for ip in svc.lb_ips:
            if not allowed and cluster.proxy_mode == "userspace":
                continue        # userspace kube-proxy leaves source ranges to the load balancer itself
            wanted, keep = outside(node) if allowed else ([], False)
            doors.append(Door(f"LoadBalancer {format_ip(ip)}:{sp.port} at {node.name}"
                              + ("" if allowed else " (client outside loadBalancerSourceRanges)"), ip, sp.port,
                              ((outsider, (outsider,), wanted, keep),)))
    return doors


def service_flow(cluster: ClusterSpec, walker: ClusterWalker, res: InvariantResult, client: Endpoint, pkt: Packet,
                 name: str, eps: list[tuple[str, int, int]], *, keep_source: bool = False,
                 affinity: bool = False) -> None:
    """One client's flow to one service port whose ready endpoints are ``eps`` (label, ip, port).

    An endpoint is reached when the flow arrives at its address and port — and, for a pod, at
    that pod: two pods with one address (docker's default bridge on every node) are two
    endpoints, and a client whose packets always land on one of them never reaches the other.
    ``keep_source``: the endpoint must see the client's own address (``externalTrafficPolicy:
    Local``); ``affinity``: a second connection must reach the endpoint the first one did."""
    walked = walk_flow(walker, res, client, pkt)
    eps_given = eps
    # Endpoints the network can tell apart: a pod by its own namespace; host-network pods and bare
    # addresses by address and port (two of them on one address are one socket address).
    distinct: dict = {}
    for label, ip, port in eps:
        distinct.setdefault(label if label in cluster.pods_by_key else (ip, port), (label, ip, port))
    eps = list(distinct.values())
    labels = [label for label, _ip, _port in eps]
    reached = _reached_endpoints(cluster, res, client, pkt, name, walked, eps, eps_given, keep_source)
    _never_reached(res, client, pkt, name, walked, eps, reached)
    if cluster.proxy_mode in ("iptables", "nftables") and reached and len(reached) == len(labels):
        share = 1.0 / len(labels)
        for end, backs in walked:
            hit = _endpoint_hit(cluster, end, eps) if end.kind == "arrived" else None
            p = reached.get(hit) if hit is not None else None
            if p is not None and abs(p - share) > UNIFORMITY_TOLERANCE:
                res.violations.append(flow_violation(
                    f"{name} from {client.label()}: endpoint {format_ip(end.packet.dst)} gets p={p:.9f}, not the"
                    f" uniform {share:.9f}", client, pkt, end, backs[0] if backs else None))
                reached.pop(hit)
    if affinity:
        _affinity(cluster, walker, res, client, pkt, name, eps, walked)


def _reached_endpoints(cluster, res, client, pkt, name, walked, eps, eps_given, keep_source: bool
                      ) -> dict[str, float]:
    """Judge each end of the walked flow (:func:`service_flow`): a stop while endpoints exist, an
    arrival elsewhere than a ready endpoint this client may reach, the client's source lost under
    ``keep_source``, a wrong reply; the probability each endpoint (label) is reached with."""
    reached: dict[str, float] = {}
    for end, backs in walked:
        if end.kind != "arrived":
            if eps or end.kind == "left":
                res.violations.append(flow_violation(f"{name} from {client.label()}: {end.kind} ({end.reason})"
                                                     f" with probability {end.probability:.6g}", client, pkt, end))
            continue
        hit = _endpoint_hit(cluster, end, eps)
        if hit is None:
            wanted = ", ".join(sorted({f"{format_ip(ip)}:{port}" for _l, ip, port in eps})) or "none"
            scope = (f"not one this client may reach: the traffic policy (Local) keeps it on {eps_given.node}'s "
                     f"endpoints ({short_list(wanted)})") if isinstance(eps_given, _Scoped) else \
                f"not a ready endpoint (ready: {short_list(wanted)})"
            res.violations.append(flow_violation(f"{name} from {client.label()} reached {end.at.label()} at "
                                                 f"{format_ip(end.packet.dst)}:{end.packet.dport}, which is {scope}",
                                                 client, pkt, end))
            continue
        if keep_source and end.packet.src != pkt.src:
            res.violations.append(flow_violation(
                f"{name} from {client.label()}: externalTrafficPolicy: Local, yet endpoint {hit} sees source "
                f"{format_ip(end.packet.src)}, not the client's {format_ip(pkt.src)}", client, pkt, end))
        reached[hit] = reached.get(hit, 0.0) + end.probability
        for back in backs:
            if not back.answers(client, pkt):
                res.violations.append(flow_violation(
                    f"{name} from {client.label()}: the reply from {end.at.label()} arrives as "
                    f"{back.packet.describe()} ({back.kind}: {back.reason}); the client expects it from "
                    f"{format_ip(pkt.dst)}:{pkt.dport}", client, pkt, end, back))
    return reached


def _never_reached(res, client, pkt, name, walked, eps, reached: dict[str, float]) -> None:
    """A violation for each endpoint of ``eps`` the flow never reaches, with the path that shows why
    (see :func:`_towards`) and the twin that took its traffic, if one did."""
    labels = [label for label, _ip, _port in eps]
    where = {label: (ip, port) for label, ip, port in eps}
    for label in labels:
        if label in reached:
            continue
        ip, port = where[label]
        message = f"{name} from {client.label()} never reaches endpoint {label} ({format_ip(ip)}:{port})"
        twin = [other for other in labels if other != label and where[other] == (ip, port)]
        if twin:
            message += f": {', '.join(twin)} has the same address, and this client's packets go there"
        towards = _towards(walked, ip, port)
        res.violations.append(flow_violation(message, client, pkt, towards) if towards else
                              Violation(message, flow_label(client, pkt)))


def _towards(walked, ip: int, port: int) -> PathEnd | None:
    """The path that shows why an endpoint at ``ip:port`` is never reached: the branch that was
    sent towards it and ended on the way (the packet, rewritten to the endpoint, was dropped
    or rejected), else the branch that arrived at that address (a twin took it); when no branch
    went there, the first that arrived elsewhere (nothing sends the flow to it), or, when none
    arrived anywhere, the first path (what stopped the flow stopped it before any endpoint)."""
    ends = [end for end, _backs in walked]
    for failed in (True, False):
        for end in ends:
            if (end.kind != "arrived") == failed and (end.packet.dst, end.packet.dport) == (ip, port):
                return end
    return next((end for end in ends if end.kind == "arrived"), ends[0] if ends else None)


def _affinity(cluster, walker, res, client, pkt, name, eps, walked) -> None:
    """``sessionAffinity: ClientIP``: after a first connection reached endpoint E, the client's
    next connection (another source port) reaches E and nothing else."""
    again = pkt._replace(sport=pkt.sport + 1)
    done: set[str] = set()
    for end, _backs in walked:
        hit = _endpoint_hit(cluster, end, eps) if end.kind == "arrived" else None
        if hit is None or hit in done:
            continue
        done.add(hit)          # (part of the flow's check: not counted as a flow of its own)
        for second in walker.walk(client, again, recent=remembered(end, walker)):
            if second.kind == "arrived" and _endpoint_hit(cluster, second, eps) == hit:
                continue
            got = (f"reaches {second.at.label()} at {format_ip(second.packet.dst)}:{second.packet.dport}"
                   if second.kind == "arrived" else f"ends: {second.kind} ({second.reason})")
            res.violations.append(flow_violation(
                f"{name} from {client.label()}: sessionAffinity: ClientIP, yet after a first connection to endpoint "
                f"{hit} the next one {got} with probability {second.probability:.6g}", client, again, second))


def _endpoint_hit(cluster: ClusterSpec, end: PathEnd, eps: list[tuple[str, int, int]]) -> str | None:
    """The endpoint (label) an arrived flow reached: same address and port, and the same pod when
    the endpoint is a (not host-network) pod."""
    got = (end.packet.dst, end.packet.dport)
    for label, ip, port in eps:
        if (ip, port) != got:
            continue
        if label in cluster.pods_by_key and end.at is not None and end.at.kind == "pod":
            if end.at.name == label:
                return label
            continue
        return label
    return None
