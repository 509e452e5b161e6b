"""``pktverify verify``: a cluster checked against the Kubernetes network model, with its reports
(text or JSON on stdout, optionally an HTML page and pcapng counterexamples)."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import InvalidArgument
from .common import cache, print_warnings, say, say_cache_warnings

__all__ = ["verify_command"]


def verify_command(args: argparse.Namespace) -> int:
    """``verify``: check the cluster within --timeout, then write what was asked for."""
    if args.compare_mode:
        return _compare_mode(args)
    if args.html:            # refuse a device, FIFO, link or folder before the work, not after it
        from ..report.files import refuse_special
        refuse_special(args.html)
    report, folder = _check(args)
    say_cache_warnings(args)
    captures = _write_pcaps(args, report, folder) if folder is not None else None
    shown = 0 if args.all else args.max_violations
    if args.html:
        from ..report.files import write_file
        write_file(args.html, report.to_html(max_violations=shown, captures=captures).encode())
        say(f"pktverify: wrote {args.html}")
    sys.stdout.write(report.to_json(captures=captures) if args.format == "json"
                     else report.to_text(max_violations=shown, captures=captures))
    return 0 if report.holds else 1


def _check(args: argparse.Namespace):
    """Read the cluster and run every check, the whole under --timeout; return the report and the
    --pcap-dir folder (None without it), refused before the work if it is unusable."""
    from ..check.deadline import bounded
    from ..cluster_api import load_cluster, verify

    with bounded(args.timeout) as deadline:     # the whole run, from reading the cluster file on
        if deadline is not None:
            deadline.phase = "reading the cluster file"
        cluster = load_cluster(args.cluster, cluster_cidr=args.cluster_cidr, service_cidr=args.service_cidr,
                               dumps=args.dumps, require_dumps=args.require_dumps, pod_cidrs=args.pod_cidr)
        print_warnings(cluster)
        folder = None
        if args.pcap_dir:        # refuse an unusable folder before the work, not after it
            from ..report.files import OutputDir
            folder = OutputDir(args.pcap_dir)
        cpus = len(os.sched_getaffinity(0))
        if args.scheduler and args.executor != "dask":
            raise InvalidArgument("--scheduler goes with --executor dask")
        report = verify(cluster, jobs=min(args.jobs, cpus) if args.jobs else cpus, lenient=args.lenient,
                        max_branches=args.max_branches, max_paths=args.max_paths, at=args.at, keep_flows=args.all,
                        progress=True, executor=args.executor, scheduler=args.scheduler, cache=cache(args),
                        only=args.only, timeout=deadline)
    return report, folder


def _write_pcaps(args: argparse.Namespace, report, folder) -> dict:
    """Write the counterexamples (with --all, every checked flow) into --pcap-dir; return each
    example's capture names, which the reports print next to it."""
    from ..report.verify_pcaps import capture_names, write_verify_pcaps
    with folder:
        written = write_verify_pcaps(report.walker, report.results, folder, all_flows=args.all,
                                     split=args.pcap_split)
    captures = capture_names(report.results, written)       # named next to each example
    say(f"pktverify: wrote {len(written)} capture(s) to {args.pcap_dir}")
    return captures


def _compare_mode(args: argparse.Namespace) -> int:
    """``verify --compare-mode``: each node's rules in the cluster's kube-proxy mode diffed against the
    other mode's; exit 0 when no packet changes or every change is a documented (deliberate) mode
    difference, 1 when another change is found, 2 when no such change was found but some node was
    not compared whole or exactly."""
    import json

    from ..check.compare_mode import compare_modes
    from ..check.deadline import bounded
    from ..check.diff import DiffRun
    from ..cluster_api import load_cluster
    from ..report.diff_report import diff_json, diff_text
    from ..report.safe_text import json_text, log_line

    if args.html or args.pcap_dir or args.only:
        raise InvalidArgument("--compare-mode writes its own report: give it without --html, --pcap-dir or --only")
    with bounded(args.timeout):
        cluster = load_cluster(args.cluster, cluster_cidr=args.cluster_cidr, service_cidr=args.service_cidr,
                               dumps=args.dumps, require_dumps=args.require_dumps, pod_cidrs=args.pod_cidr)
        print_warnings(cluster)
        cmp = compare_modes(cluster, lenient=args.lenient)
    runs = [(n, DiffRun(f"{n.node} ({cmp.own} mode)", f"{n.node} ({cmp.other} mode)", n.result, n.node))
            for n in cmp.nodes]
    changed = [n for n in cmp.nodes if n.changes]
    odd = [n for n in cmp.nodes if n.unexplained]
    how = (f"on {len(odd)} of them in ways that are not kube-proxy's documented mode differences" if odd else
           "all as designed: kube-proxy's documented mode differences only")
    head = (f"switching kube-proxy from {cmp.own} to {cmp.other} mode changes the fate of packets on {len(changed)} "
            f"of {len(cmp.nodes)} node(s); {how}" if changed else
            f"switching kube-proxy from {cmp.own} to {cmp.other} mode changes no packet's fate on any of the "
            f"{len(cmp.nodes)} node(s)")
    if not cmp.complete:
        head += "; not decided whole on some node (see its inexact line or notes)"
    if args.format == "json":
        sys.stdout.write(json_text({"compare_mode": {
            "from": cmp.own, "to": cmp.other, "answer": head, "nodes_changed": len(changed), "nodes": len(cmp.nodes),
            "nodes_not_deliberate": len(odd), "complete": cmp.complete, "all_deliberate": cmp.all_deliberate,
            "per_node": [{"node": n.node, "same_as": n.same_as, **json.loads(diff_json(run))} for n, run in runs]}})
                         + "\n")
    else:
        out = [log_line(head)]
        for n, run in runs:
            out += ["", log_line(f"== node {n.node}" + (f" (the same rules as {n.same_as}: diffed once)"
                                                        if n.same_as else "")), diff_text(run).rstrip("\n")]
        sys.stdout.write("\n".join(out) + "\n")
    return 1 if odd else 0 if cmp.complete else 2
