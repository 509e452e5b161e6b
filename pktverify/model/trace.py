"""What a trace produces: outcomes with probabilities, and the connection they create."""

from __future__ import annotations

from typing import NamedTuple

from .packet import Packet

__all__ = ["Connection", "Outcome", "Trace", "VERDICTS"]

VERDICTS = ("forward", "local", "drop", "reject")


class Connection(NamedTuple):
    """A conntrack entry: the tuple as it arrived and the tuple a reply must carry.

    ``reply`` is what the responder sends (the reverse of the packet after all
    NAT); conntrack maps it back to ``original.reversed()`` for the client.
    """
    original: Packet
    reply: Packet
    ctmark: int = 0          # the connection's mark when its first packet was accepted (CONNMARK)

    @property
    def dnat(self) -> bool:
        return (self.original.dst, self.original.dport) != (self.reply.src, self.reply.sport)

    @property
    def snat(self) -> bool:
        return (self.original.src, self.original.sport) != (self.reply.dst, self.reply.dport)

    def to_json(self) -> dict:
        return {"original": self.original.to_json(), "reply": self.reply.to_json()}


class Outcome(NamedTuple):
    """One way a packet can end on a node, and how likely it is.

    ``packet`` is the packet as it leaves (forward), as the local socket sees it
    (local), or as it was when dropped/rejected. ``exact`` is False when an
    unknown rule (``--lenient``) or a random port choice was involved; then
    ``probability`` is an upper bound.
    """
    verdict: str
    probability: float
    exact: bool
    packet: Packet
    in_iface: str | None
    out_iface: str | None
    next_hop: int | None
    masquerade: bool
    steps: tuple
    reason: str
    connection: Connection | None
    mark: int = 0
    random_ports: tuple = ()   # ((field, low, high), ...): ports drawn uniformly from a range
    answer: Packet | None = None   # a reject's answer as the node sends it (ICMP error or TCP RST)

    def key(self) -> tuple:
        """What makes two outcomes the same for a user (steps aside)."""
        return (self.verdict, self.exact, self.packet, self.out_iface, self.next_hop,
                self.masquerade, self.reason, self.random_ports)


class Trace(NamedTuple):
    """All outcomes of one packet on one node, most probable first, equal ones merged."""
    packet: Packet
    in_iface: str | None
    outcomes: tuple[Outcome, ...]
    node: str = ""
