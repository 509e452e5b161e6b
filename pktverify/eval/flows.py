"""A traced flow as packets at observation points: the first packet, its reply, the handshake's ACK.

Captures (:mod:`pktverify.report.pcap`) draw these; this module decides what
the packets are, by walking each direction through the evaluator with the
conntrack state the first packet created — so the reply is un-NATed and the
ACK follows the established connection, exactly as the trace says.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model.packet import TCP, Packet
from ..model.path import Endpoint, Hop, PathEnd
from ..model.trace import Trace
from .cluster_walk import ClusterWalker
from .conntrack import ConntrackTable
from .node_trace import NodeTracer
from .walk_notes import rules_summary

__all__ = ["Flow", "node_flows", "cluster_flow"]

_ACK = 0x10


@dataclass(frozen=True)
class Flow:
    """Packets in the order they happen; ``title`` and ``probability`` describe the outcome."""
    title: str
    probability: float
    hops: tuple[Hop, ...]


def node_flows(tracer: NodeTracer, trace: Trace) -> list[Flow]:
    """One flow per outcome of a single-node trace (the node's interfaces are the points)."""
    node = tracer.node.name
    start = f"{node}:{trace.in_iface}" if trace.in_iface else f"{node}:local"
    flows = []
    for n, o in enumerate(trace.outcomes, 1):
        hops = [Hop(start, trace.packet, f"arrives on {trace.in_iface}" if trace.in_iface else "sent by the node")]
        where = f"{node}:{o.out_iface}" if o.verdict == "forward" else f"{node}:local"
        title = f"outcome {n}/{len(trace.outcomes)} (p={o.probability:.6g}): {o.verdict}"
        if o.verdict not in ("forward", "local"):
            hops[-1] = Hop(start, trace.packet, f"{hops[-1].note}; {o.verdict.upper()}: {o.reason}; {rules_summary(o)}")
            if o.answer is not None:      # what the client gets back: the ICMP error or the RST
                hops.append(Hop(start, o.answer, f"the node answers the rejected packet: {o.answer.describe()}"))
            flows.append(Flow(title, o.probability, tuple(hops)))
            continue
        hops.append(Hop(where, o.packet, f"{o.verdict} (p={o.probability:.6g}); {rules_summary(o)}"))
        table = ConntrackTable()
        table.add(o.connection)
        reply = o.packet.reversed()
        back = tracer.trace(reply, in_iface=o.out_iface if o.verdict == "forward" else None, conntrack=table)
        for r in back.outcomes[:1]:
            hops.append(Hop(where, reply, "the reply"))
            if r.verdict in ("forward", "local"):
                hops.append(Hop(start, r.packet, f"reply {r.verdict}; {rules_summary(r)}"))
                if trace.packet.proto == TCP:
                    ack = trace.packet._replace(tcp_flags=_ACK)
                    fwd = tracer.trace(ack, in_iface=trace.in_iface, conntrack=table).outcomes[0]
                    hops.append(Hop(start, ack, "the handshake's ACK"))
                    hops.append(Hop(where, fwd.packet, f"ACK {fwd.verdict}; {rules_summary(fwd)}"))
            else:
                hops.append(Hop(where, r.packet, f"reply {r.verdict.upper()}: {r.reason}"))
        flows.append(Flow(title, o.probability, tuple(hops)))
    return flows


def cluster_flow(walker: ClusterWalker, client: Endpoint, end: PathEnd, *, title: str = "",
                 replies: list[PathEnd] | None = None, comment: str = "") -> Flow:
    """The hops of a cluster path, its reply path and (TCP) the ACK, for one outcome."""
    hops = list(end.hops)
    if comment and hops:
        last = hops[-1]
        hops[-1] = Hop(last.point, last.packet, f"{last.note}; {comment}")
    if end.kind == "reject":
        hops.extend(_rejected(walker, end))
    if end.kind == "arrived":
        backs = replies if replies is not None else walker.reply(end, client)
        if backs:
            back = backs[0]
            hops.extend(back.hops)
            first = end.hops[0].packet
            # The client completes the handshake only when the SYN-ACK is the one it expects.
            if back.answers(client, first) and first.proto == TCP:
                if not end.proxied:
                    hops.extend(_established(walker, client, end.conns, first._replace(tcp_flags=_ACK)))
                else:
                    # Both connections complete: the client's to the proxy, the proxy's to the backend.
                    node, _delivered, client_conns, proxy_syn, _leg_end = end.proxied[0]
                    hops.extend(_established(walker, client, client_conns, first._replace(tcp_flags=_ACK)))
                    proxy = Endpoint("node", node, node)
                    hops.extend(_established(walker, proxy, end.conns, proxy_syn._replace(tcp_flags=_ACK)))
    return Flow(title or f"{client.label()} → {end.kind}", end.probability, tuple(hops))


def _rejected(walker: ClusterWalker, end: PathEnd) -> list[Hop]:
    """The answer a REJECT (or the kernel's own ICMP error) sends back, from the node that
    rejected, along the connection's conntrack state to the client: what the client sees."""
    last = end.hops[-1] if end.hops else None
    answer = getattr(last.outcome, "answer", None) if last is not None else None
    if answer is None:
        return []
    node = last.point.split(":", 1)[0]
    if node not in walker.specs:
        return []
    ends = walker.follow(Endpoint("node", node, node), answer, end.conns)
    hops = list(ends[0].hops) if ends else []
    if hops:
        first = hops[0]
        hops[0] = Hop(first.point, first.packet, f"the answer to the rejected packet: {answer.describe()}")
    return hops


def _established(walker: ClusterWalker, sender: Endpoint, conns, ack: Packet) -> list[Hop]:
    ends = walker.follow(sender, ack, conns)
    return list(ends[0].hops) if ends else []
