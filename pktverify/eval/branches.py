"""Branch merging for the table walk: branches that meet with equal futures become one.

A table walk forks at probabilistic rules (``-m statistic``) and may-match rules (whose answer the
dumps do not give). Queued branches that meet at one program point with equal state have equal
futures: :func:`merge_entries` sums them into one. The walk's results are merged the same way
(:func:`merge_results`: same verdict, state and stopping rule). Two worlds that differ only in
the answer they assumed for one may-match question are one branch that assumed nothing about it
(:func:`cancel_assumptions`). A node's outcomes equal for a user are merged last
(:func:`merge_outcomes`).
"""

from __future__ import annotations

from collections.abc import Callable

from ..model.trace import Outcome
from .state import MERGE_FROM, WalkState, last_step, merge_equal, state_key
from .targets import ChainResult

__all__ = ["cancel_assumptions", "merge_entries", "merge_outcomes", "merge_results"]


def merge_results(results: list) -> list[ChainResult]:
    """A walk's ``(order, result)`` pairs as results in rule order; equal ones (same verdict,
    state and stopping rule) merged."""
    if len(results) == 1:
        return [results[0][1]]
    results.sort(key=_first_item)
    merged = [res for _order, res in results]
    if len(merged) > MERGE_FROM:     # few results: the outcomes' own merge does it, cheaper
        merged = merge_equal(merged, _result_key, _result_prob, _result_with_prob)
    for res in merged:
        if res.state.assume:
            return cancel_assumptions(merged, _result_place, _result_state, _result_with_state)
    return merged


def _first_item(item: tuple):
    return item[0]


def _result_prob(res: ChainResult) -> float:
    return res.state.prob


def _result_with_prob(res: ChainResult, prob: float, _first: ChainResult) -> ChainResult:
    return res._replace(state=res.state._replace(prob=prob))


def _result_place(res: ChainResult) -> tuple:
    key = _result_key(res)
    return key[:2] + key[3:]


def _result_state(res: ChainResult) -> WalkState:
    return res.state


def _result_with_state(res: ChainResult, st: WalkState) -> ChainResult:
    return res._replace(state=st)


def _result_key(res: ChainResult) -> tuple:
    """Results equal for everything downstream: verdict, state and, when the walk stopped the
    packet, the rule that stopped it (it is named in the outcome's reason)."""
    last = last_step(res.state.steps)
    stopped_by = None if res.verdict == "ACCEPT" or last is None else (last.table, last.chain, last.rule_index)
    return res.verdict, res.detail, state_key(res.state), stopped_by


def merge_entries(group: list) -> list:
    """Queued branches at one program point, in rule order: those in the same chain and call
    stack with equal state have equal futures and are merged (the merged one keeps the earliest
    place in rule order)."""
    if len(group) == 1:
        return group
    group.sort(key=lambda e: e[1])
    merged = merge_equal(group, lambda e: (e[4], e[6], state_key(e[7])), lambda e: e[7].prob,
                         lambda e, p, first: (e[0], first[1], *e[2:7], e[7]._replace(prob=p)))
    return cancel_assumptions(merged, lambda e: (e[4], e[6]), lambda e: e[7],
                              lambda e, st: (*e[:7], st))


def cancel_assumptions(items: list, where: Callable, state: Callable, with_state: Callable) -> list:
    """Two branches at the same place (``where``) that differ only in the answer they assumed for one
    may-match question, with the same probability, are one branch that assumed nothing about it:
    whatever the answer, the packet is there with that probability (so an outcome reached in both
    worlds is exact again). Items keep their order; the earlier of a pair stands for it."""
    if len(items) < 2 or not any(state(i).assume for i in items):
        return items
    items = list(items)
    changed = True
    while changed:
        changed = False
        for i, a in enumerate(items):
            for j in range(i + 1, len(items)):
                b = items[j]
                sa, sb = state(a), state(b)
                diff = sa.assume ^ sb.assume
                if (len(diff) == 2 and len({d for d, _ in diff}) == 1 and where(a) == where(b)
                        and abs(sa.prob - sb.prob) <= 1e-12 * max(sa.prob, 1e-300)
                        and state_key(sa._replace(assume=frozenset())) == state_key(sb._replace(assume=frozenset()))):
                    items[i] = with_state(a, sa._replace(assume=sa.assume & sb.assume))
                    del items[j]
                    changed = True
                    break
            if changed:
                break
    return items


def merge_outcomes(outcomes: list[Outcome]) -> tuple[Outcome, ...]:
    """Merge outcomes equal for a user; keep the steps of the most probable branch."""
    merged = merge_equal(outcomes, Outcome.key, lambda o: o.probability, lambda o, p, _first: o._replace(probability=p))
    # An inexact outcome's probability is an upper bound (its worlds are alternatives, not shares):
    # never above 1.
    merged = [o if o.exact or o.probability <= 1.0 else o._replace(probability=1.0) for o in merged]
    return tuple(sorted(merged, key=lambda o: -o.probability))
