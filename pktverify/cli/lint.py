"""``pktverify lint``: proposed iptables-save files checked for structure, dead and shadowed rules
and Kubernetes semantics; with ``--cluster``, the cluster verified with the file as one node's rules.
nft rulesets (``--nft FILE``, or told by content) are checked for structure (PV150-PV162)."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import InvalidArgument
from .common import print_warnings

__all__ = ["lint_command"]


def lint_command(args: argparse.Namespace) -> int:
    """``lint``: the findings in --format; exit 1 when one is at least --fail-on severe."""
    from ..check.lint import lint_files
    from ..report.lint_report import lint_github, lint_json, lint_sarif, lint_text_report

    if not args.files and not args.nft:
        raise InvalidArgument("give a FILE to lint (an iptables-save file or nft ruleset) or --nft FILE")
    if args.node and not args.cluster:
        raise InvalidArgument("--node goes with --cluster")
    cluster = None
    if args.cluster:
        from ..cluster_api import load_cluster
        if len(args.files) + len(args.nft) != 1:
            raise InvalidArgument("with --cluster, give one FILE: the proposed rules of --node")
        cluster = load_cluster(args.cluster, cluster_cidr=args.cluster_cidr, service_cidr=args.service_cidr,
                               require_dumps=args.require_dumps, pod_cidrs=args.pod_cidr)
        print_warnings(cluster)
    result = lint_files(args.files, select_ids=args.select, ignore_ids=args.ignore, cluster=cluster,
                        node=args.node, lenient=args.lenient, nft_paths=args.nft)
    if args.format == "json":
        out = lint_json(result)
    elif args.format == "sarif":
        out = lint_sarif(result)
    elif args.format == "github":
        out = lint_github(result)
    else:
        out = lint_text_report(result, colour=sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    sys.stdout.write(out)
    return 1 if result.fails(args.fail_on) else 0
