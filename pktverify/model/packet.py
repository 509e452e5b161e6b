"""The packet as the evaluator sees it: a small immutable header record.

Scapy packets are converted to this at the API edge (``pktverify.packets``);
the evaluator never touches bytes or scapy objects.
"""

from __future__ import annotations

from typing import NamedTuple

from .addresses import format_ip

__all__ = ["Packet", "PROTO_NUMBERS", "PROTO_NAMES", "TCP", "UDP", "SCTP", "ICMP", "TCP_FLAGS"]

ICMP, TCP, UDP, SCTP = 1, 6, 17, 132
PROTO_NUMBERS = {"icmp": ICMP, "tcp": TCP, "udp": UDP, "sctp": SCTP}
PROTO_NAMES = {v: k for k, v in PROTO_NUMBERS.items()}
PORT_PROTOCOLS = frozenset({TCP, UDP, SCTP})

# TCP flag bits as iptables names them (--tcp-flags).
TCP_FLAGS = {"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10, "URG": 0x20,
             "ECE": 0x40, "CWR": 0x80}


class Packet(NamedTuple):
    """IPv4 header fields that netfilter and the FIB look at.

    Addresses are ints; ``sport``/``dport`` are 0 for ICMP (whose echo id is
    ``sport``); ``tcp_flags`` defaults to a bare SYN, the first packet of a
    connection; ``icmp_type``/``icmp_code`` are -1 for non-ICMP packets.
    """

    proto: int
    src: int
    dst: int
    sport: int = 0
    dport: int = 0
    tcp_flags: int = 0x02
    icmp_type: int = -1
    icmp_code: int = -1
    ttl: int = 64

    @property
    def has_ports(self) -> bool:
        return self.proto in PORT_PROTOCOLS

    def reversed(self) -> "Packet":
        """The reply direction of this packet's tuple (SYN becomes SYN-ACK, echo-request echo-reply)."""
        proto, src, dst, sport, dport, flags, icmp_type, icmp_code, _ttl = self
        if proto == TCP and flags == 0x02:
            flags = 0x12
        if proto == ICMP and icmp_type == 8:
            icmp_type = 0
        return tuple.__new__(Packet, (proto, dst, src, dport, sport, flags, icmp_type, icmp_code, 64))

    def to_json(self) -> dict:
        """The ``packet`` object of the trace JSON contract."""
        ports = self.has_ports
        return {
            "proto": PROTO_NAMES.get(self.proto, str(self.proto)),
            "src": format_ip(self.src),
            "sport": self.sport if ports else None,
            "dst": format_ip(self.dst),
            "dport": self.dport if ports else None,
        }

    def __repr__(self) -> str:
        """Addresses as people write them: ``Packet(tcp 10.0.0.2:1234 > 10.96.0.10:80, SYN)``."""
        flags = "" if self.proto != TCP else ", " + ("|".join(n for n, bit in TCP_FLAGS.items() if self.tcp_flags & bit)
                                                     or "no flags")
        icmp = f", type {self.icmp_type} code {self.icmp_code}" if self.icmp_type >= 0 else ""
        ttl = f", ttl {self.ttl}" if self.ttl != 64 else ""
        return f"Packet({self.describe()}{flags}{icmp}{ttl})"

    def describe(self) -> str:
        """Short human text: ``tcp 10.0.0.2:1234 > 10.96.0.10:80``."""
        name = PROTO_NAMES.get(self.proto, str(self.proto))
        if self.has_ports:
            return f"{name} {format_ip(self.src)}:{self.sport} > {format_ip(self.dst)}:{self.dport}"
        return f"{name} {format_ip(self.src)} > {format_ip(self.dst)}"
