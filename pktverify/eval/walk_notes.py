"""What a walk's hops say, made when read: the rules that acted on a node, a step's label, and
what a connection leaves behind for the client's next one (``-m recent`` entries, proxy affinity)."""

from __future__ import annotations

from typing import Protocol

from ..model.node import NodeState
from ..model.path import PathEnd
from ..model.rules import RecentMatch
from ..model.trace import Outcome, Step

__all__ = ["Summary", "rules_summary", "step_label", "remembered"]


class _Walker(Protocol):
    """What :func:`remembered` reads of a :class:`.cluster_walk.ClusterWalker`: its nodes."""
    states: dict[str, NodeState]


class Summary:
    """``rules_summary(o)`` made when printed."""
    __slots__ = ("outcome",)

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome

    def __str__(self) -> str:
        return rules_summary(self.outcome)


def rules_summary(o: Outcome) -> str:
    """What acted on the packet on this node: rules (``nat/KUBE-SEP-Y #2 (line 41): DNAT ...``),
    policies, routes and conntrack, compactly; jumps are left out."""
    acted = [s.action if s.table is None else step_label(s) for s in o.steps
             if s.table is None or not s.action.startswith(("jump", "goto"))]
    return "; ".join(acted) if acted else "no rule acted"


def step_label(s: Step) -> str:
    """A table step as people read it: ``nat/KUBE-SEP-Y #2 (line 41): DNAT ...``, or
    ``filter/FORWARD policy DROP`` for a chain's policy."""
    if s.rule_index is None:
        return f"{s.table}/{s.chain} {s.action}"
    line = f" (line {s.line})" if s.line else ""
    return f"{s.table}/{s.chain} #{s.rule_index}{line}: {s.action}"


def remembered(end: PathEnd, walker: _Walker) -> frozenset:
    """What a connection that ended as ``end`` leaves behind for the client's next one: the
    ``-m recent --set/--update`` entries of the rules that acted on each node (the address as the
    packet entered that node, masked), what nft rules added to dynamic sets (``add``/``update
    @set``: ``Outcome.recent``, each key as the packet was at its rule), and the endpoint each
    userspace proxy chose."""
    out = set()
    entry = None
    for hop in end.hops:
        o = hop.outcome
        if o is None:
            entry = hop.packet
            continue
        pkt = entry if entry is not None else hop.packet
        node = hop.point.split(":", 1)[0]
        out.update((node, tag, key) for tag, key in o.recent)    # nft add/update @set: keys as at their rule
        state = walker.states.get(node)
        for step in o.steps:
            if step.table is None or step.rule_index is None or state is None:
                continue
            table = state.ruleset.tables.get(step.table)
            if table is None:             # an nft table's step ("ip kube-proxy"): its additions are in o.recent
                continue
            chain = table.chains.get(step.chain)
            if chain is None or not 0 < step.rule_index <= len(chain.rules):
                continue
            for mt in chain.rules[step.rule_index - 1].matches:
                if isinstance(mt, RecentMatch) and mt.mode in ("set", "update") and not mt.invert:
                    out.add((node, mt.name, (pkt.dst if mt.dest else pkt.src) & mt.mask))
        entry = None
    for node, delivered, _conns, leg, _leg_end in end.proxied:
        out.add((node, f"proxy:{delivered.dport}", (delivered.src, leg.dst)))
    return frozenset(out)
