"""``pktverify diff``: every class of packets two rule sets of one node treat differently (exact),
optionally as one node of a cluster whose invariants are compared too. Each rule set is an
iptables-save or an nft ruleset (told by content, or ``--nft``); a mixed node's unchanged half is
``--iptables`` or ``--nft-beside``."""

from __future__ import annotations

import argparse
import sys

from ..errors import InvalidArgument

__all__ = ["diff_command"]


def diff_command(args: argparse.Namespace) -> int:
    """``diff``: exit 0 same (or, between kube-proxy's iptables and nftables modes, every difference
    a documented one), 1 different, 2 inexact (a bound reached is never "same")."""
    from ..check.diff import run_diff
    from ..report.diff_report import diff_json, diff_text, inexact_line

    if (args.addrs is None) != (args.routes is None):
        raise InvalidArgument("give --addrs and --routes together (or neither)")
    if args.cluster and args.addrs:
        raise InvalidArgument("give either --addrs/--routes or --cluster/--node: the cluster says the node's addresses")
    if args.node and not args.cluster:
        raise InvalidArgument("--node goes with --cluster")
    if args.cluster and (args.iptables or args.nft_beside):
        raise InvalidArgument("give either --iptables/--nft-beside or --cluster: the cluster's node has its other half")
    if args.iptables and args.nft_beside:
        raise InvalidArgument("give --iptables (beside nft rulesets) or --nft-beside (beside iptables-save files), "
                              "not both: OLD and NEW are one or the other")
    result = run_diff(args.old, args.new, addrs=args.addrs, routes=args.routes, cluster=args.cluster,
                      node=args.node, lenient=args.lenient, max_cells=args.max_cells, force_nft=args.nft,
                      iptables=args.iptables, nft_beside=args.nft_beside)
    sys.stdout.write(diff_json(result) if args.format == "json" else diff_text(result))
    if result.verdict == "inexact":          # a bound reached is never "same": exit 2, one line on stderr
        sys.stderr.write(inexact_line(result) + "\n")
        return 2
    r = result.result
    if r.modes and r.classes and not r.unexplained and not result.invariants and not result.all_deliberate:
        why = "a bound was reached" if not r.complete else "some rules match on what no packet field decides"
        sys.stderr.write(f"inexact: every difference found between kube-proxy's modes is a documented one, but {why}: "
                         "packets not compared exactly may still be treated differently\n")
        return 2
    # Between kube-proxy's two modes, differences that are all documented (deliberate) exit 0 too.
    return 0 if result.verdict == "same" or result.all_deliberate else 1
