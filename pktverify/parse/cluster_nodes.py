"""Each node of a cluster description as a NodeState: its real dumps, or generated ones."""

from __future__ import annotations

from ..generate.node_state import generate_node
from ..model.cluster import ClusterSpec
from ..model.node import NodeState
from .ipaddr import parse_ip_addr
from .iproute import parse_routes
from .iptables_save import parse_iptables_save
from .node import build_node, load_node

__all__ = ["cluster_nodes"]


def cluster_nodes(cluster: ClusterSpec, *, lenient: bool = False) -> dict[str, NodeState]:
    """NodeState per node name; generated nodes name their inputs ``<generated NODE iptables>``."""
    out: dict[str, NodeState] = {}
    for node in cluster.nodes:
        if node.iptables:
            out[node.name] = load_node(iptables=node.iptables, addrs=node.addrs, routes=node.routes,
                                       lenient=lenient, name=node.name)
            continue
        gen = generate_node(cluster, node)
        ruleset = parse_iptables_save(gen.iptables, source=f"<generated {node.name} iptables>")
        addrs = parse_ip_addr(gen.addrs, source=f"<generated {node.name} addrs>")
        routes = parse_routes(gen.routes, source=f"<generated {node.name} routes>")
        out[node.name] = build_node(node.name, addrs, routes.routes, ruleset, legacy_routes=routes.legacy)
    return out
