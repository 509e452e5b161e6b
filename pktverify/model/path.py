"""What a walk across a cluster produces: the ends a flow can reach, each with its hops.

A flow starts at an :class:`Endpoint` (a pod, a node, an off-cluster client) and ends in
one or more :class:`PathEnd` records (arrived somewhere, or failed and how), each with its
probability and the :class:`Hop` list that led there. They are plain records: the walk
that makes them lives in :mod:`pktverify.eval.cluster_walk`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .packet import Packet
from .trace import Connection

__all__ = ["Endpoint", "Hop", "PathEnd", "PathEndKind"]


class PathEndKind(enum.StrEnum):
    """How a flow ends (:attr:`PathEnd.kind`). A ``str``: it equals, hashes, formats and writes to
    JSON as its value (``"arrived"``), as the plain strings it replaced."""
    ARRIVED = "arrived"       # received by a pod, a node or the off-cluster client
    DROP = "drop"
    REJECT = "reject"         # refused, and the refusal reaches the sender
    BLACKHOLE = "blackhole"   # sent behind a bridge where no pod holds the address
    LOOP = "loop"             # a routing loop (or more node hops than MAX_NODE_HOPS)
    LEFT = "left"             # left the cluster network


class Hop:
    """One observation point: ``point`` names it (``pod:default/web-1:eth0``, ``node1:cbr0``,
    ``wire``, ...); ``packet`` is the packet as it is there; ``note`` says what happened.

    ``note`` may be given as a function: most walks are checked and thrown away, and
    describing every rule that acted costs more than the walk, so the text is made
    (once) only when someone reads it.
    """
    __slots__ = ("point", "packet", "_note", "outcome")

    def __init__(self, point: str, packet: Packet, note, outcome=None) -> None:
        self.point = point
        self.packet = packet
        self._note = note
        self.outcome = outcome        # the node trace's Outcome at this hop (its steps: which rules acted)

    @property
    def note(self) -> str:
        note = self._note
        if not isinstance(note, str):
            note = self._note = note()
        return note

    def __repr__(self) -> str:
        return f"Hop({self.point!r}, {self.packet.describe()!r}, {self.note!r})"

    def __reduce__(self):
        return Hop, (self.point, self.packet, self.note, self.outcome)   # the text, not the function that makes it


@dataclass(frozen=True)
class Endpoint:
    """Where a flow starts or ends: a pod, a node (its own stack), or an off-cluster client
    (``external``: ``name`` is its address, ``node`` the node its packets arrive at)."""
    kind: str                    # "pod" | "node" | "external"
    name: str                    # pod key ns/name, node name, or the client's address
    node: str                    # the node it is on (or enters by)

    def label(self) -> str:
        if self.kind == "external":
            return f"off-cluster client {self.name} (arriving at {self.node})"
        return f"{self.kind} {self.name}"

    def same_client(self, other: "Endpoint | None") -> bool:
        """``other`` is this endpoint (an off-cluster client, by its address, whichever node it used)."""
        if other is None:
            return False
        if self.kind == "external":
            return other.kind == "external" and other.name == self.name
        return other == self


@dataclass(frozen=True)
class PathEnd:
    """One way a flow ends, with its probability.

    ``kind``: ``arrived`` (``at`` is the receiver, ``packet`` as received),
    or a failure: ``drop``, ``reject``, ``blackhole``, ``loop``, ``left``
    (left the cluster network). ``conns`` are the conntrack entries each node
    created, for the reply; ``proxied`` is non-empty when a userspace proxy relayed it.
    """
    kind: PathEndKind
    probability: float
    packet: Packet
    hops: tuple[Hop, ...]
    at: Endpoint | None = None
    reason: str = ""
    exact: bool = True
    conns: tuple[tuple[str, Connection], ...] = ()
    proxied: tuple = ()   # ((node, client leg as delivered to the proxy, its conns, the proxy's SYN, its end), ...)

    def answers(self, client: Endpoint, sent: Packet) -> bool:
        """For a reply: it reached ``client`` exactly as the reverse of what the client ``sent``."""
        got = (self.packet.src, self.packet.sport, self.packet.dst, self.packet.dport)
        return self.kind == "arrived" and client.same_client(self.at) and got == (sent.dst, sent.dport, sent.src,
                                                                                 sent.sport)
