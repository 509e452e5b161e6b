"""Packets that surely reach a rule with its match true: an under-approximation, as boxes.

A check that reports "this rule acts on pod traffic" (PV305) must never report a packet that
cannot get there, so it needs packets that *surely* reach the rule, not packets that may. The
walk down a chain keeps such a set: a built-in chain is entered by every packet; a user chain by
what surely reaches its exact jumps. Each earlier rule takes its packets away — its box is a
superset of what it matches, so what is left is surely not matched — when it ends the walk
(ACCEPT, DROP, RETURN, NAT, goto, ...) or changes the packet (MARK, CONNMARK, TTL, NOTRACK: the
changed packet goes on, but no longer as the box says). A jump to a chain hands back what
surely comes back unchanged: what meets an exact RETURN, or the chain's end, before any rule
that ends or changes it (so kube-proxy's ``KUBE-POSTROUTING``, which RETURNs unmarked packets
first and changes only marked ones, hands back every unmarked packet). Leaving packets out is
always sound here; so past :data:`MAX_PIECES` boxes the rest is left out.
"""

from __future__ import annotations

from ...model import rules as m
from ..headerspace import Box, Universe, intersects, jumps_into, meet, rule_box, subtract

__all__ = ["Reaching", "MAX_PIECES", "MAX_DEPTH"]

MAX_PIECES = 2_000
MAX_DEPTH = 16          # nested jumps followed when asking what comes back unchanged
_NEUTRAL = (m.NoOp,)    # targets that go on to the next rule with the packet as it was


class Reaching:
    """The packets that surely reach a rule of ``table`` with its match true."""

    def __init__(self, table: m.Table, universe: Universe) -> None:
        self.table, self.universe, self.tops = table, universe, universe.tops
        self._entry: dict[str, list[Box]] = {}
        self._jumps = jumps_into(table)

    def entry(self, chain_name: str) -> list[Box]:
        """Boxes of packets that surely enter ``chain_name`` (a built-in chain: all of them)."""
        if chain_name in self._entry:
            return self._entry[chain_name]
        self._entry[chain_name] = []          # a loop: nothing more is known
        chain = self.table.chains[chain_name]
        pieces: list[Box] = [self.universe.everything()] if chain.builtin else []
        if not chain.builtin:
            for caller, rule in self._jumps.get(chain_name, ()):
                pieces += self.reaching(caller, rule)
        self._entry[chain_name] = pieces[:MAX_PIECES]
        return self._entry[chain_name]

    def reaching(self, chain_name: str, rule: m.Rule) -> list[Box]:
        """Boxes of packets that surely reach ``rule`` (of ``chain_name``) with its match true
        (empty when its match is not exact: an opaque match may be false for any of them)."""
        box, exact = rule_box(rule, self.universe)
        if not exact:
            return []
        pieces = self.entry(chain_name)
        for earlier in self.table.chains[chain_name].rules:
            if earlier is rule:
                break
            pieces = self._past(earlier, pieces, 0)
            if not pieces:
                return []
        return [p for p in (meet(q, box) for q in pieces) if p is not None]

    def _past(self, rule: m.Rule, pieces: list[Box], depth: int) -> list[Box]:
        """What of ``pieces`` surely goes on, unchanged, to the rule after ``rule``."""
        target = rule.target
        box, exact = rule_box(rule, self.universe)
        if target is None or isinstance(target, _NEUTRAL):
            return pieces
        rest = _minus(pieces, box, self.tops)
        if type(target) is m.Jump and not target.goto and exact and depth < MAX_DEPTH \
                and target.chain in self.table.chains:
            into = [p for p in (meet(q, box) for q in pieces) if p is not None]
            rest += self._returned(target.chain, into, depth + 1)
        return rest[:MAX_PIECES]

    def _returned(self, chain_name: str, pieces: list[Box], depth: int) -> list[Box]:
        """What of ``pieces``, entering ``chain_name``, surely comes back unchanged."""
        back: list[Box] = []
        for rule in self.table.chains[chain_name].rules:
            if not pieces:
                return back
            box, exact = rule_box(rule, self.universe)
            if type(rule.target) is m.Verdict and rule.target.name == "RETURN" and exact:
                back += [p for p in (meet(q, box) for q in pieces) if p is not None]
            pieces = self._past(rule, pieces, depth)
        return (back + pieces)[:MAX_PIECES]          # the chain's end returns too


def _minus(pieces: list[Box], box: Box, tops: tuple[int, ...]) -> list[Box]:
    return [q for p in pieces for q in (subtract(p, box, tops) if intersects(p, box) else [p])]
