"""``pktverify generate``: the dumps each node of a cluster would have (iptables-save, ip addr,
ip route), on stdout or written as the node folder layout."""

from __future__ import annotations

import argparse
import sys

__all__ = ["generate_command"]


def generate_command(args: argparse.Namespace) -> int:
    """``generate``: every node's files, to stdout (``# node/file`` headers) or under --out."""
    from ..generate.node_state import generate_node
    from ..parse.cluster_yaml import load_cluster
    from ..report.files import OutputDir
    from ..report.node_folder import node_files

    cluster = load_cluster(args.cluster)
    generated = {node.name: generate_node(cluster, node) for node in cluster.nodes}
    if not args.out:
        for name, gen in generated.items():
            for fname, text in node_files(gen).items():
                sys.stdout.write(f"# {name}/{fname}\n{text}")
        return 0
    with OutputDir(args.out) as out:
        for name, gen in generated.items():      # node names are DNS-1123 subdomains: one plain component
            with out.subdir(name) as folder:
                for fname, text in node_files(gen).items():
                    folder.write(fname, text.encode())
    return 0
