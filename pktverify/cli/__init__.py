"""Command line: argument parsing and exit codes only (0 ok, 1 violation, 2 bad input)."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import InvalidArgument, PktverifyError, one_line
from ..limits import MAX_BRANCHES, MAX_PATHS

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:   # argparse's usage errors exit 2 too, on one line
        print(one_line(f"pktverify: error: {message} (see '{self.prog} --help')"), file=sys.stderr)
        sys.exit(2)


def _number(low: int, high: int | None = None):
    """An argparse type: a plain ASCII decimal in [low, high] (int() would take '٣' or '1_0')."""
    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or len(text) > 12:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
        value = int(text)
        if value < low or (high is not None and value > high):
            allowed = f"{low}-{high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range (allowed: {allowed})")
        return value
    return parse


_PORT = _number(0, 65535)
_CACHE_HELP = ("keep parsed rule sets in DIR, keyed by the dump's content (faster re-runs, e.g. in CI; DIR must be "
               "yours alone; default: $PKTVERIFY_CACHE_DIR, else no cache)")


def _instant(text: str) -> int:
    """An argparse type: an ISO 8601 time as UTC epoch seconds (naive times are UTC)."""
    import datetime as dt
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2026-11-27T14:00") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp())


def _version() -> str:
    """The installed distribution's version (what pip installed), else the package's own."""
    from importlib import metadata
    try:
        return metadata.version("pktverify")
    except metadata.PackageNotFoundError:
        from ..version import __version__
        return __version__


def _kubectl_options(p: argparse.ArgumentParser) -> None:
    """The options kubectl JSON input needs (verify, trace --cluster)."""
    p.add_argument("--dumps", metavar="DIR", help="kubectl JSON input: the per-node dumps, DIR/<node>/"
                                                  "{iptables-save.txt,ip-addr.json,ip-route.json} (default: its folder)")
    p.add_argument("--cluster-cidr", metavar="CIDR", help="kubectl JSON input: the pod network (--cluster-cidr)")
    p.add_argument("--service-cidr", metavar="CIDR", help="kubectl JSON input: --service-cluster-ip-range")


def _pod_cidr(text: str) -> tuple[str, str]:
    """An argparse type: NODE=CIDR (checked against the input's nodes when it is read)."""
    node, sep, cidr = text.partition("=")
    if not sep or not node or not cidr:
        raise argparse.ArgumentTypeError(f"{text!r}: give NODE=CIDR, e.g. worker-1=10.244.1.0/24")
    return node, cidr


def _dump_options(p: argparse.ArgumentParser) -> None:
    """kubectl JSON input's node dumps (verify, lint --cluster, trace --cluster)."""
    p.add_argument("--require-dumps", action="store_true",
                   help="kubectl JSON input: a node without its iptables-save.txt, ip-addr.json and ip-route.json is "
                        "an error (default: generated, and said so)")
    p.add_argument("--pod-cidr", type=_pod_cidr, action="append", metavar="NODE=CIDR",
                   help="kubectl JSON input: the pod CIDR of a node whose Node object has no spec.podCIDR (Calico, "
                        "Cilium IPAM) and whose dumps do not show it (repeatable)")


def _print_warnings(cluster) -> None:
    """What the input lacks that the user must hear now (also in the report's notes)."""
    for warning in cluster.extras.get("warnings", ()):
        print(one_line(f"pktverify: warning: {warning}"), file=sys.stderr)


def _build() -> argparse.ArgumentParser:
    parser = _Parser(prog="pktverify", description="Packet-level verifier for Kubernetes networking.")
    parser.add_argument("--version", action="version", version=f"pktverify {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    t = sub.add_parser("trace", help="trace one packet through one node's netfilter and FIB, or one flow and its "
                                     "reply across a cluster (--cluster)",
                       usage="pktverify trace --iptables FILE --addrs FILE --routes FILE (--in-iface IFACE | --local)"
                             " --proto P --src IP --dst IP [options]\n       pktverify trace --cluster CLUSTER --from "
                             "NS/POD|NODE|outside@NODE --to NS/SVC[:PORT]|NS/POD:PORT|IP:PORT [options]")
    t.add_argument("--iptables", metavar="FILE", help="iptables-save output")
    t.add_argument("--addrs", metavar="FILE", help="ip -j addr show / ip -o addr show")
    t.add_argument("--routes", metavar="FILE", help="ip -j route / ip route / route add lines")
    where = t.add_mutually_exclusive_group()
    where.add_argument("--in-iface", metavar="IFACE", help="the packet arrives on this interface")
    where.add_argument("--local", action="store_true", help="the packet is generated on the node")
    t.add_argument("--proto", type=str.lower, choices=["tcp", "udp", "sctp", "icmp"],
                   help="the protocol (any case: TCP as kubectl writes it); with --cluster, the service port's")
    t.add_argument("--src", metavar="IP")
    t.add_argument("--sport", type=_PORT, metavar="N")
    t.add_argument("--dst", metavar="IP")
    t.add_argument("--cluster", metavar="CLUSTER",
                   help="trace one flow and its reply across this cluster (YAML, its folder, or kubectl JSON)")
    t.add_argument("--from", dest="source", metavar="NS/POD|NODE|outside@NODE",
                   help="with --cluster: the client (a pod, a node's own stack, or an off-cluster client arriving "
                        "at NODE)")
    t.add_argument("--to", dest="target", metavar="NS/SVC[:PORT]|NS/POD:PORT|IP:PORT",
                   help="with --cluster: a service port (number or name), a pod's port, or an address and port")
    t.add_argument("--html", metavar="FILE", help="with --cluster: also write the answer as one HTML page")
    t.add_argument("--max-paths", type=_number(1), default=MAX_PATHS, metavar="N",
                   help=f"with --cluster: most paths the flow may take across the cluster (default {MAX_PATHS:,})")
    _kubectl_options(t)
    _dump_options(t)
    t.add_argument("--dport", type=_PORT, metavar="N")
    t.add_argument("--format", choices=["text", "json"], default="text")
    t.add_argument("--lenient", action="store_true",
                   help="unknown matches/targets become may-match; affected outcomes are inexact")
    t.add_argument("--pcap", metavar="FILE",
                   help="also write the flow (packet, reply, ACK) as pcapng; several outcomes: FILE-1, FILE-2, ...")
    t.add_argument("--ipsets", metavar="FILE", help="ipset save output, for -m set rules")
    t.add_argument("--rules", metavar="FILE", help="ip -j rule show / ip rule show: policy routing (fwmark, tables)")
    t.add_argument("--cache-dir", metavar="DIR", help=_CACHE_HELP)
    t.add_argument("--uid", type=_number(0, 2**32 - 1), default=0, metavar="N",
                   help="--local: the sending socket's owner uid for -m owner (default 0)")
    t.add_argument("--gid", type=_number(0, 2**32 - 1), default=0, metavar="N",
                   help="--local: the sending socket's group for -m owner (default 0)")
    t.add_argument("--physdev-in", default="", metavar="PORT",
                   help="the packet was bridged in from this bridge port (-m physdev; --in-iface is the bridge)")
    t.add_argument("--physdev-out", default="", metavar="PORT",
                   help="with --physdev-in: the bridge port it leaves by")
    t.add_argument("--at", type=_instant, metavar="ISO-TIME",
                   help="when the packet is sent, for -m time (e.g. 2026-11-27T14:00; UTC unless an offset is given)")
    t.add_argument("--max-branches", type=_number(1), default=MAX_BRANCHES, metavar="N",
                   help=f"most distinct branches one packet may take on the node (default {MAX_BRANCHES:,})")
    t.add_argument("--route-localnet", action="store_true",
                   help="the node has net.ipv4.conf.all.route_localnet=1 (kube-proxy sets it for localhost NodePorts)")
    v = sub.add_parser("verify", help="check a cluster description against the Kubernetes network model")
    v.add_argument("cluster", metavar="CLUSTER",
                   help="cluster YAML (see rules/seed/cluster.yaml), or kubectl get nodes,pods,services,"
                        "endpointslices -A -o json")
    v.add_argument("--format", choices=["text", "json"], default="text")
    v.add_argument("--lenient", action="store_true",
                   help="unknown matches/targets in node dumps become may-match (outcomes marked inexact)")
    v.add_argument("--cache-dir", metavar="DIR", help=_CACHE_HELP)
    v.add_argument("--pcap-dir", nargs="?", const="pcaps", metavar="DIR",
                   help="write each violation's counterexample as pcapng into DIR (default pcaps/)")
    v.add_argument("--pcap-split", choices=["flow", "point"], default="flow",
                   help="with --pcap-dir: one capture per flow (default), or per flow and observation point "
                        "(each segment once, for Wireshark's TCP analysis)")
    v.add_argument("--all", action="store_true",
                   help="everything: every violation in the text and HTML reports, and with --pcap-dir one capture "
                        "per checked flow too")
    v.add_argument("--max-violations", type=_number(0), default=2, metavar="N",
                   help="examples shown per cause in the text and HTML reports (default 2; 0: every one)")
    v.add_argument("--html", metavar="FILE",
                   help="also write one self-contained HTML page: the cluster at a glance and each cause's "
                        "path drawn hop by hop")
    v.add_argument("--jobs", type=_number(1), metavar="N",
                   help="worker processes for large clusters (default: one per CPU; more than the CPUs is "
                        "clamped to the CPUs)")
    v.add_argument("--executor", choices=["local", "dask"], default="local",
                   help="where the flow checks run: local processes (--jobs, default) or a Dask cluster "
                        "(--scheduler; pip install 'pktverify[distributed]')")
    v.add_argument("--scheduler", metavar="ADDRESS", help="with --executor dask: the scheduler, tcp://HOST:8786")
    v.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                   help="bound the whole run (dumps, connecting, every check); past it, exit 2 saying how far it "
                        "got, and no report (default: none; connecting to a Dask scheduler is bounded by 10 s)")
    v.add_argument("--max-branches", type=_number(1), default=MAX_BRANCHES, metavar="N",
                   help=f"most distinct branches one packet may take on one node (default {MAX_BRANCHES:,})")
    v.add_argument("--at", type=_instant, metavar="ISO-TIME",
                   help="when the flows are sent, for -m time rules (UTC unless an offset is given)")
    v.add_argument("--max-paths", type=_number(1), default=MAX_PATHS, metavar="N",
                   help=f"most paths one flow may take across the cluster (default {MAX_PATHS:,})")
    v.add_argument("--only", action="append", metavar="NS/SVC",
                   help="narrow the report to this service's reachability (every client, door, endpoint and reply;"
                        " repeatable); for one flow, see trace --cluster")
    _kubectl_options(v)
    _dump_options(v)
    g = sub.add_parser("generate", help="write the dumps each node of a cluster would have (iptables-save, ip addr,"
                                        " ip route)")
    g.add_argument("cluster", metavar="CLUSTER")
    g.add_argument("--out", metavar="DIR", help="write DIR/<node>/iptables-save.txt, ip-addr.json and ip-route.json,"
                                                " the node folder layout (default: print to stdout)")
    lint = sub.add_parser("lint", help="check proposed iptables-save files: structure, dead and shadowed rules, "
                                       "Kubernetes semantics; with --cluster, the invariants too")
    lint.add_argument("files", nargs="+", metavar="FILE", help="iptables-save files (what iptables-restore would load)")
    lint.add_argument("--cluster", metavar="CLUSTER",
                      help="verify this cluster with FILE (one file) as --node's rules; a FILE that does not "
                           "load verifies nothing and fails (exit 1)")
    lint.add_argument("--node", metavar="NAME", help="with --cluster: the node FILE is for (needed with several nodes)")
    lint.add_argument("--format", choices=["text", "json", "sarif", "github"], default="text")
    lint.add_argument("--select", type=_ids, metavar="IDS", help="only these check ids or prefixes (PV2,PV301)")
    lint.add_argument("--ignore", type=_ids, metavar="IDS", help="not these check ids or prefixes")
    lint.add_argument("--fail-on", choices=["error", "warning", "info"], default="error",
                      help="exit 1 when a finding is at least this severe (default error)")
    lint.add_argument("--lenient", action="store_true", help="unknown matches/targets become may-match, not PV100")
    lint.add_argument("--cluster-cidr", metavar="CIDR", help="with a kubectl JSON --cluster: the pod network")
    lint.add_argument("--service-cidr", metavar="CIDR", help="with a kubectl JSON --cluster: the service network")
    _dump_options(lint)
    d = sub.add_parser("diff", help="every class of packets two rule sets of one node treat differently (exact)")
    d.add_argument("old", metavar="OLD", help="iptables-save of the rules now")
    d.add_argument("new", metavar="NEW", help="iptables-save of the proposed rules")
    d.add_argument("--addrs", metavar="FILE", help="the node's ip addr (default: one interface per name the rules use)")
    d.add_argument("--routes", metavar="FILE", help="the node's ip route (with --addrs)")
    d.add_argument("--cluster", metavar="CLUSTER", help="the node is --node of this cluster; also compare the invariants")
    d.add_argument("--node", metavar="NAME", help="with --cluster: the node OLD and NEW are for")
    d.add_argument("--format", choices=["text", "json"], default="text")
    d.add_argument("--lenient", action="store_true", help="unknown matches/targets become may-match")
    d.add_argument("--max-cells", type=_number(1), default=200_000, metavar="N",
                   help="compare at most N cells (default 200000); past it, or past the work bound, the verdict "
                        "is 'inexact' (exit 2) unless a difference was already found")
    k = sub.add_parser("selftest-kernel",
                       help="compare pktverify with this machine's kernel on random rule sets (needs root)")
    k.add_argument("--examples", type=_number(1, 100_000), default=50, metavar="N",
                   help="random probes to send (default 50)")
    k.add_argument("--seed", type=_number(0), metavar="S", help="replay the campaign of this seed")
    k.add_argument("--show", type=_number(0), default=3, metavar="K", help="divergences to print (default 3)")
    c = sub.add_parser("selftest-cluster",
                       help="build clusters in network namespaces and send every flow verify checks (needs root)")
    c.add_argument("clusters", nargs="*", metavar="CLUSTER",
                   help="cluster files (default: every example under rules/ the lab can emulate)")
    c.add_argument("--examples", type=_number(0, 10_000), default=0, metavar="N",
                   help="also N clusters drawn with planted faults (default 0)")
    c.add_argument("--seed", type=_number(0), default=2026, metavar="S", help="seed of the drawn clusters (default 2026)")
    c.add_argument("--connections", type=_number(1, 1000), default=10, metavar="K",
                   help="connections per flow with one promised outcome (default 10; more where several are)")
    c.add_argument("--drawn-only", action="store_true", help="only the drawn clusters, not the examples")
    c.add_argument("--flow", default="", metavar="TEXT", help="only flows whose label contains TEXT")
    c.add_argument("--out", metavar="DIR", help="where drawn clusters that disagree are written "
                                                "(default cluster-lab-seed-S)")
    c.add_argument("-v", "--verbose", action="store_true", help="print every flow, not only disagreements")
    return parser


def run() -> None:
    """The ``pktverify`` command: :func:`main`, then exit at once. The model of a large dump is
    over a million objects; freeing them one by one when the interpreter shuts down took a third
    of a ``trace`` command on a 110k-rule dump (3.6 s → 2.6 s), and nothing is left to do then:
    every file was written and closed, so only the standard streams are flushed."""
    from ..bulk import freeze_what_is_built
    freeze_what_is_built()          # a process that ends with the command: see bulk.py
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:                     # a reader that went away: quietly, as a shell tool would
            code = code or _EPIPE
        except ValueError:                          # a closed stream
            code = code or 1
    os._exit(code)


_EPIPE = 141        # 128 + SIGPIPE: what a shell reports for a tool whose reader went away (yes | head)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    args = _build().parse_args(argv)
    try:
        _refuse_empty_paths(args)
        if args.command == "selftest-kernel":
            return _selftest_kernel(args)
        if args.command == "selftest-cluster":
            return _selftest_cluster(args)
        if args.command == "verify":
            return _verify(args)
        if args.command == "generate":
            return _generate(args)
        if args.command == "lint":
            return _lint(args)
        if args.command == "diff":
            return _diff(args)
        return _trace(args)
    except PktverifyError as exc:
        print(f"pktverify: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except ValueError as exc:     # e.g. an interface the node does not have
        print(f"pktverify: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:       # the reader went away (pktverify generate | head): nothing more to say
        _quiet_stdout()
        return _EPIPE
    except OSError as exc:        # a capture or generated file that cannot be written
        print(one_line(f"pktverify: cannot write {exc.filename}: {exc.strerror}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pktverify: interrupted", file=sys.stderr)
        return 130
    except (RecursionError, MemoryError) as exc:
        print(f"pktverify: the input needs more {'nesting' if isinstance(exc, RecursionError) else 'memory'} "
              "than pktverify allows; it is refused (please report the input if it is a real node's)",
              file=sys.stderr)
        return 2
    except Exception as exc:      # a bug: one line, never a traceback (PKTVERIFY_DEBUG=1 shows it)
        if os.environ.get("PKTVERIFY_DEBUG"):
            raise
        where = exc.__traceback__
        while where is not None and where.tb_next is not None:
            where = where.tb_next
        at = f" at {os.path.basename(where.tb_frame.f_code.co_filename)}:{where.tb_lineno}" if where else ""
        print(one_line(f"pktverify: internal error (a bug in pktverify, please report it with the input): "
                       f"{type(exc).__name__}: {str(exc)[:200]}{at}; PKTVERIFY_DEBUG=1 shows the traceback"),
              file=sys.stderr)
        return 2


_PATH_OPTIONS = ("html", "pcap", "pcap_dir", "out", "cache_dir", "dumps", "cluster", "iptables", "addrs", "routes",
                 "ipsets", "rules", "node")


def _refuse_empty_paths(args) -> None:
    """An option given an empty value (``--html ''``, an unset shell variable) is an error, never
    taken as "not given": the user asked for something and would silently not get it."""
    for name in _PATH_OPTIONS:
        if getattr(args, name, None) == "":
            positional = name == "cluster" and args.command in ("verify", "generate")
            option = "CLUSTER" if positional else f"--{name.replace('_', '-')}"
            raise InvalidArgument(f"{option} is empty: give a " + ("name" if name == "node" else "path"))


def _cache(args):
    """The model cache asked for by --cache-dir or $PKTVERIFY_CACHE_DIR (None: parse every time)."""
    directory = args.cache_dir or os.environ.get("PKTVERIFY_CACHE_DIR")
    if not directory:
        return None
    from ..load.model_cache import ModelCache
    args.model_cache = ModelCache(directory)
    return args.model_cache


def _say_cache_warnings(args) -> None:
    """Print what the model cache ignored or could not write (a bad entry never stops a run)."""
    cache = getattr(args, "model_cache", None)
    for warning in cache.warnings if cache is not None else ():
        print(one_line(f"pktverify: warning: {warning}"), file=sys.stderr)


_NODE_ONLY = ("iptables", "addrs", "routes", "in_iface", "local", "src", "dst", "dport", "ipsets", "rules", "uid",
              "gid", "physdev_in", "physdev_out", "route_localnet")
_CLUSTER_ONLY = ("source", "target", "html", "dumps", "cluster_cidr", "service_cidr", "require_dumps", "pod_cidr")


def _given(args, names) -> list[str]:
    """The options of ``names`` the user set (as they are written on the command line)."""
    spelled = {"source": "from", "target": "to"}
    return ["--" + spelled.get(name, name).replace("_", "-") for name in names
            if getattr(args, name) not in (None, False, "", 0)]      # every such default is one of these


def _trace(args) -> int:
    if args.cluster:
        return _trace_cluster(args)
    stray = _given(args, _CLUSTER_ONLY)
    if stray:
        raise InvalidArgument(f"{', '.join(stray)} {'goes' if len(stray) == 1 else 'go'} with --cluster (a flow across a cluster); one node's trace "
                              "takes --iptables, --addrs, --routes")
    missing = [f"--{n}" for n in ("iptables", "addrs", "routes", "proto", "src", "dst") if not getattr(args, n)]
    if not (args.in_iface or args.local):
        missing.append("--in-iface or --local")
    if missing:
        raise InvalidArgument(f"the following arguments are required: {', '.join(missing)} (or --cluster CLUSTER "
                              "--from ... --to ... for a flow across a cluster; see 'pktverify trace --help')")
    from ..load.node import load_node
    from ..node_api import trace
    from ..packets import make_packet
    from ..report.trace_json import trace_to_json
    from ..report.trace_text import trace_to_text

    packet = make_packet(proto=args.proto, src=args.src, dst=args.dst, sport=args.sport, dport=args.dport)
    node = load_node(iptables=args.iptables, addrs=args.addrs, routes=args.routes,
                     lenient=args.lenient, route_localnet=args.route_localnet, ipsets=args.ipsets,
                     rules=args.rules, cache=_cache(args))
    if args.physdev_out and not args.physdev_in:
        raise InvalidArgument("--physdev-out needs --physdev-in (a bridged packet enters by a port)")
    if args.in_iface and args.in_iface not in node.interfaces:
        raise InvalidArgument(f"--in-iface {args.in_iface}: the node has no such interface "
                              f"(it has {', '.join(node.interfaces)})")
    result = trace(node, packet, in_iface=None if args.local else args.in_iface, max_branches=args.max_branches,
                   uid=args.uid, gid=args.gid, physdev_in=args.physdev_in, physdev_out=args.physdev_out, at=args.at)
    for warning in node.warnings:
        print(one_line(f"pktverify: warning: {warning}"), file=sys.stderr)
    _say_cache_warnings(args)
    out = trace_to_json(result, notes=node.warnings) if args.format == "json" else trace_to_text(result)
    if args.pcap:
        from ..node_api import trace_to_pcapng
        for path in trace_to_pcapng(node, result, args.pcap):
            print(f"pktverify: wrote {path}", file=sys.stderr)
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return 0


def _trace_cluster(args) -> int:
    """``trace --cluster``: one flow and its reply across the cluster, judged as verify judges it."""
    from ..cluster_api import load_cluster, trace_flow
    from ..report.flow_answer import flow_answer_to_html, flow_answer_to_json, flow_answer_to_text

    stray = _given(args, _NODE_ONLY)
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
    cluster = load_cluster(args.cluster, cluster_cidr=args.cluster_cidr, service_cidr=args.service_cidr,
                           dumps=args.dumps, require_dumps=args.require_dumps, pod_cidrs=args.pod_cidr)
    _print_warnings(cluster)
    report = trace_flow(cluster, source=args.source, to=args.target, proto=args.proto, sport=args.sport,
                        lenient=args.lenient, max_branches=args.max_branches, max_paths=args.max_paths, at=args.at,
                        cache=_cache(args))
    _say_cache_warnings(args)
    answer = report.answer
    captures: dict[int, list[str]] = {}
    if args.pcap:
        for n, path in report.write_pcaps(args.pcap):
            captures.setdefault(n, []).append(str(path))
            print(one_line(f"pktverify: wrote {path}"), file=sys.stderr)
    if args.html:
        from ..report.files import write_file
        write_file(args.html, flow_answer_to_html(answer, source=cluster.source).encode())
        print(one_line(f"pktverify: wrote {args.html}"), file=sys.stderr)
    out = flow_answer_to_json(answer, captures=captures) if args.format == "json" else \
        flow_answer_to_text(answer, captures=captures)
    sys.stdout.write(out)
    return 0 if answer.holds else 1


def _seconds(text: str) -> float:
    """An argparse type: a plain ASCII number of seconds > 0 (no 'inf', 'nan' or '1e9')."""
    from ..check.deadline import MAX_TIMEOUT
    whole, _, fraction = text.partition(".")
    if not (text.isascii() and whole.isdigit() and (fraction.isdigit() or not _) and len(text) <= 16):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (e.g. 30 or 2.5)")
    if not 0 < float(text) <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"{text} is out of range (allowed: more than 0, at most {MAX_TIMEOUT:,.0f})")
    return float(text)


def _verify(args) -> int:
    from ..check.deadline import bounded
    from ..cluster_api import load_cluster, verify

    if args.html:            # refuse a device, FIFO, link or folder before the work, not after it
        from ..report.files import refuse_special
        refuse_special(args.html)
    with bounded(args.timeout) as deadline:     # the whole run, from reading the cluster file on
        if deadline is not None:
            deadline.phase = "reading the cluster file"
        cluster = load_cluster(args.cluster, cluster_cidr=args.cluster_cidr, service_cidr=args.service_cidr,
                               dumps=args.dumps, require_dumps=args.require_dumps, pod_cidrs=args.pod_cidr)
        _print_warnings(cluster)
        folder = None
        if args.pcap_dir:        # refuse an unusable folder before the work, not after it
            from ..report.files import OutputDir
            folder = OutputDir(args.pcap_dir)
        cpus = len(os.sched_getaffinity(0))
        if args.scheduler and args.executor != "dask":
            raise InvalidArgument("--scheduler goes with --executor dask")
        report = verify(cluster, jobs=min(args.jobs, cpus) if args.jobs else cpus, lenient=args.lenient,
                        max_branches=args.max_branches, max_paths=args.max_paths, at=args.at, keep_flows=args.all,
                        progress=True, executor=args.executor, scheduler=args.scheduler, cache=_cache(args),
                        only=args.only, timeout=deadline)
    _say_cache_warnings(args)
    captures = None
    if folder is not None:
        from ..report.verify_pcaps import capture_names, write_verify_pcaps
        with folder:
            written = write_verify_pcaps(report.walker, report.results, folder, all_flows=args.all,
                                         split=args.pcap_split)
        captures = capture_names(report.results, written)       # named next to each example
        print(one_line(f"pktverify: wrote {len(written)} capture(s) to {args.pcap_dir}"), file=sys.stderr)
    shown = 0 if args.all else args.max_violations
    if args.html:
        from ..report.files import write_file
        write_file(args.html, report.to_html(max_violations=shown, captures=captures).encode())
        print(one_line(f"pktverify: wrote {args.html}"), file=sys.stderr)
    sys.stdout.write(report.to_json(captures=captures) if args.format == "json"
                     else report.to_text(max_violations=shown, captures=captures))
    return 0 if report.holds else 1


def _ids(text: str) -> list[str]:
    """An argparse type: comma-separated check ids or prefixes."""
    ids = [part.strip().upper() for part in text.split(",") if part.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("give check ids or prefixes, e.g. PV203 or PV2,PV301")
    return ids


def _lint(args) -> int:
    from ..check.lint import lint_files
    from ..report.lint_report import lint_github, lint_json, lint_sarif, lint_text_report

    if args.node and not args.cluster:
        raise InvalidArgument("--node goes with --cluster")
    cluster = None
    if args.cluster:
        from ..cluster_api import load_cluster
        if len(args.files) != 1:
            raise InvalidArgument("with --cluster, give one FILE: the proposed rules of --node")
        cluster = load_cluster(args.cluster, cluster_cidr=args.cluster_cidr, service_cidr=args.service_cidr,
                               require_dumps=args.require_dumps, pod_cidrs=args.pod_cidr)
        _print_warnings(cluster)
    result = lint_files(args.files, select_ids=args.select, ignore_ids=args.ignore, cluster=cluster,
                        node=args.node, lenient=args.lenient)
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


def _diff(args) -> int:
    from ..check.diff_run import run_diff
    from ..report.diff_report import diff_json, diff_text, inexact_line

    if (args.addrs is None) != (args.routes is None):
        raise InvalidArgument("give --addrs and --routes together (or neither)")
    if args.cluster and args.addrs:
        raise InvalidArgument("give either --addrs/--routes or --cluster/--node: the cluster says the node's addresses")
    if args.node and not args.cluster:
        raise InvalidArgument("--node goes with --cluster")
    result = run_diff(args.old, args.new, addrs=args.addrs, routes=args.routes, cluster=args.cluster,
                      node=args.node, lenient=args.lenient, max_cells=args.max_cells)
    sys.stdout.write(diff_json(result) if args.format == "json" else diff_text(result))
    if result.verdict == "inexact":          # a bound reached is never "same": exit 2, one line on stderr
        sys.stderr.write(inexact_line(result) + "\n")
        return 2
    return 0 if result.verdict == "same" else 1


def _generate(args) -> int:
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


def _selftest_kernel(args) -> int:
    from ..testing.kernel_campaign import run_campaign
    from ..testing.kernel_lab import KernelLab, lab_available

    reason = lab_available()
    if reason:
        raise InvalidArgument(f"selftest-kernel cannot build its network namespaces: {reason}")
    if args.examples < 1:
        raise InvalidArgument("--examples must be at least 1")
    with KernelLab() as lab:
        result = run_campaign(lab, args.examples, seed=args.seed)
    share = 100.0 * result.agreed / result.sent if result.sent else 0.0
    print(f"kernel agreement: {result.agreed}/{result.sent} probes ({share:.1f}%), seed {result.seed}")
    for res in result.divergences[:args.show]:
        print(f"\ndivergence: {res.explanation}\nreproduce with the lab's dumps:\n{res.probe.reproducer()}")
    return 0 if not result.divergences else 1


def _selftest_cluster(args) -> int:
    from ..testing.cluster_campaign import run_campaign_cli
    from ..testing.kernel_lab import lab_available

    reason = lab_available()
    if reason:
        raise InvalidArgument(f"selftest-cluster cannot build its network namespaces: {reason}")
    if args.drawn_only and (args.clusters or not args.examples):
        raise InvalidArgument("--drawn-only takes no CLUSTER and needs --examples N")
    return run_campaign_cli(args.clusters, examples=args.examples, seed=args.seed, minimum=args.connections,
                            drawn_only=args.drawn_only, flow=args.flow, out_dir=args.out, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
