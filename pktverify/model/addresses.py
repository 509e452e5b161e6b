"""IPv4 addresses as ints, the representation the evaluator works on.

Parsing is strict (``10.1.2.300`` and ``/33`` are errors, ``1.2`` is not an
address) and cached, because kube-proxy dumps repeat the same few thousand
addresses across 100k rules. CIDR relations off the hot path (overlap and
containment of pod, service and cluster networks) go through netaddr.
"""

from __future__ import annotations

import re
from functools import lru_cache
from socket import inet_aton, inet_ntoa

__all__ = [
    "AddressError",
    "parse_ip",
    "parse_network",
    "format_ip",
    "networks_overlap",
    "network_within",
    "prefix_mask",
    "is_prefix_mask",
    "in_network",
    "is_loopback",
    "is_multicast",
    "is_zeronet",
    "LIMITED_BROADCAST",
]

LIMITED_BROADCAST = 0xFFFFFFFF


class AddressError(ValueError):
    """An address or network that is not valid IPv4 notation; the message says why."""


_CANONICAL_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                             r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\Z")


@lru_cache(maxsize=1 << 16)
def parse_ip(text: str) -> int:
    """Return the dotted-quad ``text`` as an int; raise AddressError if it is not exactly a.b.c.d.

    Like ``inet_pton``, an octet may not have a leading zero: ``ip``, iptables and the
    C library read ``010`` as octal 8, so accepting it as ten would be a silent
    wrong answer.
    """
    if _CANONICAL_IPV4.match(text):
        return int.from_bytes(inet_aton(text), "big")
    parts = text.split(".")
    if len(parts) != 4:
        raise AddressError(f"not an IPv4 address: {text!r}")
    for part in parts:
        if not part.isdigit() or len(part) > 3 or not part.isascii():
            raise AddressError(f"not an IPv4 address: {text!r}")
        if len(part) > 1 and part[0] == "0":
            raise AddressError(f"octet {part!r} has a leading zero in {text!r} (C reads it as octal: "
                               "write the address without leading zeros)")
        if int(part) > 255:
            raise AddressError(f"octet {int(part)} out of range 0-255 in {text!r}")
    raise AddressError(f"not an IPv4 address: {text!r}")


def prefix_mask(length: int) -> int:
    """Return the netmask int of a prefix length 0..32 (AddressError for any other length)."""
    if not 0 <= length <= 32:
        raise AddressError(f"prefix length {length} is out of range 0-32")
    return (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF if length else 0


_MASK_TO_LEN = {prefix_mask(n): n for n in range(33)}


@lru_cache(maxsize=1 << 16)
def parse_network(text: str) -> tuple[int, int]:
    """Return ``(network, mask)`` for ``a.b.c.d``, ``a.b.c.d/len`` or ``a.b.c.d/m.m.m.m``.

    Host bits are cleared as iptables does (``10.85.0.0/15`` is ``10.84.0.0/15``).
    A dotted mask need not be contiguous for iptables; we accept only contiguous
    masks and say so, since routes and kube-proxy never write others.
    """
    addr, sep, length = text.partition("/")
    ip = parse_ip(addr)
    if not sep:
        return ip, 0xFFFFFFFF
    if "." in length:
        mask = parse_ip(length)
        if not is_prefix_mask(mask):
            raise AddressError(f"non-contiguous netmask {length!r} is not supported")
    else:
        if not length.isdigit() or not length.isascii():
            raise AddressError(f"prefix length {length!r} is not a number")
        if len(length) > 1 and length[0] == "0":
            raise AddressError(f"prefix length {length!r} has a leading zero (C reads it as octal)")
        if len(length) > 2:         # before int(): thousands of digits fail with Python's own message
            raise AddressError(f"prefix length /{length[:12]}{'...' if len(length) > 12 else ''} is out of range 0-32")
        n = int(length)
        if n > 32:
            raise AddressError(f"prefix length /{n} is out of range 0-32")
        mask = prefix_mask(n)
    return ip & mask, mask


def is_prefix_mask(mask: int) -> bool:
    """Whether the netmask int is contiguous (a prefix length's mask)."""
    return mask in _MASK_TO_LEN


def mask_length(mask: int) -> int:
    """Return the prefix length of a contiguous netmask int."""
    return _MASK_TO_LEN[mask]


def format_ip(value: int) -> str:
    """Return the dotted-quad text of an int address (stdlib: 10x faster than netaddr here)."""
    return inet_ntoa(value.to_bytes(4, "big"))


def format_network(network: int, mask: int) -> str:
    """Return ``a.b.c.d/len`` text for a network."""
    return f"{format_ip(network)}/{mask_length(mask)}"


def in_network(ip: int, network: int, mask: int) -> bool:
    """Return True if ``ip`` lies in ``network/mask``."""
    return ip & mask == network


def is_loopback(ip: int) -> bool:
    """127.0.0.0/8."""
    return ip >> 24 == 127


def is_multicast(ip: int) -> bool:
    """224.0.0.0/4."""
    return ip >> 28 == 0xE


def is_zeronet(ip: int) -> bool:
    """0.0.0.0/8."""
    return ip >> 24 == 0


@lru_cache(maxsize=1 << 16)
def _bounds(net: tuple[int, int]) -> tuple[int, int]:
    """The first and last address of a (network, mask) pair, as netaddr reads it (cached: a
    1,000-node cluster asks about the same few thousand networks millions of times).  netaddr is
    imported here, on first use: tracing one packet never needs it."""
    import netaddr
    n = netaddr.IPNetwork((net[0], mask_length(net[1])))
    return n.first, n.last


def networks_overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """True when the (network, mask) pairs ``a`` and ``b`` share an address."""
    a_first, a_last = _bounds(a)
    b_first, b_last = _bounds(b)
    return a_first <= b_last and b_first <= a_last


def network_within(inner: tuple[int, int], outer: tuple[int, int]) -> bool:
    """True when every address of ``inner`` is in ``outer``."""
    i_first, i_last = _bounds(inner)
    o_first, o_last = _bounds(outer)
    return o_first <= i_first and i_last <= o_last
