"""PV163-PV165: nft rules no packet reaches with their match true — duplicates, rules after an
unconditional verdict, and rules (or set and map elements) shadowed by earlier rules, computed
exactly over header space for what the view models.

The ruleset is read as its header-space view (:mod:`..nft_view`: one view rule per action, and per
element of a concatenation lookup, verdict map or NAT map) and the chains go through the same core
as iptables' PV201-PV203 (:func:`.reachability.dead_in_chain`): a rule is shadowed when the box of
its first action (the packets for which it does anything at all) lies in the union of the boxes of
earlier exact rules that end the chain's walk (accept, drop, reject, return, goto, NAT, queue);
a mark set, ``notrack``, a statement pktverify does not read, or a jump to a chain that may do them
ends the covering run. An element is reported as the element ("element 10.0.0.1 . tcp . 80 of rule
#3"), never as its whole rule; an element is never covered by its own rule's other elements.
Never a false report; what the view cannot say (fib, ct status, numgen, sets the packet path
changes, ...) only hides a shadowing. The work is bounded as PV203's; the rules past the bound are
counted in a note. The analysis runs only on a ruleset whose structure holds (no loop, path too
deep or element of the wrong type; every chain and set it names exists: a script that adds one only
later, as knftables' dumps do, is analysed).
"""

from __future__ import annotations

from ...eval.nft_exprs import has_bucket
from ...model import nft as n
from ...model import rules as m
from ..headerspace import Universe
from ..nft_view import ViewRule, build_view
from .cover_index import ShadowWork
from .finding import Check, Finding
from .reachability import Dead, Unit, changing_chains, dead_in_chain

__all__ = ["NFT_REACHABILITY_CHECKS", "PV163", "PV164", "PV165", "nft_dead_rules"]

_HEAD = "table ip t {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n{}  }}\n}}"


def _ex(*rules: str) -> str:
    return _HEAD.format("".join(f"    {r}\n" for r in rules))


PV163 = Check(
    "PV163", "nft-duplicate-rule", "warning", "an nft rule repeats an earlier rule of its chain",
    "The second copy never matches anything the first did not already decide (for a verdict) or does the same "
    "thing twice: usually a rule added twice by a script run again (nft add rule does not check).",
    _ex("ip saddr 10.0.0.0/8 drop", "ip saddr 10.0.0.0/8 drop"),
    _ex("ip saddr 10.0.0.0/8 drop", "ip saddr 10.1.0.0/16 drop"), "reachability")
PV164 = Check(
    "PV164", "nft-after-unconditional-verdict", "warning",
    "an nft rule after a rule that ends the chain for every packet",
    "A rule without matches (or whose matches every packet passes) that accepts, drops, rejects, returns, goes "
    "to a chain or translates ends the walk through the chain: the rules after it never see a packet.",
    _ex("drop", "ip daddr 10.1.0.0/16 accept"), _ex("ip daddr 10.1.0.0/16 accept", "drop"), "reachability")
PV165 = Check(
    "PV165", "nft-shadowed-rule", "warning",
    "earlier nft rules already decide every packet this rule (or set or map element) matches",
    "Computed over header space (addresses, protocols, ports, interfaces, ct state, marks; sets, concatenations "
    "and verdict maps element by element): no packet reaches the rule or element with its match true, so it "
    "never acts (its counter stays 0: checked in the kernel); the finding names the earlier rules that cover it.",
    _ex("ip daddr 10.1.0.0/16 accept", "ip daddr 10.1.2.0/24 drop"),
    _ex("ip daddr 10.1.2.0/24 drop", "ip daddr 10.1.0.0/16 accept"), "reachability")

NFT_REACHABILITY_CHECKS = (PV163, PV164, PV165)

# Errors that leave the analysis without meaning: nothing read, a loop or a path the kernel refuses,
# elements that do not fit their set; and (:attr:`..nft_view.View.missing`) a chain or set the table does not have
# (PV151/PV152 also say a script adds one only later: the ruleset is whole, only the order is wrong).
_BLOCKERS = frozenset({"PV150", "PV153", "PV154", "PV158"})
_SHOWN = 3                    # covering rules named in a finding
_ELEMENTS = 5                 # shadowed elements of one rule reported one by one; the rest in one finding


def nft_dead_rules(ruleset: n.NftRuleset, findings: list[Finding], notes: list[str] | None = None,
                   work: ShadowWork | None = None) -> list[Finding]:
    """PV163-PV165 on a parsed ruleset whose structure findings are ``findings`` (none when one of
    them is a blocking error); ``notes`` receives what was not analysed (rules past the work bound)."""
    if any(f.id in _BLOCKERS for f in findings):        # the errors say why
        return []
    view = build_view(ruleset)
    if view.missing:
        return []
    universe = Universe.of(view.ruleset)
    work = work if work is not None else ShadowWork()
    where = _Where(ruleset)
    changers: dict[str, set[str]] = {}
    out: list[Finding] = []
    for (tname, cname), infos in view.info.items():
        table = view.ruleset.tables[tname]
        if tname not in changers:
            changers[tname] = changing_chains(table)
        units, info = _units(table.chains[cname].rules, infos)
        dead = dead_in_chain(units, universe, changers[tname], work, fresh_copies=True)
        out += _findings(dead, info, f"chain {cname} of table {tname}", where)
    note = work.note()
    if note and notes is not None:
        notes.append(f"{ruleset.source}: {where.note(note, work)}")
    return out


def _units(rules, infos: list[ViewRule]) -> tuple[list[Unit], dict[int, ViewRule]]:
    """One unit per nft rule (its view rules are consecutive), and each view rule's :class:`ViewRule`."""
    info = {id(r): i for r, i in zip(rules, infos)}
    units: list[Unit] = []
    group: list = []
    for r, i in zip(rules, infos):
        if group and info[id(group[0])].position != i.position:
            units.append(_unit(group, info))
            group = []
        group.append(r)
    if group:
        units.append(_unit(group, info))
    return units, info


def _unit(group: list, info: dict[int, ViewRule]) -> Unit:
    first = info[id(group[0])]
    return Unit(tuple(group), tuple(r for r in group if info[id(r)].entry), _copy_key(first.rule, group))


_STATEFUL = (n.Limit, n.Quota, n.CtCount, n.SetUpdate, n.NftUnknown, n.Xt)


def _copy_key(rule: n.NftRule, view_rules: list) -> object:
    """What a copy of ``rule`` shares with it, or None when a copy is no repeat: a rule with state of
    its own (a limit, a quota: each copy has its own), a draw (numgen, hash) or an effect that a second
    run changes again (``mark set mark xor 0x4``)."""
    if any(type(s) in _STATEFUL or has_bucket(s) for s in rule.exprs):
        return None
    for r in view_rules:
        t = r.target
        if type(t) in (m.SetMark, m.ConnMark) and (getattr(t, "op", "set") != "set" or t.value & ~t.mask):
            return None
        if type(t) in (m.UnknownTarget, m.SetTtl) and not (type(t) is m.SetTtl and t.op == "set"):
            return None
    return rule.exprs


def _name(i: ViewRule, whole: bool = False) -> str:
    """A rule as nft prints it (with its handle when the dump has them), or one of its elements."""
    text = f"{i.rule.text} # handle {i.rule.handle}" if i.rule.handle else i.rule.text
    rule = f"rule #{i.position} ({text})"
    return rule if i.element is None or whole else f"element {i.element} of {rule}"


def _findings(dead: list[Dead], info: dict[int, ViewRule], chain: str, where: _Where) -> list[Finding]:
    out: list[Finding] = []
    whole: set[int] = set()                  # units reported as a whole: their elements are not
    elements: dict[int, list[Dead]] = {}
    for d in dead:
        me = info[id(d.rule)]
        line = me.rule.line
        if d.kind == "after":
            by = info[id(d.by[0])]
            out.append(where.finding("PV164", f"no packet reaches {_name(me, True)}: {_name(by)} ends {chain} for every "
                                              "packet", line, ((by.rule.line, "ends the chain for every packet"),)))
        elif d.kind == "duplicate":
            by = info[id(d.by[0])]
            out.append(where.finding("PV163", f"{_name(me, True)} repeats rule #{by.position} of {chain}", line,
                                     ((by.rule.line, "the first copy"),)))
        elif me.element is None:
            whole.add(d.unit)
            out.append(_shadowed(d, me, info, chain, where))
        else:
            elements.setdefault(d.unit, []).append(d)
    for unit, found in elements.items():
        if unit in whole:
            continue
        out += [_shadowed(d, info[id(d.rule)], info, chain, where) for d in found[:_ELEMENTS]]
        if len(found) > _ELEMENTS:
            me = info[id(found[0].rule)]
            out.append(where.finding("PV165", f"{len(found) - _ELEMENTS} more elements of rule #{me.position} "
                                              f"({me.rule.text}) are shadowed too", me.rule.line))
    return out


def _shadowed(d: Dead, me: ViewRule, info: dict[int, ViewRule], chain: str, where: _Where) -> Finding:
    names = list(dict.fromkeys(_name(info[id(r)]) for r in d.by))
    lines = list(dict.fromkeys(info[id(r)].rule.line for r in d.by))
    shown = ", ".join(names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
    what = "every packet it matches" if me.element is None else "every packet of the element"
    return where.finding("PV165", f"{_name(me)} is shadowed: {what} was already decided by {shown} of {chain}",
                         me.rule.line, tuple((ln, f"covers part of rule #{me.position}") for ln in lines[:_SHOWN]))


class _Where:
    """Finding locations as the structure checks give them: the rule's line in a listing or script;
    in JSON, line 1 and ``nftables[i]`` in the message (:mod:`.nft_structure`)."""

    def __init__(self, ruleset: n.NftRuleset) -> None:
        self.source = ruleset.source
        self.json = ruleset.form == "json"

    def finding(self, cid: str, message: str, line: int, related: tuple = ()) -> Finding:
        if self.json:
            return Finding(cid, f"nftables[{line}]: {message}", self.source, 1,
                           related=tuple((self.source, 1, f"nftables[{ln}]: {what}") for ln, what in related))
        return Finding(cid, message, self.source, line, related=tuple((self.source, ln, w) for ln, w in related))

    def note(self, note: str, work: ShadowWork) -> str:
        note = note.replace("PV203 (shadowed-rule)", "PV165 (nft-shadowed-rule)")
        if self.json:
            for r in (*work.beyond[:1], *work.too_big[:1]):
                note = note.replace(r.location(), f"{self.source}: nftables[{r.line}]")
        return note
