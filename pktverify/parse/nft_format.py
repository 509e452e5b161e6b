"""A rule of the nft model written as ``nft list ruleset`` prints it.

The JSON form has no rule text, yet traces name each rule as nft prints it (issue #24): the JSON
reader gives each rule the text written here from its records. The kernel test checks it against
``nft -a list ruleset`` rule for rule. Values are written by the data type they are compared
with (addresses dotted, marks as 8 hex digits, flags by name, protocols by name).
"""

from __future__ import annotations

import ipaddress

from ..model import nft as m
from ..model.addresses import format_ip
from .nft_stmts import DEFAULT_REJECT
from .nft_values import FLAG_TYPES, PROTO_NUMBERS, dtype_of

__all__ = ["format_rule", "format_statement", "format_ms"]

_PROTO_NAMES = {number: name for name, number in PROTO_NUMBERS.items() if name not in ("ipv6-icmp",)}
_META_BARE = frozenset({"iif", "oif", "iifname", "oifname", "iifgroup", "oifgroup"})
_NAT_FLAGS = ("random", "fully-random", "persistent", "netmap")
_UNITS = (("gbytes", 1024 ** 3), ("mbytes", 1024 ** 2), ("kbytes", 1024))


def format_rule(exprs: tuple, comment: str | None, family: str, sets: dict | None = None) -> str:
    """The rule's text: its statements in order, then its comment. ``sets`` (name to an object
    with ``data``, the map's data types) tells the NAT maps that give address and port."""
    words = [format_statement(s, family, sets) for s in exprs]
    if comment is not None:
        words.append(f"comment {_quote(comment)}")
    return " ".join(words)


def _quote(text: str) -> str:
    return '"' + text + '"'


def format_ms(ms: int) -> str:
    """``10800000`` as ``3h``, ``5400000`` as ``1h30m``."""
    out = []
    for unit, size in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out) or "0s"


# ---------------------------------------------------------------- values
def _scalar(v: object, dtype: str | None) -> str:
    if isinstance(v, bool):
        return "exists" if v else "missing"
    if isinstance(v, m.Prefix):
        return f"{_scalar(v.addr, dtype)}/{v.length}"
    if isinstance(v, m.Range):
        return f"{_scalar(v.low, dtype)}-{_scalar(v.high, dtype)}"
    if isinstance(v, str):
        return _quote(v) if dtype == "ifname" else v
    if dtype == "ipv4_addr":
        return format_ip(v)
    if dtype == "ipv6_addr":
        return str(ipaddress.IPv6Address(v))
    if dtype == "inet_proto":
        return _PROTO_NAMES.get(v, str(v))
    if dtype == "mark":
        return f"0x{v:08x}"
    if dtype == "nf_proto":
        return {2: "ipv4", 10: "ipv6"}.get(v, str(v))
    if dtype in FLAG_TYPES:                             # bit by bit, lowest first; no name: 0x100,dying
        names = {bit: name for name, bit in FLAG_TYPES[dtype].items()}
        bits = [1 << i for i in range(v.bit_length()) if v >> i & 1]
        return ",".join(names.get(bit, f"0x{bit:x}") for bit in bits) or "0x0"
    return str(v)


def _value(v: object, dtypes: tuple) -> str:
    if isinstance(v, tuple):
        return " . ".join(_scalar(p, dtypes[i] if i < len(dtypes) else None) for i, p in enumerate(v))
    if isinstance(v, m.SetRef):
        return f"@{v.name}"
    if isinstance(v, m.AnonSet):
        return "{ " + ", ".join(_element(e, dtypes, None) for e in v.elements) + " }"
    return _scalar(v, dtypes[0] if dtypes else None)


def _element(e: m.Element, keys: tuple, data: tuple | None) -> str:
    text = _value(e.key, keys)
    if e.timeout is not None:
        text += f" timeout {format_ms(e.timeout)}"
    if e.comment is not None:
        text += f" comment {_quote(e.comment)}"
    if e.data is not None:
        text += " : " + (_verdict(e.data) if isinstance(e.data, m.NftVerdict) else _value(e.data, data or (None,)))
    return text


def _map_data(data: object, keys: tuple, values: tuple) -> str:
    if isinstance(data, m.AnonSet):
        return "{ " + ", ".join(_element(e, keys, values) for e in data.elements) + " }"
    return _value(data, keys)


# ---------------------------------------------------------------- expressions
def _expr(e: object) -> str:
    if isinstance(e, m.Payload):
        return f"{e.protocol} {e.field}"
    if isinstance(e, m.Meta):
        return e.key if e.key in _META_BARE else f"meta {e.key}"
    if isinstance(e, m.Ct):
        return f"ct {e.direction} {e.key}" if e.direction else f"ct {e.key}"
    if isinstance(e, m.Fib):
        return f"fib {' . '.join(e.flags)} {e.result}"
    if isinstance(e, m.Numgen):
        return f"numgen {e.mode} mod {e.mod}" + (f" offset {e.offset}" if e.offset else "")
    if isinstance(e, m.Hash):
        text = f"jhash {_expr(e.expr)} mod {e.mod}" if e.kind == "jhash" else f"symhash mod {e.mod}"
        return text + (f" seed 0x{e.seed:x}" if e.seed else "") + (f" offset {e.offset}" if e.offset else "")
    if isinstance(e, m.Bitwise):
        return _bitwise(e)
    if isinstance(e, m.Concat):
        return " . ".join(_expr(i) for i in e.items)
    if isinstance(e, m.MapLookup):
        return f"{_expr(e.key)} map {_map_data(e.data, dtype_of(e.key), (None,))}"
    if isinstance(e, m.NftUnknown):
        return e.raw
    return str(e)


def _bitwise(e: m.Bitwise) -> str:
    """``(x & mask) ^ xor`` as nft prints it: ``& a | o ^ x`` (what is not needed left out)."""
    dtype = dtype_of(e.expr)[0]
    ones = 0xFF if dtype == "tcp_flag" else 0xFFFFFFFF
    or_bits, xor_bits = e.xor & ~e.mask, e.xor & e.mask
    text = _expr(e.expr)
    keep = (e.mask | or_bits) & ones
    if keep != ones:
        text += f" & {_scalar(keep, dtype)}"
    if or_bits:
        text += f" | {_scalar(or_bits, dtype)}"
    if xor_bits:
        text += f" ^ {_scalar(xor_bits, dtype)}"
    return text


def _match(s: m.Match) -> str:
    dtypes = dtype_of(s.left)
    left = s.left
    if isinstance(left, m.Bitwise) and dtypes[0] in FLAG_TYPES and not left.xor and left.mask \
            and s.op in ("==", "!=") and type(s.right) is int:
        return _flag_match(left, s.op, s.right, dtypes[0])
    op = "" if s.op in ("==", "in") and not isinstance(left, m.Bitwise) else f"{s.op} "
    return f"{_expr(left)} {op}{_value(s.right, dtypes)}"


def _flag_match(left: m.Bitwise, op: str, value: int, dtype: str) -> str:
    """``(x & MASK) OP VALUE`` on a flag field as nft 1.0.6 lists it (kernel-listed, tests/kernel/
    test_nft_forms.py): none set ``x ! MASK``, any set ``x MASK``; one flag, all of it ``x & F == F``
    (``!=`` alike); else ``x VALUE / MASK`` (``x != VALUE / MASK``)."""
    x, mask = _expr(left.expr), _scalar(left.mask, dtype)
    if value == 0:
        return f"{x} ! {mask}" if op == "==" else f"{x} {mask}"
    if value == left.mask and not value & (value - 1):
        return f"{x} & {mask} {op} {mask}"
    return f"{x} {'' if op == '==' else '!= '}{_scalar(value, dtype)} / {mask}"


# ---------------------------------------------------------------- statements
def _verdict(v: m.NftVerdict) -> str:
    return f"{v.kind} {v.chain}" if v.chain else v.kind


def _nat(s: m.Nat, family: str, sets: dict | None) -> str:
    shown = s.family
    if shown is None and family in ("ip", "ip6") and _pair_map(s.addr, sets or {}):
        shown = family                                  # nft lists `dnat ip to tcp dport map @m`
    text = s.kind + (f" {shown}" if shown else "")
    addr_type = "ipv6_addr" if family == "ip6" else "ipv4_addr"
    if s.addr is not None or s.port is not None:
        if isinstance(s.addr, m.MapLookup):
            target = _expr(s.addr.key) + " map " + _map_data(s.addr.data, dtype_of(s.addr.key),
                                                              (addr_type, "inet_service"))
        else:
            target = _scalar(s.addr, addr_type) if s.addr is not None else ""
            if addr_type == "ipv6_addr" and s.addr is not None and s.port is not None:
                target = f"[{target}]"
        if s.port is not None:
            target += f":{_scalar(s.port, 'inet_service')}"
        text += f" to {target}"
    flags = [f for f in _NAT_FLAGS if f in s.flags]
    return text + (" " + ",".join(flags) if flags else "")


def _pair_map(addr: object, sets: dict) -> bool:
    """Whether the NAT address comes from a map giving address . port."""
    if not isinstance(addr, m.MapLookup):
        return False
    if isinstance(addr.data, m.SetRef):
        found = sets.get(addr.data.name)
        return found is not None and found.data is not None and len(found.data) > 1
    return any(isinstance(e.data, tuple) for e in addr.data.elements)


def _bytes(n: int) -> str:
    for unit, size in _UNITS:
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def _limit(s: m.Limit) -> str:
    over = "over " if s.over else ""
    if s.unit == "packets":
        burst = f" burst {s.burst} packets" if s.burst != 5 else ""
        return f"limit rate {over}{s.rate}/{s.per}{burst}"
    burst = f" burst {_bytes(s.burst)}" if s.burst else ""
    return f"limit rate {over}{_bytes(s.rate)}/{s.per}{burst}"


def _log(s: m.Log) -> str:
    words = ["log"]
    if s.prefix is not None:
        words.append(f"prefix {_quote(s.prefix)}")
    if s.level is not None:
        words.append(f"level {s.level}")
    if s.group is not None:
        words.append(f"group {s.group}")
    return " ".join(words)


def _counter(s: m.Counter) -> str:
    if s.name is not None:
        return f"counter name {_quote(s.name)}"
    return f"counter packets {s.packets} bytes {s.bytes}" if s.packets is not None else "counter"


def _reject(s: m.Reject, family: str) -> str:
    if s.kind == "tcp reset":
        return "reject with tcp reset"
    if s.code == "port-unreachable" and s.kind == DEFAULT_REJECT.get(family, "icmp"):
        return "reject"
    return f"reject with {s.kind} {s.code}"


def _set_update(s: m.SetUpdate) -> str:
    inner = _expr(s.key) + (f" timeout {format_ms(s.timeout)}" if s.timeout is not None else "")
    if s.data is not None:
        inner += " : " + (_expr(s.data) if not isinstance(s.data, (int, str, tuple)) else _value(s.data, (None,)))
    return f"{s.op} @{s.set} {{ {inner} }}"


def _queue(s: m.Queue) -> str:
    num = f"{s.low}-{s.high}" if s.high != s.low else str(s.low)
    return "queue" + (f" flags {','.join(s.flags)}" if s.flags else "") + (f" num {num}" if s.high else "")


def format_statement(s: object, family: str, sets: dict | None = None) -> str:
    """One statement as nft prints it."""
    simple = _SIMPLE.get(type(s))
    if simple is not None:
        return simple(s)
    if isinstance(s, m.Reject):
        return _reject(s, family)
    if isinstance(s, m.Nat):
        return _nat(s, family, sets)
    if isinstance(s, m.Mangle):
        value = s.value
        shown = _value(value, dtype_of(s.key)) if isinstance(value, (int, str, tuple)) else _expr(value)
        return f"{_expr(s.key)} set {shown}"
    if isinstance(s, m.Vmap):
        return f"{_expr(s.key)} vmap {_map_data(s.data, dtype_of(s.key), ('verdict',))}"
    return _expr(s)


_SIMPLE = {
    m.Match: _match, m.NftVerdict: _verdict, m.Counter: _counter, m.Log: _log, m.Limit: _limit,
    m.Queue: _queue, m.SetUpdate: _set_update, m.NoTrack: lambda s: "notrack",
    m.Quota: lambda s: f"quota {'over ' if s.over else ''}{_bytes(s.bytes)}",
    m.CtCount: lambda s: f"ct count {'over ' if s.over else ''}{s.count}",
    m.FlowAdd: lambda s: f"flow add @{s.flowtable}", m.Xt: lambda s: f"xt {s.kind} {s.name}",
}
