"""What a trace produces: outcomes with probabilities, the steps that made them, and the
connection they create."""

from __future__ import annotations

import enum
from typing import NamedTuple

from .packet import Packet

__all__ = ["Connection", "NODE_VERDICTS", "NodeVerdict", "Outcome", "Step", "Trace"]


class NodeVerdict(enum.StrEnum):
    """How a packet ends on one node (:attr:`Outcome.verdict`). A ``str``: it equals, hashes,
    formats and writes to JSON as its value (``"drop"``), as the plain strings it replaced."""
    FORWARD = "forward"      # routed out of an interface
    LOCAL = "local"          # delivered to a local socket
    DROP = "drop"
    REJECT = "reject"        # dropped, and the node answers (ICMP error or TCP RST)


# A verdict's name -> its member: a dict lookup, ~10x cheaper than NodeVerdict(name) (once per outcome).
NODE_VERDICTS: dict[str, NodeVerdict] = {v.value: v for v in NodeVerdict}


class Step(NamedTuple):
    """One thing that happened to the packet: a rule that matched, a policy, a route, a NAT."""
    table: str | None
    chain: str | None
    rule_index: int | None
    line: int | None
    rule: str
    action: str
    source: str | None = None
    probability: float | None = None   # set on the step that took a probabilistic branch

    def to_json(self) -> dict:
        return {"table": self.table, "chain": self.chain, "rule_index": self.rule_index,
                "line": self.line, "rule": self.rule, "action": self.action}


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
    verdict: NodeVerdict
    probability: float
    exact: bool
    packet: Packet
    in_iface: str | None
    out_iface: str | None
    next_hop: int | None
    masquerade: bool
    steps: tuple[Step, ...]
    reason: str
    connection: Connection | None
    mark: int = 0
    random_ports: tuple = ()   # ((field, low, high), ...): ports drawn uniformly from a range
    answer: Packet | None = None   # a reject's answer as the node sends it (ICMP error or TCP RST)
    recent: frozenset = frozenset()   # nft dynamic-set entries (set tag, key) known after it: earlier ones and its own

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
