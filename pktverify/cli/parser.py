"""The CLI's argument parser: one small builder per command, the options several commands share.

The help texts (``pktverify X --help``) are part of the interface: a builder adds its options in
the order ``--help`` lists them. Usage errors exit 2 with one line, as every bad input does.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import one_line
from ..limits import MAX_BRANCHES, MAX_PATHS
from .values import PORT, ids, instant, number, pod_cidr, seconds

__all__ = ["build_parser", "dump_options", "kubectl_options"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:   # argparse's usage errors exit 2 too, on one line
        print(one_line(f"pktverify: error: {message} (see '{self.prog} --help')"), file=sys.stderr)
        sys.exit(2)


_CACHE_HELP = ("keep parsed rule sets in DIR, keyed by the dump's content (faster re-runs, e.g. in CI; DIR must be "
               "yours alone; default: $PKTVERIFY_CACHE_DIR, else no cache)")


def _version() -> str:
    """The installed distribution's version (what pip installed), else the package's own."""
    from importlib import metadata
    try:
        return metadata.version("pktverify")
    except metadata.PackageNotFoundError:
        from ..version import __version__
        return __version__


def build_parser() -> argparse.ArgumentParser:
    """The ``pktverify`` parser: ``--version`` and one subcommand per command."""
    parser = _Parser(prog="pktverify", description="Packet-level verifier for Kubernetes networking.")
    parser.add_argument("--version", action="version", version=f"pktverify {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_trace, _verify, _generate, _lint, _diff, _selftest_kernel, _selftest_cluster):
        add(sub)
    return parser


def kubectl_options(p: argparse.ArgumentParser) -> None:
    """The options kubectl JSON input needs (verify, trace --cluster)."""
    p.add_argument("--dumps", metavar="DIR", help="kubectl JSON input: the per-node dumps, DIR/<node>/"
                                                  "{iptables-save.txt,ip-addr.json,ip-route.json} (default: its folder)")
    p.add_argument("--cluster-cidr", metavar="CIDR", help="kubectl JSON input: the pod network (--cluster-cidr)")
    p.add_argument("--service-cidr", metavar="CIDR", help="kubectl JSON input: --service-cluster-ip-range")


def dump_options(p: argparse.ArgumentParser) -> None:
    """kubectl JSON input's node dumps (verify, lint --cluster, trace --cluster)."""
    p.add_argument("--require-dumps", action="store_true",
                   help="kubectl JSON input: a node without its iptables-save.txt, ip-addr.json and ip-route.json is "
                        "an error (default: generated, and said so)")
    p.add_argument("--pod-cidr", type=pod_cidr, action="append", metavar="NODE=CIDR",
                   help="kubectl JSON input: the pod CIDR of a node whose Node object has no spec.podCIDR (Calico, "
                        "Cilium IPAM) and whose dumps do not show it (repeatable)")


def _trace(sub: argparse._SubParsersAction) -> None:
    """``trace``: one packet on one node, or one flow across a cluster (``--cluster``)."""
    t = sub.add_parser("trace", help="trace one packet through one node's netfilter and FIB, or one flow and its "
                                     "reply across a cluster (--cluster)",
                       usage="pktverify trace [--iptables FILE] [--nft FILE] --addrs FILE --routes FILE (--in-iface "
                             "IFACE | --local) --proto P --src IP --dst IP [options]\n       pktverify trace --cluster "
                             "CLUSTER --from "
                             "NS/POD|NODE|outside@NODE --to NS/SVC[:PORT]|NS/POD:PORT|IP:PORT [options]")
    t.add_argument("--iptables", metavar="FILE", help="iptables-save output")
    t.add_argument("--nft", metavar="FILE", help="nft -j list ruleset (or nft list ruleset, an nft -f script): the "
                                                 "node's nftables rules, alone or beside --iptables (a mixed node)")
    t.add_argument("--addrs", metavar="FILE", help="ip -j addr show / ip -o addr show")
    t.add_argument("--routes", metavar="FILE", help="ip -j route / ip route / route add lines")
    where = t.add_mutually_exclusive_group()
    where.add_argument("--in-iface", metavar="IFACE", help="the packet arrives on this interface")
    where.add_argument("--local", action="store_true", help="the packet is generated on the node")
    t.add_argument("--proto", type=str.lower, choices=["tcp", "udp", "sctp", "icmp"],
                   help="the protocol (any case: TCP as kubectl writes it); with --cluster, the service port's")
    t.add_argument("--src", metavar="IP")
    t.add_argument("--sport", type=PORT, metavar="N")
    t.add_argument("--dst", metavar="IP")
    t.add_argument("--cluster", metavar="CLUSTER",
                   help="trace one flow and its reply across this cluster (YAML, its folder, or kubectl JSON)")
    t.add_argument("--from", dest="source", metavar="NS/POD|NODE|outside@NODE",
                   help="with --cluster: the client (a pod, a node's own stack, or an off-cluster client arriving "
                        "at NODE)")
    t.add_argument("--to", dest="target", metavar="NS/SVC[:PORT]|NS/POD:PORT|IP:PORT",
                   help="with --cluster: a service port (number or name), a pod's port, or an address and port")
    t.add_argument("--html", metavar="FILE", help="with --cluster: also write the answer as one HTML page")
    t.add_argument("--max-paths", type=number(1), default=MAX_PATHS, metavar="N",
                   help=f"with --cluster: most paths the flow may take across the cluster (default {MAX_PATHS:,})")
    kubectl_options(t)
    dump_options(t)
    t.add_argument("--dport", type=PORT, metavar="N")
    t.add_argument("--format", choices=["text", "json"], default="text")
    t.add_argument("--lenient", action="store_true",
                   help="unknown matches/targets become may-match; affected outcomes are inexact")
    t.add_argument("--pcap", metavar="FILE",
                   help="also write the flow (packet, reply, ACK) as pcapng; several outcomes: FILE-1, FILE-2, ...")
    t.add_argument("--ipsets", metavar="FILE", help="ipset save output, for -m set rules")
    t.add_argument("--rules", metavar="FILE", help="ip -j rule show / ip rule show: policy routing (fwmark, tables)")
    t.add_argument("--cache-dir", metavar="DIR", help=_CACHE_HELP)
    t.add_argument("--uid", type=number(0, 2**32 - 1), default=0, metavar="N",
                   help="--local: the sending socket's owner uid for -m owner (default 0)")
    t.add_argument("--gid", type=number(0, 2**32 - 1), default=0, metavar="N",
                   help="--local: the sending socket's group for -m owner (default 0)")
    t.add_argument("--physdev-in", default="", metavar="PORT",
                   help="the packet was bridged in from this bridge port (-m physdev; --in-iface is the bridge)")
    t.add_argument("--physdev-out", default="", metavar="PORT",
                   help="with --physdev-in: the bridge port it leaves by")
    t.add_argument("--at", type=instant, metavar="ISO-TIME",
                   help="when the packet is sent, for -m time (e.g. 2026-11-27T14:00; UTC unless an offset is given)")
    t.add_argument("--max-branches", type=number(1), default=MAX_BRANCHES, metavar="N",
                   help=f"most distinct branches one packet may take on the node (default {MAX_BRANCHES:,})")
    t.add_argument("--route-localnet", action="store_true",
                   help="the node has net.ipv4.conf.all.route_localnet=1 (kube-proxy sets it for localhost NodePorts)")


def _verify(sub: argparse._SubParsersAction) -> None:
    """``verify``: a cluster against the Kubernetes network model."""
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
    v.add_argument("--max-violations", type=number(0), default=2, metavar="N",
                   help="examples shown per cause in the text and HTML reports (default 2; 0: every one)")
    v.add_argument("--html", metavar="FILE",
                   help="also write one self-contained HTML page: the cluster at a glance and each cause's "
                        "path drawn hop by hop")
    v.add_argument("--jobs", type=number(1), metavar="N",
                   help="worker processes for large clusters (default: one per CPU; more than the CPUs is "
                        "clamped to the CPUs)")
    v.add_argument("--executor", choices=["local", "dask"], default="local",
                   help="where the flow checks run: local processes (--jobs, default) or a Dask cluster "
                        "(--scheduler; pip install 'pktverify[distributed]')")
    v.add_argument("--scheduler", metavar="ADDRESS", help="with --executor dask: the scheduler, tcp://HOST:8786")
    v.add_argument("--timeout", type=seconds, metavar="SECONDS",
                   help="bound the whole run (dumps, connecting, every check); past it, exit 2 saying how far it "
                        "got, and no report (default: none; connecting to a Dask scheduler is bounded by 10 s)")
    v.add_argument("--max-branches", type=number(1), default=MAX_BRANCHES, metavar="N",
                   help=f"most distinct branches one packet may take on one node (default {MAX_BRANCHES:,})")
    v.add_argument("--at", type=instant, metavar="ISO-TIME",
                   help="when the flows are sent, for -m time rules (UTC unless an offset is given)")
    v.add_argument("--max-paths", type=number(1), default=MAX_PATHS, metavar="N",
                   help=f"most paths one flow may take across the cluster (default {MAX_PATHS:,})")
    v.add_argument("--only", action="append", metavar="NS/SVC",
                   help="narrow the report to this service's reachability (every client, door, endpoint and reply;"
                        " repeatable); for one flow, see trace --cluster")
    v.add_argument("--compare-mode", action="store_true",
                   help="instead of verifying: on each node, diff the rules kube-proxy has in the cluster's mode "
                        "against those it writes in the other (iptables <-> nftables), every class of packets whose "
                        "fate changes, the documented mode differences labelled deliberate (exit 0: none or only "
                        "deliberate ones, 1: others, 2: not decided whole)")
    kubectl_options(v)
    dump_options(v)


def _generate(sub: argparse._SubParsersAction) -> None:
    """``generate``: the dumps each node of a cluster would have."""
    g = sub.add_parser("generate", help="write the dumps each node of a cluster would have (iptables-save, ip addr,"
                                        " ip route)")
    g.add_argument("cluster", metavar="CLUSTER")
    g.add_argument("--out", metavar="DIR", help="write DIR/<node>/iptables-save.txt, ip-addr.json and ip-route.json,"
                                                " the node folder layout (default: print to stdout)")


def _lint(sub: argparse._SubParsersAction) -> None:
    """``lint``: proposed iptables-save files, alone or as one node of a cluster."""
    lint = sub.add_parser("lint", help="check proposed iptables-save files: structure, dead and shadowed rules, "
                                       "Kubernetes semantics; with --cluster, the invariants too")
    lint.add_argument("files", nargs="*", metavar="FILE",
                      help="iptables-save files (what iptables-restore would load), or nft rulesets (told by content)")
    lint.add_argument("--nft", action="append", default=[], metavar="FILE",
                      help="an nftables ruleset (nft -j list ruleset, nft list ruleset, or an nft -f script), "
                           "read as nft whatever its content; repeatable")
    lint.add_argument("--cluster", metavar="CLUSTER",
                      help="verify this cluster with FILE (one file) as --node's rules; a FILE that does not "
                           "load verifies nothing and fails (exit 1)")
    lint.add_argument("--node", metavar="NAME", help="with --cluster: the node FILE is for (needed with several nodes)")
    lint.add_argument("--format", choices=["text", "json", "sarif", "github"], default="text")
    lint.add_argument("--select", type=ids, metavar="IDS", help="only these check ids or prefixes (PV2,PV301)")
    lint.add_argument("--ignore", type=ids, metavar="IDS", help="not these check ids or prefixes")
    lint.add_argument("--fail-on", choices=["error", "warning", "info"], default="error",
                      help="exit 1 when a finding is at least this severe (default error)")
    lint.add_argument("--lenient", action="store_true", help="unknown matches/targets become may-match, not PV100")
    lint.add_argument("--cluster-cidr", metavar="CIDR", help="with a kubectl JSON --cluster: the pod network")
    lint.add_argument("--service-cidr", metavar="CIDR", help="with a kubectl JSON --cluster: the service network")
    dump_options(lint)


def _diff(sub: argparse._SubParsersAction) -> None:
    """``diff``: the packets two rule sets of one node treat differently."""
    d = sub.add_parser("diff", help="every class of packets two rule sets of one node treat differently (exact)")
    d.add_argument("old", metavar="OLD", help="the rules now: an iptables-save or an nft ruleset (told by content)")
    d.add_argument("new", metavar="NEW", help="the proposed rules: an iptables-save or an nft ruleset (told by content)")
    d.add_argument("--nft", action="store_true", help="read OLD and NEW as nft rulesets whatever their content")
    d.add_argument("--iptables", metavar="FILE", help="a mixed node: its iptables-save, unchanged beside nft OLD and NEW")
    d.add_argument("--nft-beside", metavar="FILE",
                   help="a mixed node: its nft ruleset, unchanged beside iptables-save OLD and NEW")
    d.add_argument("--addrs", metavar="FILE", help="the node's ip addr (default: one interface per name the rules use)")
    d.add_argument("--routes", metavar="FILE", help="the node's ip route (with --addrs)")
    d.add_argument("--cluster", metavar="CLUSTER", help="the node is --node of this cluster; also compare the invariants")
    d.add_argument("--node", metavar="NAME", help="with --cluster: the node OLD and NEW are for")
    d.add_argument("--format", choices=["text", "json"], default="text")
    d.add_argument("--lenient", action="store_true", help="unknown matches/targets become may-match")
    d.add_argument("--max-cells", type=number(1), default=200_000, metavar="N",
                   help="compare at most N cells (default 200000); past it, or past the work bound, the verdict "
                        "is 'inexact' (exit 2) unless a difference was already found")


def _selftest_kernel(sub: argparse._SubParsersAction) -> None:
    """``selftest-kernel``: pktverify against this machine's kernel."""
    k = sub.add_parser("selftest-kernel",
                       help="compare pktverify with this machine's kernel on random rule sets (needs root)")
    k.add_argument("--examples", type=number(1, 100_000), default=50, metavar="N",
                   help="random probes to send (default 50)")
    k.add_argument("--seed", type=number(0), metavar="S", help="replay the campaign of this seed")
    k.add_argument("--show", type=number(0), default=3, metavar="K", help="divergences to print (default 3)")
    k.add_argument("--nft", action="store_true",
                   help="draw nftables rulesets (some beside an iptables text) instead of iptables ones")


def _selftest_cluster(sub: argparse._SubParsersAction) -> None:
    """``selftest-cluster``: clusters built in network namespaces."""
    c = sub.add_parser("selftest-cluster",
                       help="build clusters in network namespaces and send every flow verify checks (needs root)")
    c.add_argument("clusters", nargs="*", metavar="CLUSTER",
                   help="cluster files (default: every example under rules/ the lab can emulate)")
    c.add_argument("--examples", type=number(0, 10_000), default=0, metavar="N",
                   help="also N clusters drawn with planted faults (default 0)")
    c.add_argument("--seed", type=number(0), default=2026, metavar="S", help="seed of the drawn clusters (default 2026)")
    c.add_argument("--connections", type=number(1, 1000), default=10, metavar="K",
                   help="connections per flow with one promised outcome (default 10; more where several are)")
    c.add_argument("--drawn-only", action="store_true", help="only the drawn clusters, not the examples")
    c.add_argument("--flow", default="", metavar="TEXT", help="only flows whose label contains TEXT")
    c.add_argument("--out", metavar="DIR", help="where drawn clusters that disagree are written "
                                                "(default cluster-lab-seed-S)")
    c.add_argument("-v", "--verbose", action="store_true", help="print every flow, not only disagreements")
