"""The scapy edge: crafted scapy packets in, header records out.

Scapy is imported only when a scapy packet is actually converted, so parsers
and the evaluator never pay for it (nor for the host look-ups scapy does on
import).
"""

from __future__ import annotations

from .errors import InvalidArgument
from .model.addresses import AddressError, parse_ip
from .model.packet import ICMP, PROTO_NUMBERS, SCTP, TCP, UDP, Packet
from .scapy_quiet import import_scapy

__all__ = ["packet_from_scapy", "packet_to_scapy", "make_packet"]


def packet_from_scapy(pkt) -> Packet:
    """Return the header record of a scapy ``IP()/TCP()``, ``/UDP()``, ``/SCTP()`` or ``/ICMP()``.

    Every address must be set explicitly: an unset ``IP().src`` would make
    scapy consult the host's routes.
    """
    import_scapy()
    from scapy.layers.inet import ICMP as SICMP, IP, TCP as STCP, UDP as SUDP
    from scapy.layers.sctp import SCTP as SSCTP

    if IP not in pkt:
        raise InvalidArgument(f"pkt={pkt!r} (type={type(pkt).__name__}): need an IPv4 packet, e.g. IP(src=..., dst=...)/TCP(...)")
    ip = pkt[IP]
    for field in ("src", "dst"):
        if ip.fields.get(field) is None:
            raise InvalidArgument(f"IP().{field} is not set: set it explicitly (scapy would read the host's routes)")
    src, dst = parse_ip(ip.src), parse_ip(ip.dst)
    ttl = ip.ttl if ip.ttl is not None else 64
    if STCP in pkt:
        t = pkt[STCP]
        flags = int(t.flags) if t.fields.get("flags") is not None else 0x02
        return Packet(TCP, src, dst, int(t.sport), int(t.dport), flags, ttl=ttl)
    if SUDP in pkt:
        u = pkt[SUDP]
        return Packet(UDP, src, dst, int(u.sport), int(u.dport), 0, ttl=ttl)
    if SSCTP in pkt:
        s = pkt[SSCTP]
        return Packet(SCTP, src, dst, int(s.sport), int(s.dport), 0, ttl=ttl)
    if SICMP in pkt:
        c = pkt[SICMP]
        ident = int(c.id) if c.type in (0, 8) else 0
        return Packet(ICMP, src, dst, ident, 0, 0, int(c.type), int(c.code), ttl=ttl)
    raise InvalidArgument(f"pkt={pkt.summary()!r}: need TCP, UDP, SCTP or ICMP over IPv4")


def packet_to_scapy(pkt: Packet):
    """The scapy ``IP()/TCP()`` (``/UDP()``, ``/SCTP()``, ``/ICMP()``) of a header record, with
    every field set (scapy resolves nothing from the host); :func:`packet_from_scapy` inverts it."""
    import_scapy()
    from scapy.layers.inet import ICMP as SICMP, IP, TCP as STCP, UDP as SUDP
    from scapy.layers.sctp import SCTP as SSCTP
    from .model.addresses import format_ip

    ip = IP(src=format_ip(pkt.src), dst=format_ip(pkt.dst), ttl=pkt.ttl)
    if pkt.proto == TCP:
        return ip / STCP(sport=pkt.sport, dport=pkt.dport, flags=pkt.tcp_flags)
    if pkt.proto == UDP:
        return ip / SUDP(sport=pkt.sport, dport=pkt.dport)
    if pkt.proto == SCTP:
        return ip / SSCTP(sport=pkt.sport, dport=pkt.dport)
    if pkt.proto == ICMP:
        return ip / SICMP(type=pkt.icmp_type, code=pkt.icmp_code, id=pkt.sport)
    raise InvalidArgument(f"pkt={pkt!r}: only TCP, UDP, SCTP and ICMP packets have a scapy form here")


def make_packet(*, proto: str, src: str, dst: str, sport: int | None = None,
                dport: int | None = None, icmp_type: int = 8, icmp_code: int = 0) -> Packet:
    """Build a header record from CLI-style values (ports default: sport 40000, dport required)."""
    if proto not in PROTO_NUMBERS:
        raise InvalidArgument(f"proto={proto!r} (type={type(proto).__name__}): use one of {', '.join(PROTO_NUMBERS)}")
    try:
        s, d = parse_ip(src), parse_ip(dst)
    except AddressError as exc:
        raise InvalidArgument(str(exc)) from None
    number = PROTO_NUMBERS[proto]
    if number == ICMP:
        if sport is not None or dport is not None:
            raise InvalidArgument("--sport/--dport do not apply to icmp")
        return Packet(ICMP, s, d, 0, 0, 0, icmp_type, icmp_code)
    if dport is None:
        raise InvalidArgument(f"--dport is required for {proto}")
    sport = 40000 if sport is None else sport
    for name, value in (("sport", sport), ("dport", dport)):
        if not 0 <= value <= 65535:
            raise InvalidArgument(f"{name}={value} (type=int): ports are 0-65535")
    return Packet(number, s, d, sport, dport, 0x02 if number == TCP else 0)


