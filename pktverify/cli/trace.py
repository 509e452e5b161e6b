"""``pktverify trace``: one packet through one node's netfilter and FIB, or (``--cluster``) one flow
and its reply across a cluster, judged as verify judges it."""

from __future__ import annotations

import argparse
import sys

from ..errors import InvalidArgument
from .common import cache, given, print_warnings, say, say_cache_warnings, write_out

__all__ = ["trace_command"]

_NODE_ONLY = ("iptables", "nft", "addrs", "routes", "in_iface", "local", "src", "dst", "dport", "ipsets", "rules", "uid",
              "gid", "physdev_in", "physdev_out", "route_localnet")
_CLUSTER_ONLY = ("source", "target", "html", "dumps", "cluster_cidr", "service_cidr", "require_dumps", "pod_cidr")


def trace_command(args: argparse.Namespace) -> int:
    """``trace``: one node's trace, or with ``--cluster`` one flow across the cluster."""
    if args.cluster:
        return _trace_cluster(args)
    _check_node_options(args)
    return _trace_node(args)


def _check_node_options(args: argparse.Namespace) -> None:
    """One node's trace: no cluster option, and every option it needs."""
    stray = given(args, _CLUSTER_ONLY)
    if stray:
        raise InvalidArgument(f"{', '.join(stray)} {'goes' if len(stray) == 1 else 'go'} with --cluster (a flow across a cluster); one node's trace "
                              "takes --iptables, --addrs, --routes")
    missing = [] if args.iptables or args.nft else ["--iptables or --nft"]
    missing += [f"--{n}" for n in ("addrs", "routes", "proto", "src", "dst") if not getattr(args, n)]
    if not (args.in_iface or args.local):
        missing.append("--in-iface or --local")
    if missing:
        raise InvalidArgument(f"the following arguments are required: {', '.join(missing)} (or --cluster CLUSTER "
                              "--from ... --to ... for a flow across a cluster; see 'pktverify trace --help')")


def _trace_node(args: argparse.Namespace) -> int:
    """One packet through one node: the trace as text or JSON, and with --pcap its captures."""
    from ..load.node import load_node
    from ..node_api import trace
    from ..packets import make_packet
    from ..report.trace_json import trace_to_json
    from ..report.trace_text import trace_to_text

    packet = make_packet(proto=args.proto, src=args.src, dst=args.dst, sport=args.sport, dport=args.dport)
    node = load_node(iptables=args.iptables, addrs=args.addrs, routes=args.routes,
                     lenient=args.lenient, route_localnet=args.route_localnet, ipsets=args.ipsets,
                     rules=args.rules, cache=cache(args), nft=args.nft)
    if args.physdev_out and not args.physdev_in:
        raise InvalidArgument("--physdev-out needs --physdev-in (a bridged packet enters by a port)")
    if args.in_iface and args.in_iface not in node.interfaces:
        raise InvalidArgument(f"--in-iface {args.in_iface}: the node has no such interface "
                              f"(it has {', '.join(node.interfaces)})")
    result = trace(node, packet, in_iface=None if args.local else args.in_iface, max_branches=args.max_branches,
                   uid=args.uid, gid=args.gid, physdev_in=args.physdev_in, physdev_out=args.physdev_out, at=args.at)
    for warning in node.warnings:
        say(f"pktverify: warning: {warning}")
    say_cache_warnings(args)
    out = trace_to_json(result, notes=node.warnings) if args.format == "json" else trace_to_text(result)
    if args.pcap:
        from ..node_api import trace_to_pcapng
        for path in trace_to_pcapng(node, result, args.pcap):
            print(f"pktverify: wrote {path}", file=sys.stderr)
    write_out(out)
    return 0


def _check_cluster_options(args: argparse.Namespace) -> None:
    """A flow across a cluster: no node option, --from and --to, and output paths that can be written."""
    stray = given(args, _NODE_ONLY)
    if stray:
        raise InvalidArgument(f"{', '.join(stray)} {'goes' if len(stray) == 1 else 'go'} with one node's trace, not --cluster (the cluster says each "
                              "node's dumps; --from and --to say the flow)")
    missing = [option for option, value in (("--from", args.source), ("--to", args.target)) if not value]
    if missing:
        raise InvalidArgument(f"--cluster needs {' and '.join(missing)}: e.g. --from default/client --to "
                              "default/web:80")
    for path in (args.html, args.pcap):          # refuse a device, FIFO, link or folder before the work
        if path:
            from ..report.files import refuse_special
            refuse_special(path)


def _trace_cluster(args: argparse.Namespace) -> int:
    """``trace --cluster``: one flow and its reply across the cluster, judged as verify judges it."""
    from ..cluster_api import load_cluster, trace_flow
    from ..report.flow_answer import flow_answer_to_html, flow_answer_to_json, flow_answer_to_text

    _check_cluster_options(args)
    cluster = load_cluster(args.cluster, cluster_cidr=args.cluster_cidr, service_cidr=args.service_cidr,
                           dumps=args.dumps, require_dumps=args.require_dumps, pod_cidrs=args.pod_cidr)
    print_warnings(cluster)
    report = trace_flow(cluster, source=args.source, to=args.target, proto=args.proto, sport=args.sport,
                        lenient=args.lenient, max_branches=args.max_branches, max_paths=args.max_paths, at=args.at,
                        cache=cache(args))
    say_cache_warnings(args)
    answer = report.answer
    captures: dict[int, list[str]] = {}
    if args.pcap:
        for n, path in report.write_pcaps(args.pcap):
            captures.setdefault(n, []).append(str(path))
            say(f"pktverify: wrote {path}")
    if args.html:
        from ..report.files import write_file
        write_file(args.html, flow_answer_to_html(answer, source=cluster.source).encode())
        say(f"pktverify: wrote {args.html}")
    out = flow_answer_to_json(answer, captures=captures) if args.format == "json" else \
        flow_answer_to_text(answer, captures=captures)
    sys.stdout.write(out)
    return 0 if answer.holds else 1
