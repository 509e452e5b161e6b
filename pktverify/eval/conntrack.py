"""Conntrack as the evaluator needs it: NEW vs known connections, and un-NAT of replies.

The nat table sees only a connection's first packet; later packets of the
same connection (either direction) are translated from the stored binding.
"""

from __future__ import annotations

from ..model.packet import ICMP, TCP, Packet
from ..model.trace import Connection
from .state import CT_DNAT, CT_ESTABLISHED, CT_INVALID, CT_NEW, CT_SNAT

__all__ = ["ConntrackTable", "initial_ctbits", "translate_known", "translate_related", "ICMP_ERROR_TYPES"]

_VALID_TCP_FLAGS = {  # tcp_valid_flags in nf_conntrack_proto_tcp.c (FIN, SYN, RST, ACK, URG bits)
    0x02, 0x12, 0x10, 0x11, 0x14, 0x04, 0x18, 0x19, 0x1C, 0x30, 0x31, 0x38, 0x39,
}
_NEW_ICMP_TYPES = {8, 13, 15, 17}   # echo, timestamp, info, address-mask requests
# Errors that carry the header of the packet they answer: conntrack finds that packet's connection
# by it and marks the error RELATED (unreachable, source quench, redirect, time exceeded, parameter).
ICMP_ERROR_TYPES = frozenset({3, 4, 5, 11, 12})


def _key(p: Packet) -> tuple:
    return (p.proto, p.src, p.sport, p.dst, p.dport)


def initial_ctbits(pkt: Packet) -> int:
    """The conntrack state of a packet that belongs to no known connection."""
    if pkt.proto == TCP:
        flags = pkt.tcp_flags & 0x37
        if flags not in _VALID_TCP_FLAGS or flags & 0x04:   # RST never creates a connection
            return CT_INVALID
        # nf_conntrack_tcp_loose=1: any valid non-RST packet can pick up a connection.
        return CT_NEW
    if pkt.proto == ICMP:
        return CT_NEW if pkt.icmp_type in _NEW_ICMP_TYPES else CT_INVALID
    return CT_NEW


class ConntrackTable:
    """Known connections, looked up by either direction's tuple."""

    def __init__(self) -> None:
        self._by_tuple: dict[tuple, tuple[Connection, str]] = {}

    def add(self, conn: Connection) -> None:
        """Remember ``conn`` (as a node does once its first packet is accepted)."""
        self._by_tuple[_key(conn.original)] = (conn, "original")
        self._by_tuple[_key(conn.reply)] = (conn, "reply")

    def lookup(self, pkt: Packet) -> tuple[Connection, str] | None:
        """The connection and direction ``pkt`` belongs to, or None for a new one."""
        return self._by_tuple.get(_key(pkt))

    def related(self, pkt: Packet) -> Connection | None:
        """The connection an ICMP error ``pkt`` answers: the kernel finds it by the header the
        error carries (the packet it answers, as this node sent it on); that packet's source is
        the error's destination, so it is the connection whose reply goes to that address (the
        latest one added when several do)."""
        if pkt.proto != ICMP or pkt.icmp_type not in ICMP_ERROR_TYPES:
            return None
        found = None
        for conn, direction in self._by_tuple.values():
            if direction == "reply" and conn.reply.dst == pkt.dst:
                found = conn
        return found

    def __len__(self) -> int:
        return len(self._by_tuple) // 2


def known_ctbits(conn: Connection) -> int:
    """Bits the conntrack match sees for a packet of an established connection."""
    return CT_ESTABLISHED | (CT_DNAT if conn.dnat else 0) | (CT_SNAT if conn.snat else 0)


_new_packet = tuple.__new__


def translate_related(pkt: Packet, conn: Connection, manip: str) -> Packet:
    """An ICMP error about ``conn`` (sent towards its client) at a nat hook: the kernel
    (``nf_nat_icmp_reply_translation``) rewrites the outer header as a reply of the connection,
    one manip per hook, only when the connection has that NAT: its destination to the client's
    own address where the connection was SNATed (``manip`` "dst"), its source to the address the
    client sent to where it was DNATed ("src")."""
    proto, src, dst, sport, dport, *rest = pkt
    if manip == "dst" and conn.snat:
        dst = conn.original.src
    elif manip == "src" and conn.dnat:
        src = conn.original.dst
    return _new_packet(Packet, (proto, src, dst, sport, dport, *rest))


def translate_known(pkt: Packet, conn: Connection, direction: str, manip: str) -> Packet:
    """Apply a stored binding at a nat hook: ``manip`` "dst" (PREROUTING/OUTPUT) or "src"."""
    # The packet must look like the reverse of the other direction's tuple.
    other = conn.reply if direction == "original" else conn.original
    proto, src, dst, sport, dport, *rest = pkt
    if manip == "dst":
        dst, dport = other.src, other.sport
    else:
        src, sport = other.dst, other.dport
    return _new_packet(Packet, (proto, src, dst, sport, dport, *rest))
