"""``routing``: every node reaches every pod CIDR (its bridge address); no loops, no blackholes."""

from __future__ import annotations

from ...eval.cluster_walk import ClusterWalker
from ...model.cluster import ClusterSpec
from ...model.kube_proxy import bridge_address
from ...model.packet import Packet
from .flows import CLIENT_SPORT, PROBE_PORT, as_class, cidr, flow_violation, walk_flow
from .node_symmetry import NodeSymmetry
from .results import InvariantResult

__all__ = ["routing_tasks"]


def routing_tasks(cluster: ClusterSpec, walker: ClusterWalker, sym: NodeSymmetry | None = None):
    """The routing checks as independent tasks: one per node (to every node's pod CIDR), or, when
    every node is interchangeable, two flows: a node to its own pod CIDR and to another's."""
    def probe(res: InvariantResult, node, other) -> None:
        me = walker.node_endpoint(node)
        dst = bridge_address(other)
        pkt = Packet(6, walker.source_address(me, dst), dst, CLIENT_SPORT, PROBE_PORT)
        target = walker.node_endpoint(other)
        for end, _backs in walk_flow(walker, res, me, pkt, replies=False):
            if end.kind != "arrived" or end.at != target:
                res.violations.append(flow_violation(
                    f"node {node.name} cannot reach node {other.name}'s pod CIDR {cidr(other.pod_cidr)}"
                    f" ({end.kind}: {end.reason})", me, pkt, end))

    def from_node(node):
        def run(res: InvariantResult) -> None:
            for other in cluster.nodes:
                probe(res, node, other)
        return run

    n = len(cluster.nodes)
    if sym is not None and sym.all_free:
        a, b = cluster.nodes[0], cluster.nodes[1]

        def pair(node, other, weight):
            def run(res: InvariantResult) -> None:
                start = len(res.violations)
                probe(res, node, other)
                as_class(res, start, weight, ((node,), (other,)))
            return run
        return [pair(a, a, n), pair(a, b, n * (n - 1))]
    return [from_node(node) for node in cluster.nodes]
