"""What the nodes' dumps held that pktverify left out, for verify's reports: each warning once.

``trace`` says a node's warnings (``NodeState.warnings``: IPv6 addresses skipped, nftables tables of
other families skipped, tables read from iptables-save rather than the nft dump, what
``--lenient`` made may-match, ...) on stderr and in its JSON ``notes``; a cluster has such a
warning on many nodes, each naming its own dump file. They are folded here: a warning that is the
same on several nodes but for the node's own file (its path, whose file name is the same) is one
entry naming the nodes (``on 40 nodes (node1, node2, node3 and 37 more nodes): ip-addr.json: 5 IPv6
address(es) skipped``); a warning on one node keeps its whole text. Entries come in the cluster's
node order.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath

from ..model.cluster import DUMP_KINDS, ClusterSpec

__all__ = ["NodeWarning", "fold_node_warnings", "node_list", "node_warnings_text", "node_warnings_json"]

NodeWarning = tuple[tuple[str, ...], str]       # (the nodes, the warning)


def fold_node_warnings(cluster: ClusterSpec, states: Mapping[str, object]) -> list[NodeWarning]:
    """(nodes, warning) for each distinct warning of the nodes' ``states`` (name -> NodeState):
    one node's warning as it is; one several nodes share, told apart only by the path of each
    node's own dump, once, with the file name in place of the path."""
    folded: dict[str, tuple[list[str], list[str]]] = {}      # key -> (nodes, their whole texts)
    for spec in cluster.nodes:
        state = states.get(spec.name)
        warnings = getattr(state, "warnings", ()) if state is not None else ()
        paths = sorted({p for p in (getattr(spec, kind) for kind in DUMP_KINDS) if p}, key=len, reverse=True)
        for text in dict.fromkeys(warnings):
            key = _shared_form(text, paths)
            nodes, texts = folded.setdefault(key, ([], []))
            if spec.name not in nodes:
                nodes.append(spec.name)
                texts.append(text)
    return [(tuple(nodes), texts[0] if len(nodes) == 1 else key) for key, (nodes, texts) in folded.items()]


def _shared_form(text: str, paths: list[str]) -> str:
    """``text`` with the node's own dump path it starts with (``/x/node1/ip-addr.json: ...``)
    replaced by the file's name, so that the same warning on two nodes' files is one text; a
    warning about anything else (a file several nodes share, the cluster file) is kept whole."""
    for path in paths:
        if text.startswith(path + ":"):
            return PurePath(path).name + text[len(path):]
    return text


def node_list(nodes: tuple[str, ...]) -> str:
    """The node, or ``on N nodes (a, b, c and N-3 more nodes)``."""
    if len(nodes) == 1:
        return nodes[0]
    shown = ", ".join(nodes) if len(nodes) <= 3 else f"{', '.join(nodes[:3])} and {len(nodes) - 3} more nodes"
    return f"on {len(nodes)} nodes ({shown})"


def node_warnings_text(warnings: list[NodeWarning]) -> list[str]:
    """The text report's lines (none without warnings)."""
    if not warnings:
        return []
    return ["", "warnings on the nodes' dumps (what pktverify left out):",
            *(f"  {node_list(nodes)}: {text}" for nodes, text in warnings)]


def node_warnings_json(warnings: list[NodeWarning]) -> list[dict]:
    """``[{"nodes": [...], "warning": text}]``."""
    return [{"nodes": list(nodes), "warning": text} for nodes, text in warnings]
