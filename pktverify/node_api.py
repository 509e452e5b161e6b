"""The library entry points behind ``pktverify trace``."""

from __future__ import annotations

from pathlib import Path

from .eval.conntrack import ConntrackTable
from .eval.node_trace import NodeTracer
from .limits import MAX_BRANCHES
from .load.node import load_node
from .model.node import NodeState
from .model.packet import Packet
from .model.trace import Trace
from .packets import packet_from_scapy

__all__ = ["trace", "trace_packet", "trace_to_pcapng", "load_node", "NodeTracer", "ConntrackTable"]

_TRACERS: dict[int, NodeTracer] = {}
_TRACER_CACHE_SIZE = 8


def _tracer(node: NodeState) -> NodeTracer:
    """The compiled tracer for ``node`` (compiling a 100k-rule node takes ~0.5 s: keep a few)."""
    tracer = _TRACERS.get(id(node))
    if tracer is None or tracer.node is not node:
        if len(_TRACERS) >= _TRACER_CACHE_SIZE:
            del _TRACERS[next(iter(_TRACERS))]      # the oldest
        tracer = _TRACERS[id(node)] = NodeTracer(node)
    return tracer


def trace(node: NodeState, packet: Packet, *, in_iface: str | None = None,
          conntrack: ConntrackTable | None = None, max_branches: int = MAX_BRANCHES, uid: int = 0, gid: int = 0,
          physdev_in: str = "", physdev_out: str = "", at: int | None = None) -> Trace:
    """Return every outcome of ``packet`` on ``node``.

    ``in_iface`` is the interface it arrives on; None means generated on the
    node itself. ``conntrack`` holds known connections (see :class:`ConntrackTable`).
    ``max_branches`` bounds the distinct branches of the walk (LimitExceeded past it).
    ``uid``/``gid``: the owner of a locally generated packet's socket (``-m owner``);
    ``physdev_in``/``physdev_out``: the bridge ports of a bridged packet (``-m physdev``);
    ``at``: the time (UTC epoch seconds) for ``-m time``; None: it may match.

    >>> node = load_node(iptables="rules/node/iptables-save.txt", addrs="rules/node/ip-addr.json",
    ...                  routes="rules/node/ip-route.txt")                        # doctest: +SKIP
    >>> trace(node, packet, in_iface="cbr0").outcomes[0].verdict                  # doctest: +SKIP
    'forward'
    """
    tracer = _tracer(node) if max_branches == MAX_BRANCHES else NodeTracer(node, max_branches=max_branches)
    return tracer.trace(packet, in_iface=in_iface, conntrack=conntrack, uid=uid, gid=gid,
                        physdev_in=physdev_in, physdev_out=physdev_out, at=at)


def trace_packet(node: NodeState, pkt, *, in_iface: str | None = None,
                 conntrack: ConntrackTable | None = None) -> Trace:
    """Like :func:`trace`, for a scapy packet (``IP(src=..., dst=...)/TCP(dport=80)``).

    >>> from scapy.layers.inet import IP, TCP                                    # doctest: +SKIP
    >>> trace_packet(node, IP(src="10.0.0.2", dst="10.96.0.10")/TCP(sport=40000, dport=80),
    ...              in_iface="cbr0")                                              # doctest: +SKIP
    """
    return trace(node, packet_from_scapy(pkt), in_iface=in_iface, conntrack=conntrack)


def trace_to_pcapng(node: NodeState, result: Trace, path: str | Path) -> list[Path]:
    """Write ``result`` (from :func:`trace`) as pcapng: the packet at each interface, its reply
    and, for TCP, the handshake's ACK. One file per outcome when there are several
    (``name-1.pcapng``, ``name-2.pcapng``, ... with the probability in the comments)."""
    from .errors import OutputError
    from .eval.flows import node_flows
    from .report.files import refuse_special
    from .report.pcap import write_pcapng

    path = Path(path)
    refuse_special(path)
    if not path.name or str(path).endswith("/"):
        raise OutputError(f"refusing to write {str(path)!r}: give a file name, not a folder")
    flows = node_flows(_tracer(node), result)
    if len(flows) == 1:
        return [write_pcapng(flows, path)]
    return [write_pcapng([flow], path.with_name(f"{path.stem}-{n}{path.suffix or '.pcapng'}"))
            for n, flow in enumerate(flows, 1)]
