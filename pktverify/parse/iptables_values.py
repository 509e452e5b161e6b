"""Values that appear inside iptables options: ports, marks, protocol names, NAT ranges.

Every function raises ValueError with a message that says what would be valid;
the rule parser turns it into an InputError carrying ``file:line``.
"""

from __future__ import annotations

import re
from math import floor
from socket import inet_aton

from ..model.addresses import AddressError, is_prefix_mask, parse_ip, parse_network, prefix_mask
from ..model.packet import PROTO_NUMBERS, TCP_FLAGS

__all__ = [
    "parse_port", "parse_port_range", "parse_mark", "parse_protocol", "parse_probability",
    "parse_nat_range", "parse_tcp_flag_list", "parse_icmp_type", "parse_addr", "parse_xt_addr",
    "parse_network_text", "parse_aton_addr", "parse_aton_network", "REJECT_TYPES",
    "CTSTATES", "ADDRTYPES", "parse_name_list", "parse_iface",
]

# iptables' own protocol names, then /etc/protocols (IANA's names, as getprotobyname finds them:
# iptables-save prints these, e.g. "-p ipencap" for 4 and "-p ipip" for 94).
EXTRA_PROTOCOLS = {
    "all": 0, "icmpv6": 58, "mh": 135, "ipv6-mh": 135,
    "ip": 0, "hopopt": 0, "igmp": 2, "ggp": 3, "ipencap": 4, "st": 5, "egp": 8, "igp": 9, "pup": 12, "hmp": 20,
    "xns-idp": 22, "rdp": 27, "iso-tp4": 29, "dccp": 33, "xtp": 36, "ddp": 37, "idpr-cmtp": 38, "ipv6": 41,
    "ipv6-route": 43, "ipv6-frag": 44, "idrp": 45, "rsvp": 46, "gre": 47, "esp": 50, "ah": 51, "skip": 57,
    "ipv6-icmp": 58, "ipv6-nonxt": 59, "ipv6-opts": 60, "rspf": 73, "vmtp": 81, "eigrp": 88, "ospf": 89,
    "ax.25": 93, "ipip": 94, "etherip": 97, "encap": 98, "pim": 103, "ipcomp": 108, "vrrp": 112, "l2tp": 115,
    "isis": 124, "fc": 133, "mobility-header": 135, "udplite": 136, "mpls-in-ip": 137, "manet": 138, "hip": 139,
    "shim6": 140, "wesp": 141, "rohc": 142, "ethernet": 143,
}

REJECT_TYPES = {
    "icmp-net-unreachable": "icmp-net-unreachable", "net-unreach": "icmp-net-unreachable",
    "icmp-host-unreachable": "icmp-host-unreachable", "host-unreach": "icmp-host-unreachable",
    "icmp-port-unreachable": "icmp-port-unreachable", "port-unreach": "icmp-port-unreachable",
    "icmp-proto-unreachable": "icmp-proto-unreachable", "proto-unreach": "icmp-proto-unreachable",
    "icmp-net-prohibited": "icmp-net-prohibited", "net-prohib": "icmp-net-prohibited",
    "icmp-host-prohibited": "icmp-host-prohibited", "host-prohib": "icmp-host-prohibited",
    "icmp-admin-prohibited": "icmp-admin-prohibited", "admin-prohib": "icmp-admin-prohibited",
    "tcp-reset": "tcp-reset", "tcp-rst": "tcp-reset",
}

CTSTATES = frozenset({"INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED", "SNAT", "DNAT"})
ADDRTYPES = frozenset({"UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST",
                       "BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE"})

# (type, code_low, code_high) for iptables' ICMP type names.
_ICMP_NAMES: dict[str, tuple[int, int, int]] = {
    "any": (255, 0, 255), "echo-reply": (0, 0, 255), "pong": (0, 0, 255),
    "destination-unreachable": (3, 0, 255), "network-unreachable": (3, 0, 0),
    "host-unreachable": (3, 1, 1), "protocol-unreachable": (3, 2, 2),
    "port-unreachable": (3, 3, 3), "fragmentation-needed": (3, 4, 4),
    "source-route-failed": (3, 5, 5), "network-unknown": (3, 6, 6), "host-unknown": (3, 7, 7),
    "network-prohibited": (3, 9, 9), "host-prohibited": (3, 10, 10),
    "TOS-network-unreachable": (3, 11, 11), "TOS-host-unreachable": (3, 12, 12),
    "communication-prohibited": (3, 13, 13), "host-precedence-violation": (3, 14, 14),
    "precedence-cutoff": (3, 15, 15), "source-quench": (4, 0, 255), "redirect": (5, 0, 255),
    "network-redirect": (5, 0, 0), "host-redirect": (5, 1, 1),
    "TOS-network-redirect": (5, 2, 2), "TOS-host-redirect": (5, 3, 3),
    "echo-request": (8, 0, 255), "ping": (8, 0, 255), "router-advertisement": (9, 0, 255),
    "router-solicitation": (10, 0, 255), "time-exceeded": (11, 0, 255),
    "ttl-exceeded": (11, 0, 255), "ttl-zero-during-transit": (11, 0, 0),
    "ttl-zero-during-reassembly": (11, 1, 1), "parameter-problem": (12, 0, 255),
    "ip-header-bad": (12, 0, 0), "required-option-missing": (12, 1, 1),
    "timestamp-request": (13, 0, 255), "timestamp-reply": (14, 0, 255),
    "address-mask-request": (17, 0, 255), "address-mask-reply": (18, 0, 255),
}


# What C's strtoul(base 0) reads whole, as xtables_strtoui does: an optional '+', then 0x.. hex,
# 0.. octal or decimal, ASCII only (Python's int() would also take '٣', '1_0' and '-1').
_STRTOUL = re.compile(r"\+?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\Z")
_DECIMAL = re.compile(r"[0-9]+\Z")
_ATON = re.compile(r"[0-9a-fA-FxX.]+\Z")    # what inet_aton may read; never whitespace or a sign
_FLOAT = re.compile(r"[+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")


def c_uint(text: str, what: str, limit: int) -> int:
    """Parse like xtables_strtoui (strtoul base 0, the whole word): 0x.. hex, 0.. octal, else decimal."""
    if not _STRTOUL.match(text):
        raise ValueError(f"{what} {text!r} is not a number")
    digits = text.lstrip("+")
    if digits[:2].lower() == "0x":
        value = int(digits[2:], 16)
    elif len(digits) > 1 and digits[0] == "0":
        value = int(digits[1:], 8)
    else:
        value = int(digits)
    if value > limit:
        raise ValueError(f"{what} {text!r} is larger than {limit} ({limit:#x})")
    return value


def parse_port(text: str) -> int:
    """A port number 0-65535 as xtables_parse_port reads it: strtoul base 0, so ``010`` is 8.

    Service names (``http``) are looked up in /etc/services by iptables; pktverify
    does not resolve them and says so.
    """
    if not _STRTOUL.match(text):
        raise ValueError(f"port {text!r} is not a number 0-65535 (service names are not resolved)")
    port = c_uint(text, "port", 0xFFFFFFFF)
    if port > 65535:
        raise ValueError(f"port {text!r} is out of range 0-65535")
    return port


def parse_port_range(text: str, sep: str = ":") -> tuple[int, int]:
    """``N``, ``A:B``, ``:B`` or ``A:`` (``sep`` is "-" for NAT and multiport-free forms)."""
    if sep in text:
        low_text, _, high_text = text.partition(sep)
        low = parse_port(low_text) if low_text else 0
        high = parse_port(high_text) if high_text else 65535
        if low > high:
            raise ValueError(f"port range {text!r} has its start after its end")
        return low, high
    port = parse_port(text)
    return port, port


def parse_mark(text: str) -> tuple[int, int]:
    """``VALUE[/MASK]`` as ``(value, mask)``; mask defaults to 0xffffffff."""
    value_text, sep, mask_text = text.partition("/")
    value = c_uint(value_text, "mark", 0xFFFFFFFF)
    mask = c_uint(mask_text, "mark mask", 0xFFFFFFFF) if sep else 0xFFFFFFFF
    return value, mask


def parse_protocol(text: str) -> int:
    """A protocol name iptables knows or a number 0-255; 0 is "all"."""
    name = text.lower()
    if name in PROTO_NUMBERS:
        return PROTO_NUMBERS[name]
    if name in EXTRA_PROTOCOLS:
        return EXTRA_PROTOCOLS[name]
    if _STRTOUL.match(name):
        number = c_uint(name, "protocol", 0xFFFFFFFF)    # xtables_parse_protocol: strtoul base 0, "017" is 15
        if number <= 255:
            return number
    known = ", ".join(sorted([*PROTO_NUMBERS, *EXTRA_PROTOCOLS]))
    raise ValueError(f"unknown protocol {text!r} (use a number 0-255 or one of {known})")


def parse_probability(text: str) -> float:
    """The kernel's exact probability for ``--probability P``: round(P * 2**31) / 2**31."""
    if not _FLOAT.match(text):
        raise ValueError(f"probability {text!r} is not a number")
    p = float(text)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability {text!r} is outside 0..1")
    # libxt_statistic: lround(0x80000000 * p); the kernel matches (rand & 0x7fffffff) < k.
    return floor(0x80000000 * p + 0.5) / 0x80000000


def parse_addr(text: str) -> int:
    """A strict dotted quad, as ``inet_pton`` reads the NAT targets' addresses (``010.0.0.1`` is refused)."""
    try:
        return parse_ip(text)
    except AddressError as exc:
        raise ValueError(str(exc)) from None


def _xt_numeric(text: str, *, is_mask: bool = False) -> int | None:
    """xtables' ``__numeric_to_ipaddr``: up to four strtoul(base 0) octets; a short address is a network.

    ``10.1`` is 10.1.0.0 and ``010.0.0.1`` is 8.0.0.1, as iptables-restore reads them for
    ``-s``/``-d`` and ``-m iprange``.  None when iptables would fall back to a host-name lookup.
    """
    if len(text) > 19:      # xtables copies the text into a 20-byte buffer first
        return None
    parts = text.split(".")
    if len(parts) > 4 or (is_mask and len(parts) != 4):
        return None
    value = 0
    for part in parts:
        if not _STRTOUL.match(part):
            return None
        octet = c_uint(part, "octet", 0xFFFFFFFF)
        if octet > 255:
            return None
        value = (value << 8) | octet
    return value << (8 * (4 - len(parts)))


def parse_xt_addr(text: str) -> int:
    """An address where iptables takes numeric forms (``-m iprange``): see :func:`_xt_numeric`."""
    try:
        return parse_ip(text)
    except AddressError as exc:
        strict = exc
    value = _xt_numeric(text)
    if value is None:
        raise ValueError(f"{strict} (not a number iptables reads, so it would look it up as a host"
                         " name; pktverify does not resolve names: write the address)")
    return value


def parse_network_text(text: str) -> tuple[int, int]:
    """``-s``/``-d``: ``A``, ``A/len`` or ``A/mask``, host bits cleared, numbers as xtables reads them."""
    try:
        return parse_network(text)
    except AddressError:
        pass
    if "," in text:
        raise ValueError(f"{text!r} is a list: iptables-restore makes one rule per address (iptables-save"
                         " prints them so); write one rule per address")
    addr_text, sep, mask_text = text.partition("/")
    addr = parse_xt_addr(addr_text)
    mask = _xt_mask(mask_text, text) if sep else 0xFFFFFFFF
    return addr & mask, mask


def _xt_mask(mask_text: str, text: str) -> int:
    """The mask after ``/``: dotted (xtables' numeric octets, contiguous only) or a prefix length
    read with strtoul base 0 (``/010`` is /8)."""
    if "." in mask_text:
        mask = _xt_numeric(mask_text, is_mask=True)
        if mask is None:
            raise ValueError(f"invalid mask {mask_text!r} in {text!r}")
        if not is_prefix_mask(mask):
            raise ValueError(f"non-contiguous netmask {mask_text!r} is not supported")
        return mask
    if not _STRTOUL.match(mask_text):
        raise ValueError(f"invalid mask {mask_text!r} in {text!r}")
    return prefix_mask(c_uint(mask_text, "prefix length", 32))


def parse_aton_addr(text: str) -> int:
    """An address as getaddrinfo reads it (``-m recent --mask``, and conntrack's addresses).

    Every ``inet_aton`` form: ``10.1`` is 10.0.0.1, ``010.0.0.1`` is 8.0.0.1, ``0x0a.0.0.1``
    is 10.0.0.1; host names (and a ``/``) are refused, not resolved.
    """
    if not _ATON.match(text):
        raise ValueError(f"{text!r} is not a numeric IPv4 address (iptables would look it up as a"
                         " host name; pktverify does not resolve names: write the address)")
    try:
        return int.from_bytes(inet_aton(text), "big")
    except OSError:
        raise ValueError(f"{text!r} is not a valid IPv4 address") from None


def parse_aton_network(text: str) -> tuple[int, int]:
    """``A[/mask]`` for ``-m conntrack --ctorigsrc`` and the like: the address as
    :func:`parse_aton_addr` reads it, the mask as after ``-s``."""
    addr_text, sep, mask_text = text.partition("/")
    addr = parse_aton_addr(addr_text)
    mask = _xt_mask(mask_text, text) if sep else 0xFFFFFFFF
    return addr & mask, mask


def parse_nat_range(text: str, *, need_addr: bool) -> tuple[int | None, int | None, int | None, int | None]:
    """``[A[-B]][:P[-Q]]`` as (addr_low, addr_high, port_low, port_high)."""
    addr_text, sep, port_text = text.partition(":")
    addr_low = addr_high = port_low = port_high = None
    if addr_text:
        low_text, dash, high_text = addr_text.partition("-")
        addr_low = parse_addr(low_text)
        addr_high = parse_addr(high_text) if dash else addr_low
        if addr_high < addr_low:
            raise ValueError(f"address range {addr_text!r} has its start after its end")
    elif need_addr:
        raise ValueError(f"{text!r} needs an address")
    if sep:
        port_low, port_high = parse_port_range(port_text, "-")
    if addr_low is None and port_low is None:
        raise ValueError(f"{text!r} names neither an address nor a port")
    return addr_low, addr_high, port_low, port_high


def parse_tcp_flag_list(text: str) -> int:
    """``SYN,ACK``, ``ALL`` or ``NONE`` as a bit mask."""
    if text == "ALL":
        return 0xFF
    if text == "NONE":
        return 0
    bits = 0
    for name in text.split(","):
        if name not in TCP_FLAGS:
            raise ValueError(f"unknown TCP flag {name!r} (use {', '.join(TCP_FLAGS)}, ALL, NONE)")
        bits |= TCP_FLAGS[name]
    return bits


def parse_icmp_type(text: str) -> tuple[int, int, int]:
    """An ICMP type name, or ``TYPE[/CODE]``, as (type, code_low, code_high)."""
    if text in _ICMP_NAMES:
        return _ICMP_NAMES[text]
    type_text, sep, code_text = text.partition("/")
    if _DECIMAL.match(type_text) and int(type_text) <= 255 \
            and (not sep or (_DECIMAL.match(code_text) and int(code_text) <= 255)):
        code = int(code_text) if sep else None
        return int(type_text), (code if code is not None else 0), (code if code is not None else 255)
    raise ValueError(f"unknown ICMP type {text!r} (use a number, TYPE/CODE, or a name such as echo-request)")


def parse_name_list(text: str, allowed: frozenset[str], what: str) -> frozenset[str]:
    """A comma-separated list of upper-case names from ``allowed``."""
    names = frozenset(n.upper() for n in text.split(","))
    bad = sorted(names - allowed)
    if bad:
        raise ValueError(f"unknown {what} {', '.join(bad)} (valid: {', '.join(sorted(allowed))})")
    return names


def parse_iface(text: str) -> tuple[str, bool]:
    """An interface name with an optional trailing ``+`` wildcard, as (name, is_prefix)."""
    prefix = text.endswith("+")
    name = text[:-1] if prefix else text
    if len(name) > 15 or "/" in name or not text:
        raise ValueError(f"interface name {text!r} is not valid (at most 15 characters)")
    return name, prefix
