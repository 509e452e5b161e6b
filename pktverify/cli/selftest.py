"""``pktverify selftest-kernel`` and ``selftest-cluster``: pktverify compared with this machine's
kernel (random rule sets), and with clusters built in network namespaces (both need root)."""

from __future__ import annotations

import argparse
from typing import Callable

from ..errors import InvalidArgument

__all__ = ["selftest_cluster_command", "selftest_kernel_command"]


def selftest_kernel_command(args: argparse.Namespace, trace: Callable[[list[str]], int]) -> int:
    """``selftest-kernel``: the agreement, and the first --show divergences with their reproducers;
    ``trace`` is the CLI's entry point (:func:`pktverify.cli.main`), which each probe runs."""
    from ..oracle.kernel_campaign import run_campaign
    from ..oracle.kernel_lab import KernelLab, lab_available

    reason = lab_available()
    if reason:
        raise InvalidArgument(f"selftest-kernel cannot build its network namespaces: {reason}")
    if args.examples < 1:
        raise InvalidArgument("--examples must be at least 1")
    campaign = run_campaign
    if getattr(args, "nft", False):       # nft rulesets drawn (some beside iptables), compared the same way
        from ..oracle.nft_campaign import nft_trace_unavailable, run_nft_campaign
        reason = nft_trace_unavailable(trace)
        if reason:
            raise InvalidArgument(f"selftest-kernel --nft: nft evaluation is not available yet ({reason})")
        campaign = run_nft_campaign
    with KernelLab() as lab:
        result = campaign(lab, args.examples, trace, seed=args.seed)
    share = 100.0 * result.agreed / result.sent if result.sent else 0.0
    print(f"kernel agreement: {result.agreed}/{result.sent} probes ({share:.1f}%), seed {result.seed}")
    for res in result.divergences[:args.show]:
        print(f"\ndivergence: {res.explanation}\nreproduce with the lab's dumps:\n{res.probe.reproducer()}")
    if result.lab_errors:
        probe, why = result.lab_errors[0]
        print(f"\n{len(result.lab_errors)} probe(s) the lab could not run (not counted above); the first: {why}\n"
              f"{probe.reproducer()}")
    return 0 if not (result.divergences or result.lab_errors) else 1


def selftest_cluster_command(args: argparse.Namespace) -> int:
    """``selftest-cluster``: the lab's verdict per cluster (see oracle.cluster_campaign)."""
    from ..oracle.cluster_campaign import run_campaign_cli
    from ..oracle.kernel_lab import lab_available

    reason = lab_available()
    if reason:
        raise InvalidArgument(f"selftest-cluster cannot build its network namespaces: {reason}")
    if args.drawn_only and (args.clusters or not args.examples):
        raise InvalidArgument("--drawn-only takes no CLUSTER and needs --examples N")
    return run_campaign_cli(args.clusters, examples=args.examples, seed=args.seed, minimum=args.connections,
                            drawn_only=args.drawn_only, flow=args.flow, out_dir=args.out, verbose=args.verbose)
