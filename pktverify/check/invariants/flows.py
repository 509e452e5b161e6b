"""The probe flows the invariants send, and their classes.

The fixed ports every probe uses, walking a flow (every end, each with its replies, kept for
captures), a violation with its counterexample path, and the per-class bookkeeping: the pods
no test tells apart, and a representative flow counted for its whole class.
"""

from __future__ import annotations

from dataclasses import replace

from ...eval.cluster_walk import ClusterWalker
from ...model.addresses import format_network
from ...model.cluster import ClusterSpec, PodSpec
from ...model.kube_proxy import PROBE_CLIENT_SPORT, PROXY_SPORT
from ...model.packet import Packet
from ...model.path import Endpoint, PathEnd
from .results import InvariantResult, Violation

__all__ = ["CLIENT_SPORT", "PROBE_PORT", "KUBELET_PORT", "FLOW_PORTS", "pod_groups", "as_class", "flow_label",
           "short_list", "cidr", "pod_port", "walk_flow", "flow_violation"]

CLIENT_SPORT = PROBE_CLIENT_SPORT     # every probe client's source port (userspace proxies never listen on it)
PROBE_PORT = 8080          # destination port for no-nat and routing probes when a pod declares none
KUBELET_PORT = 10250
# The fixed ports the checks' flows use (besides the cluster's own): see NodeSymmetry.
FLOW_PORTS = frozenset({CLIENT_SPORT, PROBE_PORT, KUBELET_PORT, PROXY_SPORT})


def pod_groups(cluster: ClusterSpec, atom, *, by_port: bool) -> list[list[PodSpec]]:
    """Pods that no test can tell apart: same node, same address atom (and same probe port).
    ``atom`` maps an address to its class (None: every pod on its own)."""
    if atom is None:
        return [[p] for p in cluster.pods]
    groups: dict[tuple, list[PodSpec]] = {}
    for p in cluster.pods:
        key = (p.node, atom(p.ip), pod_port(p) if by_port else 0)
        groups.setdefault(key, []).append(p)
    return list(groups.values())


def as_class(res: InvariantResult, start: int, weight: int, members: tuple) -> None:
    """Count a representative flow for its whole class; say so on its violations."""
    res.checked += weight - 1
    if weight == 1:
        return
    for i in range(start, len(res.violations)):
        v = res.violations[i]
        res.violations[i] = replace(v, message=f"{v.message} (this flow stands for {weight} equivalent flows)",
                                    covers=weight, members=members)


def _path(ends: list[PathEnd] | PathEnd) -> tuple[str, ...]:
    end = ends if isinstance(ends, PathEnd) else ends[0]
    return tuple(f"{h.point}: {h.packet.describe()} — {h.note}" for h in end.hops)


def flow_label(client: Endpoint, pkt: Packet) -> str:
    """A flow as messages name it: the client, then the packet it sends."""
    return f"{client.label()}: {pkt.describe()}"


def short_list(text: str, limit: int = 120) -> str:
    """``text`` cut to ``limit`` characters (a list of many endpoints in one message)."""
    return text if len(text) <= limit else text[:limit] + "…"


def cidr(n: tuple[int, int]) -> str:
    """A (network, mask) pair as CIDR text."""
    return format_network(*n)


def pod_port(pod: PodSpec) -> int:
    """The port a probe to ``pod`` goes to: its first declared one, else :data:`PROBE_PORT`."""
    return pod.ports[0] if pod.ports else PROBE_PORT


def walk_flow(walker: ClusterWalker, res: InvariantResult, client: Endpoint,
              pkt: Packet, *, replies: bool = True) -> list[tuple[PathEnd, tuple[PathEnd, ...]]]:
    """Every end of the flow, each with its replies (arrived ends only), kept for captures."""
    res.checked += 1
    out = [(end, tuple(walker.reply(end, client)) if replies and end.kind == "arrived" else ())
           for end in walker.walk(client, pkt)]
    res.keep(flow_label(client, pkt), client, out)
    return out


def flow_violation(message: str, client: Endpoint, pkt: Packet, end: PathEnd,
                   back: PathEnd | None = None) -> Violation:
    """A violation with its counterexample: the flow, and the path of ``end`` (and of ``back``, the reply)."""
    path = _path(end) + (_path(back) if back is not None else ())
    return Violation(message, flow_label(client, pkt), path, client, end, (back,) if back is not None else (),
                     packet=pkt)
