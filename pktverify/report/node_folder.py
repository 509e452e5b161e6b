"""A generated node's dumps as files of the node folder layout (:data:`pktverify.model.kube_proxy.NODE_FILES`):
``iptables-save`` text, and addresses and routes as ``ip -j`` JSON, as ``scripts/collect-node`` writes
them from a real node, so generated and collected nodes are interchangeable."""

from __future__ import annotations

from ..generate.ip_json import addrs_to_json, routes_to_json
from ..generate.node_state import GeneratedNode
from ..model.kube_proxy import NFT_SCRIPT_FILE, NODE_FILES
from ..parse.ipaddr import parse_ip_addr
from ..parse.iproute import parse_routes

__all__ = ["node_files"]


def node_files(node: GeneratedNode) -> dict[str, str]:
    """``node``'s dumps by file name: the generated text goes through the same parsers as real
    dumps, and the addresses and routes are written back as ``ip -j`` prints them. In kube-proxy's
    nftables mode the node's ruleset is the ``nft -f`` script kube-proxy loads (:data:`NFT_SCRIPT_FILE`)."""
    interfaces = parse_ip_addr(node.addrs, source="<generated addrs>")
    files = {NODE_FILES["iptables"]: node.iptables, NODE_FILES["addrs"]: addrs_to_json(interfaces),
             NODE_FILES["routes"]: routes_to_json(parse_routes(node.routes, source="<generated routes>").routes)}
    if node.nft is not None:
        files[NFT_SCRIPT_FILE] = node.nft
    return files
