"""The evaluator's per-branch state (small immutable records) and its bounds."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import NamedTuple, TypeVar

from ..errors import LimitExceeded
from ..limits import MAX_BRANCHES
from ..model.packet import Packet
from ..model.trace import Step

__all__ = ["CT_INVALID", "CT_ESTABLISHED", "CT_RELATED", "CT_NEW", "CT_UNTRACKED", "CT_SNAT",
           "CT_DNAT", "CT_BITS", "WalkState", "TraceMeta", "add_step", "steps_tuple", "last_step", "state_key",
           "merge_states", "merge_equal", "MERGE_FROM", "with_prob", "routed", "nat_done", "with_ctbits", "Budget", "MAX_BRANCHES"]

# Bits as the conntrack match sees them (XT_CONNTRACK_STATE_*).
CT_INVALID, CT_ESTABLISHED, CT_RELATED, CT_NEW, CT_UNTRACKED, CT_SNAT, CT_DNAT = 1, 2, 4, 8, 16, 32, 64
CT_BITS = {"INVALID": CT_INVALID, "ESTABLISHED": CT_ESTABLISHED, "RELATED": CT_RELATED,
           "NEW": CT_NEW, "UNTRACKED": CT_UNTRACKED, "SNAT": CT_SNAT, "DNAT": CT_DNAT}


class TraceMeta(NamedTuple):
    """What stays the same for one trace: the connection's original tuple (for ``--ctorig*``),
    whether the packet is of the reply direction, the local socket's owner (locally generated
    packets; None for none) and the bridge ports it crossed (``--physdev-in``/``-out``)."""
    orig: Packet
    reply: bool = False
    uid: int | None = 0
    gid: int | None = 0
    physdev_in: str = ""
    physdev_out: str = ""
    at: int | None = None            # ``trace --at``: the time, for -m time (UTC epoch seconds)
    spent: frozenset = frozenset()   # rules (table, chain, index) whose one-token limit an earlier
                                     # packet of this trace used up (REJECT's answer after the packet)
    recent: frozenset = frozenset()  # -m recent entries (list, masked address) an earlier connection left


class WalkState(NamedTuple):
    """Everything that can differ between branches while a packet crosses a node.

    ``steps`` is ``()`` or ``(earlier_chunks, tail)``: the last steps as a tuple of at most
    64, and before them a cons list of full chunks. Appending copies at most 64 references, so
    a packet that matches 100k LOG rules costs linear time (one growing tuple was quadratic),
    while the usual handful of steps stays one small tuple. :func:`steps_tuple` flattens it.
    """
    pkt: Packet
    in_iface: str         # "" when there is none (locally generated)
    out_iface: str        # "" until routed
    mark: int
    ctbits: int           # CT_* bits the conntrack match sees now
    prob: float
    exact: bool
    steps: tuple
    masquerade: bool = False
    random_ports: tuple = ()   # (field, low, high) for ports the kernel draws at random
    ctmark: int = 0            # the connection's mark (CONNMARK, -m connmark)
    assume: frozenset = frozenset()   # answers assumed for may-match rules: {(decision, matched)}
    meta: TraceMeta | None = None


_new_tuple = tuple.__new__
T = TypeVar("T")


def add_step(st: WalkState, step: Step) -> WalkState:
    """``st`` with ``step`` appended (the hot path: ~8x cheaper than ``_replace``)."""
    pkt, in_iface, out_iface, mark, ctbits, prob, exact, steps, masquerade, random_ports, ctmark, assume, meta = st
    if not steps:
        steps = ((), (step,))
    else:
        chunks, tail = steps
        steps = (chunks, tail + (step,)) if len(tail) < _CHUNK else ((chunks, tail), (step,))
    return _new_tuple(WalkState, (pkt, in_iface, out_iface, mark, ctbits, prob, exact,
                                  steps, masquerade, random_ports, ctmark, assume, meta))


_CHUNK = 64


def routed(st: WalkState, pkt: Packet, out_iface: str, prob: float) -> WalkState:
    """``st`` routed: its packet (TTL decremented), outgoing interface and probability set
    (the forward path's hot ``_replace``)."""
    _pkt, in_iface, _out, mark, ctbits, _prob, *rest = st
    return _new_tuple(WalkState, (pkt, in_iface, out_iface, mark, ctbits, prob, *rest))


def nat_done(st: WalkState, pkt: Packet, exact: bool, masquerade: bool, random_ports: tuple) -> WalkState:
    """``st`` after a NAT target rewrote its packet (the nat walk's hot ``_replace``)."""
    _pkt, in_iface, out_iface, mark, ctbits, prob, _exact, steps, _masq, _rnd, *rest = st
    return _new_tuple(WalkState, (pkt, in_iface, out_iface, mark, ctbits, prob, exact, steps, masquerade,
                                  random_ports, *rest))


def with_ctbits(st: WalkState, ctbits: int) -> WalkState:
    """``st`` with conntrack bits ``ctbits``."""
    return _new_tuple(WalkState, (*st[:4], ctbits, *st[5:]))


def with_prob(st: WalkState, prob: float) -> WalkState:
    """``st`` with probability ``prob`` (the fork's hot path: cheaper than ``_replace``)."""
    return _new_tuple(WalkState, (*st[:5], prob, *st[6:]))


def steps_tuple(steps: tuple) -> tuple[Step, ...]:
    """``steps`` (see :class:`WalkState`) as a flat tuple, first step first (iterative)."""
    if not steps:
        return ()
    chunks, tail = steps
    if not chunks:
        return tail
    parts = [tail]
    while chunks:
        chunks, full = chunks
        parts.append(full)
    return tuple(step for part in reversed(parts) for step in part)


def last_step(steps: tuple) -> Step | None:
    """The most recent step, or None."""
    return steps[1][-1] if steps else None


def state_key(st: WalkState) -> tuple:
    """Everything about a branch that decides its future: all of it but its probability and steps."""
    return (st.pkt, st.in_iface, st.out_iface, st.mark, st.ctbits, st.exact, st.masquerade, st.random_ports,
            st.ctmark, st.assume, st.meta.recent if st.meta is not None else None)   # recent: what nft sets gained


def merge_equal(items: list[T], key: Callable[[T], Hashable], prob: Callable[[T], float],
                with_prob: Callable[[T, float, T], T]) -> list[T]:
    """Merge the items with equal ``key``: their probabilities add, the most probable one (the
    earlier on a tie) stands for them all, in the order of first appearance. The one rule every
    merge of branches, outcomes and cluster paths follows. ``with_prob(kept, probability,
    first)`` makes the merged item (``first``: the one that appeared first)."""
    if len(items) < 2:
        return items
    merged: dict = {}
    for item in items:
        k = key(item)
        prev = merged.get(k)
        if prev is None:
            merged[k] = item
        else:
            p, q = prob(prev), prob(item)
            merged[k] = with_prob(prev if p >= q else item, p + q, prev)
    return list(merged.values()) if len(merged) < len(items) else items


# Below this many branches, merging equal ones buys nothing: the final merge of outcomes does the
# same for a user. Above it, merging keeps the work bounded (chain results, states after a table).
MERGE_FROM = 8


def merge_states(states: list[WalkState]) -> list[WalkState]:
    """Merge branches with the same future (equal :func:`state_key`), steps of the most probable kept."""
    return merge_equal(states, state_key, _prob, _with_prob)


def _prob(st: WalkState) -> float:
    return st.prob


def _with_prob(st: WalkState, prob: float, _first: WalkState) -> WalkState:
    return st._replace(prob=prob)


class Budget:
    """How many more branch states one trace may create (``--max-branches``)."""
    __slots__ = ("left", "limit", "node")

    def __init__(self, limit: int = MAX_BRANCHES, node: str = "") -> None:
        self.left = self.limit = limit
        self.node = node

    def spend(self, n: int = 1) -> None:
        self.left -= n
        if self.left < 0:
            where = f" on node {self.node}" if self.node not in ("", "node") else ""
            raise LimitExceeded(
                f"a packet{where} has more than {self.limit:,} distinct branches (probabilistic or unknown "
                f"rules whose outcomes differ, e.g. marks); raise the limit with --max-branches N")
