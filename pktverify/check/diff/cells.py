"""The region ``pktverify diff`` must compare and the cells it is cut into, within a work bound.

*Region*: the packets that may reach a changed rule with its match true. A packet enters a chain
at its top, so it reaches rule R of chain C only when no earlier rule of C (on R's side) that
ends the walk through C matched it; those rules' exact boxes are taken out of R's box (met with
what can enter C). Rules that end the walk cannot change a header field on the way to R (only NAT
does, and NAT ends the chain), so what is left still holds every packet that can reach R. A rule
that fixes one field only (``-s IP/32 -j DROP``: a blocklist) is taken out of that field in bulk,
so 10,000 of them cost one interval operation, not 10,000 box splits.

*Cells*: the region is split one field at a time (protocol first, then the field with the most
classes): a field's values fall into *classes*, the values that every rule box still touching,
every route, local and special address and every NAT address or port contains all of or none of
(an interval set, not one interval: the addresses between the entries of a blocklist are one
class). Below one class only the boxes that meet it are considered, so independent rules never
multiply each other's cuts. In a cell (a class per field) every box-expressible test answers the
same for every packet, so one packet stands for the cell (see :mod:`.compare`).

Work (interval boundaries handled, box pieces made) is counted in :class:`Work`; past its bound the
split stops and the diff says so, never "same".
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass

from ...model import rules as m
from ..headerspace import (
    DPORT,
    DST,
    IIF,
    PROTO,
    SPORT,
    SRC,
    Box,
    Intervals,
    Universe,
    _intersect,
    _minus,
    _norm,
    intersects,
    meet,
    rule_box,
    subtract,
)

__all__ = ["Work", "WorkBound", "reaching_region", "cells", "PORT_PROTOS", "MAX_WORK"]

MAX_WORK = 20_000_000          # interval boundaries and box pieces handled, in all
MAX_REGION_PIECES = 256        # pieces one changed rule's region may split into (beyond: left whole)
PORT_PROTOS = (6, 17, 132)
_FIVE = (SRC, DST, PROTO, SPORT, DPORT)
_FULL_PORTS = ((0, 65535),)
# Targets that end the walk through a chain for the packet they match (it never reaches a later
# rule of that chain), without changing a header field a later rule of the chain would read.
_ENDING = (m.Verdict, m.Reject, m.Dnat, m.Snat, m.Masquerade, m.Redirect)


class WorkBound(Exception):
    """The work bound was reached; the region left is not compared."""


@dataclass
class Work:
    """A counter of the work done (see the module docstring) against ``limit``."""
    limit: int = MAX_WORK
    done: int = 0

    def spend(self, amount: int) -> None:
        self.done += amount
        if self.done > self.limit:
            raise WorkBound


def _ends(rule: m.Rule) -> bool:
    target = rule.target
    return isinstance(target, _ENDING) or (type(target) is m.Jump and target.goto)


def reaching_region(rule: m.Rule, chain: m.Chain, entry: list[Box], universe: Universe, work: Work) -> list[Box]:
    """Boxes covering the packets that can reach ``rule`` (of ``chain``) with its match true: its box
    met with ``entry`` (what can enter the chain), less what earlier ending rules of the chain take."""
    box = rule_box(rule, universe)[0]
    pieces = [b for b in (meet(box, e) for e in entry) if b is not None]
    everything = universe.everything()
    tops = universe.tops
    bulk: dict[int, list[tuple[int, int]]] = {}
    others: list[Box] = []
    for earlier in chain.rules:
        if earlier is rule:
            break
        if not _ends(earlier):
            continue
        eb, exact = rule_box(earlier, universe)
        if not exact:
            continue
        narrowed = [f for f in range(len(eb)) if eb[f] != everything[f]]
        if len(narrowed) == 1:
            bulk.setdefault(narrowed[0], []).extend(eb[narrowed[0]])
        elif narrowed:
            others.append(eb)
        else:
            return []                     # an unconditional ending rule: nothing gets past it
    work.spend(len(chain.rules))
    for f, values in bulk.items():
        gone = _norm(values)
        work.spend(len(gone) + sum(len(p[f]) for p in pieces))
        pieces = [p for p in (p[:f] + (_minus(p[f], gone, tops[f]),) + p[f + 1:] for p in pieces) if p[f]]
    for eb in others:
        if not pieces or len(pieces) > MAX_REGION_PIECES:
            break                         # leaving a rule's packets in keeps the region a superset
        work.spend(len(pieces))
        pieces = [q for p in pieces for q in (subtract(p, eb, tops) if intersects(p, eb) else [p])]
    return pieces


def classes(values: Intervals, cuts: list[Intervals], work: Work) -> list[Intervals]:
    """``values`` split into the classes of values that every cut holds all of or none of, each an
    interval set, in order of their lowest value."""
    if not values:
        return []
    lo_all, hi_all = values[0][0], values[-1][1]
    # A cut of one interval holding every value tells none apart (most rules, on most fields).
    cuts = list(dict.fromkeys(c for c in cuts if c and not (len(c) == 1 and c[0][0] <= lo_all and hi_all <= c[0][1])))
    points: set[int] = set()
    for cut in cuts:
        for lo, hi in cut:
            if lo_all < lo <= hi_all:
                points.add(lo)
            if lo_all <= hi < hi_all:
                points.add(hi + 1)
    bounds = sorted(points)
    work.spend(len(bounds) + len(values))
    pieces: list[tuple[int, int]] = []        # elementary intervals: no cut boundary inside
    for lo, hi in values:
        start = lo
        for p in bounds[bisect.bisect_right(bounds, lo):bisect.bisect_right(bounds, hi)]:
            pieces.append((start, p - 1))
            start = p
        pieces.append((start, hi))
    if len(pieces) == 1 or not cuts:
        return [values]
    starts = [p[0] for p in pieces]
    n = len(pieces)
    adds: dict[int, list[int]] = {}
    drops: dict[int, list[int]] = {}
    for k, cut in enumerate(cuts):
        spans = []
        for lo, hi in cut:
            i = bisect.bisect_left(starts, lo)
            j = bisect.bisect_right(starts, hi) - 1
            if i <= j:                        # cut boundaries split pieces: i..j lie inside
                spans.append((i, j))
        if not spans:
            continue
        if sum(j - i + 1 for i, j in spans) == n:
            continue                          # holds every value: tells none apart
        for i, j in spans:
            adds.setdefault(i, []).append(k)
            drops.setdefault(j + 1, []).append(k)
    groups: dict[frozenset, list[tuple[int, int]]] = {}
    active: set[int] = set()
    for t in range(n):
        for k in drops.get(t, ()):
            active.discard(k)
        active.update(adds.get(t, ()))
        work.spend(1 + len(active))
        groups.setdefault(frozenset(active), []).append(pieces[t])
    out = [_norm(g) for g in groups.values()]
    out.sort(key=lambda c: c[0][0])
    return out


def cells(box: Box, boxes: list[Box], fixed: dict[int, list[Intervals]], work: Work,
          first: tuple[int, ...] = (PROTO,)) -> Iterator[tuple[Intervals, ...]]:
    """Every cell of ``box`` as its five classes (source, destination, protocol, source port,
    destination port): cut by ``boxes`` (the rules' boxes) and ``fixed`` (per field: route, address
    and NAT cuts), lazily. ``first``: the fields split first, in order (then the field with the most
    classes); ``(DST, PROTO)`` cuts by destination first, so that boxes met with one destination's
    packets (:func:`.region.cutting_boxes`, ``local``) cut only that destination's other fields.
    Raises :class:`WorkBound` past ``work``'s bound."""
    work.spend(len(boxes))
    touching = [b for b in boxes if intersects(box, b)]
    chosen: dict[int, Intervals] = {}
    yield from _split(box, touching, fixed, chosen, work, first)


def _split(box: Box, touching: list[Box], fixed: dict[int, list[Intervals]], chosen: dict[int, Intervals],
           work: Work, first: tuple[int, ...] = (PROTO,)) -> Iterator[tuple[Intervals, ...]]:
    remaining = [f for f in _FIVE if f not in chosen]
    if not remaining:
        yield tuple(chosen[f] for f in _FIVE)
        return
    lead = next((f for f in first if f in remaining), None)
    if lead is not None:
        field, split = lead, _field_classes(box, touching, fixed, lead, work)
    else:
        ports = any(lo <= p <= hi for p in PORT_PROTOS for lo, hi in chosen[PROTO])
        options = []
        for f in remaining:
            if f in (SPORT, DPORT) and not ports:
                options.append((1, f, [_FULL_PORTS]))       # no ports: one class, the packet has none
            else:
                split = _field_classes(box, touching, fixed, f, work)
                options.append((len(split), f, split))
        _n, field, split = max(options, key=lambda o: (o[0], -o[1]))
    for cls in split:
        chosen[field] = cls
        if cls is _FULL_PORTS:
            inner, sub = box, touching
        else:
            inner = box[:field] + (cls,) + box[field + 1:]
            work.spend(len(touching))
            sub = [b for b in touching if _intersect(b[field], cls)]
        yield from _split(inner, sub, fixed, chosen, work, first)
    del chosen[field]


def _field_classes(box: Box, touching: list[Box], fixed: dict[int, list[Intervals]], field: int,
                   work: Work) -> list[Intervals]:
    return classes(box[field], [b[field] for b in touching] + fixed.get(field, []), work)


def interfaces_of(box: Box, ifaces: list[tuple[str, int]]) -> list[str | None]:
    """The node's interfaces whose atom ``box`` holds, and None (generated on the node itself)."""
    return [name for name, atom in ifaces if any(lo <= atom <= hi for lo, hi in box[IIF])] + [None]
