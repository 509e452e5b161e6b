"""Header space: the packets a rule's matches accept, as boxes of per-field interval sets.

A *box* gives, for each header field, the set of values (a tuple of disjoint inclusive
intervals) a packet may have; a rule's matches are a conjunction of per-field tests, so the
packets it matches form one box (a negated test is the complement within its field). Fields:
source and destination address, protocol, source and destination port, in- and
out-interface, conntrack state and the packet mark. Interfaces, states and marks are mapped to
small integer *atoms* first:

* interfaces: every name a rule set mentions, one witness per ``+`` prefix (a name that only
  that prefix and its own prefixes match) and one name no rule mentions — every class of names
  the rules can tell apart has its atom, so a set of atoms is exact;
* conntrack states: the five base states times "SNAT applied" times "DNAT applied" (20 atoms:
  what ``--ctstate`` tests);
* marks: every value of the bits the rule set's mark tests look at (when they are at most
  :data:`MAX_MARK_BITS` bits; beyond that, mark tests are left out, see below).

Matches on anything else (tcp flags, addrtype, sets, time, owner, ...) are *opaque*: a box
ignores them, which makes it a superset of what the rule matches. That is sound for the use here
(:func:`covered`): a rule whose superset box is covered by earlier rules is never reached with its
match true; a rule with an opaque match is never used as a cover.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cached_property

from ..model import rules as m

__all__ = ["Universe", "Box", "FieldSet", "rule_box", "covered", "subtract", "intersects", "meet", "jumps_into",
           "MAX_MARK_BITS", "FIELDS"]

FIELDS = ("source", "destination", "protocol", "source port", "destination port", "in-interface",
          "out-interface", "conntrack state", "mark")
SRC, DST, PROTO, SPORT, DPORT, IIF, OIF, CT, MARK = range(9)
MAX_MARK_BITS = 8
MAX_BOXES = 20_000             # a cover check that needs more pieces at once gives up (and says so)

_CT_BASE = ("INVALID", "ESTABLISHED", "RELATED", "NEW", "UNTRACKED")

Intervals = tuple[tuple[int, int], ...]
Box = tuple[Intervals, ...]


@dataclass(frozen=True, slots=True)
class FieldSet:
    """A box-level match (views of nft rulesets, :mod:`.nft_view`): header field ``field`` (SRC, DST,
    PROTO, SPORT or DPORT: a number field, whose values the box holds as they are) has a value in
    ``values`` (inclusive intervals), or, with ``invert``, a value outside them."""
    field: int
    values: Intervals
    invert: bool = False


def _norm(pairs) -> Intervals:
    out: list[list[int]] = []
    for lo, hi in sorted(pairs):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


def _complement(a: Intervals, top: int) -> Intervals:
    out, nxt = [], 0
    for lo, hi in a:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= top:
        out.append((nxt, top))
    return tuple(out)


def _intersect(a: Intervals, b: Intervals) -> Intervals:
    if len(a) > 16 * len(b) or len(b) > 16 * len(a):
        return _intersect_lopsided(a, b) if len(a) < len(b) else _intersect_lopsided(b, a)
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _intersect_lopsided(small: Intervals, big: Intervals) -> Intervals:
    """``_intersect`` when one side holds many more intervals (the gaps of a blocklist): a binary
    search per interval of the small side instead of a walk over the big one."""
    out: list[tuple[int, int]] = []
    for lo, hi in small:
        k = max(bisect.bisect_right(big, (lo, 0xFFFFFFFFFF)) - 1, 0)
        while k < len(big) and big[k][0] <= hi:
            blo, bhi = max(lo, big[k][0]), min(hi, big[k][1])
            if blo <= bhi:
                out.append((blo, bhi))
            k += 1
    return tuple(out)


def _minus(a: Intervals, b: Intervals, top: int) -> Intervals:
    return _intersect(a, _complement(b, top))


@dataclass(frozen=True)
class Universe:
    """The value range of every field for one rule set (its atoms), and how to map matches."""
    interfaces: tuple[str, ...]          # atom index -> a witness name
    mark_bits: tuple[int, ...]           # the mark bits that matter (empty: marks are opaque)
    marks_opaque: bool

    @classmethod
    def of(cls, ruleset: m.Ruleset) -> "Universe":
        names: set[str] = set()
        prefixes: set[str] = set()
        mark_mask = 0
        for table in ruleset.tables.values():
            for chain in table.chains.values():
                for rule in chain.rules:
                    for mt in rule.matches:
                        if type(mt) is m.IfaceMatch:
                            (prefixes if mt.prefix else names).add(mt.name)
                        elif type(mt) is m.MarkMatch:
                            mark_mask |= mt.mask
        witnesses = sorted(names) + [p + "\x00w" for p in sorted(prefixes)] + ["\x00other"]
        bits = tuple(b for b in range(32) if mark_mask >> b & 1)
        return cls(tuple(witnesses), bits if len(bits) <= MAX_MARK_BITS else (), len(bits) > MAX_MARK_BITS)

    @cached_property
    def tops(self) -> tuple[int, ...]:
        return (0xFFFFFFFF, 0xFFFFFFFF, 255, 65535, 65535, len(self.interfaces) - 1, len(self.interfaces) - 1,
                len(_CT_BASE) * 4 - 1, (1 << len(self.mark_bits)) - 1)

    @cached_property
    def _everything(self) -> Box:
        return tuple(((0, top),) for top in self.tops)

    def everything(self) -> Box:
        return self._everything

    def interface_atom(self, name: str) -> int:
        """The atom a real interface name falls in: its own, else its longest mentioned ``+``
        prefix's, else the one for names no rule mentions."""
        names = self.interfaces
        if name in names:
            return names.index(name)
        prefixed = [(len(w), i) for i, w in enumerate(names) if w.endswith("\x00w") and name.startswith(w[:-2])]
        return max(prefixed)[1] if prefixed else len(names) - 1

    def mark_value(self, atom: int) -> int:
        """The mark an atom stands for (its bits placed on the relevant bit positions)."""
        return sum(1 << bit for i, bit in enumerate(self.mark_bits) if atom >> i & 1)


def rule_box(rule: m.Rule, universe: Universe) -> tuple[Box, bool]:
    """The box of packets ``rule``'s matches accept (a superset when a match is opaque), and
    whether it is exact (no opaque match, certain: no statistic)."""
    box = list(universe.everything())
    tops = universe.tops
    exact = True

    def narrow(field: int, values: Intervals, invert: bool) -> None:
        values = _norm(values)
        box[field] = _intersect(box[field], _complement(values, tops[field]) if invert else values)

    for mt in rule.matches:
        kind = type(mt)
        if kind is m.CommentMatch:
            continue
        if kind is m.AddrMatch:
            narrow(SRC if mt.field == "src" else DST, ((mt.network, mt.network | (~mt.mask & 0xFFFFFFFF)),), mt.invert)
        elif kind is m.IpRangeMatch:
            narrow(SRC if mt.field == "src" else DST, ((mt.low, mt.high),), mt.invert)
        elif kind is m.ProtoMatch:
            if mt.proto == 0:
                if mt.invert:
                    box[PROTO] = ()
                continue
            narrow(PROTO, ((mt.proto, mt.proto),), mt.invert)
        elif kind is m.PortMatch and mt.field in ("sport", "dport"):
            narrow(SPORT if mt.field == "sport" else DPORT, ((mt.low, mt.high),), mt.invert)
        elif kind is m.MultiportMatch and mt.field in ("sport", "dport"):
            narrow(SPORT if mt.field == "sport" else DPORT, mt.ranges, mt.invert)
        elif kind is m.IfaceMatch:
            hits = [i for i, name in enumerate(universe.interfaces)
                    if (name.startswith(mt.name) if mt.prefix else name == mt.name)]
            narrow(IIF if mt.direction == "in" else OIF, tuple((i, i) for i in hits), mt.invert)
        elif kind is m.CtStateMatch:
            hits = []
            for atom in range(len(_CT_BASE) * 4):
                base, snat, dnat = _CT_BASE[atom // 4], atom & 1, atom >> 1 & 1
                if base in mt.states or (snat and "SNAT" in mt.states) or (dnat and "DNAT" in mt.states):
                    hits.append((atom, atom))
            narrow(CT, tuple(hits), mt.invert)
        elif kind is m.MarkMatch and not universe.marks_opaque:
            hits = [(a, a) for a in range(1 << len(universe.mark_bits))
                    if (universe.mark_value(a) & mt.mask) == mt.value]
            narrow(MARK, tuple(hits), mt.invert)
        elif kind is FieldSet and mt.field <= DPORT:
            narrow(mt.field, mt.values, mt.invert)
        elif kind in (m.RandomMatch, m.NthMatch):
            exact = False
        else:
            exact = False          # opaque: the box ignores it (a superset)
    return tuple(box), exact


def meet(a: Box, b: Box) -> Box | None:
    """The box of packets in both ``a`` and ``b``, or None when they share none."""
    box = tuple(_intersect(x, y) for x, y in zip(a, b))
    return box if all(box) else None


def intersects(a: Box, b: Box) -> bool:
    return all(_intersect(x, y) for x, y in zip(a, b))


def subtract(box: Box, other: Box, tops: tuple[int, ...]) -> list[Box]:
    """``box`` minus ``other`` as disjoint boxes."""
    out: list[Box] = []
    cur = list(box)
    for i, (mine, theirs) in enumerate(zip(box, other)):
        inter = _intersect(mine, theirs)
        if not inter:
            return [box]                 # disjoint: nothing to take away
        rest = _minus(mine, theirs, tops[i])
        if rest:
            piece = list(cur)
            piece[i] = rest
            out.append(tuple(piece))
        cur[i] = inter
    return out


def covered(box: Box, covers: list[Box], tops: tuple[int, ...], work: list[int] | None = None,
            limit: int | None = None) -> bool | None:
    """Whether every packet of ``box`` is in some box of ``covers`` (None: more than
    :data:`MAX_BOXES` pieces at once, or ``work[0]`` — the intervals of the pieces handled, counted
    here: what the time grows with — past ``limit``)."""
    remaining = [box]
    count = work if work is not None else [0]
    for cover in covers:
        nxt: list[Box] = []
        for piece in remaining:
            count[0] += sum(map(len, piece))
            if intersects(piece, cover):
                nxt.extend(subtract(piece, cover, tops))
            else:
                nxt.append(piece)
            if len(nxt) > MAX_BOXES or (limit is not None and count[0] > limit):
                return None
        remaining = nxt
        if not remaining:
            return True
    return not remaining


def jumps_into(table: m.Table) -> dict[str, list[tuple[str, m.Rule]]]:
    """For each chain of ``table``, the (calling chain, rule) of every jump or goto to it."""
    callers: dict[str, list[tuple[str, m.Rule]]] = {}
    for chain in table.chains.values():
        for rule in chain.rules:
            if type(rule.target) is m.Jump:
                callers.setdefault(rule.target.chain, []).append((chain.name, rule))
    return callers


def is_everything(box: Box, universe: Universe) -> bool:
    return box == universe.everything()
