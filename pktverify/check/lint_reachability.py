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
"""

from __future__ import annotations

from ..model import rules as m
from .headerspace import DST, Universe, covered, intersects, is_everything, rule_box
from .registry import Check, Finding, register

register(Check(
    "PV201", "duplicate-rule", "warning", "a rule repeats an earlier rule of its chain",
    "The second copy never matches anything the first did not already decide (for an ending target) or "
    "applies the same change twice: usually a rule added by two tools or a re-run script.",
    "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.0/8 -j DROP\n-A INPUT -s 10.0.0.0/8 -j DROP\nCOMMIT",
    "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.0/8 -j DROP\n-A INPUT -s 10.1.0.0/16 -j DROP\nCOMMIT",
    "reachability"))
register(Check(
    "PV202", "after-unconditional-terminal", "warning", "a rule after a rule that ends the chain for every packet",
    "An unconditional ACCEPT, DROP, REJECT, RETURN or goto ends the walk through the chain for every packet: "
    "the rules after it are dead code, often a rule appended after a catch-all.",
    "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j DROP\n-A FORWARD -d 10.1.0.0/16 -j ACCEPT\nCOMMIT",
    "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -d 10.1.0.0/16 -j ACCEPT\n-A FORWARD -j DROP\nCOMMIT",
    "reachability"))
register(Check(
    "PV203", "shadowed-rule", "warning", "earlier rules already decide every packet this rule matches",
    "Computed over header space (addresses and ranges, protocols, ports, interfaces, conntrack state, marks): "
    "no packet reaches the rule with its match true, so it has no effect; the finding names the earlier rules "
    "that cover it.",
    "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -d 10.1.0.0/16 -j ACCEPT\n-A FORWARD -d 10.1.2.0/24 -j DROP\nCOMMIT",
    "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -d 10.1.2.0/24 -j DROP\n-A FORWARD -d 10.1.0.0/16 -j ACCEPT\nCOMMIT",
    "reachability"))

_ENDING = (m.Verdict, m.Reject, m.Dnat, m.Snat, m.Masquerade, m.Redirect, m.Netmap, m.Tproxy, m.Nfqueue)
_CHANGING = (m.SetMark, m.ConnMark, m.SetTtl)
_SHOWN = 3


def _ends(rule: m.Rule) -> bool:
    target = rule.target
    return isinstance(target, _ENDING) or (type(target) is m.Jump and target.goto)


def _describe(rule: m.Rule) -> str:
    return f"rule #{rule.index} ({rule.text})"


def reachability(ruleset: m.Ruleset) -> list[Finding]:
    """PV201, PV202 and PV203 for every chain of every table."""
    universe = Universe.of(ruleset)
    tops = universe.tops
    out: list[Finding] = []
    for table in ruleset.tables.values():
        changers = _changing_chains(table)
        for chain in table.chains.values():
            out += _chain(chain, universe, tops, changers)
    return out


def _changing_chains(table: m.Table) -> set[str]:
    """Chains whose walk may change the packet (a MARK/CONNMARK/TTL rule in them or below them).
    (A fixed point over the rules: the set is small and settles in a few passes, cheaper on a
    110k-rule dump than building the caller index of :func:`.headerspace.jumps_into`.)"""
    changing = {c.name for c in table.chains.values() if any(isinstance(r.target, _CHANGING) for r in c.rules)}
    grew = True
    while grew:
        grew = False
        for c in table.chains.values():
            if c.name not in changing and any(type(r.target) is m.Jump and r.target.chain in changing
                                               for r in c.rules):
                changing.add(c.name)
                grew = True
    return changing


def _chain(chain: m.Chain, universe: Universe, tops, changers: set[str]) -> list[Finding]:
    out: list[Finding] = []
    seen: dict[tuple, m.Rule] = {}
    covers: list[tuple] = []               # (box, rule) of exact ending rules since the last change
    by_dst: dict[int, list[int]] = {}      # covers whose destination is one address, by it
    wide: list[int] = []                   # the other covers
    catch_all: m.Rule | None = None
    for rule in chain.rules:
        key = (tuple(mt for mt in rule.matches if type(mt) is not m.CommentMatch), rule.target)
        if catch_all is not None:
            out.append(Finding("PV202", f"no packet reaches {_describe(rule)}: {_describe(catch_all)} ends chain "
                                        f"{chain.name} for every packet", rule.source, rule.line,
                               related=((catch_all.source, catch_all.line, "ends the chain for every packet"),)))
            continue
        first = seen.get(key)
        if first is not None:
            out.append(Finding("PV201", f"{_describe(rule)} repeats rule #{first.index} of chain {chain.name}",
                               rule.source, rule.line, related=((first.source, first.line, "the first copy"),)))
        seen.setdefault(key, rule)
        box, exact = rule_box(rule, universe)
        dst = box[DST]
        point = dst[0][0] if len(dst) == 1 and dst[0][0] == dst[0][1] else None
        candidates = sorted(by_dst.get(point, []) + wide) if point is not None else range(len(covers))
        hits = [covers[i] for i in candidates if intersects(box, covers[i][0])]
        if hits and first is None and covered(box, [b for b, _r in hits], tops):
            names = ", ".join(f"#{r.index}" for _b, r in hits[:_SHOWN]) + (" ..." if len(hits) > _SHOWN else "")
            out.append(Finding("PV203", f"{_describe(rule)} is shadowed: every packet it matches was already decided "
                                        f"by rule(s) {names} of chain {chain.name}", rule.source, rule.line,
                               related=tuple((r.source, r.line, f"covers part of rule #{rule.index}")
                                             for _b, r in hits[:_SHOWN])))
        target = rule.target
        if isinstance(target, _CHANGING) or (type(target) is m.Jump and target.chain in changers):
            covers, by_dst, wide = [], {}, []      # later rules see a changed packet
            continue
        if exact and _ends(rule):
            if is_everything(box, universe):
                catch_all = rule
            covers.append((box, rule))
            if len(dst) == 1 and dst[0][0] == dst[0][1]:
                by_dst.setdefault(dst[0][0], []).append(len(covers) - 1)
            else:
                wide.append(len(covers) - 1)
    return out
