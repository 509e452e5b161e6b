"""nftables values made canonical, shared by the JSON, text and script readers.

The three forms print the same ruleset differently (``mark or 0x4000`` in a script is ``meta
mark | 0x00004000`` in a listing and ``{"|": [...]}`` in JSON; ``ssh`` is ``22``; ``priority
dstnat - 10`` is ``-110``). The helpers here turn each spelling into one value, knowing the
data type a value is compared with (:func:`dtype_of`), so that the readers build equal models.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from functools import lru_cache

from ..model import nft as m
from ..model.addresses import AddressError, parse_ip, prefix_mask

__all__ = ["dtype_of", "convert", "fold_bitwise", "canonical", "sort_elements", "drop_dependencies",
           "resolve_priority", "parse_time_ms", "ValueProblem", "FLAG_TYPES", "META_UNQUALIFIED",
           "PROTO_NUMBERS", "flags_of", "anon_set"]


class ValueProblem(ValueError):
    """A value that cannot be read; the readers add the place (line or JSON path)."""


_INT_LITERAL = re.compile(r"invalid literal for int\(\) with base \d+: (.*)$")


def value_message(exc: ValueError) -> str:
    """What was wrong with a value, in words (Python's ``int()`` says it its own way)."""
    found = _INT_LITERAL.match(str(exc))
    return f"{found.group(1)} is not a number" if found else str(exc)


PROTO_NUMBERS = {"icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "egp": 8, "udp": 17, "dccp": 33, "ipv6": 41,
                 "gre": 47, "esp": 50, "ah": 51, "icmpv6": 58, "ipv6-icmp": 58, "comp": 108, "sctp": 132,
                 "udplite": 136}
# Flag types (a comma-list is their OR; an implicit operator tests flags: ``in``).
FLAG_TYPES: dict[str, dict[str, int]] = {
    "ct_state": {"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64},
    "ct_status": {"expected": 1, "seen-reply": 2, "assured": 4, "confirmed": 8, "snat": 16, "dnat": 32,
                  "dying": 512},
    "tcp_flag": {"fin": 1, "syn": 2, "rst": 4, "psh": 8, "ack": 16, "urg": 32, "ecn": 64, "cwr": 128},
}
NF_PROTO = {"ipv4": 2, "ipv6": 10}
# meta keys nft prints without ``meta`` (nft(8): "unqualified meta").
META_UNQUALIFIED = frozenset({"mark", "iif", "iifname", "iiftype", "oif", "oifname", "oiftype", "skuid", "skgid",
                              "nftrace", "rtclassid", "ibriport", "obriport", "ibrname", "obrname", "pkttype",
                              "cpu", "iifgroup", "oifgroup", "cgroup", "ipsec", "iifkind", "oifkind"})
_PAYLOAD_TYPES = {"saddr": "ipv4_addr", "daddr": "ipv4_addr", "protocol": "inet_proto", "sport": "inet_service",
                  "dport": "inet_service", "flags": "tcp_flag"}
_META_TYPES = {"l4proto": "inet_proto", "mark": "mark", "nfproto": "nf_proto", "iifname": "ifname",
               "oifname": "ifname", "iif": "ifname", "oif": "ifname", "protocol": "ether_type"}
_CT_TYPES = {"state": "ct_state", "status": "ct_status", "mark": "mark", "ip saddr": "ipv4_addr",
             "ip daddr": "ipv4_addr", "saddr": "ipv4_addr", "daddr": "ipv4_addr", "protocol": "inet_proto",
             "proto-src": "inet_service", "proto-dst": "inet_service"}


def dtype_of(expr: object) -> tuple:
    """The data type name per concatenated part of ``expr``'s value (None: no conversion)."""
    if isinstance(expr, m.Concat):
        return tuple(t for item in expr.items for t in dtype_of(item))
    if isinstance(expr, m.Payload):
        if expr.protocol == "ip6":
            return ({"saddr": "ipv6_addr", "daddr": "ipv6_addr", "nexthdr": "inet_proto"}.get(expr.field),)
        if expr.protocol == "icmpv6":
            return (None,)
        if expr.field == "flags" and expr.protocol != "tcp":
            return (None,)
        return (_PAYLOAD_TYPES.get(expr.field),)
    if isinstance(expr, m.Meta):
        return (_META_TYPES.get(expr.key),)
    if isinstance(expr, m.Ct):
        return (_CT_TYPES.get(expr.key),)
    if isinstance(expr, m.Bitwise):
        return dtype_of(expr.expr)
    if isinstance(expr, (m.Numgen, m.Hash)):
        return ("integer",)
    return (None,)


_NUMBER = re.compile(r"-?(?:0x[0-9a-fA-F]+|[0-9]+)\Z")
_QUAD = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\Z")


@lru_cache(maxsize=1 << 14)
def _service(name: str) -> int | None:
    for proto in ("tcp", "udp"):
        try:
            return socket.getservbyname(name, proto)
        except OSError:
            continue
    return None


def _scalar(text: str, dtype: str | None) -> object:
    if _QUAD.match(text):
        try:
            return parse_ip(text)
        except AddressError as exc:
            raise ValueProblem(str(exc)) from None
    if _NUMBER.match(text):
        return int(text, 0) if not text.startswith("-") else -int(text[1:], 0)
    if ":" in text and (dtype in (None, "ipv6_addr")):
        try:
            return int(ipaddress.IPv6Address(text.strip("[]")))
        except ValueError:
            if dtype == "ipv6_addr":
                raise ValueProblem(f"not an IPv6 address: {text!r}") from None
    if dtype == "inet_proto" and text in PROTO_NUMBERS:
        return PROTO_NUMBERS[text]
    if dtype == "inet_service":
        port = _service(text)
        if port is None:
            raise ValueProblem(f"unknown service name {text!r}")
        return port
    if dtype in FLAG_TYPES:
        bit = FLAG_TYPES[dtype].get(text)
        if bit is None:
            raise ValueProblem(f"unknown {dtype.replace('_', ' ')} {text!r} (known: {', '.join(FLAG_TYPES[dtype])})")
        return bit
    if dtype == "nf_proto" and text in NF_PROTO:
        return NF_PROTO[text]
    return text


def convert(raw: object, dtype: str | None) -> object:
    """One scalar (a str as printed, an int or bool from JSON) as a canonical value of ``dtype``
    (cached: dumps repeat their addresses, ports and names)."""
    if isinstance(raw, str):
        return _convert_text(raw, dtype)
    return _convert(raw, dtype)


@lru_cache(maxsize=1 << 16)
def _convert_text(raw: str, dtype: str | None) -> object:
    return _convert(raw, dtype)


def _convert(raw: object, dtype: str | None) -> object:
    """One scalar (a str as printed, an int or bool from JSON) as a canonical value of ``dtype``:
    addresses, numbers, protocols, services and flags become ints; ranges and prefixes records."""
    if isinstance(raw, (int, bool)):
        return raw
    if not isinstance(raw, str):
        raise ValueProblem(f"not a value: {raw!r}")
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        return raw[1:-1]
    if "/" in raw and dtype in ("ipv4_addr", None) and _QUAD.match(raw.split("/", 1)[0]):
        addr, _, length = raw.partition("/")
        if not length.isdigit() or int(length) > 32:
            raise ValueProblem(f"bad prefix length in {raw!r}")
        return canonical(m.Prefix(_scalar(addr, dtype) & prefix_mask(int(length)), int(length)), "ipv4_addr")
    if "/" in raw and dtype in ("ipv6_addr", None) and ":" in raw:
        try:
            net = ipaddress.IPv6Network(raw, strict=False)
        except ValueError:
            raise ValueProblem(f"not an IPv6 prefix: {raw!r}") from None
        return int(net.network_address) if net.prefixlen == 128 else m.Prefix(int(net.network_address), net.prefixlen)
    if "-" in raw[1:] and dtype != "ifname":
        ends = _range_ends(raw)
        if ends is not None:
            return canonical(m.Range(*ends), dtype)
    return _scalar(raw, dtype)


def _range_ends(raw: str) -> tuple[int, int] | None:
    low, _, high = raw.partition("-") if not raw.startswith("-") else ("", "", "")
    if not low or not high:
        return None
    try:
        a, b = _scalar(low, None), _scalar(high, None)
    except ValueProblem:
        return None
    return (a, b) if isinstance(a, int) and isinstance(b, int) else None


def canonical(value: object, dtype: str | None) -> object:
    """A plain value in the one form nft lists it: a one-value range or an IPv4 /32 prefix as
    the value (a range stays a range: nft lists ``ip daddr 10.0.0.0-10.0.0.255`` so)."""
    if isinstance(value, m.Range) and value.low == value.high:
        return value.low
    if isinstance(value, m.Prefix) and value.length == 32 and dtype != "ipv6_addr":
        return value.addr
    return value


def _element_value(value: object, dtype: str | None) -> object:
    """An element's value as nft lists set elements: an IPv4 range that is a prefix as the prefix."""
    if isinstance(value, m.Range) and dtype == "ipv4_addr":
        size = value.high - value.low + 1
        if size & (size - 1) == 0 and value.low % size == 0:
            return canonical(m.Prefix(value.low, 33 - size.bit_length()), dtype)
    return canonical(value, dtype)


def _element_key(key: object, dtypes: tuple) -> object:
    if isinstance(key, tuple):
        return tuple(_element_value(v, dtypes[i] if i < len(dtypes) else None) for i, v in enumerate(key))
    return _element_value(key, dtypes[0] if dtypes else None)


def flags_of(names: list[str], dtype: str | None) -> int:
    """A list of flag names (``["established", "related"]``) as the OR of their bits."""
    out = 0
    for name in names:
        bit = convert(name, dtype)
        if not isinstance(bit, int):
            raise ValueProblem(f"{name!r} is not a flag of {dtype or 'this expression'}")
        out |= bit
    return out


_ONES = 0xFFFFFFFF


def fold_bitwise(expr: object, op: str, value: int) -> m.Bitwise:
    """``expr OP value`` (OP ``&``, ``|``, ``^``) folded into one ``(x & mask) ^ xor``."""
    if isinstance(expr, m.Bitwise):
        base, mask, xor = expr.expr, expr.mask, expr.xor
    else:
        base, mask, xor = expr, _ONES, 0
    value &= _ONES
    if op == "&":
        mask, xor = mask & value, xor & value
    elif op == "|":
        mask, xor = mask & ~value & _ONES, xor | value
    elif op == "^":
        xor ^= value
    else:
        raise ValueProblem(f"unknown bitwise operator {op!r}")
    return m.Bitwise(base, mask, xor)


def negated_flags(left: object, right: object) -> m.Match:
    """``x ! FLAGS`` (nft 1.0's listing of ``x & FLAGS == 0``: none of the flags set): read as the
    kernel stores it, ``(x & FLAGS) == 0``, so the three forms of a ruleset give one model."""
    dtypes = dtype_of(left)
    if len(dtypes) != 1 or dtypes[0] not in FLAG_TYPES or type(right) is not int or not right:
        raise ValueProblem("'!' (none of the flags set) takes a flag field and one or more of its flags")
    return m.Match(fold_bitwise(left, "&", right), "==", 0)


def _order(value: object) -> tuple:
    if type(value) is int:
        return (0, value)
    if isinstance(value, int):
        return (0, int(value))
    if isinstance(value, str):
        return (1, value)
    if isinstance(value, m.Prefix):
        return (2, value.addr, value.length)
    if isinstance(value, m.Range):
        return (3, value.low, value.high)
    if isinstance(value, tuple):
        return (4, tuple(map(_order, value)))
    return (5, repr(value))


def sort_elements(elements: list, dtypes: tuple = ()) -> tuple:
    """Elements with keys as nft lists them, in one order whatever order the form listed them in
    (the kernel's order is its hash's)."""
    if dtypes:
        elements = [e if (k := _element_key(e.key, dtypes)) == e.key else
                    m.Element(k, e.data, e.timeout, e.comment) for e in elements]
    return tuple(sorted(elements, key=lambda e: _order(e.key)))


def anon_set(elements: list, dtypes: tuple) -> object:
    """The right side ``{ ... }`` of a match: a one-element set (not a concatenation) as its
    value, since nft stores and lists it as a plain compare; else an AnonSet."""
    if len(elements) == 1:
        only = elements[0]
        if only.data is None and only.timeout is None and only.comment is None and not isinstance(only.key, tuple):
            return only.key
    return m.AnonSet(sort_elements(elements, dtypes))


_DEPENDS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "dccp": 33, "udplite": 136, "esp": 50, "ah": 51,
            "comp": 108}


def _headers(expr: object) -> set[str]:
    if isinstance(expr, m.Payload):
        return {expr.protocol}
    if isinstance(expr, m.Concat):
        return set().union(*(_headers(i) for i in expr.items))
    if isinstance(expr, m.Bitwise):
        return _headers(expr.expr)
    return set()


def _dependency(stmt: object, family: str) -> tuple[str, int] | None:
    if not isinstance(stmt, m.Match) or stmt.op != "==" or not isinstance(stmt.right, int):
        return None
    if stmt.left == m.Meta("l4proto") or family == "ip" and stmt.left == m.Payload("ip", "protocol"):
        return ("l4", stmt.right)
    if stmt.left == m.Meta("nfproto"):
        return ("l3", stmt.right)
    return None


def drop_dependencies(stmts: list, family: str) -> list:
    """Leave out a ``meta l4proto tcp`` (in ip tables also ``ip protocol tcp``; in inet tables
    ``meta nfproto ipv4``) that the next match's header implies, as nft does when it lists a rule
    (seen on nft 1.0.6): the header match tests it anyway."""
    out: list = []
    for i, stmt in enumerate(stmts):
        dep = _dependency(stmt, family)
        if dep is not None and i + 1 < len(stmts) and isinstance(stmts[i + 1], m.Match):
            headers = _headers(stmts[i + 1].left)
            if dep[0] == "l4" and any(_DEPENDS.get(h) == dep[1] for h in headers):
                continue
            if dep[0] == "l3" and (dep[1] == 2 and "ip" in headers or dep[1] == 10 and "ip6" in headers):
                continue
        out.append(stmt)
    return out


_PRIORITY = re.compile(r"([a-z]+)\s*(?:([+-])\s*([0-9]+))?\Z")


def resolve_priority(text: str | int, family: str) -> int:
    """A base chain priority: a number, or a name (``dstnat``, ``filter - 10``) of ``family``."""
    if isinstance(text, int):
        return text
    text = text.strip()
    if _NUMBER.match(text):
        return int(text, 0) if not text.startswith("-") else -int(text[1:], 0)
    found = _PRIORITY.match(text)
    names = m.BRIDGE_PRIORITY_NAMES if family == "bridge" else m.PRIORITY_NAMES
    if found is None or found.group(1) not in names:
        raise ValueProblem(f"unknown priority {text!r} (names for {family}: {', '.join(names)})")
    offset = int(found.group(3)) if found.group(3) else 0
    return names[found.group(1)] + (-offset if found.group(2) == "-" else offset)


_TIME_UNITS = {"d": 86400000, "h": 3600000, "m": 60000, "s": 1000, "ms": 1}
_TIME_PART = re.compile(r"([0-9]+)(ms|d|h|m|s)")


def parse_time_ms(text: str) -> int:
    """``3h``, ``1h30m``, ``10s``, ``500ms`` (or bare seconds) in milliseconds."""
    if text.isdigit():
        return int(text) * 1000
    total, pos = 0, 0
    for part in _TIME_PART.finditer(text):
        if part.start() != pos:
            break
        total += int(part.group(1)) * _TIME_UNITS[part.group(2)]
        pos = part.end()
    if pos != len(text) or not text:
        raise ValueProblem(f"not a time: {text!r} (as 3h, 1h30m, 10s, 500ms)")
    return total
