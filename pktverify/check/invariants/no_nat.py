"""``no-nat``: pod→pod, node→pod and pod→node flows arrive with the original source and
destination, and the reply comes back unchanged.

One task per source class and one per node; when every node is interchangeable
(:mod:`.node_symmetry`), one representative flow per class of node pairs (the same node or two
nodes), counted for all of its flows.
"""

from __future__ import annotations

from ...eval.cluster_walk import ClusterWalker
from ...model.cluster import ClusterSpec, PodSpec
from ...model.packet import Packet
from ...model.path import Endpoint
from .address_classes import AddressClasses
from .flows import (
    CLIENT_SPORT,
    KUBELET_PORT,
    as_class,
    flow_label,
    flow_violation,
    pod_groups,
    pod_port,
    walk_flow,
)
from .node_symmetry import NodeSymmetry
from .results import InvariantResult

__all__ = ["no_nat_flow", "no_nat_tasks"]


def no_nat_flow(walker: ClusterWalker, res: InvariantResult, client: Endpoint, pkt: Packet,
                target: Endpoint) -> None:
    """One flow from ``client`` to ``target``: it must arrive there unchanged (no NAT either way),
    and so must every reply."""
    for end, backs in walk_flow(walker, res, client, pkt):
        if end.kind != "arrived" or end.at != target:
            where = end.at.label() if end.at else end.kind
            res.violations.append(flow_violation(f"{flow_label(client, pkt)} does not reach {target.label()}: "
                                                 f"{end.reason} (ends: {where})", client, pkt, end))
            continue
        if (end.packet.src, end.packet.dst) != (pkt.src, pkt.dst):
            res.violations.append(flow_violation(
                f"NAT between {client.label()} and {target.label()}: sent {pkt.describe()}, arrived "
                f"{end.packet.describe()}", client, pkt, end, backs[0] if backs else None))
            continue
        for back in backs:
            if not back.answers(client, pkt):
                res.violations.append(flow_violation(
                    f"reply from {target.label()} to {client.label()} {back.kind}: "
                    f"{back.packet.describe()} ({back.reason})", client, pkt, end, back))


def no_nat_tasks(cluster: ClusterSpec, walker: ClusterWalker, classes: AddressClasses | None,
                 sym: NodeSymmetry | None = None):
    """The no-nat checks as independent tasks: one per source class, one per node (or, when
    every node is interchangeable, one per class of node pairs: the same node or two nodes)."""
    atom = classes.atom if classes is not None else None
    sources, targets = pod_groups(cluster, atom, by_port=False), pod_groups(cluster, atom, by_port=True)
    if sym is not None and sym.all_free and len({g[0].node for g in sources}) == len(sources):
        return _symmetric_no_nat_tasks(cluster, walker, sources, targets)

    def from_pods(gs: list[PodSpec]):
        def run(res: InvariantResult) -> None:
            for gd in targets:
                shared = len({id(p) for p in gs} & {id(p) for p in gd})
                weight = len(gs) * len(gd) - shared
                if weight:
                    _pod_pair_class(walker, res, gs, gd, weight)
        return run

    def with_node(node):
        def run(res: InvariantResult) -> None:
            for group in targets:
                _node_pod_class(walker, res, node, group, len(group), to_pod=True)
            for group in sources:
                _node_pod_class(walker, res, node, group, len(group), to_pod=False)
        return run

    return [from_pods(gs) for gs in sources] + [with_node(node) for node in cluster.nodes]


def _pod_pair_class(walker: ClusterWalker, res: InvariantResult, gs, gd, weight: int) -> None:
    """One pod→pod flow from class ``gs`` to class ``gd`` (two different pods), counted for
    ``weight`` flows."""
    src = next(s for s in gs if any(d is not s for d in gd))
    dst = next(d for d in gd if d is not src)
    start = len(res.violations)
    pkt = Packet(6, src.ip, dst.ip, CLIENT_SPORT, pod_port(dst))
    no_nat_flow(walker, res, walker.pod_endpoint(src), pkt, walker.pod_endpoint(dst))
    as_class(res, start, weight, (gs, gd))


def _node_pod_class(walker: ClusterWalker, res: InvariantResult, node, group, weight: int, *, to_pod: bool) -> None:
    """One flow between ``node`` and the first pod of ``group`` — node → pod (``to_pod``) or
    pod → node (the kubelet port) — counted for ``weight`` flows."""
    me, pod = walker.node_endpoint(node), group[0]
    start = len(res.violations)
    if to_pod:
        pkt = Packet(6, walker.source_address(me, pod.ip), pod.ip, CLIENT_SPORT, pod_port(pod))
        no_nat_flow(walker, res, me, pkt, walker.pod_endpoint(pod))
    else:
        pkt = Packet(6, pod.ip, node.ip, CLIENT_SPORT, KUBELET_PORT)
        no_nat_flow(walker, res, walker.pod_endpoint(pod), pkt, me)
    as_class(res, start, weight, ((node,), group) if to_pod else (group, (node,)))


def _symmetric_no_nat_tasks(cluster: ClusterSpec, walker: ClusterWalker, sources, targets) -> list:
    """no-nat when every node is interchangeable and each holds one source class: a flow between
    two pods depends only on whether they share a node (and the target's port), a flow between a
    node and a pod only on whether the pod is on that node. One representative flow per such
    class, counted for all of its flows."""
    nodes = {n.name: n for n in cluster.nodes}
    src_of = {g[0].node: g for g in sources}
    by_port: dict[int, list] = {}
    for g in targets:
        by_port.setdefault(pod_port(g[0]), []).append(g)
    pairs = []       # (source group, target group, weight) per class of pod pairs
    for tgs in by_port.values():
        same = [(src_of[g[0].node], g) for g in tgs if g[0].node in src_of]
        weight = sum(len(s) * len(g) - len({id(p) for p in s} & {id(p) for p in g}) for s, g in same)
        rep = next(((s, g) for s, g in same if any(d is not x for x in s for d in g)), None)
        if rep is not None and weight:
            pairs.append((*rep, weight))
        cross = [(s, g) for g in tgs for node, s in src_of.items() if node != g[0].node]
        if cross:
            pairs.append((*cross[0], sum(len(s) * len(g) for s, g in cross)))

    def pod_pair(gs, gd, weight):
        def run(res: InvariantResult) -> None:
            _pod_pair_class(walker, res, gs, gd, weight)
        return run

    def node_pod(node, group, weight, to_pod: bool):
        def run(res: InvariantResult) -> None:
            _node_pod_class(walker, res, node, group, weight, to_pod=to_pod)
        return run

    n = len(cluster.nodes)
    tasks = [pod_pair(*pair) for pair in pairs]
    for groups, to_pod in ((targets, True), (sources, False)):
        by_key: dict = {}
        for g in groups:
            by_key.setdefault(pod_port(g[0]) if to_pod else 0, []).append(g)
        for gs in by_key.values():
            total = sum(len(g) for g in gs)
            home = gs[0]
            tasks.append(node_pod(nodes[home[0].node], home, total, to_pod))              # the pod's own node
            other = next(name for name in nodes if name != home[0].node)
            tasks.append(node_pod(nodes[other], home, total * (n - 1), to_pod))           # another node
    return tasks
