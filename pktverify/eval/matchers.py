"""Compile model matches into predicates over a :class:`WalkState`.

Deterministic matches become closures ``pred(state) -> bool``. The two
probabilistic ones (``statistic`` random and nth) become a probability, and
an unknown module (``--lenient``) becomes a "may match" flag; the chain
walker branches on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..model import rules as m
from .facts import (
    TriPredicate,
    compile_fact,
    compile_length,
    compile_owner,
    compile_physdev,
    compile_rpfilter,
    compile_set,
    compile_time,
)
from .fib import Fib
from .state import CT_BITS, WalkState

__all__ = ["CompiledRule", "compile_rule"]

Predicate = Callable[[WalkState], bool]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to evaluate: ``preds`` all true, ``maybes`` not false, then match with
    ``probability``. A ``maybes`` predicate answers None when the dumps cannot say (the walk
    then follows both branches, inexact); ``unknown`` is a module never modelled (--lenient)."""
    rule: m.Rule
    position: int              # 0-based index in its chain
    preds: tuple[Predicate, ...]
    probability: float         # 1.0 unless statistic matches are present
    unknown: bool              # an unknown match module: may or may not match
    dst_key: int | None        # the exact /32 destination this rule requires, for the index
    maybes: tuple[TriPredicate, ...] = ()
    why: str = ""              # why the answer may be unknown (for the trace step)
    fixed: str = ""            # what a fresh-flow answer assumed (for the trace step)
    special: bool = False      # any of unknown, maybes, fixed: the walker's slow path
    dport_key: int | None = None   # the one destination port this rule requires (--dport N), for the index


def compile_rule(rule: m.Rule, position: int, fib: Fib) -> CompiledRule:
    """Turn ``rule``'s matches into predicates, a probability and may-match conditions."""
    preds: list[Predicate] = []
    maybes: list[TriPredicate] = []
    whys: list[str] = []
    fixed: list[str] = []
    probability = 1.0
    unknown = False
    dst_key = dport_key = None
    for match in rule.matches:
        kind = type(match)
        if kind is m.RandomMatch:
            probability *= (1.0 - match.probability) if match.invert else match.probability
        elif kind is m.NthMatch:
            share = 1.0 / match.every
            probability *= (1.0 - share) if match.invert else share
        elif kind in _MAY_MATCH:
            tri, why = _may_match(match, fib)
            if tri is None:
                unknown = True
            else:
                maybes.append(tri)
            whys.append(why)
        elif kind is m.CommentMatch:
            continue
        elif kind is m.FixedMatch:
            fixed.append(match.why)
            pred = _fixed_pred(rule, match)
            if pred is not None:
                preds.append(pred)
        else:
            if kind is m.AddrMatch and match.field == "dst" and not match.invert and match.mask == 0xFFFFFFFF:
                dst_key = match.network
            elif kind is m.PortMatch and match.field == "dport" and not match.invert and match.low == match.high:
                dport_key = match.low         # a packet with another (or no) port never matches
            if kind in _NODE_FREE:
                # The same test on another node (or twice on one) is the same predicate: nodes whose
                # rules differ only in a few places (userspace portals) share the rest.
                pred = _SHARED.get(match)
                if pred is None:
                    pred = _COMPILERS[kind](match, fib)
                    if len(_SHARED) < _MAX_SHARED:
                        _SHARED[match] = pred
                preds.append(pred)
            else:
                preds.append(_COMPILERS[kind](match, fib))
    return CompiledRule(rule, position, tuple(preds), probability, unknown, dst_key, tuple(maybes),
                        "; ".join(w for w in whys if w), "; ".join(fixed), bool(unknown or maybes or fixed), dport_key)


# The matches whose answer the dumps may not give: each a may-match condition and why.
_MAY_MATCH = frozenset({m.UnknownMatch, m.MaybeMatch, m.PhysdevMatch, m.TimeMatch, m.LengthMatch, m.SetMatch})


def _may_match(match, fib: Fib) -> tuple[TriPredicate | None, str]:
    """A may-match condition for ``match`` (None: a module never modelled, which may or may not
    match) and why its answer may be unknown (for the trace step; empty: it is known)."""
    kind = type(match)
    if kind is m.UnknownMatch:
        return None, f"-m {match.module} is not modelled"
    if kind is m.MaybeMatch:
        return _maybe, f"-m {match.module}: {match.why}"
    if kind is m.PhysdevMatch:
        return (compile_physdev(match, fib),
                "-m physdev: the bridge port's name is not known (pods' veth names are in no input)")
    if kind is m.TimeMatch:
        return compile_time(match, fib), "-m time: " + (
            "the kernel's timezone is not in the dumps" if match.kerneltz
            else "the time is not known (give trace --at ISO-TIME)")
    if kind is m.LengthMatch:
        return compile_length(match, fib), "-m length: the first packet's size is a range"
    sets = fib.ipsets
    return compile_set(match, fib, sets), f"-m set {match.name}: " + (
        "its counters are in no dump" if match.counters else
        "the set's contents are not known (give `ipset save` output: trace --ipsets FILE, or ipsets: "
        "per node in the cluster YAML)" if sets is None or match.name not in sets.sets else "")


def _fixed_pred(rule: m.Rule, match: m.FixedMatch) -> Predicate | None:
    """The predicate of a match whose fresh-flow answer is assumed (``-m limit``, ``-m recent``, ...):
    never, when it assumed no match; when it has one token, not for a second packet of the trace
    through this rule (REJECT's answer walking OUTPUT again finds the bucket empty); else none."""
    if not match.matches:
        return _never
    if match.burst == 1:
        where = (rule.table, rule.chain, rule.index)
        return lambda st, where=where: st.meta is None or where not in st.meta.spent
    return None


def _maybe(st: WalkState) -> None:
    return None


def _never(st: WalkState) -> bool:
    return False


def _addr(mt: m.AddrMatch, fib: Fib) -> Predicate:
    net, mask, inv = mt.network, mt.mask, mt.invert
    if mt.field == "src":
        return lambda st: ((st.pkt.src & mask) == net) != inv
    return lambda st: ((st.pkt.dst & mask) == net) != inv


def _proto(mt: m.ProtoMatch, fib: Fib) -> Predicate:
    proto, inv = mt.proto, mt.invert
    return lambda st: (st.pkt.proto == proto) != inv


def _iface(mt: m.IfaceMatch, fib: Fib) -> Predicate:
    name, inv = mt.name, mt.invert
    attr = "in_iface" if mt.direction == "in" else "out_iface"
    if mt.prefix:
        return lambda st: getattr(st, attr).startswith(name) != inv
    return lambda st: (getattr(st, attr) == name) != inv


def _port(mt: m.PortMatch, fib: Fib) -> Predicate:
    lo, hi, inv = mt.low, mt.high, mt.invert
    if mt.field == "sport":
        return lambda st: (lo <= st.pkt.sport <= hi) != inv
    return lambda st: (lo <= st.pkt.dport <= hi) != inv


def _multiport(mt: m.MultiportMatch, fib: Fib) -> Predicate:
    ranges, inv, fld = mt.ranges, mt.invert, mt.field

    def pred(st: WalkState) -> bool:
        ports = (st.pkt.sport, st.pkt.dport) if fld == "either" else \
            (st.pkt.sport,) if fld == "sport" else (st.pkt.dport,)
        hit = any(lo <= p <= hi for p in ports for lo, hi in ranges)
        return hit != inv
    return pred


def _tcp_flags(mt: m.TcpFlagsMatch, fib: Fib) -> Predicate:
    mask, comp, inv = mt.mask, mt.comp, mt.invert
    return lambda st: ((st.pkt.tcp_flags & mask) == comp) != inv


def _addrtype(mt: m.AddrTypeMatch, fib: Fib) -> Predicate:
    types, inv, limit = mt.types, mt.invert, mt.limit_iface
    use_src = mt.field == "src"

    def pred(st: WalkState) -> bool:
        ip = st.pkt.src if use_src else st.pkt.dst
        dev = None if limit is None else (st.in_iface if limit == "in" else st.out_iface) or None
        return (fib.addr_type(ip, dev) in types) != inv
    return pred


def _mark(mt: m.MarkMatch, fib: Fib) -> Predicate:
    value, mask, inv = mt.value, mt.mask, mt.invert
    return lambda st: ((st.mark & mask) == value) != inv


def _ctstate(mt: m.CtStateMatch, fib: Fib) -> Predicate:
    bits = 0
    for name in mt.states:
        bits |= CT_BITS[name]
    inv = mt.invert
    return lambda st: bool(st.ctbits & bits) != inv


def _iprange(mt: m.IpRangeMatch, fib: Fib) -> Predicate:
    lo, hi, inv = mt.low, mt.high, mt.invert
    if mt.field == "src":
        return lambda st: (lo <= st.pkt.src <= hi) != inv
    return lambda st: (lo <= st.pkt.dst <= hi) != inv


def _icmp(mt: m.IcmpTypeMatch, fib: Fib) -> Predicate:
    t, lo, hi, inv = mt.icmp_type, mt.code_low, mt.code_high, mt.invert
    if t == 255:
        return lambda st: not inv
    return lambda st: (st.pkt.icmp_type == t and lo <= st.pkt.icmp_code <= hi) != inv


def _recent(mt: m.RecentMatch, fib: Fib) -> Predicate:
    # --set always matches (it records the address). --rcheck/--update/--remove look the address
    # up in what earlier connections left (TraceMeta.recent: (list, masked address) pairs, each
    # one hit within the time window); with none given the lists are empty: a new client.
    if mt.mode == "set":
        result = not mt.invert
        return lambda st: result
    name, mask, inv, dest = mt.name, mt.mask, mt.invert, mt.dest
    if mt.hitcount > 1:       # one earlier connection is one hit: never enough
        return lambda st: inv

    def check(st) -> bool:
        seen = st.meta.recent if st.meta is not None else ()
        if not seen:
            return inv
        return ((name, (st.pkt.dst if dest else st.pkt.src) & mask) in seen) != inv
    return check


_COMPILERS: dict[type, Callable] = {
    m.AddrMatch: _addr, m.ProtoMatch: _proto, m.IfaceMatch: _iface, m.PortMatch: _port,
    m.MultiportMatch: _multiport, m.TcpFlagsMatch: _tcp_flags, m.AddrTypeMatch: _addrtype,
    m.MarkMatch: _mark, m.CtStateMatch: _ctstate, m.IpRangeMatch: _iprange,
    m.IcmpTypeMatch: _icmp, m.RecentMatch: _recent, m.FactMatch: compile_fact,
    m.RpFilterMatch: compile_rpfilter, m.OwnerMatch: compile_owner,
}

# Matches whose predicate reads only the packet and walk state, never the node (``fib``): one
# compiled predicate per equal match, for every node.  Bounded: a table of distinct tests.
_NODE_FREE = frozenset({m.AddrMatch, m.ProtoMatch, m.IfaceMatch, m.PortMatch, m.MultiportMatch, m.MarkMatch,
                        m.CtStateMatch})
_SHARED: dict[object, Predicate] = {}
_MAX_SHARED = 1 << 18
