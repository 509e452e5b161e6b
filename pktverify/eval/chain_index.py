"""A table's chains compiled for one node, and the index that dispatches a packet to the rules
that can match it.

Large chains are indexed by the exact destination a rule requires
(``-d IP/32``): a rule whose required destination is not the packet's cannot
match, so the walk visits only rules with no such requirement or the right
one. The destination cannot change during a table walk (DNAT ends it), so
the index is sound. A large group for one destination is split again by the
one destination port each rule requires.
"""

from __future__ import annotations

import gc

from ..model import rules as m
from ..model.rules import Table
from .fib import Fib
from .matchers import compile_rule
from .targets import fixed_effect

__all__ = ["INDEX_THRESHOLD", "UNSET", "IndexedChain", "LazyChains"]

INDEX_THRESHOLD = 16
UNSET = object()    # a rule's fixed effect not worked out yet


class IndexedChain:
    """One chain compiled for one node: its rules, what each does when it surely matches
    (``fixed``), and the index of the rules by the destination (and port) they require."""
    __slots__ = ("name", "rules", "policy", "builtin", "decl", "_by_dst", "_wild", "_cache", "indexed", "fixed",
                 "table", "node_positions", "_ports")

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
        self.fixed: list = [UNSET] * len(self.rules)
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

    def for_node(self, chain: m.Chain, fib: Fib) -> "IndexedChain":
        """This chain compiled for another node: only the rules that ask the node anything are
        compiled again; the others, the dispatch index and its cache are shared (a kube-proxy
        KUBE-SERVICES chain has one such rule among thousands, on every node)."""
        other = object.__new__(IndexedChain)
        for slot in IndexedChain.__slots__:
            setattr(other, slot, getattr(self, slot))
        rules = list(self.rules)
        for i in self.node_positions:
            rules[i] = compile_rule(chain.rules[i], i, fib)
        other.rules = rules
        return other

    def fixed_effect(self, pos: int) -> tuple | None:
        """The cached :func:`~.targets.fixed_effect` of rule ``pos``."""
        fixed = self.fixed[pos] = fixed_effect(self.table, self.rules[pos].rule)
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


class LazyChains(dict):
    """A table's compiled chains, each compiled when a walk first enters it (a 110k-rule dump's
    trace compiles only the few chains its packets meet). ``shared``: compiled chains of other
    nodes, by model chain; a chain none of whose rules asks the node anything (no ``addrtype``)
    compiles the same everywhere and is reused."""

    def __init__(self, table: Table, fib: Fib, shared: dict[int, IndexedChain] | None) -> None:
        super().__init__()
        self._table, self._fib, self._shared = table, fib, shared

    def __missing__(self, name: str) -> IndexedChain:
        chain = self._table.chains[name]            # KeyError for a chain the table does not have
        shared = self._shared
        compiled = shared.get(id(chain)) if shared is not None else None
        if compiled is not None and compiled.node_positions:
            compiled = compiled.for_node(chain, self._fib)      # shared but for the rules that read the node
        if compiled is None:
            enabled = gc.isenabled()        # compiling makes many acyclic objects: no GC passes meanwhile
            gc.disable()
            try:
                compiled = IndexedChain(chain, self._fib, self._table.name)
            finally:
                if enabled:
                    gc.enable()
            if shared is not None:
                shared[id(chain)] = compiled
        self[name] = compiled
        return compiled

    def __contains__(self, name: object) -> bool:
        return name in self._table.chains


def _reads_node(match) -> bool:
    """True for matches whose answer depends on the node (its addresses, routes or ipsets), so a
    chain holding one cannot share its compiled form with another node's."""
    kind = type(match)
    return kind in (m.AddrTypeMatch, m.SetMatch, m.RpFilterMatch) or (kind is m.FactMatch and match.fact == "pkttype")
