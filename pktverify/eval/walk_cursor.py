"""A path in progress across the cluster (a cursor), and the records a walk ends in.

The walker (:mod:`.cluster_walk`) moves cursors node by node; cursors that reach the same
place with the same packet, connections and history are merged, as every merge of branches
is (:func:`.state.merge_equal`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..model.packet import Packet
from ..model.path import Endpoint, Hop, PathEnd, PathEndKind
from ..model.trace import Connection
from .conntrack import ConntrackTable
from .state import merge_equal

__all__ = ["Cursor", "merge_cursors", "conntrack_tables", "path_end"]


@dataclass
class Cursor:
    """Where one path is: the node and the interface the packet comes in by (None: sent by the
    node itself), the packet, its probability and what it has been through."""
    node: str
    in_iface: str | None
    packet: Packet
    probability: float
    hops: list[Hop] = field(default_factory=list)
    conns: list[tuple[str, Connection]] = field(default_factory=list)
    visits: int = 0
    exact: bool = True
    seen: frozenset = frozenset()     # (node, in_iface, packet with TTL 0) this path has been at
    physout: str = ""                 # a frame a pod sent on-link to a pod behind the same bridge (bridged)

    def here(self) -> tuple:
        """Where the packet is, as a loop check compares it (the TTL falls on every hop)."""
        return (self.node, self.in_iface, self.packet._replace(ttl=0))

    def identity(self) -> tuple:
        """Two cursors with equal identity have equal futures and equal histories but for hops."""
        return (self.node, self.in_iface, self.packet, self.exact, tuple(self.conns), self.seen, self.physout)


def path_end(cur: Cursor, kind: PathEndKind, pkt: Packet, reason: str, at: Endpoint | None = None) -> PathEnd:
    """The path of ``cur`` ending as ``kind`` (``pkt`` as it is there; ``at``: the receiver)."""
    return PathEnd(kind, cur.probability, pkt, tuple(cur.hops), at, reason, cur.exact, tuple(cur.conns))


def merge_cursors(cursors: list[Cursor]) -> list[Cursor]:
    """Cursors with equal identity merged: probabilities add, the hops of the most probable kept."""
    return merge_equal(cursors, Cursor.identity, lambda c: c.probability,
                       lambda c, p, _first: dataclasses.replace(c, probability=p))


def conntrack_tables(conns) -> dict[str, ConntrackTable]:
    """Each node's conntrack table holding the entries ``conns`` (node, connection)."""
    tables: dict[str, ConntrackTable] = {}
    for node, conn in conns:
        tables.setdefault(node, ConntrackTable()).add(conn)
    return tables
