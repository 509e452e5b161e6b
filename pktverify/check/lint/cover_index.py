"""The earlier rules that may cover a rule, found without comparing it with every one of them.

Shadowing (PV203) asks whether a rule's box lies in the union of the boxes of earlier ending rules.
Comparing each rule with every earlier one is quadratic: a 10,000-entry blocklist took 76 s. Like
the evaluator's dispatch (:mod:`..eval.chains` indexes rules by the destination they fix), this
index files each cover under the fields it fixes, so independent rules are never compared:

* per field, the union of every cover's values: a rule holding a value no cover holds in some field
  is surely not covered (one binary search per interval: a blocklist entry is decided at once);
* per address and port field, covers filed by the smallest aligned block holding their values
  (level = bits that vary, key = the value above them): a rule whose lowest or highest packet no
  cover filed at that packet's blocks holds is surely not covered (a rule after a blocklist is
  decided by the few covers wide in one field); else the covers that can meet it are read from
  the blocks its values span, on the field that gives the fewest.

Work is counted in :class:`ShadowWork` (rule pairs compared, box intervals handled) against bounds;
the rules past it are counted, never silently passed as "not shadowed".
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from ...model import rules as m
from ..headerspace import DPORT, DST, SPORT, SRC, Box, Intervals, intersects

__all__ = ["CoverIndex", "ShadowWork", "MAX_PAIRS", "MAX_INTERVALS", "MAX_RULE_INTERVALS"]

MAX_PAIRS = 2_000_000              # rule pairs compared, over the whole rule set
MAX_INTERVALS = 300_000            # intervals of the box pieces cover checks handle, over the whole rule set
MAX_RULE_INTERVALS = 50_000        # ... and for one rule
_INDEXED = (SRC, DST, SPORT, DPORT)


@dataclass
class ShadowWork:
    """Work done by the shadowing check (rule pairs compared; intervals of the box pieces the cover
    checks handled), its bounds, and the rules it did not decide: ``beyond`` (a bound was spent
    before them) and ``too_big`` (their own cover check needed more than ``rule_intervals``)."""
    max_pairs: int = MAX_PAIRS
    max_intervals: int = MAX_INTERVALS
    rule_intervals: int = MAX_RULE_INTERVALS
    pairs: int = 0
    intervals: int = 0
    beyond: list[m.Rule] = field(default_factory=list)
    too_big: list[m.Rule] = field(default_factory=list)

    @property
    def spent(self) -> bool:
        return self.pairs > self.max_pairs or self.intervals > self.max_intervals

    def note(self) -> str | None:
        """The "not analysed" note, or None when every rule was decided."""
        parts = []
        if self.beyond:
            parts.append(f"{len(self.beyond)} rule(s) beyond the bound of {self.max_pairs:,} rule pairs compared "
                         f"and {self.max_intervals:,} box intervals handled (first: {self.beyond[0].location()})")
        if self.too_big:
            parts.append(f"{len(self.too_big)} rule(s) whose cover check needed more than {self.rule_intervals:,} "
                         f"box intervals (first: {self.too_big[0].location()})")
        if not parts:
            return None
        return "PV203 (shadowed-rule) not analysed: " + "; ".join(parts) + "; those rules may still be shadowed"


class CoverIndex:
    """Exact ending rules' boxes of one chain since the last packet change, indexed (see module)."""

    def __init__(self, fields: int) -> None:
        self.covers: list[tuple[Box, m.Rule]] = []
        self._union: list[list[tuple[int, int]]] = [[] for _ in range(fields)]
        self._blocks: dict[int, dict[int, dict[int, list[int]]]] = {f: {} for f in _INDEXED}

    def add(self, box: Box, rule: m.Rule) -> None:
        at = len(self.covers)
        self.covers.append((box, rule))
        for f, values in enumerate(box):
            _union_add(self._union[f], values)
        for f in _INDEXED:
            lo, hi = box[f][0][0], box[f][-1][1]
            level = (lo ^ hi).bit_length()
            self._blocks[f].setdefault(level, {}).setdefault(lo >> level, []).append(at)

    def surely_uncovered(self, box: Box) -> bool:
        """Whether some value of ``box`` in some field is in no cover (then no union covers it)."""
        return any(not _inside(values, self._union[f]) for f, values in enumerate(box))

    def corner_uncovered(self, box: Box, work: ShadowWork) -> bool:
        """Whether the lowest or the highest packet of ``box`` (each field's lowest or highest
        value) lies in no cover: then ``box`` is surely not covered. Only the covers filed where
        the packet's value is are read, on the field that files the fewest."""
        for point in (tuple(v[0][0] for v in box), tuple(v[-1][1] for v in box)):
            best = None
            for f in _INDEXED:
                v = point[f]
                groups = [g for level, buckets in self._blocks[f].items() for g in (buckets.get(v >> level),) if g]
                count = sum(len(g) for g in groups)
                if best is None or count < best[0]:
                    best = (count, groups)
            work.pairs += best[0]
            if not any(_holds(self.covers[i][0], point) for g in best[1] for i in g):
                return True
        return False

    def meeting(self, box: Box, work: ShadowWork) -> list[tuple[Box, m.Rule]]:
        """The covers that meet ``box``, in order, read on the field that files the fewest."""
        best: tuple[int, int, list] | None = None
        for f in _INDEXED:
            lo, hi = box[f][0][0], box[f][-1][1]
            found = []
            for level, buckets in self._blocks[f].items():
                k0, k1 = lo >> level, hi >> level
                if k1 - k0 < len(buckets):
                    found += [buckets[k] for k in range(k0, k1 + 1) if k in buckets]
                else:
                    found += [ids for k, ids in buckets.items() if k0 <= k <= k1]
            count = sum(len(ids) for ids in found)
            if best is None or count < best[0]:
                best = (count, f, found)
            if count == 0:
                break
        ids = sorted(i for group in best[2] for i in group) if best else []
        work.pairs += len(ids)
        return [self.covers[i] for i in ids if intersects(box, self.covers[i][0])]


def _union_add(union: list[tuple[int, int]], values: Intervals) -> None:
    """Merge ``values`` into the sorted disjoint interval list ``union`` in place."""
    if union and _inside(values, union):
        return
    for lo, hi in values:
        i = bisect.bisect_left(union, (lo, lo))
        if i > 0 and union[i - 1][1] >= lo - 1:
            i -= 1
        j = i
        while j < len(union) and union[j][0] <= hi + 1:
            lo, hi = min(lo, union[j][0]), max(hi, union[j][1])
            j += 1
        union[i:j] = [(lo, hi)]


def _holds(box: Box, point: tuple[int, ...]) -> bool:
    for values, v in zip(box, point):
        i = bisect.bisect_right(values, (v, 1 << 64)) - 1
        if i < 0 or values[i][1] < v:
            return False
    return True


def _inside(values: Intervals, union: list[tuple[int, int]]) -> bool:
    for lo, hi in values:
        i = bisect.bisect_right(union, (lo, 1 << 64)) - 1
        if i < 0 or union[i][1] < hi:
            return False
    return True
