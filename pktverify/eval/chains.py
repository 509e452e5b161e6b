"""Walk a packet through one table's chain for one hook, branching where the rules do.

The walk follows the kernel's traversal: jumps push a return point, gotos do
not, RETURN (or falling off a user chain) pops, and falling off or RETURN in a
built-in chain applies its policy. A statistic match splits the walk into a
matching branch (probability p) and a non-matching one (1 - p); an unknown
match (``--lenient``) splits it into two inexact branches.

The pieces: :mod:`.chain_index` compiles a chain and dispatches a packet to the
rules that can match it (large chains are indexed by the exact destination, and
port, a rule requires); :mod:`.targets` says what a matched rule's target does;
:mod:`.branches` merges branches that meet with equal futures.
"""

from __future__ import annotations

from bisect import bisect_left
from heapq import heappop, heappush

from ..model import rules as m
from ..model.rules import Table
from ..model.trace import Step
from .branches import merge_entries, merge_results
from .chain_index import UNSET, IndexedChain, LazyChains
from .fib import Fib
from .matchers import CompiledRule
from .state import Budget, WalkState, add_step, with_prob
from .targets import ChainResult, NatContext, apply_target

__all__ = ["ChainResult", "CompiledTable"]



# Matches that compile to a plain yes/no predicate (never a probability or a may-match).
# Not -m length: it is a may-match (a first packet's size is a range), which the straight walk would
# take for "matches" (`--length 1000:65535 -j DROP` dropped every packet; found by this campaign).
_PLAIN_MATCHES = frozenset({m.AddrMatch, m.ProtoMatch, m.IfaceMatch, m.PortMatch, m.MultiportMatch, m.TcpFlagsMatch,
                            m.CommentMatch, m.AddrTypeMatch, m.MarkMatch, m.CtStateMatch, m.IpRangeMatch,
                            m.IcmpTypeMatch})



class CompiledTable:
    """One table compiled for one node: walk a packet from any built-in chain."""

    def __init__(self, table: Table, fib: Fib, shared: dict[int, IndexedChain] | None = None,
                 source: str | None = None) -> None:
        """``shared``: compiled chains of other nodes, by model chain; a chain none of whose rules
        asks the node anything (no ``addrtype``) compiles the same everywhere and is reused.
        ``source``: the dump the table was read from (a policy's step names its declaration there)."""
        self.name = table.name
        self.source = source or None
        self.fib = fib
        self._forks: dict[str, bool] = {}
        self._policy_steps: dict[str, Step] = {}
        self.table = table
        self._shared = shared
        self.chains = LazyChains(table, fib, shared)

    def compile_all(self) -> None:
        """Compile every chain now (for a tracer about to trace many packets, or before forking)."""
        for name in self.table.chains:
            self.chains[name]

    def is_empty(self, hook: str) -> bool:
        """True when the built-in chain has no rules and policy ACCEPT (a walk changes nothing)."""
        chain = self.chains[hook]
        return not chain.rules and chain.policy == "ACCEPT"

    def walk(self, hook: str, st: WalkState, ctx: NatContext | None = None,
             budget: Budget | None = None) -> list[ChainResult]:
        """All outcomes of walking ``st`` through built-in chain ``hook``, with probabilities.

        Branches whose futures are equal are merged where they meet, so a run of
        probabilistic rules whose targets continue (LOG, a MARK already set) costs linear,
        not exponential, work; ``budget`` bounds the branches that remain distinct.
        """
        if not self._can_fork(hook):
            return [self._straight(hook, st, ctx)]
        w = _Walk(self, hook, ctx, budget if budget is not None else Budget())
        w._advance((), hook, 0, (), st, ())
        if not w.heap and len(w.results) == 1:       # no fork left waiting: the common case
            return [w.results[0][1]]
        return w.run()

    def _can_fork(self, hook: str) -> bool:
        """Whether a walk from ``hook`` can meet a probabilistic or may-match rule (cached). Read
        from the model, so that it compiles nothing: a rule with any match outside the plainly
        deterministic ones counts as one that may fork (the general walker is right for all)."""
        forks = self._forks.get(hook)
        if forks is None and self._shared is not None:     # the same model table on another node
            forks = self._forks[hook] = self._shared.get(("forks", id(self.table), hook))
        if forks is None:
            chains = self.table.chains
            seen, todo = {hook}, [hook]
            forks = False
            while todo and not forks:
                for rule in chains[todo.pop()].rules:
                    if any(type(mt) not in _PLAIN_MATCHES for mt in rule.matches):
                        forks = True
                        break
                    target = rule.target
                    if type(target) is m.Jump and target.chain not in seen and target.chain in chains:
                        seen.add(target.chain)
                        todo.append(target.chain)
            self._forks[hook] = forks
            if self._shared is not None:
                self._shared[("forks", id(self.table), hook)] = forks
        return forks

    def _straight(self, hook: str, st: WalkState, ctx) -> ChainResult:
        """The walk of a hook whose chains cannot fork: one branch, no worklist (the hot path
        of most tables; :class:`_Walk` is the general case and gives the same result)."""
        chains = self.chains
        chain_name, start, stack = hook, 0, ()
        while True:
            chain = chains[chain_name]
            rules = chain.rules
            order_ix = chain.candidates(st.pkt.dst, st.pkt.dport)
            positions = range(start, len(rules)) if order_ix is None else order_ix[bisect_left(order_ix, start):]
            for pos in positions:
                cr = rules[pos]
                for pred in cr.preds:
                    if not pred(st):
                        break
                else:
                    fixed = chain.fixed[pos]
                    if fixed is UNSET:
                        fixed = chain.fixed_effect(pos)
                    if fixed is None:
                        kind, st, arg = apply_target(self.name, self.fib, cr, st, ctx, 1.0, hook)
                    else:
                        kind, step, arg = fixed
                        st = add_step(st, step)
                        if kind == "final":
                            return ChainResult(st, *arg)
                    if kind == "continue":
                        continue
                    if kind == "final":
                        return st
                    if kind == "jump":
                        stack = stack + ((chain_name, pos + 1),)
                        chain_name, start = arg, 0
                    elif kind == "goto":
                        chain_name, start = arg, 0
                    elif not stack:      # RETURN from the built-in chain or a chain it went to by -g
                        return self._policy(hook, st)
                    else:
                        (chain_name, start), stack = stack[-1], stack[:-1]
                    break
            else:
                if chain.builtin:
                    return self._policy(chain_name, st)
                if not stack:
                    return self._policy(hook, st)
                (chain_name, start), stack = stack[-1], stack[:-1]

    def _policy(self, chain_name: str, st: WalkState) -> ChainResult:
        step = self._policy_steps.get(chain_name)
        if step is None:
            chain = self.chains[chain_name]
            line, decl = chain.decl
            policy = chain.policy or "ACCEPT"
            step = self._policy_steps[chain_name] = Step(self.name, chain_name, None, line or None,
                                                         decl or f":{chain_name} {policy}", f"policy {policy}",
                                                         self.source if line else None)
        return ChainResult(add_step(st, step), step.action[7:])


class _Walk:
    """One table walk: a worklist of branches ordered by program point, merged where they meet.

    A branch's program point is the list of rule positions that led to it (the
    jump or goto rule at each level, then the current position). Every move —
    to a later rule, into a jumped-to chain, back to the caller — makes that key
    strictly larger, so when the smallest key is taken from the heap no other
    branch can still reach it: branches at equal keys with equal state (see
    :func:`~.state.state_key`) have equal futures and are merged there. A branch
    runs on by itself, cheaply, while no other branch waits at an earlier key.
    ``order`` is the branch's place in the kernel's rule order (the matching side
    of a fork first); results are returned in that order, as a depth-first walk
    would find them.
    """
    __slots__ = ("table", "hook", "ctx", "budget", "heap", "results", "seq")

    def __init__(self, table: CompiledTable, hook: str, ctx, budget: Budget) -> None:
        self.table, self.hook, self.ctx, self.budget = table, hook, ctx, budget
        self.heap: list = []
        self.results: list = []
        self.seq = 0

    def run(self) -> list[ChainResult]:
        """Go on with the branches waiting in the heap (the first one ran already), then finish."""
        heap = self.heap
        while heap:
            key = heap[0][0]
            entry = heappop(heap)
            if heap and heap[0][0] == key:        # several branches at one program point: merge
                group = [entry]
                while heap and heap[0][0] == key:
                    group.append(heappop(heap))
                entries = merge_entries(group)
            else:
                entries = (entry,)
            for _key, order, _seq, prefix, chain_name, start, stack, st in entries:
                self._advance(prefix, chain_name, start, stack, st, order)
        return merge_results(self.results)

    def _push(self, prefix: tuple, chain_name: str, start: int, stack: tuple, st: WalkState, order: tuple) -> None:
        budget = self.budget
        budget.left -= 1
        if budget.left < 0:
            budget.spend(0)          # raises LimitExceeded with the message
        self.seq += 1
        heappush(self.heap, (prefix + (start,), order, self.seq, prefix, chain_name, start, stack, st))

    def _advance(self, prefix: tuple, chain_name: str, start: int, stack: tuple, st: WalkState,
                 order: tuple) -> None:
        """Run one branch from rule ``start`` until it ends, or until another branch waits at an
        earlier or equal program point (then it is queued there, before that rule is tested)."""
        table, heap = self.table, self.heap
        while True:
            chain = table.chains[chain_name]
            rules = chain.rules
            order_ix = chain.candidates(st.pkt.dst, st.pkt.dport)
            positions = range(start, len(rules)) if order_ix is None else order_ix[bisect_left(order_ix, start):]
            for pos in positions:
                if heap and prefix + (pos,) >= heap[0][0]:      # another branch waits: queue this one
                    return self._push(prefix, chain_name, pos, stack, st, order)
                cr = rules[pos]
                for pred in cr.preds:
                    if not pred(st):
                        break
                else:
                    if cr.special:
                        taken = self._may_match(cr, prefix, chain_name, pos, stack, st, order)
                        if taken is None:
                            continue
                        st, order = taken
                    p = cr.probability
                    if p < 1.0:
                        taken = self._fork(p, prefix, chain_name, pos, stack, st, order)
                        if taken is None:
                            return
                        st, order = taken
                    fixed = chain.fixed[pos] if p == 1.0 else None
                    if fixed is UNSET:
                        fixed = chain.fixed_effect(pos)
                    if fixed is None:
                        kind, res, arg = apply_target(table.name, table.fib, cr, st, self.ctx, p, self.hook)
                    else:
                        kind, step, arg = fixed
                        res = add_step(st, step)
                        if kind == "final":
                            res = ChainResult(res, *arg)
                    st = res
                    if kind == "continue":
                        continue
                    if kind == "final":
                        return self._end(order, st)
                    if kind == "jump":
                        stack = stack + ((chain_name, pos + 1, prefix),)
                        prefix, chain_name, start = prefix + (pos,), arg, 0
                    elif kind == "goto":
                        prefix, chain_name, start = prefix + (pos,), arg, 0
                    elif not stack:     # RETURN from the built-in chain, or from a chain entered by -g from it
                        self.results.append((order, table._policy(self.hook, st)))
                        return
                    else:
                        (chain_name, start, prefix), stack = stack[-1], stack[:-1]
                    break
            else:                       # fell off the end of the chain
                if chain.builtin or not stack:      # (no stack: entered by -g from the built-in chain)
                    self.results.append((order, table._policy(chain_name if chain.builtin else self.hook, st)))
                    return
                (chain_name, start, prefix), stack = stack[-1], stack[:-1]

    def _may_match(self, cr: CompiledRule, prefix: tuple, chain_name: str, pos: int, stack: tuple,
                   st: WalkState, order: tuple) -> tuple[WalkState, tuple] | None:
        """The may-match conditions of rule ``cr``, whose plain matches matched: None when one
        surely fails, else the state and order the matching side goes on with.

        When the dumps cannot say whether the rule matches, both worlds are followed, each
        remembering what it assumed (the same question gets the same answer later, and where
        both worlds meet again with equal state the assumption is dropped): the non-matching
        one waits at the next rule."""
        maybe = cr.unknown
        for tri in cr.maybes:
            answer = tri(st)
            if answer is False:
                return None
            if answer is None:
                maybe = True
        if maybe:
            table_name = self.table.name
            decision = (table_name, chain_name, pos, st.pkt, st.mark, st.ctmark)
            if (decision, False) in st.assume:
                return None
            if (decision, True) not in st.assume:
                note = f"{cr.rule.location()} ({table_name}/{chain_name} #{pos + 1})"
                miss = add_step(st._replace(assume=st.assume | {(decision, False)}),
                                Step(None, None, None, None, "", f"assumed {note} does not match: {cr.why}"))
                self._push(prefix, chain_name, pos + 1, stack, miss, order + (1,))
                st = add_step(st._replace(assume=st.assume | {(decision, True)}),
                              Step(None, None, None, None, "", f"assumed {note} matches: {cr.why}"))
                order = order + (0,)
        if cr.fixed:
            st = add_step(st, Step(None, None, None, None, "", f"fresh flow: {cr.fixed}"))
        return st, order

    def _fork(self, p: float, prefix: tuple, chain_name: str, pos: int, stack: tuple, st: WalkState,
              order: tuple) -> tuple[WalkState, tuple] | None:
        """A rule matching with probability ``p``: the non-matching side waits at the next rule; the
        matching side (first in rule order) goes on with the state and order returned (None: it
        has probability 0)."""
        miss = with_prob(st, st.prob * (1.0 - p))
        if miss.prob > 0.0:
            self._push(prefix, chain_name, pos + 1, stack, miss, order + (1,))
        if p <= 0.0:
            return None
        return with_prob(st, st.prob * p), order + (0,)

    def _end(self, order: tuple, res: ChainResult) -> None:
        """A branch stopped by a verdict: counted against the budget, kept in ``results``."""
        budget = self.budget
        budget.left -= 1
        if budget.left < 0:
            budget.spend(0)          # raises LimitExceeded with the message
        self.results.append((order, res))
