"""Each node of a cluster description as a NodeState: its real dumps, or generated ones."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import InputError
from ..generate.node_state import generate_node
from ..model.cluster import ClusterSpec, NodeSpec
from ..model.node import NodeState
from .ipaddr import parse_ip_addr
from .iproute import parse_routes
from .iptables_save import parse_iptables_save
from .node import build_node, load_node

__all__ = ["cluster_nodes"]


def cluster_nodes(cluster: ClusterSpec, *, lenient: bool = False) -> dict[str, NodeState]:
    """NodeState per node name. Generated rule sets that are the same text on several nodes
    (kube-proxy's iptables mode writes no node-specific rule) are parsed once and shared;
    their source reads ``<generated iptables of node1, node2, ...>``."""
    generated = {node.name: generate_node(cluster, node) for node in cluster.nodes if not node.iptables}
    holders: dict[str, list[str]] = {}
    for name, gen in generated.items():
        holders.setdefault(gen.iptables, []).append(name)
    rulesets = {}
    for text, names in holders.items():
        label = ", ".join(names) if len(names) <= 3 else f"{len(names)} nodes ({names[0]}, ...)"
        with _blamed_on(cluster, cluster.node(names[0])):
            rulesets[text] = parse_iptables_save(text, source=f"<generated iptables of {label}>")
    out: dict[str, NodeState] = {}
    for node in cluster.nodes:
        if node.iptables:
            out[node.name] = load_node(iptables=node.iptables, addrs=node.addrs, routes=node.routes,
                                       lenient=lenient, name=node.name, ipsets=node.ipsets, rules=node.rules)
            continue
        gen = generated[node.name]
        with _blamed_on(cluster, node):
            addrs = parse_ip_addr(gen.addrs, source=f"<generated {node.name} addrs>")
            routes = parse_routes(gen.routes, source=f"<generated {node.name} routes>")
            out[node.name] = build_node(node.name, addrs, routes.routes, rulesets[gen.iptables],
                                        legacy_routes=routes.legacy)
    return out


@contextmanager
def _blamed_on(cluster: ClusterSpec, node: NodeSpec) -> Iterator[None]:
    """A generated dump the parsers refuse is the description's fault: name the node's line in it."""
    try:
        yield
    except InputError as exc:
        raise InputError(cluster.source, node.line,
                         f"node {node.name}: the dumps pktverify generates for it are not valid "
                         f"({exc.message}: {exc.text}); check its addresses, pod CIDR and bridge",
                         f"name: {node.name}") from None
