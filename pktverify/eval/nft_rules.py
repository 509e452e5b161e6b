"""An nftables rule compiled to a list of operations the chain walker runs in order.

nft evaluates a rule's expressions left to right: a failing match breaks the rule (the effects
before it stay done), a verdict ends it. Each statement becomes one operation:

* ``("pred", test, why)``: a match (True, False, or None: may-match, ``why`` says what no dump holds);
* ``("fixed", matched, note)``: limit, quota, ``ct count``: answered for a fresh flow, as iptables'
  limit is;
* ``("effect", fn)``: ``fn(st, ctx) -> (st, action)`` (mark, ct mark, notrack, counter, log, set update
  ...), or None when the rule breaks there (a map holding nothing for the packet);
* ``("verdict", kind, chain)``: accept, drop, continue, return, jump, goto;
* ``("vmap", key, lookup)``: a verdict map;
* ``("reject", with_)``, ``("queue", text)``, ``("nat", fn)``: the chain's walk ends;
* ``("fork", [(share, ops, note), ...], exact)``: ``numgen``/``jhash``/``symhash``: the rest of the
  rule once per bucket, each with its share (numgen random: the kernel's ``reciprocal_scale``).
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

from ..model import nft as n
from ..model.addresses import format_ip
from .fib import Fib
from .nft_exprs import (
    ABSENT,
    CT_TEMPLATE,
    ICMP_CODES,
    ZONE_ORIG,
    ZONE_REPLY,
    ZONE_SHIFT,
    compile_getter,
    compile_match,
    has_bucket,
)
from .nft_nat import compile_nat
from .nft_sets import compile_lookup, deleted_tag
from .state import CT_INVALID, CT_NEW, CT_UNTRACKED, WalkState, with_ctbits

__all__ = ["compile_ops", "numgen_shares", "reject_with"]

_ICMPX = {"port-unreachable": "icmp-port-unreachable", "admin-prohibited": "icmp-admin-prohibited",
          "no-route": "icmp-net-unreachable", "host-unreachable": "icmp-host-unreachable"}


def numgen_shares(mod: int) -> list[Fraction]:
    """``numgen random mod N``: bucket i's share, the 32-bit values v with floor(v*N/2^32) = i
    (the kernel's ``reciprocal_scale``), as exact fractions."""
    return list(_shares(mod))


@lru_cache(maxsize=64)
def _shares(mod: int) -> tuple[Fraction, ...]:
    total = 1 << 32
    edges = [-(-i * total // mod) for i in range(mod + 1)]     # ceil(i * 2^32 / N)
    return tuple(Fraction(edges[i + 1] - edges[i], total) for i in range(mod))


def reject_with(stmt: n.Reject) -> str:
    """A reject statement as REJECT's ``--reject-with`` name (its answer is built alike)."""
    if stmt.kind.startswith("tcp"):
        return "tcp-reset"
    code = stmt.code or "port-unreachable"
    if stmt.kind == "icmpx":
        return _ICMPX.get(code, "icmp-port-unreachable")
    if isinstance(code, int):
        code = next((k for k, v in ICMP_CODES.items() if v == code), "port-unreachable")
    return f"icmp-{code}".replace("prot-unreachable", "proto-unreachable")


def compile_ops(stmts: tuple, fib: Fib, sets: dict, family: str, bucket: int | None = None) -> tuple:
    """The operations of a rule's statements (``bucket``: the value a numgen or hash takes here)."""
    ops: list = []
    for i, stmt in enumerate(stmts):
        if bucket is None and has_bucket(stmt):
            fork = _fork(stmt, stmts[i:], fib, sets, family)
            if len(fork[1]) == 1:           # one bucket (mod 1, numgen inc): no fork, its note and the rest
                _share, tail, note = fork[1][0]
                ops.append(("effect", lambda st, ctx=None, note=note: (st, note)))
                ops.extend(tail)
            else:
                ops.append(fork)
            break
        ops.append(_op(stmt, fib, sets, family, bucket))
    return tuple(ops)


def _fork(stmt, rest: tuple, fib: Fib, sets: dict, family: str) -> tuple:
    """The rest of the rule once per bucket of the numgen or hash ``stmt`` holds."""
    gen = _bucket_expr(stmt)
    if isinstance(gen, n.Numgen) and gen.mode == "random":
        shares = numgen_shares(gen.mod)
        notes = [f"numgen random: bucket {gen.offset + i} (share {s})" for i, s in enumerate(shares)]
        exact = True
    elif isinstance(gen, n.Numgen):
        shares, notes = [Fraction(1)], [f"numgen inc: bucket {gen.offset} (the counter no dump shows: 0 after "
                                        "loading, so the first packet takes bucket 0)"]
        return ("fork", [(1.0, compile_ops(rest, fib, sets, family, gen.offset), notes[0])], False)
    else:
        shares = [Fraction(1, gen.mod)] * gen.mod
        notes = [f"{gen.kind}: bucket {gen.offset + i} of {gen.mod} (a hash of the flow picks one, "
                 "as a multipath route's nexthop)" for i in range(gen.mod)]
        exact = True
    variants = [(float(s), compile_ops(rest, fib, sets, family, gen.offset + i), notes[i])
                for i, s in enumerate(shares) if s]
    return ("fork", variants, exact)


def _bucket_expr(expr: object):
    if isinstance(expr, (n.Numgen, n.Hash)):
        return expr
    for attr in ("left", "key", "expr", "addr", "port", "value"):
        sub = getattr(expr, attr, None)
        if sub is not None and has_bucket(sub):
            return _bucket_expr(sub)
    if isinstance(expr, n.Concat):
        return next(_bucket_expr(i) for i in expr.items if has_bucket(i))
    return None


def _op(stmt, fib: Fib, sets: dict, family: str, bucket: int | None) -> tuple:
    t = type(stmt)
    if t is n.Match:
        return ("pred", compile_match(stmt, fib, sets, bucket), _why(stmt.left))
    if t is n.NftVerdict:
        return ("verdict", stmt.kind, stmt.chain)
    if t is n.Vmap:
        data = stmt.data
        lookup = sets[data.name] if isinstance(data, n.SetRef) else compile_lookup(data.elements)
        return ("vmap", compile_getter(stmt.key, fib, sets, bucket), lookup)
    if t is n.Reject:
        return ("reject", reject_with(stmt))
    if t is n.Queue:
        return ("queue", f"queue num {stmt.low}" + (f"-{stmt.high}" if stmt.high != stmt.low else ""))
    if t is n.Nat:
        return ("nat", compile_nat(stmt, fib, sets, bucket))
    if t is n.Mangle:
        return ("effect", _mangle(stmt, fib, sets, bucket))
    if t is n.Limit:
        return ("fixed", not stmt.over, f"fresh flow: limit rate {'over ' if stmt.over else ''}{stmt.rate}/{stmt.per}"
                                        f" {'exceeded' if stmt.over else 'has tokens'} for its first packet")
    if t is n.Quota:
        return ("fixed", not stmt.over, f"fresh flow: quota {stmt.bytes} bytes not used up")
    if t is n.CtCount:
        return ("fixed", stmt.count >= 1 if not stmt.over else stmt.count < 1,
                f"fresh flow: ct count {'over ' if stmt.over else ''}{stmt.count} (this connection the only one)")
    if t is n.SetUpdate:
        return ("effect", _set_update(stmt, compile_getter(stmt.key, fib, sets, bucket), sets))
    fn = _plain(stmt)
    if fn is None:
        raw = stmt.raw if t is n.NftUnknown else f"xt {getattr(stmt, 'kind', '')} {getattr(stmt, 'name', '')}"
        return ("pred", _unknown, f"{raw} is not modelled")
    return ("effect", fn)


def _unknown(st: WalkState) -> None:
    return None


def _why(left: object) -> str:
    return f"no dump holds {type(left).__name__.lower()} {getattr(left, 'field', getattr(left, 'key', ''))}".strip()


def _plain(stmt):
    """Statements with no effect on the packet's fate here, and those not read (may-match)."""
    t = type(stmt)
    if t is n.NoTrack:
        def notrack(st: WalkState, ctx=None):
            if st.ctbits != CT_INVALID:       # nft_notrack_eval: a packet with a connection keeps it
                return st, "notrack: the packet already has its connection (conntrack ran): no effect"
            return st._replace(ctbits=CT_UNTRACKED), "notrack: no connection (untracked)"
        return notrack
    if t is n.Counter:
        text = "counter"
    elif t is n.Log:
        text = "log" + (f" prefix {stmt.prefix!r}" if stmt.prefix else "")
    elif t is n.FlowAdd:
        text = f"flow add @{stmt.flowtable} (the flowtable takes the connection's established packets, not this one)"
    else:
        return None           # NftUnknown, Xt: the rule compiler makes them may-match
    return lambda st, ctx=None: (st, text)


def _mangle(stmt: n.Mangle, fib: Fib, sets: dict, bucket: int | None):
    """``meta mark set``, ``ct mark set`` (the folded bitwise of marks), others noted."""
    key, value = stmt.key, compile_getter(stmt.value, fib, sets, bucket)
    if key == n.Meta("mark"):
        def meta_mark(st: WalkState, ctx=None):
            v = value(st)
            if v is ABSENT:
                return None
            if type(v) is not int:
                return st._replace(exact=False), "meta mark set: value unknown (not modelled)"
            return st._replace(mark=v & 0xFFFFFFFF), f"mark {st.mark:#x} → {v & 0xFFFFFFFF:#x}"
        return meta_mark
    if type(key) is n.Ct and key.key == "zone":
        return _zone_set(key.direction, value)
    if key == n.Ct("mark"):
        def ct_mark(st: WalkState, ctx=None):
            v = value(st)
            if v is ABSENT:
                return None
            if st.ctbits & (CT_UNTRACKED | CT_INVALID | CT_TEMPLATE):     # nft_ct_set_eval: not a template
                return st, "ct mark set: the packet has no connection, nothing kept"
            if type(v) is not int:
                return st._replace(exact=False), "ct mark set: value unknown (not modelled)"
            return st._replace(ctmark=v & 0xFFFFFFFF), f"ctmark {st.ctmark:#x} → {v & 0xFFFFFFFF:#x}"
        return ct_mark
    name = " ".join(str(getattr(key, a)) for a in ("protocol", "field", "key") if getattr(key, a, None))
    if type(key) is n.Payload:
        return _payload_set(key, value, name)
    return lambda st, ctx=None: (st, f"{type(key).__name__.lower()} {name} set (no effect modelled on the walk)")


_PAYLOAD_FIELDS = {("ip", "saddr"): "src", ("ip", "daddr"): "dst", ("ip", "ttl"): "ttl"}


def _payload_set(key: n.Payload, value, name: str):
    """``ip saddr set``, ``tcp dport set`` ...: a stateless rewrite of the header. The later rules of
    this walk see the new field, but what the kernel does around it (conntrack keeps the tuple it
    saw, NAT maps from that tuple, a rewrite in output may re-route, replies are not rewritten back)
    is not followed: the outcome is inexact, never silently exact. A field the model does not
    carry (dscp, ecn, tcp flags ...) is noted, and inexact too."""
    attr = _PAYLOAD_FIELDS.get((key.protocol, key.field))
    if attr is None and key.field in ("sport", "dport") and key.protocol in ("tcp", "udp", "sctp", "th"):
        attr = key.field

    def rewrite(st: WalkState, ctx=None):
        v = value(st)
        if v is ABSENT:
            return None
        if attr is None or type(v) is not int or (attr in ("sport", "dport") and not st.pkt.has_ports):
            return st._replace(exact=False), f"payload {name} set: not modelled (the outcome is inexact)"
        address = attr in ("src", "dst")
        new = v & (0xFFFFFFFF if address else 0xFFFF if attr != "ttl" else 0xFF)
        old = getattr(st.pkt, attr)
        was, now = (format_ip(old), format_ip(new)) if address else (old, new)
        return (st._replace(pkt=st.pkt._replace(**{attr: new}), exact=False),
                f"payload {name} set: {was} → {now} (a stateless rewrite: conntrack, NAT and routing around it "
                "are not followed, the outcome is inexact)")
    return rewrite


def _set_update(stmt: n.SetUpdate, key, sets: dict):
    """``add``/``update``/``delete @set { key }``: the set changes at once (nft_dynset_eval), for this
    packet's later lookups and for later connections (``TraceMeta.recent`` entries, as the set's
    lookups read them: :func:`.nft_sets.deleted_tag` names a deleted key). A map's element is not
    followed: the outcome is inexact."""
    name, tag = stmt.set, sets[stmt.set].tag
    followed = stmt.op in ("add", "update", "delete") and stmt.data is None and tag is not None

    def set_update(st: WalkState, ctx=None):
        k = key(st)
        if k is ABSENT:
            return None
        if not followed or k is None or (type(k) is tuple and None in k) or st.meta is None:
            return st._replace(exact=False), f"{stmt.op} @{name} (not followed: later lookups may differ)"
        added, deleted = (tag, k), (deleted_tag(tag), k)
        if stmt.op == "delete":        # a key the set does not hold: nothing happens, the rule goes on
            added, deleted = deleted, added
        recent = st.meta.recent
        if added not in recent or deleted in recent:
            st = st._replace(meta=st.meta._replace(recent=(recent - {deleted}) | {added}))
        return st, (f"{stmt.op} @{name} {{ {_key_text(stmt.key, k)} }} (this packet's later lookups and later "
                    "connections see it)")
    return set_update


def _key_text(expr: object, key: object) -> str:
    """The key as nft prints it: addresses dotted, other values as numbers."""
    exprs = expr.items if type(expr) is n.Concat else (expr,)
    parts = key if type(key) is tuple else (key,)
    return " . ".join(format_ip(v) if type(v) is int and getattr(e, "field", getattr(e, "key", "")).endswith(
        ("saddr", "daddr")) else str(v) for e, v in zip(exprs, parts))


def _zone_set(direction: str | None, value):
    """``ct zone set``: a packet without a connection (before conntrack) gets a template in that zone,
    which conntrack's new connection takes; the first one set stays, and a packet with a connection
    (or untracked) is left alone (nft_ct_set_zone_eval)."""
    dirs = ZONE_ORIG if direction == "original" else ZONE_REPLY if direction == "reply" else ZONE_ORIG | ZONE_REPLY

    def zone_set(st: WalkState, ctx=None):
        v = value(st)
        if v is ABSENT:
            return None
        if st.ctbits != CT_INVALID:
            return st, "ct zone set: the packet has its connection (or a zone) already: no effect"
        if type(v) is not int:
            return st._replace(exact=False), "ct zone set: value unknown (not modelled)"
        v &= 0xFFFF
        return with_ctbits(st, CT_NEW | CT_TEMPLATE | dirs | v << ZONE_SHIFT), f"ct zone {v} (the connection's)"
    return zone_set
