"""What a rule's target does to a packet that matched it, and how a table walk ends.

:func:`fixed_effect` is the part that does not depend on the packet (a jump, a
goto, a verdict, no target): the walkers cache it per rule. :func:`apply_target`
is every target: MARK, CONNMARK, TTL, NOTRACK, TPROXY, NFQUEUE, the NAT targets
(DNAT, SNAT, MASQUERADE, REDIRECT, NETMAP) and those not modelled.
"""

from __future__ import annotations

from typing import NamedTuple

from ..model import rules as m
from ..model.trace import Step
from . import nat
from .fib import Fib
from .matchers import CompiledRule
from .state import CT_UNTRACKED, WalkState, add_step, nat_done

__all__ = ["ChainResult", "NatContext", "apply_target", "fixed_effect"]


class ChainResult(NamedTuple):
    """How a table walk ended: ``verdict`` ACCEPT, DROP or REJECT (``detail`` the reject type)."""
    state: WalkState
    verdict: str
    detail: str = ""


class NatContext(NamedTuple):
    """What source-NAT needs from the routing decision."""
    next_hop: int


def fixed_effect(table: str, rule: m.Rule, p: float = 1.0) -> tuple | None:
    """``(kind, step, arg)`` for a rule whose match (taken with probability ``p``) has an effect
    independent of the packet — a jump or goto (arg: the chain), a verdict (arg: the ChainResult
    fields), no target — or None (the target reads or changes the packet: the rest of
    :func:`apply_target`). At ``p`` 1 it is the same for every packet, so the walkers
    cache it per rule."""
    target = rule.target

    def step(action: str) -> Step:
        return Step(table, rule.chain, rule.index, rule.line, rule.text, action, rule.source, p if p < 1.0 else None)

    if target is None:
        return "continue", step("match (no target)"), None
    ttype = type(target)
    if ttype is m.Jump:
        return ("goto" if target.goto else "jump"), step(("goto " if target.goto else "jump ") + target.chain), \
            target.chain
    if ttype is m.Verdict:
        if target.name == "RETURN":
            return "return", step("RETURN"), None
        return "final", step(target.name), (target.name,)
    if ttype is m.Reject:
        return "final", step(f"REJECT {target.with_}"), ("REJECT", target.with_)
    return None


def _rule_step(table: str, cr: CompiledRule, action: str, p: float) -> Step:
    """The step of rule ``cr`` of ``table`` doing ``action`` (taken with probability ``p``)."""
    r = cr.rule
    return Step(table, r.chain, r.index, r.line, r.text, action, r.source,
                p if p < 1.0 else None)


def apply_target(table: str, fib: Fib, cr: CompiledRule, st: WalkState, ctx: NatContext | None, p: float,
                 hook: str = "") -> tuple:
    """``(kind, result, arg)`` of rule ``cr`` of ``table`` matching ``st`` (with probability ``p``):
    kind "continue" (result: the state), "final" (result: a :class:`ChainResult`), or a jump, goto or
    return as :func:`fixed_effect` gives them. ``hook``: where NETMAP works on the destination."""
    effect = fixed_effect(table, cr.rule, p)
    if effect is not None:                  # jumps, verdicts, no target (the walkers cache these at p=1)
        kind, step, arg = effect
        st = add_step(st, step)
        return (kind, ChainResult(st, *arg), None) if kind == "final" else (kind, st, arg)
    target = cr.rule.target
    ttype = type(target)
    if ttype is m.SetMark:
        mark = (st.mark & ~target.mask & 0xFFFFFFFF) ^ target.value
        st = add_step(st._replace(mark=mark), _rule_step(table, cr, f"MARK {st.mark:#x} → {mark:#x}", p))
        return "continue", st, None
    if ttype is m.NoOp:
        action = f"{target.name} ({target.note}, not modelled; the packet goes on)" if target.note else target.name
        return "continue", add_step(st, _rule_step(table, cr, action, p)), None
    if ttype is m.SetTtl:
        ttl = st.pkt.ttl
        new = {"set": target.value, "dec": max(ttl - target.value, 0), "inc": min(ttl + target.value, 255)}[target.op]
        st = add_step(st._replace(pkt=st.pkt._replace(ttl=new)), _rule_step(table, cr, f"TTL {ttl} → {new}", p))
        return "continue", st, None
    if ttype is m.ConnMark:
        return "continue", _connmark(table, cr, target, st, p), None
    if ttype is m.NoTrack:
        st = add_step(st._replace(ctbits=CT_UNTRACKED), _rule_step(table, cr, "NOTRACK: no connection (UNTRACKED)", p))
        return "continue", st, None
    if ttype is m.Tproxy:
        return "final", _tproxy(table, cr, target, st, p), None
    if ttype is m.Nfqueue:
        step = _rule_step(table, cr, f"NFQUEUE {target.num}: a userspace program decides (accept assumed; it may "
                                     "drop)", p)
        return "final", ChainResult(add_step(st._replace(exact=False), step), "QUEUE"), None
    if ttype is m.UnknownTarget:
        if target.name in m.NON_TERMINATING_TARGETS:
            step = _rule_step(table, cr, f"{target.name} (not modelled; non-terminating: the packet goes on)", p)
            return "continue", add_step(st._replace(exact=False), step), None
        step = _rule_step(table, cr, f"unknown target {target.name} (may continue or stop)", p)
        st = add_step(st._replace(exact=False), step)
        return "final", ChainResult(st, "UNKNOWN"), None
    return _nat(table, fib, cr, target, st, ctx, p, hook)


def _connmark(table: str, cr: CompiledRule, target: m.ConnMark, st: WalkState, p: float) -> WalkState:
    """CONNMARK as xt_connmark does it (the ctmark lives with the connection: a reply sees it)."""
    mark, ctmark = st.mark, st.ctmark
    if target.op == "set":
        ctmark = (ctmark & ~target.mask & 0xFFFFFFFF) ^ target.value
        action = f"CONNMARK ctmark {st.ctmark:#x} → {ctmark:#x}"
    elif target.op == "save":
        ctmark = (ctmark & ~target.ctmask & 0xFFFFFFFF) ^ (mark & target.nfmask)
        action = f"CONNMARK save mark {mark:#x}: ctmark {st.ctmark:#x} → {ctmark:#x}"
    else:
        mark = (mark & ~target.nfmask & 0xFFFFFFFF) ^ (ctmark & target.ctmask)
        action = f"CONNMARK restore: mark {st.mark:#x} → {mark:#x}"
    if st.ctbits & CT_UNTRACKED:
        return add_step(st, _rule_step(table, cr, "CONNMARK: the packet has no connection (untracked), nothing kept",
                                       p))
    return add_step(st._replace(mark=mark, ctmark=ctmark), _rule_step(table, cr, action, p))


def _tproxy(table: str, cr: CompiledRule, target: m.Tproxy, st: WalkState, p: float) -> ChainResult:
    """TPROXY hands the packet to a local socket (and marks it) or, with none, drops it; no dump
    says whether the socket exists, so the accepted outcome is marked inexact."""
    mark = (st.mark & ~target.mask & 0xFFFFFFFF) ^ target.mark
    step = _rule_step(table, cr, f"TPROXY to port {target.port}: taken by a local socket if one listens (mark "
                          f"{st.mark:#x} → {mark:#x}), else dropped", p)
    return ChainResult(add_step(st._replace(mark=mark, exact=False), step), "ACCEPT", "TPROXY")


def _nat(table: str, fib: Fib, cr: CompiledRule, target, st: WalkState, ctx: NatContext | None, p: float,
         hook: str = "") -> tuple:
    """The NAT targets: the packet rewritten (the table walk ends, ACCEPT), or dropped when the
    interface has no address to give it (MASQUERADE, REDIRECT)."""
    before = st.pkt
    ttype = type(target)
    if ttype is m.Netmap:
        # NETMAP rewrites the destination at PREROUTING/OUTPUT, the source at POSTROUTING/INPUT.
        res, kind = nat.apply_netmap(before, target, hook in ("PREROUTING", "OUTPUT")), "NETMAP"
    elif ttype is m.Dnat:
        res, kind = nat.apply_dnat(before, target), "DNAT"
    elif ttype is m.Redirect:
        res, kind = nat.apply_redirect(before, target, fib, st.in_iface), "REDIRECT"
    elif ttype is m.Snat:
        res, kind = nat.apply_snat(before, target), "SNAT"
    else:
        res, kind = nat.apply_masquerade(before, target, fib, st.out_iface, ctx.next_hop), "MASQUERADE"
    if res.pkt is None:
        st = add_step(st, _rule_step(table, cr, res.note + " → dropped", p))
        return "final", ChainResult(st, "DROP", res.note), None
    action = nat.describe_change(before, res.pkt, kind)
    if res.random_port:
        fld, lo, hi = res.random_port
        action += f" ({fld} drawn at random from {lo}-{hi})"
    st = add_step(nat_done(st, res.pkt, st.exact and res.exact, st.masquerade or kind == "MASQUERADE",
                           st.random_ports + (res.random_port,) if res.random_port else st.random_ports),
                  _rule_step(table, cr, action, p))
    return "final", ChainResult(st, "ACCEPT", kind), None
