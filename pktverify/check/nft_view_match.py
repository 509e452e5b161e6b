"""How one nft match or action reads in an nft ruleset's header-space view (:mod:`.nft_view`).

A match on a field the box holds (addresses, protocol, ports, interfaces, conntrack state, the
mark) becomes the iptables-model match, or a :class:`.headerspace.FieldSet` for sets and
comparisons; anything else is None here (the view makes it opaque). A transport header's payload
implies its protocol, as nft adds the dependency (a UDP packet never matches ``tcp dport != 80``);
``th`` ports are decided when the view rule is made (:func:`resolve_th`): exact only when the rule
keeps the protocol to ones with ports. Actions become iptables' targets.
"""

from __future__ import annotations

from ..model import nft as n
from ..model import rules as m
from ..model.addresses import is_prefix_mask, prefix_mask
from .headerspace import DPORT, DST, PROTO, SPORT, SRC, FieldSet

__all__ = ["NEVER", "PORT_PROTOCOLS", "implied", "mangle_target", "nat_target", "resolve_th", "set_match",
           "statement_implied", "value_interval", "value_match", "verdict_target"]

PORT_PROTOCOLS = frozenset({6, 17, 132})      # tcp, udp, sctp: what `th` ports read (eval.nft_exprs)
_PROTO_OF = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1}
_CT_STATES = {1: "INVALID", 2: "ESTABLISHED", 4: "RELATED", 8: "NEW", 64: "UNTRACKED"}
_VERDICTS = {"accept": "ACCEPT", "drop": "DROP", "return": "RETURN"}
_ADDR = {"saddr": SRC, "daddr": DST}
_PORT = {"sport": SPORT, "dport": DPORT}
NEVER = FieldSet(PROTO, ())           # a test no IPv4 packet passes (ip6 headers, meta nfproto ipv6)


def verdict_target(v: n.NftVerdict) -> m.Target | None:
    if v.kind in _VERDICTS:
        return m.Verdict(_VERDICTS[v.kind])
    if v.kind in ("jump", "goto"):
        return m.Jump(v.chain or "", v.kind == "goto")
    return None


def nat_target(stmt: n.Nat, addr: object, port: object) -> m.Target:
    def ends(v: object) -> tuple:
        if v is None:
            return None, None
        if isinstance(v, n.Range):
            return v.low, v.high
        if isinstance(v, n.Prefix):
            return v.addr, v.addr | (~prefix_mask(v.length) & 0xFFFFFFFF)
        return v, v
    (alo, ahi), (plo, phi) = ends(addr), ends(port)
    flags = stmt.flags
    rnd, fully, persistent = "random" in flags, "fully-random" in flags, "persistent" in flags
    if "netmap" in flags and isinstance(addr, n.Prefix):
        return m.Netmap(addr.addr, prefix_mask(addr.length))
    if stmt.kind == "dnat":
        return m.Dnat(alo, ahi, plo, phi, rnd, persistent)
    if stmt.kind == "snat":
        return m.Snat(alo if alo is not None else 0, ahi if ahi is not None else 0xFFFFFFFF, plo, phi, rnd, fully,
                      persistent)
    if stmt.kind == "masquerade":
        return m.Masquerade(plo, phi, rnd, fully)
    return m.Redirect(plo, phi, rnd)


def mangle_target(stmt: n.Mangle) -> m.Target | None:
    """``meta mark set``, ``ct mark set``, ``ip ttl set`` as iptables' targets when the value is a
    constant or a bitwise of the same mark; None: another change (an ``m.UnknownTarget``)."""
    key, value = stmt.key, stmt.value
    same = type(value) is n.Bitwise and value.expr == key
    if key == n.Meta("mark"):
        if type(value) is int:
            return m.SetMark(value & 0xFFFFFFFF, 0xFFFFFFFF)
        if same:
            return m.SetMark(value.xor, ~value.mask & 0xFFFFFFFF)
        if value == n.Ct("mark"):
            return m.ConnMark("restore")
    if key == n.Ct("mark"):
        if type(value) is int:
            return m.ConnMark("set", value & 0xFFFFFFFF, 0xFFFFFFFF)
        if same:
            return m.ConnMark("set", value.xor, ~value.mask & 0xFFFFFFFF)
        if value == n.Meta("mark"):
            return m.ConnMark("save")
    if key == n.Payload("ip", "ttl") and type(value) is int:
        return m.SetTtl("set", value)
    return None


# ---------------------------------------------------------------- one match
def implied(expr: object) -> list:
    """The protocols the transport-header payloads ``expr`` reads imply (nft's dependency: another
    protocol's packet breaks the rule), or ``NEVER`` for a header an IPv4 packet never has."""
    out: list = []
    todo = [expr]
    while todo:
        e = todo.pop()
        t = type(e)
        if t is n.Payload:
            if e.protocol in ("ip6", "icmpv6"):
                return NEVER            # type: ignore[return-value]
            if e.protocol in _PROTO_OF and m.ProtoMatch(_PROTO_OF[e.protocol]) not in out:
                out.append(m.ProtoMatch(_PROTO_OF[e.protocol]))
        elif t is n.Concat:
            todo.extend(reversed(e.items))
        elif t is n.Bitwise:
            todo.append(e.expr)
        elif t is n.MapLookup:
            todo.append(e.key)
    return out


def statement_implied(stmt: object) -> list:
    """:func:`_implied` of what a statement reads (a set update's key, a mark's value, a NAT map's key)."""
    t = type(stmt)
    exprs = (stmt.key,) if t in (n.SetUpdate, n.Vmap) else (stmt.value,) if t is n.Mangle else \
        (stmt.addr, stmt.port) if t is n.Nat else ()
    out: list = []
    for e in exprs:
        got = implied(e)
        if got is NEVER:
            return [NEVER]
        out += [mt for mt in got if mt not in out]
    return out


def _field(left: object) -> tuple[str, int] | None:
    """("addr"|"proto"|"port"|"th", box field) of a number field the box holds."""
    if type(left) is n.Payload:
        if left.protocol == "ip" and left.field in _ADDR:
            return "addr", _ADDR[left.field]
        if left.protocol == "ip" and left.field == "protocol":
            return "proto", PROTO
        if left.protocol in ("tcp", "udp", "sctp") and left.field in _PORT:
            return "port", _PORT[left.field]
        if left.protocol == "th" and left.field in _PORT:
            return "th", _PORT[left.field]
    if left == n.Meta("l4proto"):
        return "proto", PROTO
    return None


def value_interval(v: object) -> tuple[int, int] | None:
    """A value, range or prefix as the interval of the numbers it holds (None: another kind)."""
    if type(v) is int:
        return v, v
    if isinstance(v, n.Range):
        return v.low, v.high
    if isinstance(v, n.Prefix):
        mask = prefix_mask(v.length)
        return v.addr & mask, (v.addr & mask) | (~mask & 0xFFFFFFFF)
    return None


_TOPS = {"addr": 0xFFFFFFFF, "proto": 255, "port": 65535, "th": 65535}


def _numbers(kind: str, fld: int, op: str, values: tuple | None) -> list | None:
    """A number field's test: == / != a value, range, prefix or set; < > <= >= a number."""
    if values is None:
        return None
    top = _TOPS[kind]
    if op in ("<", ">", "<=", ">="):
        if len(values) != 1 or values[0][0] != values[0][1]:
            return None
        v = values[0][0]
        span = {"<": (0, v - 1), "<=": (0, v), ">": (v + 1, top), ">=": (v, top)}[op]
        values, op = ((span,) if span[0] <= span[1] else ()), "=="
    if op not in ("==", "!="):
        return None
    invert = op == "!="
    if kind == "th":
        return [("th", fld, values, invert)]
    if len(values) == 1 and kind == "addr":
        lo, hi = values[0]
        size = hi - lo + 1
        if size & (size - 1) == 0 and lo % size == 0:
            return [m.AddrMatch("src" if fld == SRC else "dst", lo, ~(size - 1) & 0xFFFFFFFF, invert)]
        return [m.IpRangeMatch("src" if fld == SRC else "dst", lo, hi, invert)]
    if len(values) == 1 and kind == "port":
        return [m.PortMatch("sport" if fld == SPORT else "dport", values[0][0], values[0][1], invert)]
    return [FieldSet(fld, tuple(sorted(values)), invert)]


def value_match(left: object, op: str, right: object) -> list | None:
    """A match against one value (None: the box cannot say it)."""
    where = _field(left)
    if where is not None:
        iv = value_interval(right)
        return _numbers(where[0], where[1], op, (iv,) if iv is not None else None)
    if type(left) is n.Meta and left.key in ("iifname", "iif", "oifname", "oif") and isinstance(right, str):
        if op not in ("==", "!=") or "\\" in right:
            return None
        prefix = right.endswith("*")
        return [m.IfaceMatch("in" if left.key.startswith("i") else "out", right[:-1] if prefix else right, prefix,
                             op == "!=")]
    if left == n.Ct("state") and type(right) is int:
        if op == "in":
            return [m.CtStateMatch(frozenset(s for bit, s in _CT_STATES.items() if right & bit))]
        if op in ("==", "!="):
            return [m.CtStateMatch(frozenset(s for bit, s in _CT_STATES.items() if right == bit), op == "!=")]
        return None
    if type(left) is n.Bitwise and type(right) is int and op in ("==", "!="):
        return _bitwise(left, op, right)
    if left in (n.Meta("mark"),) and type(right) is int and op in ("==", "!="):
        return [m.MarkMatch(right & 0xFFFFFFFF, 0xFFFFFFFF, op == "!=")]
    if left in (n.Meta("nfproto"), n.Meta("protocol"), n.Payload("ip", "version")) and op in ("==", "!="):
        have = {"nfproto": 2, "protocol": "ip", "version": 4}[getattr(left, "key", None) or left.field]
        return [] if (have == right) == (op == "==") else [NEVER]
    return None


def _bitwise(left: n.Bitwise, op: str, right: int) -> list | None:
    """``(x & mask) ^ xor == v``: x & mask == v ^ xor, on the mark or (contiguous mask) an address."""
    want, mask = right ^ left.xor, left.mask
    if left.expr == n.Meta("mark"):
        return [m.MarkMatch(want & 0xFFFFFFFF, mask, op == "!=")]
    where = _field(left.expr)
    if where is None or where[0] != "addr" or not is_prefix_mask(mask):
        return None
    if want & ~mask:                         # no address gives it
        return [] if op == "!=" else [NEVER]
    return [m.AddrMatch("src" if where[1] == SRC else "dst", want, mask, op == "!=")]


def set_match(left: object, op: str, elements: tuple[n.Element, ...]) -> list | None:
    """A lookup of one field in a set's elements (values, ranges, prefixes)."""
    if op not in ("==", "!="):
        return None
    if left == n.Ct("state"):
        if not all(type(e.key) is int for e in elements):
            return None
        states = frozenset(s for e in elements for bit, s in _CT_STATES.items() if e.key == bit)
        return [m.CtStateMatch(states, op == "!=")]
    where = _field(left)
    if where is None:
        return None
    values = [value_interval(e.key) for e in elements]
    if any(v is None for v in values):
        return None
    if where[0] == "th":
        return [("th", where[1], tuple(values), op == "!=")]
    return [FieldSet(where[1], tuple(sorted(values)), op == "!=")]


def resolve_th(matches: list, rule: n.NftRule, family: str) -> list:
    """The view matches, with ``th`` ports decided: exact when the rule's other matches keep the
    protocol to ones with ports (tcp, udp, sctp), else opaque (nft reads other headers' bytes)."""
    if not any(type(mt) is tuple for mt in matches):
        return matches
    protos: set[int] | None = None            # None: every protocol
    taken: set[int] = set()
    for mt in matches:
        t = type(mt)
        if t is m.ProtoMatch and mt.proto:
            inside = {mt.proto}
        elif t is FieldSet and mt.field == PROTO:
            inside = {p for lo, hi in mt.values for p in range(lo, min(hi, 255) + 1)}
        else:
            continue
        if mt.invert:
            taken |= inside
        else:
            protos = inside if protos is None else protos & inside
    exact = protos is not None and protos - taken <= PORT_PROTOCOLS     # (only ! tests: opaque, still sound)
    out = []
    for mt in matches:
        if type(mt) is not tuple:
            out.append(mt)
        elif exact:
            out.append(FieldSet(mt[1], _merge(mt[2]), mt[3]))
        else:
            out.append(m.UnknownMatch("nft", f"th {'sport' if mt[1] == SPORT else 'dport'} (no protocol with ports "
                                             f"required): {rule.text}"))
    return out


def _merge(values: tuple) -> tuple:
    return tuple(sorted(values))
