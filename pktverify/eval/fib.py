"""The node's FIB: route lookups and address types, as the kernel computes them.

With the default policy rules the kernel merges the ``local`` and ``main``
tables into one trie, so a lookup is one longest-prefix match over both
(``local`` first at equal prefix). Error routes (blackhole, unreachable,
prohibit, throw) end the lookup with their error.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model.addresses import LIMITED_BROADCAST, in_network, is_multicast, is_zeronet
from ..model.node import NodeState, Route, RoutingRule
from .ipsets import IpSets

__all__ = ["Fib", "RouteResult"]

_TABLE_RANK = {"local": 0, "main": 1}


@dataclass(frozen=True, slots=True)
class RouteResult:
    """Where a lookup leads: ``kind`` local/broadcast/unicast or an error kind; ``route`` the winner,
    or ``rule`` the ``ip rule`` whose action (blackhole, unreachable, prohibit) ended the lookup."""
    kind: str
    route: Route | None
    rule: RoutingRule | None = None

    @property
    def next_hop(self) -> int | None:
        return self.route.gateway if self.route else None


def _levels(routes: list[Route], rank: dict[str, int]) -> list:
    """Routes indexed by prefix length (longest first), each bucket by table rank and metric."""
    by_len: dict[int, dict[int, list[Route]]] = {}
    for route in routes:
        plen = bin(route.mask).count("1")
        by_len.setdefault(plen, {}).setdefault(route.network, []).append(route)
    for buckets in by_len.values():
        for bucket in buckets.values():
            bucket.sort(key=lambda r: (rank.get(r.table, 0), r.metric))
    return [(((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF) if plen else 0, by_len[plen])
            for plen in sorted(by_len, reverse=True)]


def _longest(levels: list, ip: int, oif: str | None) -> RouteResult | None:
    for mask, buckets in levels:
        routes = buckets.get(ip & mask)
        if not routes:
            continue
        for route in routes:
            if oif is not None and route.kind == "unicast" and route.dev != oif:
                continue
            return RouteResult(route.kind, route)
    return None


def _only_defaults(rules) -> bool:
    """True for the kernel's own three rules (local, main, default): the merged lookup is the same."""
    return [(r.priority, r.action, r.table, r.src, r.dst, r.fwmark, r.iif, r.oif, r.invert) for r in rules] == [
        (0, "lookup", "local", None, None, None, None, None, False),
        (32766, "lookup", "main", None, None, None, None, None, False),
        (32767, "lookup", "default", None, None, None, None, None, False)]


class Fib:
    """Longest-prefix lookups over a node's local and main tables, indexed by prefix length."""

    def __init__(self, node: NodeState) -> None:
        self.node = node
        self.ipsets = IpSets(node.ipsets) if node.ipsets is not None else None   # for -m set
        everything = (*node.local_routes, *node.routes)
        # Without policy rules the kernel merges local and main (and default after them): one index.
        self._levels = _levels([r for r in everything if r.table in _TABLE_RANK], _TABLE_RANK)
        # ... and consults the default table (rule 32767) only when neither has a route.
        self._default = _levels([r for r in everything if r.table == "default"], {"default": 0})
        self._rules = None if node.rules is None or _only_defaults(node.rules) else node.rules
        self._tables: dict[str, list] = {}
        self._goto_targets: dict[int, int] = {}      # priority -> index of the first rule with it
        for index, rule in enumerate(self._rules or ()):
            self._goto_targets.setdefault(rule.priority, index)
        if self._rules is not None:
            by_table: dict[str, list[Route]] = {}
            for r in everything:
                by_table.setdefault(r.table, []).append(r)
            self._tables = {name: _levels(routes, {name: 0}) for name, routes in by_table.items()}
        self._if_addrs = {a.ip for i in node.interfaces.values() for a in i.addresses}
        self._cache: dict[tuple, RouteResult] = {}
        self._texts: dict[int, str] = {}

    def route_text(self, route: Route) -> str:
        """``route.describe()``, made once per route (every traced packet names its route)."""
        text = self._texts.get(id(route))
        if text is None:
            text = self._texts[id(route)] = route.describe()
        return text

    def lookup(self, ip: int, oif: str | None = None, src: int = 0, mark: int = 0, iif: str = "lo") -> RouteResult:
        """Route ``ip``; ``oif`` restricts unicast routes to that device (as SO_BINDTODEVICE).

        With policy rules (``ip rule``), the rules are tried in priority order with the packet's
        ``src``, ``mark`` and incoming interface ``iif`` (``lo`` for locally generated packets,
        as the kernel has it); a table without a matching route, or a ``throw`` route, goes on to
        the next rule."""
        rules = self._rules
        key = (ip, oif) if rules is None else (ip, oif, src, mark, iif)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if rules is None:
            result = (_longest(self._levels, ip, oif) or _longest(self._default, ip, oif)
                      or RouteResult("unreachable-net", None))      # no route at all: ENETUNREACH
        else:
            result = self._policy_lookup(rules, ip, oif, src, mark, iif)
        self._cache[key] = result
        return result

    def _policy_lookup(self, rules, ip: int, oif: str | None, src: int, mark: int, iif: str) -> RouteResult:
        i = 0
        while i < len(rules):
            rule = rules[i]
            i += 1
            if not rule.selects(src, ip, mark, iif, oif):
                continue
            if rule.action == "lookup":
                found = _longest(self._tables.get(rule.table, ()), ip, oif)
                if found is None or found.kind == "throw":
                    continue
                return found
            if rule.action == "goto":
                # The kernel's goto targets the first rule whose priority is exactly the target
                # (fib_nl_newrule); without one it is "unresolved" and passed over. The parser
                # refused backward gotos, so this always moves on.
                target = self._goto_targets.get(rule.goto)
                if target is not None:
                    i = target
                continue
            if rule.action == "nop":
                continue
            return RouteResult(rule.action, None, rule)
        return RouteResult("unreachable-net", None)

    def addr_type(self, ip: int, dev: str | None = None) -> str:
        """What ``-m addrtype`` sees for ``ip`` (``dev`` for --limit-iface-in/out)."""
        if is_zeronet(ip) or ip == LIMITED_BROADCAST:
            return "BROADCAST"
        if is_multicast(ip):
            return "MULTICAST"
        result = self.lookup(ip)
        if result.route is None or result.route.table != "local":
            return "UNICAST"
        if dev is not None and result.route.dev != dev:
            return "UNICAST"
        return result.kind.upper()

    def is_interface_address(self, ip: int) -> bool:
        """True if ``ip`` is configured on one of the node's interfaces."""
        return ip in self._if_addrs

    def masquerade_source(self, out_iface: str, next_hop: int) -> int | None:
        """The address MASQUERADE picks: ``inet_select_addr(out, nexthop, RT_SCOPE_UNIVERSE)``.

        A primary (never secondary) global-scope address of the outgoing device,
        preferring one whose subnet holds the next hop; if the device has none, the
        first such address of any device, in interface order (lo first).
        """
        iface = self.node.interfaces.get(out_iface)
        chosen = None
        if iface is not None:
            for addr in iface.addresses:
                if addr.secondary or addr.scope > 0:
                    continue
                if in_network(next_hop, addr.network, addr.mask):
                    return addr.ip
                if chosen is None:
                    chosen = addr.ip
        if chosen is not None:
            return chosen
        for other in self.node.interfaces.values():
            for addr in other.addresses:
                if not addr.secondary and addr.scope == 0:
                    return addr.ip
        return None

    def redirect_address(self, in_iface: str) -> int | None:
        """The address REDIRECT uses: the first address in the incoming device's list."""
        iface = self.node.interfaces.get(in_iface)
        if iface is None or not iface.addresses:
            return None
        return iface.addresses[0].ip
