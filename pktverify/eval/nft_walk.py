"""Walk a packet through one nftables base chain (and the chains it jumps to), branching where
the rules do.

The kernel's traversal (nf_tables_core.c): ``jump`` pushes a return point, ``goto`` does not,
``return`` (or the end of a regular chain) pops, and the end of the base chain, or a ``return``
with nothing to pop, applies its policy. ``accept`` ends this base chain only (the hook's next
base chain still runs: :mod:`.nft_hooks`); ``drop`` and ``reject`` are final; a NAT statement
accepts. A numgen or hash forks the branch into its buckets (exact shares); a match no dump can
answer forks it into two worlds that remember what they assumed, as iptables' may-match rules do.
"""

from __future__ import annotations

from ..model import nft as n
from ..model.trace import Step
from . import nat as natmod
from .branches import merge_results
from .fib import Fib
from .nft_rules import compile_ops
from .nft_sets import compile_lookup, set_tag
from .nft_share import share_key, shared_value
from .state import Budget, WalkState, add_step, nat_done, with_prob
from .targets import ChainResult

__all__ = ["NftTableEval"]

_MAX_DEPTH = 16        # NFT_JUMP_STACK_SIZE
# Verdicts named as iptables names them in steps (what the checks read: DROP, REJECT, DNAT ... first).
_WORDS = {"accept": "ACCEPT", "drop": "DROP", "return": "RETURN"}


def _ending(acts: tuple, main: str) -> str:
    """A step's action whose verdict or rewrite comes first, the rule's earlier effects after it."""
    return f"{main} (and {'; '.join(acts)})" if acts else main


class _Chain:
    """A chain's rules compiled; ``fast[i]``: rule i as ``(tests, kind, target)`` when it is only
    matches and one verdict (run inline by the walker), else None."""
    __slots__ = ("name", "rules", "policy", "base", "decl", "fast")

    def __init__(self, chain: n.NftChain, fib: Fib, sets: dict, family: str) -> None:
        self.name = chain.name
        self.base = chain.is_base
        self.policy = (chain.policy or "accept").upper()
        self.decl = chain.line
        self.rules = tuple((r, compile_ops(r.exprs, fib, sets, family)) for r in chain.rules)
        self.fast = tuple(_fast(ops) for _r, ops in self.rules)


def _fast(ops: tuple) -> tuple | None:
    """``(tests, kind, target)`` of a rule that is matches then one verdict, else None."""
    if not ops or ops[-1][0] != "verdict" or any(op[0] != "pred" for op in ops[:-1]):
        return None
    return tuple(op[1] for op in ops[:-1]), ops[-1][1], ops[-1][2]


class _Sets(dict):
    """The table's named sets and maps, compiled when a rule first names them; ``shared``: the
    compiled lookups of the same set objects on other nodes (a 10,000-element map once, not per node)."""

    def __init__(self, table: n.NftTable, shared: dict | None = None) -> None:
        super().__init__()
        self.table = table
        self.shared = shared

    def __missing__(self, name: str):
        found = self.table.set(name)
        dynamic = found is not None and "dynamic" in found.flags
        tag = set_tag(self.table.family, self.table.name, name) if dynamic else None
        if self.shared is None or found is None or dynamic:
            lookup = compile_lookup(found.elements if found is not None else (), tag)
        else:
            lookup = shared_value(self.shared, ("nft-set", id(found)), found, lambda: compile_lookup(found.elements))
        self[name] = lookup
        return lookup


class NftTableEval:
    """One nft table compiled for one node: walk a packet from any of its base chains."""

    def __init__(self, table: n.NftTable, fib: Fib, source: str | None, shared: dict | None = None) -> None:
        """``shared``: one dict for every node of a cluster, through which nodes share the compiled
        chains that read nothing of the node (:mod:`.nft_share`)."""
        self.shared = shared
        self.table = table
        self.label = f"{table.family} {table.name}"
        self.fib = fib
        self.source = source
        self.sets = _Sets(table, shared)
        self._chains: dict[str, _Chain] = {}
        self._models: dict[str, n.NftChain] | None = None
        self._steps: dict[tuple, Step] = {}      # the steps of rules whose action is the same for every packet

    def chain(self, name: str) -> _Chain:
        """The compiled chain ``name`` (compiled when a walk first enters it)."""
        c = self._chains.get(name)
        if c is None:
            if self._models is None:
                self._models = self._chain_models()
            model = self._models.get(name)
            if model is None:
                model = n.NftChain(name)
            c = self._chains[name] = self._compiled(model)
        return c

    def _chain_models(self) -> dict[str, n.NftChain]:
        """The table's chains by name: one dict for nodes whose tables hold the same chains tuple
        (40,000 names per node add up over 1,000 nodes)."""
        chains = self.table.chains
        if self.shared is None:
            return {ch.name: ch for ch in chains}
        return shared_value(self.shared, ("nft-models", id(chains)), chains, lambda: {ch.name: ch for ch in chains})

    def _compiled(self, model: n.NftChain) -> _Chain:
        """``model`` compiled, or the compiled chain another node made of the same objects."""
        found = share_key(model, self.table, self.shared) if self.shared is not None else None
        if found is None:
            return _Chain(model, self.fib, self.sets, self.table.family)
        key, keep = found
        return shared_value(self.shared, ("nft", key), keep, lambda: _Chain(model, self.fib, self.sets, self.table.family))

    def compile_all(self) -> None:
        """Compile every chain now (a tracer about to trace many packets: as iptables' tables).
        A chain that cannot be compiled is left for the walk that enters it to say why, as before."""
        for ch in self.table.chains:
            try:
                self.chain(ch.name)
            except Exception:   # noqa: BLE001 - raised again, unchanged, by the walk that reaches it
                pass

    def walk(self, chain: str, st: WalkState, ctx, budget: Budget) -> list[ChainResult]:
        """All outcomes of ``st`` through base chain ``chain``, with probabilities."""
        w = _Walk(self, chain, ctx, budget)
        w.run(st)
        return merge_results(w.results)

    def step(self, chain: str, pos: int, rule: n.NftRule, action: str, p: float) -> Step:
        """The step of rule ``pos`` (0-based) of ``chain``: ``table`` ``family name``, the rule as
        nft prints it (with ``# handle N`` when the dump gives handles), its line (JSON: index)."""
        text = rule.text + (f" # handle {rule.handle}" if rule.handle else "")
        return Step(self.label, chain, pos + 1, rule.line or None, text, action, self.source,
                    p if p < 1.0 else None)

    def policy_step(self, chain: _Chain) -> Step:
        step = self._steps.get(chain.name)
        if step is None:
            step = self._steps[chain.name] = Step(self.label, chain.name, None, chain.decl or None,
                                                  f"chain {chain.name}", f"policy {chain.policy}",
                                                  self.source if chain.decl else None)
        return step


class _Walk:
    """One base chain walk: a depth-first worklist of branches; results ordered by rule order."""

    def __init__(self, table: NftTableEval, base: str, ctx, budget: Budget) -> None:
        self.t, self.base, self.ctx, self.budget = table, base, ctx, budget
        self.results: list = []
        self.work: list = []

    def run(self, st: WalkState) -> None:
        self.work.append(((), self.base, 0, (), st, None, 0, (), 1.0))
        while self.work:
            self._branch(*self.work.pop())

    def _push(self, item: tuple) -> None:
        self.budget.left -= 1
        if self.budget.left < 0:
            self.budget.spend(0)
        self.work.append(item)

    def _branch(self, order, chain_name, pos, stack, st, ops, j, acts, p) -> None:
        """Run one branch: rules from ``pos`` (``ops`` from ``j`` when inside a rule)."""
        t = self.t
        chains = t._chains
        chain = None
        while True:
            if chain is None or chain.name != chain_name:
                chain = chains.get(chain_name) or t.chain(chain_name)
            if ops is not None:
                out = self._rule(order, chain, pos, stack, st, ops, j, acts, p)
                ops = None
            elif pos >= len(chain.rules):
                if chain.base or not stack:
                    return self._policy(order, chain if chain.base else t.chain(self.base), st)
                (chain_name, pos), stack = stack[-1], stack[:-1]
                continue
            else:
                fast, answer = chain.fast[pos], True
                if fast is not None:            # matches then a verdict: inline while they answer
                    for test in fast[0]:
                        answer = test(st)
                        if answer is not True:
                            break
                    if answer is True:
                        out = self._verdict(order, chain, pos, chain.rules[pos][0], st, (), 1.0, fast[1], fast[2])
                    elif answer is None:        # may-match: the rule's operations from its start
                        out = self._rule(order, chain, pos, stack, st, chain.rules[pos][1], 0, (), 1.0)
                else:
                    rops, first = chain.rules[pos][1], 0
                    if rops and rops[0][0] == "pred":         # the common miss, without a call
                        answer = rops[0][1](st)
                        first = 1 if answer is True else 0
                    if answer is not False:
                        out = self._rule(order, chain, pos, stack, st, rops, first, (), 1.0)
                if answer is False:
                    pos += 1
                    continue
            if out is None:
                return
            kind, st, arg = out
            if kind == "next":
                pos += 1
            elif kind == "jump":
                if len(stack) >= _MAX_DEPTH:
                    return self._end(order, ChainResult(st, "DROP", "jump stack full (16 levels): dropped"))
                stack, chain_name, pos = stack + ((chain_name, pos + 1),), arg, 0
            elif kind == "goto":
                chain_name, pos = arg, 0
            elif not stack:             # return from the base chain, or a chain reached from it by goto
                return self._policy(order, t.chain(self.base), st)
            else:
                (chain_name, pos), stack = stack[-1], stack[:-1]

    def _rule(self, order, chain: _Chain, pos: int, stack, st: WalkState, ops, j: int, acts: tuple, p: float):
        """Run ``ops`` of rule ``pos`` from ``j``: ("next"|"jump"|"goto"|"return", state, chain) or
        None when the branch ended (a result kept) or forked (its parts queued)."""
        rule = chain.rules[pos][0]
        while j < len(ops):
            op = ops[j]
            code = op[0]
            if code == "pred":
                answer = op[1](st)
                if answer is None:
                    answer, st = self._assume(order, chain, pos, stack, st, op[2], j, acts, p)
                if not answer:
                    return "next", self._effects_only(chain, pos, rule, st, acts, p), None
            elif code == "fixed":
                if not op[1]:
                    return "next", self._effects_only(chain, pos, rule, st, acts, p), None
                acts += (op[2],)
            elif code == "effect":
                done = op[1](st, self.ctx)
                if done is None:           # a map held nothing for the packet: the rule breaks
                    return "next", self._effects_only(chain, pos, rule, st, acts, p), None
                st, text = done
                acts += (text,)
            elif code == "fork":
                return self._fork(order, chain, pos, stack, st, op, acts)
            elif code == "vmap":
                verdict, st = self._vmap(order, chain, pos, stack, st, op, j, acts, p)
                if verdict is None:
                    return "next", self._effects_only(chain, pos, rule, st, acts, p), None
                return self._verdict(order, chain, pos, rule, st, acts, p, verdict.kind, verdict.chain)
            elif code == "verdict":
                return self._verdict(order, chain, pos, rule, st, acts, p, op[1], op[2])
            else:
                return self._final(order, chain, pos, rule, st, op, acts, p)
            j += 1
        st = add_step(st, self.t.step(chain.name, pos, rule, "; ".join(acts) or "match (no verdict)", p))
        return "next", st, None

    def _effects_only(self, chain: _Chain, pos: int, rule, st: WalkState, acts: tuple, p: float) -> WalkState:
        """A rule broken by a later match: the effects before it stay done (and are shown)."""
        if not acts:
            return st
        return add_step(st, self.t.step(chain.name, pos, rule, "; ".join(acts) + " (then a match failed)", p))

    def _verdict(self, order, chain: _Chain, pos: int, rule, st: WalkState, acts: tuple, p: float, kind: str,
                 target: str | None):
        action = _WORDS.get(kind, kind) if target is None else f"{kind} {target}"
        if not acts and p == 1.0:
            key = (chain.name, pos, kind, target)
            step = self.t._steps.get(key)
            if step is None:
                step = self.t._steps[key] = self.t.step(chain.name, pos, rule, action, p)
            st = add_step(st, step)
        else:      # a jump keeps the rule's notes first (the text report shows a jump's step by them)
            text = "; ".join((*acts, action)) if target is not None else _ending(acts, action)
            st = add_step(st, self.t.step(chain.name, pos, rule, text, p))
        if kind in ("accept", "drop"):
            return self._end(order, ChainResult(st, kind.upper()))
        if kind == "continue":
            return "next", st, None
        return kind, st, target

    def _final(self, order, chain: _Chain, pos: int, rule, st: WalkState, op: tuple, acts: tuple, p: float):
        """reject, queue, a NAT statement: the base chain's walk ends."""
        code = op[0]
        if code == "reject":
            with_ = op[1]
            if with_ == "tcp-reset" and st.pkt.proto != 6:      # its implied `meta l4proto tcp` (nft lists
                return "next", self._effects_only(chain, pos, rule, st, acts, p), None   # it not) fails
            st = add_step(st, self.t.step(chain.name, pos, rule, _ending(acts, f"REJECT {with_}"), p))
            return self._end(order, ChainResult(st, "REJECT", with_))
        if code == "queue":
            st = add_step(st._replace(exact=False), self.t.step(
                chain.name, pos, rule, _ending(acts, f"{op[1]}: a userspace program decides (accept assumed; "
                                                   "it may drop)"), p))
            return self._end(order, ChainResult(st, "QUEUE"))
        return self._nat(order, chain, pos, rule, st, op[1], acts, p)

    def _nat(self, order, chain: _Chain, pos: int, rule, st: WalkState, apply, acts: tuple, p: float):
        done = apply(st, self.ctx)
        if done is None:
            return "next", self._effects_only(chain, pos, rule, st, acts, p), None
        kind, res = done
        if res.pkt is None:
            st = add_step(st, self.t.step(chain.name, pos, rule, _ending(acts, res.note + " → dropped"), p))
            return self._end(order, ChainResult(st, "DROP", res.note))
        action = natmod.describe_change(st.pkt, res.pkt, kind)
        if res.random_port:
            fld, lo, hi = res.random_port
            action += f" ({fld} drawn at random from {lo}-{hi})"
        st = nat_done(st, res.pkt, st.exact and res.exact, st.masquerade or kind == "MASQUERADE",
                      st.random_ports + (res.random_port,) if res.random_port else st.random_ports)
        st = add_step(st, self.t.step(chain.name, pos, rule, _ending(acts, action), p))
        return self._end(order, ChainResult(st, "ACCEPT", kind))

    def _policy(self, order, chain: _Chain, st: WalkState) -> None:
        self._end(order, ChainResult(add_step(st, self.t.policy_step(chain)), chain.policy))

    def _end(self, order, res: ChainResult) -> None:
        self.budget.left -= 1
        if self.budget.left < 0:
            self.budget.spend(0)
        self.results.append((order, res))
        return None

    def _fork(self, order, chain: _Chain, pos: int, stack, st: WalkState, op: tuple, acts: tuple) -> None:
        """A numgen or hash: the rest of the rule once per bucket (first bucket first)."""
        variants = op[1]
        for i in range(len(variants) - 1, -1, -1):
            share, tail, note = variants[i]
            s = with_prob(st, st.prob * share) if share != 1.0 else st
            self._push((order + (i,), chain.name, pos, stack, s, tail, 0, acts + (note,), share))
        return None

    def _assume(self, order, chain: _Chain, pos: int, stack, st: WalkState, why: str, j: int, acts: tuple,
                p: float) -> tuple[bool, WalkState]:
        """A match no dump can answer: the world where it fails waits at the next rule; this
        branch goes on in the world where it matches (the same question gets the same answer)."""
        decision = (self.t.label, chain.name, pos, j, st.pkt, st.mark, st.ctmark)
        if (decision, False) in st.assume:
            return False, st
        if (decision, True) in st.assume:
            return True, st
        note = f"{self.t.label}/{chain.name} #{pos + 1}"
        rule = chain.rules[pos][0]
        miss = add_step(st._replace(assume=st.assume | {(decision, False)}),
                        Step(None, None, None, None, "", f"assumed {note} does not match: {why}"))
        miss = self._effects_only(chain, pos, rule, miss, acts, p)
        self._push((order + (1,), chain.name, pos + 1, stack, miss, None, 0, (), 1.0))
        st = add_step(st._replace(assume=st.assume | {(decision, True)}),
                      Step(None, None, None, None, "", f"assumed {note} matches: {why}"))
        return True, st

    def _vmap(self, order, chain: _Chain, pos: int, stack, st: WalkState, op: tuple, j: int, acts: tuple,
              p: float):
        """The verdict a verdict map gives the packet, or None (no element: the rule breaks)."""
        key = op[1](st)
        found, data = op[2].find(key)
        if found is None:          # a key part no dump holds: assume the first element it could be
            cands = op[2].candidates(key)
            why = f"a part of the key no dump holds (it may be any of {len(cands)} elements; the first assumed)"
            answer, st = self._assume(order, chain, pos, stack, st, why, j, acts, p)
            return (cands[0] if answer else None), st
        return (data if found else None), st
