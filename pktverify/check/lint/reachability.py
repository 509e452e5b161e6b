"""PV2xx: rules no packet reaches with their match true — duplicates, rules after an unconditional
terminal rule, and rules shadowed by earlier rules, computed exactly over header space.

A packet that reaches rule R of chain C has passed every earlier rule of C (a walk enters a
chain at its top and never in the middle), so if R's packets are all matched by earlier rules
of C that end the walk through C — ACCEPT, DROP, REJECT, RETURN, a goto, a NAT target, ... —
R never matches. Each rule's packets are a box (:mod:`.headerspace`); R is reported only when
its box (a superset of its packets when a match is opaque) is covered by the boxes of earlier
ending rules that are exact (no opaque or statistic match). A rule that changes the packet (MARK,
CONNMARK --restore-mark) or a jump to a chain that may, ends the covering run: rules before it
saw another packet. Never a false report; a shadowing hidden behind an opaque match is missed.
Earlier rules are found through an index (:mod:`.cover_index`), so independent rules are never
compared; the work is bounded and the rules past the bound are counted in a note, never passed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...model import rules as m
from ..headerspace import Universe, covered, is_everything, rule_box, subtract
from .cover_index import CoverIndex, ShadowWork
from .finding import Check, Finding, Subject

PV201 = Check(
    "PV201", "duplicate-rule", "warning", "a rule repeats an earlier rule of its chain",
    "The second copy never matches anything the first did not already decide (for an ending target) or "
    "applies the same change twice: usually a rule added by two tools or a re-run script.",
    "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.0/8 -j DROP\n-A INPUT -s 10.0.0.0/8 -j DROP\nCOMMIT",
    "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.0/8 -j DROP\n-A INPUT -s 10.1.0.0/16 -j DROP\nCOMMIT",
    "reachability")
PV202 = Check(
    "PV202", "after-unconditional-terminal", "warning", "a rule after a rule that ends the chain for every packet",
    "An unconditional ACCEPT, DROP, REJECT, RETURN or goto ends the walk through the chain for every packet: "
    "the rules after it are dead code, often a rule appended after a catch-all.",
    "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j DROP\n-A FORWARD -d 10.1.0.0/16 -j ACCEPT\nCOMMIT",
    "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -d 10.1.0.0/16 -j ACCEPT\n-A FORWARD -j DROP\nCOMMIT",
    "reachability")
PV203 = Check(
    "PV203", "shadowed-rule", "warning", "earlier rules already decide every packet this rule matches",
    "Computed over header space (addresses and ranges, protocols, ports, interfaces, conntrack state, marks): "
    "no packet reaches the rule with its match true, so it has no effect; the finding names the earlier rules "
    "that cover it.",
    "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -d 10.1.0.0/16 -j ACCEPT\n-A FORWARD -d 10.1.2.0/24 -j DROP\nCOMMIT",
    "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -d 10.1.2.0/24 -j DROP\n-A FORWARD -d 10.1.0.0/16 -j ACCEPT\nCOMMIT",
    "reachability")

_ENDING = (m.Verdict, m.Reject, m.Dnat, m.Snat, m.Masquerade, m.Redirect, m.Netmap, m.Tproxy, m.Nfqueue)
# Targets after which later rules may see another packet: marks, TTL, conntrack's (NOTRACK: the state
# becomes UNTRACKED), and targets pktverify does not model (they may change anything).
_CHANGING = (m.SetMark, m.ConnMark, m.SetTtl, m.NoTrack, m.UnknownTarget)
_SHOWN = 3


def _ends(rule: m.Rule) -> bool:
    target = rule.target
    return isinstance(target, _ENDING) or (type(target) is m.Jump and target.goto)


def _describe(rule: m.Rule) -> str:
    return f"rule #{rule.index} ({rule.text})"


@dataclass(frozen=True)
class Unit:
    """One rule of a chain as :func:`dead_in_chain` reads it: ``rules``, what it does in order (an
    iptables rule is one; an nft rule one per action, and per set or map element: its
    :mod:`..nft_view`); ``checked``, those whose box holds every packet for which the rule (or an
    element) does anything; ``key``, what two copies of it share."""
    rules: tuple[m.Rule, ...]
    checked: tuple[m.Rule, ...]
    key: object


@dataclass(frozen=True)
class Dead:
    """What :func:`dead_in_chain` found: ``kind`` "after" (unit ``unit`` follows the catch-all
    ``by[0]``), "duplicate" (it repeats unit ``by_unit``, whose first rule is ``by[0]``) or
    "shadowed" (its checked ``rule``'s box is covered by the rules ``by``)."""
    kind: str
    unit: int
    rule: m.Rule
    by: tuple[m.Rule, ...]
    by_unit: int = -1


def reachability(ruleset: m.Ruleset, work: ShadowWork | None = None) -> list[Finding]:
    """PV201, PV202 and PV203 for every chain of every table. ``work`` counts the shadowing check's
    work and the rules past its bound (:meth:`.cover_index.ShadowWork.note` says so)."""
    universe = Universe.of(ruleset)
    work = work if work is not None else ShadowWork()
    out: list[Finding] = []
    for table in ruleset.tables.values():
        changers = changing_chains(table)
        for chain in table.chains.values():
            units = [Unit((r,), (r,), (tuple(mt for mt in r.matches if type(mt) is not m.CommentMatch), r.target))
                     for r in chain.rules]
            out += [_finding(d, chain) for d in dead_in_chain(units, universe, changers, work)]
    return out


def _finding(d: Dead, chain: m.Chain) -> Finding:
    rule = d.rule
    if d.kind == "after":
        return Finding("PV202", f"no packet reaches {_describe(rule)}: {_describe(d.by[0])} ends chain {chain.name} "
                                "for every packet", rule.source, rule.line,
                       related=((d.by[0].source, d.by[0].line, "ends the chain for every packet"),))
    if d.kind == "duplicate":
        first = d.by[0]
        return Finding("PV201", f"{_describe(rule)} repeats rule #{first.index} of chain {chain.name}",
                       rule.source, rule.line, related=((first.source, first.line, "the first copy"),))
    names = ", ".join(f"#{r.index}" for r in d.by[:_SHOWN]) + (" ..." if len(d.by) > _SHOWN else "")
    return Finding("PV203", f"{_describe(rule)} is shadowed: every packet it matches was already "
                            f"decided by rule(s) {names} of chain {chain.name}", rule.source,
                   rule.line, related=tuple((r.source, r.line, f"covers part of rule #{rule.index}")
                                            for r in d.by[:_SHOWN]))


def dead_rules(subject: Subject) -> list[Finding]:
    """PV201-PV203 for the subject's rules, within (and counting in) its shadowing work bound."""
    return reachability(subject.ruleset, subject.work)


def changing_chains(table: m.Table) -> set[str]:
    """Chains whose walk may change the packet (a MARK/CONNMARK/TTL rule in them or below them):
    a walk up the callers from the chains that change it, each chain once (a fixed point over
    every chain took one pass per level of a 30,000-deep jump chain)."""
    callers: dict[str, set[str]] = {}
    todo = []
    for c in table.chains.values():
        for r in c.rules:
            if type(r.target) is m.Jump:
                callers.setdefault(r.target.chain, set()).add(c.name)
            elif isinstance(r.target, _CHANGING):
                todo.append(c.name)
    changing = set(todo)
    while todo:
        for caller in callers.get(todo.pop(), ()):
            if caller not in changing:
                changing.add(caller)
                todo.append(caller)
    return changing


def dead_in_chain(units: list[Unit], universe: Universe, changers: set[str], work: ShadowWork,
                  fresh_copies: bool = False) -> list[Dead]:
    """The units of one chain (in order) no packet reaches with their match true: after a catch-all,
    a repeat of an earlier unit, or checked rules whose boxes earlier ending exact rules cover (a
    unit's own rules never cover it). Rules that change the packet (or jump to ``changers``) end
    the covering run; with ``fresh_copies``, also the run in which a copy repeats an earlier unit
    (a copy after another unit changed the packet sees other packets)."""
    tops = universe.tops
    out: list[Dead] = []
    seen: dict[object, int] = {}
    covers = CoverIndex(len(tops))         # exact ending rules since the last change
    catch_all: m.Rule | None = None
    for at, unit in enumerate(units):
        if not unit.rules:
            continue
        if catch_all is not None:
            out.append(Dead("after", at, unit.rules[0], (catch_all,)))
            continue
        first = seen.get(unit.key) if unit.key is not None else None
        if first is not None:
            out.append(Dead("duplicate", at, unit.rules[0], (units[first].rules[0],), first))
        elif unit.key is not None:
            seen[unit.key] = at
        boxes: dict[int, tuple] = {}
        if first is None and covers.covers:
            for rule in unit.checked:
                box = boxes[id(rule)] = rule_box(rule, universe)
                found = _shadowed(box[0], rule, covers, tops, work) if all(box[0]) else None
                if found:
                    out.append(Dead("shadowed", at, rule, tuple(r for _b, r in found)))
        if at == len(units) - 1:
            break                                # nothing after it to cover
        for rule in unit.rules:
            target = rule.target
            if isinstance(target, _CHANGING) or (type(target) is m.Jump and target.chain in changers):
                if covers.covers:
                    covers = CoverIndex(len(tops))   # later rules see a changed packet
                if fresh_copies:
                    seen = {unit.key: at} if unit.key is not None else {}
                continue
            if not _ends(rule):
                continue
            box, exact = boxes.get(id(rule)) or rule_box(rule, universe)
            if exact and all(box):
                if is_everything(box, universe):
                    catch_all = rule
                covers.add(box, rule)
    return out


def _shadowed(box, rule: m.Rule, covers: CoverIndex, tops, work: ShadowWork) -> list | None:
    """The covers whose union holds ``box`` (in order), or None: not covered, or not decided (then
    ``rule`` is counted in ``work``: past the bound, or too many pieces)."""
    if work.spent:
        work.beyond.append(rule)
        return None
    if covers.surely_uncovered(box) or covers.corner_uncovered(box, work):
        return None
    hits = covers.meeting(box, work)
    if not hits:
        return None
    done = [work.intervals]
    verdict = covered(box, [b for b, _r in hits], tops, done,
                      min(work.intervals + work.rule_intervals, work.max_intervals))
    work.intervals = done[0]
    if verdict is None:
        (work.beyond if work.intervals >= work.max_intervals else work.too_big).append(rule)
        return None
    return _needed(box, hits, tops) if verdict else None


_PRUNED = 8


def _needed(box, hits: list, tops) -> list:
    """The covers a finding names, of ``hits`` (which together hold ``box``): the first that holds it
    alone when one does, else (for up to :data:`_PRUNED` of them) those left after dropping, in order,
    each the others do without -- the rules that shadow, not every earlier rule the box meets."""
    for hit in hits:
        if not subtract(box, hit[0], tops):
            return [hit]
    if len(hits) > _PRUNED:
        return hits
    kept = list(hits)
    for hit in hits:
        rest = [k for k in kept if k is not hit]
        if covered(box, [b for b, _r in rest], tops):
            kept = rest
    return kept
