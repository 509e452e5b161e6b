"""Walk a packet through one table's chain for one hook, branching where the rules do.

The walk follows the kernel's traversal: jumps push a return point, gotos do
not, RETURN (or falling off a user chain) pops, and falling off or RETURN in a
built-in chain applies its policy. A statistic match splits the walk into a
matching branch (probability p) and a non-matching one (1 - p); an unknown
match (``--lenient``) splits it into two inexact branches.

Large chains are indexed by the exact destination a rule requires
(``-d IP/32``): a rule whose required destination is not the packet's cannot
match, so the walk visits only rules with no such requirement or the right
one. The destination cannot change during a table walk (DNAT ends it), so
the index is sound.
"""

from __future__ import annotations

import gc
from bisect import bisect_left
from collections.abc import Callable
from heapq import heappop, heappush
from typing import NamedTuple

from ..model import rules as m
from ..model.rules import Table
from . import nat
from .fib import Fib
from .matchers import CompiledRule, compile_rule
from .state import (CT_UNTRACKED, MERGE_FROM, Budget, Step, WalkState, add_step, last_step, merge_equal, nat_done,
                    state_key, with_prob)

__all__ = ["ChainResult", "CompiledTable", "INDEX_THRESHOLD"]

INDEX_THRESHOLD = 16
_UNSET = object()    # a rule's fixed effect not worked out yet


class ChainResult(NamedTuple):
    """How a table walk ended: ``verdict`` ACCEPT, DROP or REJECT (``detail`` the reject type)."""
    state: WalkState
    verdict: str
    detail: str = ""


class _IndexedChain:
    __slots__ = ("name", "rules", "policy", "builtin", "decl", "_by_dst", "_wild", "_cache", "indexed", "fixed", "table",
                 "node_positions", "_ports")

    def __init__(self, chain: m.Chain, fib: Fib, table: str) -> None:
        self.name = chain.name
        self.policy = chain.policy
        self.builtin = chain.builtin
        self.decl = (chain.line, chain.declaration)
        self.rules = [compile_rule(rule, i, fib) for i, rule in enumerate(chain.rules)]
        # The rules whose answer depends on the node (addrtype, ipsets, ...): recompiled per node.
        self.node_positions = [i for i, rule in enumerate(chain.rules) if any(_reads_node(mt) for mt in rule.matches)]
        # What a certain match of each rule does when that does not depend on the packet
        # (jumps, verdicts, no target): made on first use, so the hot path builds no Step.
        self.table = table
        self.fixed: list = [_UNSET] * len(self.rules)
        self.indexed = len(self.rules) > INDEX_THRESHOLD
        self._by_dst: dict[int, list[int]] = {}
        self._wild: list[int] = []
        self._cache: dict = {}
        # A large group of rules for one destination (or for any) is split again by the one
        # destination port each requires: a LoadBalancer with 3,000 ports, KUBE-NODEPORTS with a
        # port per service. Per group: (rules with no such port, {port: rules}); absent: unsplit.
        self._ports: dict[int | None, tuple[list[int], dict[int, list[int]]]] = {}
        if self.indexed:
            for r in self.rules:
                if r.dst_key is None:
                    self._wild.append(r.position)
                else:
                    self._by_dst.setdefault(r.dst_key, []).append(r.position)
            for dst, group in [(None, self._wild), *self._by_dst.items()]:
                if len(group) > INDEX_THRESHOLD:
                    loose: list[int] = []
                    by_port: dict[int, list[int]] = {}
                    for pos in group:
                        key = self.rules[pos].dport_key
                        (loose if key is None else by_port.setdefault(key, [])).append(pos)
                    if len(by_port) > 1:
                        self._ports[dst] = (loose, by_port)

    def for_node(self, chain: m.Chain, fib: Fib) -> "_IndexedChain":
        """This chain compiled for another node: only the rules that ask the node anything are
        compiled again; the others, the dispatch index and its cache are shared (a kube-proxy
        KUBE-SERVICES chain has one such rule among thousands, on every node)."""
        other = object.__new__(_IndexedChain)
        for slot in _IndexedChain.__slots__:
            setattr(other, slot, getattr(self, slot))
        rules = list(self.rules)
        for i in self.node_positions:
            rules[i] = compile_rule(chain.rules[i], i, fib)
        other.rules = rules
        return other

    def fixed_effect(self, pos: int) -> tuple | None:
        """The cached :func:`_fixed_effect` of rule ``pos``."""
        fixed = self.fixed[pos] = _fixed_effect(self.table, self.rules[pos].rule)
        return fixed

    def candidates(self, dst: int, dport: int = 0) -> list[int] | None:
        """Positions of the rules that can match destination ``dst`` and port ``dport``, in
        order (None: all)."""
        if not self.indexed:
            return None
        exact = self._by_dst.get(dst)
        ports = self._ports
        if exact is None and not ports:
            return self._wild           # no rule names this destination: the wildcard rules, shared
        # Keys are only destinations and ports some rule names: the cache is bounded by the
        # chain's own rules, not by the packets walked (a chain of port-only rules once kept a
        # copy of all its rules per destination: 1.8 GB for 100 userspace nodes).
        if not ports:                   # no group split by port (most chains): keyed by destination alone
            key = dst
        else:
            key = (dst if exact is not None else None,
                   dport if any(dport in split[1] for split in (ports.get(None), ports.get(dst)) if split) else None)
        hit = self._cache.get(key)
        if hit is None:
            parts = self._pick(None, self._wild, dport)
            if exact is not None:
                parts = parts + self._pick(dst, exact, dport)
            hit = self._cache[key] = sorted(parts)
        return hit

    def _pick(self, dst: int | None, group: list[int], dport: int) -> list[int]:
        """The rules of ``group`` (those for ``dst``, or for any destination) that ``dport`` may match."""
        split = self._ports.get(dst)
        if split is None:
            return group
        loose, by_port = split
        return loose + by_port.get(dport, [])


# Matches that compile to a plain yes/no predicate (never a probability or a may-match).
# Not -m length: it is a may-match (a first packet's size is a range), which the straight walk would
# take for "matches" (`--length 1000:65535 -j DROP` dropped every packet; found by this campaign).
_PLAIN_MATCHES = frozenset({m.AddrMatch, m.ProtoMatch, m.IfaceMatch, m.PortMatch, m.MultiportMatch, m.TcpFlagsMatch,
                            m.CommentMatch, m.AddrTypeMatch, m.MarkMatch, m.CtStateMatch, m.IpRangeMatch,
                            m.IcmpTypeMatch})


class _LazyChains(dict):
    """A table's compiled chains, each compiled when a walk first enters it (a 110k-rule dump's
    trace compiles only the few chains its packets meet). ``shared``: compiled chains of other
    nodes, by model chain; a chain none of whose rules asks the node anything (no ``addrtype``)
    compiles the same everywhere and is reused."""

    def __init__(self, table: Table, fib: Fib, shared: dict[int, _IndexedChain] | None) -> None:
        super().__init__()
        self._table, self._fib, self._shared = table, fib, shared

    def __missing__(self, name: str) -> _IndexedChain:
        chain = self._table.chains[name]            # KeyError for a chain the table does not have
        shared = self._shared
        compiled = shared.get(id(chain)) if shared is not None else None
        if compiled is not None and compiled.node_positions:
            compiled = compiled.for_node(chain, self._fib)      # shared but for the rules that read the node
        if compiled is None:
            enabled = gc.isenabled()        # compiling makes many acyclic objects: no GC passes meanwhile
            gc.disable()
            try:
                compiled = _IndexedChain(chain, self._fib, self._table.name)
            finally:
                if enabled:
                    gc.enable()
            if shared is not None:
                shared[id(chain)] = compiled
        self[name] = compiled
        return compiled

    def __contains__(self, name: object) -> bool:
        return name in self._table.chains


class CompiledTable:
    """One table compiled for one node: walk a packet from any built-in chain."""

    def __init__(self, table: Table, fib: Fib, shared: dict[int, _IndexedChain] | None = None,
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
        self.chains = _LazyChains(table, fib, shared)

    def compile_all(self) -> None:
        """Compile every chain now (for a tracer about to trace many packets, or before forking)."""
        for name in self.table.chains:
            self.chains[name]

    def is_empty(self, hook: str) -> bool:
        """True when the built-in chain has no rules and policy ACCEPT (a walk changes nothing)."""
        chain = self.chains[hook]
        return not chain.rules and chain.policy == "ACCEPT"

    def walk(self, hook: str, st: WalkState, ctx: "NatContext | None" = None,
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
                    if fixed is _UNSET:
                        fixed = chain.fixed_effect(pos)
                    if fixed is None:
                        kind, st, arg = self._apply(cr, st, ctx, 1.0, hook)
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

    def _step(self, cr: CompiledRule, action: str, p: float) -> Step:
        r = cr.rule
        return Step(self.name, r.chain, r.index, r.line, r.text, action, r.source,
                    p if p < 1.0 else None)

    def _apply(self, cr: CompiledRule, st: WalkState, ctx, p: float, hook: str = ""):
        effect = _fixed_effect(self.name, cr.rule, p)
        if effect is not None:                  # jumps, verdicts, no target (the walkers cache these at p=1)
            kind, step, arg = effect
            st = add_step(st, step)
            return (kind, ChainResult(st, *arg), None) if kind == "final" else (kind, st, arg)
        target = cr.rule.target
        ttype = type(target)
        if ttype is m.SetMark:
            mark = (st.mark & ~target.mask & 0xFFFFFFFF) ^ target.value
            st = add_step(st._replace(mark=mark), self._step(cr, f"MARK {st.mark:#x} → {mark:#x}", p))
            return "continue", st, None
        if ttype is m.NoOp:
            action = f"{target.name} ({target.note}, not modelled; the packet goes on)" if target.note else target.name
            return "continue", add_step(st, self._step(cr, action, p)), None
        if ttype is m.SetTtl:
            ttl = st.pkt.ttl
            new = {"set": target.value, "dec": max(ttl - target.value, 0), "inc": min(ttl + target.value, 255)}[target.op]
            st = add_step(st._replace(pkt=st.pkt._replace(ttl=new)), self._step(cr, f"TTL {ttl} → {new}", p))
            return "continue", st, None
        if ttype is m.ConnMark:
            return "continue", self._connmark(cr, target, st, p), None
        if ttype is m.NoTrack:
            st = add_step(st._replace(ctbits=CT_UNTRACKED), self._step(cr, "NOTRACK: no connection (UNTRACKED)", p))
            return "continue", st, None
        if ttype is m.Tproxy:
            return "final", self._tproxy(cr, target, st, p), None
        if ttype is m.Nfqueue:
            step = self._step(cr, f"NFQUEUE {target.num}: a userspace program decides (accept assumed; it may drop)", p)
            return "final", ChainResult(add_step(st._replace(exact=False), step), "QUEUE"), None
        if ttype is m.UnknownTarget:
            if target.name in m.NON_TERMINATING_TARGETS:
                step = self._step(cr, f"{target.name} (not modelled; non-terminating: the packet goes on)", p)
                return "continue", add_step(st._replace(exact=False), step), None
            step = self._step(cr, f"unknown target {target.name} (may continue or stop)", p)
            st = add_step(st._replace(exact=False), step)
            return "final", ChainResult(st, "UNKNOWN"), None
        return self._nat(cr, target, st, ctx, p, hook)

    def _connmark(self, cr: CompiledRule, target: m.ConnMark, st: WalkState, p: float) -> WalkState:
        """CONNMARK as xt_connmark does it (the ctmark lives with the connection: a reply sees it)."""
        mark, ctmark = st.mark, st.ctmark
        if target.op == "set":
            ctmark = (ctmark & ~target.mask & 0xFFFFFFFF) ^ target.value
            action = f"CONNMARK ctmark {st.ctmark:#x} → {ctmark:#x}"
        elif target.op == "save":
            ctmark = (ctmark & ~target.ctmask & 0xFFFFFFFF) ^ (mark & target.nfmask)
            action = f"CONNMARK save mark {mark:#x}: ctmark {st.ctmark:#x} → {ctmark:#x}"
        else:
            mark = (mark & ~target.nfmask & 0xFFFFFFFF) ^ (ctmark & target.ctmask)
            action = f"CONNMARK restore: mark {st.mark:#x} → {mark:#x}"
        if st.ctbits & CT_UNTRACKED:
            return add_step(st, self._step(cr, "CONNMARK: the packet has no connection (untracked), nothing kept", p))
        return add_step(st._replace(mark=mark, ctmark=ctmark), self._step(cr, action, p))

    def _tproxy(self, cr: CompiledRule, target: m.Tproxy, st: WalkState, p: float) -> ChainResult:
        """TPROXY hands the packet to a local socket (and marks it) or, with none, drops it; no dump
        says whether the socket exists, so the accepted outcome is marked inexact."""
        mark = (st.mark & ~target.mask & 0xFFFFFFFF) ^ target.mark
        step = self._step(cr, f"TPROXY to port {target.port}: taken by a local socket if one listens (mark "
                              f"{st.mark:#x} → {mark:#x}), else dropped", p)
        return ChainResult(add_step(st._replace(mark=mark, exact=False), step), "ACCEPT", "TPROXY")

    def _nat(self, cr: CompiledRule, target, st: WalkState, ctx, p: float, hook: str = ""):
        before = st.pkt
        ttype = type(target)
        if ttype is m.Netmap:
            # NETMAP rewrites the destination at PREROUTING/OUTPUT, the source at POSTROUTING/INPUT.
            res, kind = nat.apply_netmap(before, target, hook in ("PREROUTING", "OUTPUT")), "NETMAP"
        elif ttype is m.Dnat:
            res, kind = nat.apply_dnat(before, target), "DNAT"
        elif ttype is m.Redirect:
            res, kind = nat.apply_redirect(before, target, self.fib, st.in_iface), "REDIRECT"
        elif ttype is m.Snat:
            res, kind = nat.apply_snat(before, target), "SNAT"
        else:
            res, kind = nat.apply_masquerade(before, target, self.fib, st.out_iface, ctx.next_hop), "MASQUERADE"
        if res.pkt is None:
            st = add_step(st, self._step(cr, res.note + " → dropped", p))
            return "final", ChainResult(st, "DROP", res.note), None
        action = nat.describe_change(before, res.pkt, kind)
        if res.random_port:
            fld, lo, hi = res.random_port
            action += f" ({fld} drawn at random from {lo}-{hi})"
        st = add_step(nat_done(st, res.pkt, st.exact and res.exact, st.masquerade or kind == "MASQUERADE",
                               st.random_ports + (res.random_port,) if res.random_port else st.random_ports),
                      self._step(cr, action, p))
        return "final", ChainResult(st, "ACCEPT", kind), None


def _fixed_effect(table: str, rule: m.Rule, p: float = 1.0) -> tuple | None:
    """``(kind, step, arg)`` for a rule whose match (taken with probability ``p``) has an effect
    independent of the packet — a jump or goto (arg: the chain), a verdict (arg: the ChainResult
    fields), no target — or None (the target reads or changes the packet: the rest of
    :meth:`CompiledTable._apply`). At ``p`` 1 it is the same for every packet, so the walkers
    cache it per rule."""
    target = rule.target

    def step(action: str) -> Step:
        return Step(table, rule.chain, rule.index, rule.line, rule.text, action, rule.source, p if p < 1.0 else None)

    if target is None:
        return "continue", step("match (no target)"), None
    ttype = type(target)
    if ttype is m.Jump:
        return ("goto" if target.goto else "jump"), step(("goto " if target.goto else "jump ") + target.chain), \
            target.chain
    if ttype is m.Verdict:
        if target.name == "RETURN":
            return "return", step("RETURN"), None
        return "final", step(target.name), (target.name,)
    if ttype is m.Reject:
        return "final", step(f"REJECT {target.with_}"), ("REJECT", target.with_)
    return None


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
                entries = _merge_entries(group)
            else:
                entries = (entry,)
            for _key, order, _seq, prefix, chain_name, start, stack, st in entries:
                self._advance(prefix, chain_name, start, stack, st, order)
        return self._finish()

    def _push(self, prefix: tuple, chain_name: str, start: int, stack: tuple, st: WalkState, order: tuple) -> None:
        budget = self.budget
        budget.left -= 1
        if budget.left < 0:
            budget.spend(0)          # raises LimitExceeded with the message
        self.seq += 1
        heappush(self.heap, (prefix + (start,), order, self.seq, prefix, chain_name, start, stack, st))

    def _finish(self) -> list[ChainResult]:
        """Results in rule order; equal ones (same verdict, state and stopping rule) merged."""
        results = self.results
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

    def _advance(self, prefix: tuple, chain_name: str, start: int, stack: tuple, st: WalkState,
                 order: tuple) -> None:
        """Run one branch from rule ``start`` until it ends, or until another branch waits at an
        earlier or equal program point (then it is queued there, before that rule is tested)."""
        table = self.table
        chains = table.chains
        heap = self.heap
        while True:
            chain = chains[chain_name]
            rules = chain.rules
            order_ix = chain.candidates(st.pkt.dst, st.pkt.dport)
            positions = range(start, len(rules)) if order_ix is None else order_ix[bisect_left(order_ix, start):]
            moved = False
            for pos in positions:
                if heap and prefix + (pos,) >= heap[0][0]:
                    self._push(prefix, chain_name, pos, stack, st, order)
                    return
                cr = rules[pos]
                p = cr.probability
                ok = True
                for pred in cr.preds:
                    if not pred(st):
                        ok = False
                        break
                if not ok:
                    continue
                if cr.special:
                    maybe = cr.unknown
                    for tri in cr.maybes:
                        answer = tri(st)
                        if answer is False:
                            ok = False
                            break
                        if answer is None:
                            maybe = True
                    if not ok:
                        continue
                    if maybe:
                        # The dumps cannot say whether this rule matches: follow both worlds, each
                        # remembering what it assumed (the same question gets the same answer later,
                        # and where both worlds meet again with equal state the assumption is dropped).
                        decision = (table.name, chain_name, pos, st.pkt, st.mark, st.ctmark)
                        if (decision, False) in st.assume:
                            continue
                        if (decision, True) not in st.assume:
                            note = f"{cr.rule.location()} ({table.name}/{chain_name} #{pos + 1})"
                            miss = add_step(st._replace(assume=st.assume | {(decision, False)}),
                                            Step(None, None, None, None, "", f"assumed {note} does not match: {cr.why}"))
                            self._push(prefix, chain_name, pos + 1, stack, miss, order + (1,))
                            st = add_step(st._replace(assume=st.assume | {(decision, True)}),
                                          Step(None, None, None, None, "", f"assumed {note} matches: {cr.why}"))
                            order = order + (0,)
                    if cr.fixed:
                        st = add_step(st, Step(None, None, None, None, "", f"fresh flow: {cr.fixed}"))
                if p < 1.0:
                    # A fork: the non-matching side waits at the next rule; the matching side
                    # (first in rule order) goes on here.
                    miss = with_prob(st, st.prob * (1.0 - p))
                    if miss.prob > 0.0:
                        self._push(prefix, chain_name, pos + 1, stack, miss, order + (1,))
                    if p <= 0.0:
                        return
                    st = with_prob(st, st.prob * p)
                    order = order + (0,)
                fixed = chain.fixed[pos] if p == 1.0 else None
                if fixed is _UNSET:
                    fixed = chain.fixed_effect(pos)
                if fixed is None:
                    kind, res, arg = table._apply(cr, st, self.ctx, p, self.hook)
                else:
                    kind, step, arg = fixed
                    res = add_step(st, step)
                    if kind == "final":
                        res = ChainResult(res, *arg)
                if kind == "continue":
                    st = res
                    continue
                if kind == "final":
                    budget = self.budget
                    budget.left -= 1
                    if budget.left < 0:
                        budget.spend(0)          # raises LimitExceeded with the message
                    self.results.append((order, res))
                    return
                st = res
                if kind == "jump":
                    stack = stack + ((chain_name, pos + 1, prefix),)
                    prefix, chain_name, start = prefix + (pos,), arg, 0
                elif kind == "goto":
                    prefix, chain_name, start = prefix + (pos,), arg, 0
                else:  # RETURN
                    if not stack:   # from the built-in chain itself, or a chain entered by -g from it
                        self.results.append((order, table._policy(self.hook, st)))
                        return
                    (chain_name, start, prefix), stack = stack[-1], stack[:-1]
                moved = True
                break
            if moved:
                continue
            # Fell off the end of the chain.
            if chain.builtin:
                self.results.append((order, table._policy(chain_name, st)))
                return
            if not stack:   # a chain entered by -g from the built-in chain: the kernel applies its policy
                self.results.append((order, table._policy(self.hook, st)))
                return
            (chain_name, start, prefix), stack = stack[-1], stack[:-1]


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


def _merge_entries(group: list) -> list:
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


def _reads_node(match) -> bool:
    """True for matches whose answer depends on the node (its addresses, routes or ipsets), so a
    chain holding one cannot share its compiled form with another node's."""
    kind = type(match)
    return kind in (m.AddrTypeMatch, m.SetMatch, m.RpFilterMatch) or (kind is m.FactMatch and match.fact == "pkttype")


class NatContext(NamedTuple):
    """What source-NAT needs from the routing decision."""
    next_hop: int
