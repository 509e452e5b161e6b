"""Nat chains as a jump graph guarded by destinations: which of them a flow's first packet can walk.

A nat chain (iptables' nat table, or an nft base chain of type ``nat`` and what it jumps to) is
walked only by a connection's first packet on each node, and only with a destination the flows can
have (see :mod:`.address_classes`). A chain entered only by jumps that require a destination outside
that set (kube-proxy's ``-d ClusterIP/32 -j KUBE-SVC-...``, or the nftables mode's ``ip daddr .
meta l4proto . th dport vmap @service-ips``) is never walked for those flows, so its tests need no
cut. Reachability here ignores every other condition of a jump (it over-approximates the chains
walked), so it can only add cuts, never miss one. The graph is built by :func:`iptables_nat_graph`
for an iptables nat table and by :mod:`.nft_addresses` for an nft table.
"""

from __future__ import annotations

from bisect import bisect_right

from ...model import rules as m

__all__ = ["Interval", "Points", "NatGraph", "iptables_nat_graph", "iptables_chain_tests", "rule_tests", "rule_targets", "interval"]

Interval = tuple[int, int]


class Points:
    """A set of addresses/intervals with a fast "does it meet [low, high]?" test."""

    def __init__(self, intervals: list[Interval]) -> None:
        self.intervals = sorted(intervals)
        self._starts = [low for low, _high in self.intervals]
        self._max_end: list[int] = []
        best = -1
        for _low, high in self.intervals:
            best = max(best, high)
            self._max_end.append(best)

    def meets(self, low: int, high: int) -> bool:
        i = bisect_right(self._starts, high)
        return i > 0 and self._max_end[i - 1] >= low

    def lookup(self, exact: dict[int, list[str]]) -> list[str]:
        """The values of ``exact`` whose key is in the set (from whichever side is smaller)."""
        out: list[str] = []
        if all(low == high for low, high in self.intervals) and len(self.intervals) < len(exact):
            for low, _high in self.intervals:
                out += exact.get(low, ())
            return out
        for key, targets in exact.items():
            if self.meets(key, key):
                out += targets
        return out


class NatGraph:
    """Nat chains: ``jumps`` chain -> [(destination interval or None, target)], ``exact`` chain ->
    {destination address: [targets]}, ``targets`` chain -> its NAT targets (a callable or a dict),
    walked from ``starts``. What the chains' rules name (their tests) is kept beside the graph: nodes
    may share a graph whose chains name different addresses (kube-proxy's nftables mode names each
    node's own address)."""

    def __init__(self, jumps: dict[str, list[tuple[Interval | None, str]]], exact: dict[str, dict[int, list[str]]],
                 targets, starts: set[str]) -> None:
        self.jumps, self.exact, self.starts = jumps, exact, frozenset(starts)
        self._targets = targets.__getitem__ if isinstance(targets, dict) else targets

    def targets_of(self, chains: set[str]) -> list[Interval]:
        return [iv for name in chains for iv in self._targets(name)]

    def walked(self, dsts: Points, start: set[str] | None = None, single: int | None = None) -> set[str]:
        """:meth:`reachable`, closed under NAT: a reached DNAT/SNAT target becomes a destination
        too, until no new target appears."""
        chains = self.reachable(dsts, start, single)
        points = dsts
        # Each chain's NAT targets are read once: those of ``start`` were destinations already when
        # ``start`` was closed (every chain they lead to is in it), and those of a chain met in an
        # earlier round are in ``points``.
        scanned = set(start) if start is not None else set()
        while True:
            new = chains - scanned
            scanned |= new
            more = [iv for iv in self.targets_of(new) if not points.meets(*iv)]
            if not more:
                return chains
            points = Points(points.intervals + more)
            chains = self.reachable(points, start=chains)

    def reachable(self, dsts: Points, start: set[str] | None = None, single: int | None = None) -> set[str]:
        """Chains walked for some destination in ``dsts`` (or exactly ``single``) from ``start``."""
        seen = set(start) if start is not None else set(self.starts)
        todo = list(seen)
        while todo:
            name = todo.pop()
            nxt: list[str] = []
            for cond, target in self.jumps.get(name, ()):
                if cond is None or (dsts.meets(*cond) if single is None else cond[0] <= single <= cond[1]):
                    nxt.append(target)
            exact = self.exact.get(name, {})
            if single is not None:
                nxt += exact.get(single, [])
            elif exact:
                nxt += dsts.lookup(exact)
            for target in nxt:
                if target not in seen and target in self.jumps:
                    seen.add(target)
                    todo.append(target)
        return seen


def iptables_nat_graph(table: m.Table) -> NatGraph:
    """The graph of an iptables nat table (its built-in chains the starts)."""
    jumps: dict[str, list[tuple[Interval | None, str]]] = {}
    exact_of: dict[str, dict[int, list[str]]] = {}
    for chain in table.chains.values():
        plain, exact = [], {}
        for rule in chain.rules:
            if not isinstance(rule.target, m.Jump) or rule.target.chain not in table.chains:
                continue
            cond = _dst_condition(rule)
            if cond is not None and cond[0] == cond[1]:
                exact.setdefault(cond[0], []).append(rule.target.chain)
            else:
                plain.append((cond, rule.target.chain))
        jumps[chain.name] = plain
        exact_of[chain.name] = exact

    def targets(name: str) -> list[Interval]:
        return [iv for rule in table.chains[name].rules for iv in rule_targets(rule)]

    return NatGraph(jumps, exact_of, targets, set(m.TABLE_CHAINS["nat"]) & set(table.chains))


def iptables_chain_tests(table: m.Table):
    """``name -> what the rules of chain name name`` (tests and NAT targets) for an iptables table:
    one list per chain, kept (callers tell chains' lists apart by identity, as nft readings' are)."""
    made: dict[str, list[Interval]] = {}

    def tests(name: str) -> list[Interval]:
        found = made.get(name)
        if found is None:
            found = made[name] = [iv for rule in table.chains[name].rules for iv in rule_tests(rule) + rule_targets(rule)]
        return found
    return tests


def _dst_condition(rule: m.Rule) -> Interval | None:
    """The destination interval a rule requires (from its positive -d/--dst-range), or None."""
    low, high = 0, 0xFFFFFFFF
    found = False
    for match in rule.matches:
        if isinstance(match, m.AddrMatch) and match.field == "dst" and not match.invert:
            lo, hi = interval(match.network, match.mask)
        elif isinstance(match, m.IpRangeMatch) and match.field == "dst" and not match.invert:
            lo, hi = match.low, match.high
        else:
            continue
        found = True
        low, high = max(low, lo), min(high, hi)
    if not found:
        return None
    return (low, high) if low <= high else (1, 0)     # (1, 0) meets nothing: the rule never matches


def rule_tests(rule: m.Rule) -> list[Interval]:
    """The address intervals an iptables rule tests."""
    out = []
    for match in rule.matches:
        if isinstance(match, m.AddrMatch):
            out.append(interval(match.network, match.mask))
        elif isinstance(match, m.IpRangeMatch):
            out.append((match.low, match.high))
    return out


def rule_targets(rule: m.Rule) -> list[Interval]:
    """The NAT target addresses of an iptables rule."""
    target = rule.target
    if isinstance(target, (m.Dnat, m.Snat)) and target.addr_low is not None:
        return [(target.addr_low, target.addr_high)]
    return []


def interval(network: int, mask: int) -> Interval:
    """A prefix as the interval of its addresses."""
    return network & mask, (network & mask) | (~mask & 0xFFFFFFFF)
