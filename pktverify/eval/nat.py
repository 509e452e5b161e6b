"""What a NAT target does to a connection's first packet, computed as nf_nat does.

Address ranges pick an address by the kernel's jhash of the tuple (so the
choice is exact and deterministic); port ranges keep the original port when
it is inside the range, otherwise DNAT takes the first port and SNAT /
MASQUERADE a random one (an inexact outcome, reported as such).
"""

from __future__ import annotations

from typing import NamedTuple

from ..model import rules as m
from ..model.addresses import format_ip
from ..model.packet import Packet
from .fib import Fib

__all__ = ["NatResult", "apply_dnat", "apply_snat", "apply_masquerade", "apply_redirect", "jhash2"]

_M32 = 0xFFFFFFFF


class NatResult(NamedTuple):
    """The rewritten packet (None: the kernel drops it), whether it is exact, and a note.

    ``random_port`` is ``(field, low, high)`` when the kernel draws that port
    uniformly from a range: the packet then carries ``low`` and the outcome
    says the port is random, which is a known distribution, not uncertainty.
    """
    pkt: Packet | None
    exact: bool
    note: str
    random_port: tuple | None = None


def _rol(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M32


def jhash2(words: list[int], initval: int) -> int:
    """Linux ``jhash2`` (lookup3) over 32-bit words."""
    length = len(words)
    a = b = c = (0xDEADBEEF + (length << 2) + initval) & _M32
    k = 0
    while length > 3:
        a = (a + words[k]) & _M32
        b = (b + words[k + 1]) & _M32
        c = (c + words[k + 2]) & _M32
        a = (a - c) & _M32; a ^= _rol(c, 4); c = (c + b) & _M32
        b = (b - a) & _M32; b ^= _rol(a, 6); a = (a + c) & _M32
        c = (c - b) & _M32; c ^= _rol(b, 8); b = (b + a) & _M32
        a = (a - c) & _M32; a ^= _rol(c, 16); c = (c + b) & _M32
        b = (b - a) & _M32; b ^= _rol(a, 19); a = (a + c) & _M32
        c = (c - b) & _M32; c ^= _rol(b, 4); b = (b + a) & _M32
        length -= 3
        k += 3
    if length == 0:
        return c
    if length == 3:
        c = (c + words[k + 2]) & _M32
    if length >= 2:
        b = (b + words[k + 1]) & _M32
    a = (a + words[k]) & _M32
    c ^= b; c = (c - _rol(b, 14)) & _M32
    a ^= c; a = (a - _rol(c, 11)) & _M32
    b ^= a; b = (b - _rol(a, 25)) & _M32
    c ^= b; c = (c - _rol(b, 16)) & _M32
    a ^= c; a = (a - _rol(c, 4)) & _M32
    b ^= a; b = (b - _rol(a, 14)) & _M32
    c ^= b; c = (c - _rol(b, 24)) & _M32
    return c


def _host_u32(ip: int) -> int:
    """An address as the kernel's u32 view of its network-order bytes on a little-endian CPU."""
    return int.from_bytes(ip.to_bytes(4, "big"), "little")


def _pick_address(pkt: Packet, low: int, high: int, persistent: bool) -> int:
    """find_best_ips_proto(): hash the tuple's source (and destination) into [low, high]."""
    if low == high:
        return low
    initval = 0 if persistent else _host_u32(pkt.dst)
    j = jhash2([_host_u32(pkt.src), 0, 0, 0], initval)
    return low + ((j * (high - low + 1)) >> 32)


def apply_netmap(pkt: Packet, target: m.Netmap, destination: bool) -> NatResult:
    """NETMAP (xt_NETMAP): keep the host bits, take the network bits from ``--to``."""
    keep = ~target.mask & 0xFFFFFFFF
    if destination:
        return NatResult(pkt._replace(dst=(pkt.dst & keep) | target.network), True, "")
    return NatResult(pkt._replace(src=(pkt.src & keep) | target.network), True, "")


def apply_dnat(pkt: Packet, target: m.Dnat) -> NatResult:
    """DNAT: new destination address (hash-picked from a range) and port (kept when in range)."""
    dst = pkt.dst if target.addr_low is None else \
        _pick_address(pkt, target.addr_low, target.addr_high, target.persistent)
    dport, rnd = pkt.dport, None
    if target.port_low is not None:
        if target.random and target.port_low != target.port_high:
            dport, rnd = target.port_low, ("dport", target.port_low, target.port_high)
        elif not target.port_low <= pkt.dport <= target.port_high:
            dport = target.port_low
    new = pkt._replace(dst=dst, dport=dport)
    return NatResult(new, True, "", rnd)


def _snat_port(pkt: Packet, low: int | None, high: int | None, randomize: bool) -> tuple[int, tuple | None]:
    """The source port after SNAT, or the range the kernel draws it from."""
    if low is None:
        if not randomize:
            return pkt.sport, None
        # nf_nat_l4proto_unique_tuple's default ranges, by the original port.
        low, high = (1, 511) if pkt.sport < 512 else (600, 1023) if pkt.sport < 1024 else (1024, 65535)
    elif low <= pkt.sport <= high and not randomize:
        return pkt.sport, None
    if low == high:
        return low, None
    return low, ("sport", low, high)


def apply_snat(pkt: Packet, target: m.Snat) -> NatResult:
    """SNAT: keep the tuple if it already lies in the range, else pick address and port."""
    randomize = target.random or target.random_fully
    ports = pkt.has_ports and target.port_low is not None
    if target.addr_low <= pkt.src <= target.addr_high and not randomize and \
            (not ports or target.port_low <= pkt.sport <= target.port_high):
        return NatResult(pkt, True, "")
    src = _pick_address(pkt, target.addr_low, target.addr_high, target.persistent)
    sport, rnd = _snat_port(pkt, target.port_low, target.port_high, randomize) \
        if pkt.has_ports else (pkt.sport, None)
    return NatResult(pkt._replace(src=src, sport=sport), True, "", rnd)


def apply_masquerade(pkt: Packet, target: m.Masquerade, fib: Fib, out_iface: str,
                     next_hop: int) -> NatResult:
    """MASQUERADE: the outgoing device's primary address for the next hop; drop if none."""
    src = fib.masquerade_source(out_iface, next_hop)
    if src is None:
        return NatResult(None, True, f"MASQUERADE: {out_iface} has no usable address")
    randomize = target.random or target.random_fully
    sport, rnd = _snat_port(pkt, target.port_low, target.port_high, randomize) \
        if pkt.has_ports else (pkt.sport, None)
    return NatResult(pkt._replace(src=src, sport=sport), True, "", rnd)


def apply_redirect(pkt: Packet, target: m.Redirect, fib: Fib, in_iface: str) -> NatResult:
    """REDIRECT: to the incoming device's first address (127.0.0.1 when locally generated)."""
    if not in_iface:
        dst = 0x7F000001
    else:
        dst = fib.redirect_address(in_iface)
        if dst is None:
            return NatResult(None, True, f"REDIRECT: {in_iface} has no IPv4 address")
    dport, rnd = pkt.dport, None
    if target.port_low is not None:
        if target.random and target.port_low != target.port_high:
            dport, rnd = target.port_low, ("dport", target.port_low, target.port_high)
        elif not target.port_low <= pkt.dport <= target.port_high:
            dport = target.port_low
    return NatResult(pkt._replace(dst=dst, dport=dport), True, "", rnd)


def describe_change(before: Packet, after: Packet, kind: str) -> str:
    """``DNAT 10.96.0.10:80 → 10.244.2.7:8080`` for a trace step."""
    def endpoint(ip: int, port: int, pkt: Packet) -> str:
        return f"{format_ip(ip)}:{port}" if pkt.has_ports else format_ip(ip)
    if kind in ("DNAT", "REDIRECT"):
        return f"{kind} {endpoint(before.dst, before.dport, before)} → {endpoint(after.dst, after.dport, after)}"
    return f"{kind} {endpoint(before.src, before.sport, before)} → {endpoint(after.src, after.sport, after)}"
