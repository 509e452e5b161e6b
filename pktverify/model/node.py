"""A node's network state: interfaces with addresses, routes, and its rule set."""

from __future__ import annotations

from dataclasses import dataclass, field

from .addresses import format_ip, mask_length, prefix_mask
from .ipsets import IpSetDump
from .nft import NftRuleset
from .rules import Ruleset
from .sysctls import Sysctls

__all__ = ["IfAddr", "Interface", "Route", "RoutingRule", "NodeState", "SCOPES", "DEFAULT_RULES", "table_name"]

# Routing table numbers the kernel names (rt_tables).
_TABLE_NAMES = {"255": "local", "254": "main", "253": "default", "0": "unspec"}


def table_name(text: str) -> str:
    """A routing table as ``ip`` names it: 255/254/253 are local/main/default."""
    return _TABLE_NAMES.get(text, text)

SCOPES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}


@dataclass(frozen=True, slots=True)
class IfAddr:
    """An IPv4 address on an interface. ``secondary`` as the kernel marks it."""
    ip: int
    prefixlen: int
    scope: int = 0
    secondary: bool = False
    broadcast: int | None = None

    @property
    def mask(self) -> int:
        return prefix_mask(self.prefixlen)

    @property
    def network(self) -> int:
        return self.ip & self.mask

    def __str__(self) -> str:
        return f"{format_ip(self.ip)}/{self.prefixlen}"


@dataclass(frozen=True, slots=True)
class Interface:
    """A network interface; ``addresses`` in the kernel's order (primaries first)."""
    name: str
    addresses: tuple[IfAddr, ...] = ()
    loopback: bool = False
    up: bool = True


@dataclass(frozen=True, slots=True)
class Route:
    """A route. ``kind`` is unicast, local, broadcast, blackhole, unreachable, prohibit or throw."""
    network: int
    mask: int
    kind: str = "unicast"
    gateway: int | None = None
    dev: str | None = None
    prefsrc: int | None = None
    metric: int = 0
    scope: int = 0
    table: str = "main"
    source: str = ""
    line: int = 0
    onlink: bool = False      # the gateway is on the link even though no subnet says so (flannel VXLAN)
    nexthops: tuple = ()      # multipath: ((gateway, dev, weight), ...); the kernel hashes a flow onto one

    def describe(self) -> str:
        dst = "default" if self.mask == 0 and self.network == 0 else \
            f"{format_ip(self.network)}/{mask_length(self.mask)}"
        parts = [dst] if self.kind == "unicast" else [self.kind, dst]
        if self.gateway is not None:
            parts += ["via", format_ip(self.gateway)]
        if self.dev:
            parts += ["dev", self.dev]
        if self.prefsrc is not None:
            parts += ["src", format_ip(self.prefsrc)]
        if self.metric:
            parts += ["metric", str(self.metric)]
        if self.onlink:
            parts.append("onlink")
        for gw, dev, weight in self.nexthops:
            parts += ["nexthop", "via", format_ip(gw), "dev", dev, "weight", str(weight)]
        if self.table not in ("main", "local", ""):
            parts += ["table", self.table]
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """One ``ip rule``: if the selectors match, ``action`` (lookup TABLE, goto PRIORITY, blackhole,
    unreachable, prohibit, nop). A selector is None when the rule does not test it."""
    priority: int
    action: str = "lookup"
    table: str = "main"
    src: tuple[int, int] | None = None
    dst: tuple[int, int] | None = None
    fwmark: tuple[int, int] | None = None
    iif: str | None = None
    oif: str | None = None
    invert: bool = False
    goto: int = 0
    source: str = ""
    line: int = 0

    def selects(self, src: int, dst: int, mark: int, iif: str, oif: str | None) -> bool:
        """Whether the rule's selectors match (fib_rule_match, with ``not`` applied)."""
        hit = ((self.src is None or (src & self.src[1]) == self.src[0])
               and (self.dst is None or (dst & self.dst[1]) == self.dst[0])
               and (self.fwmark is None or (mark & self.fwmark[1]) == self.fwmark[0])
               and (self.iif is None or self.iif == iif)
               and (self.oif is None or self.oif == oif))
        return hit != self.invert

    def describe(self) -> str:
        parts = [f"{self.priority}:", "not" if self.invert else "", "from",
                 "all" if self.src is None else f"{format_ip(self.src[0])}/{mask_length(self.src[1])}"]
        if self.dst is not None:
            parts += ["to", f"{format_ip(self.dst[0])}/{mask_length(self.dst[1])}"]
        if self.fwmark is not None:
            parts += ["fwmark", f"{self.fwmark[0]:#x}/{self.fwmark[1]:#x}"]
        if self.iif:
            parts += ["iif", self.iif]
        if self.oif:
            parts += ["oif", self.oif]
        parts += ["lookup", self.table] if self.action == "lookup" else \
            (["goto", str(self.goto)] if self.action == "goto" else [self.action])
        return " ".join(p for p in parts if p)


DEFAULT_RULES = (RoutingRule(0, table="local"), RoutingRule(32766, table="main"), RoutingRule(32767, table="default"))


@dataclass(frozen=True, slots=True)
class NodeState:
    """Everything the node tracer needs: interfaces, main and local routing tables, rules.

    ``local_routes`` is the kernel's ``local`` table; when the input did not
    include it, it is derived from the addresses exactly as the kernel does.
    ``route_localnet`` is the sysctl of that name (0 on a default node).
    """
    name: str
    interfaces: dict[str, Interface]
    routes: tuple[Route, ...]
    local_routes: tuple[Route, ...]
    ruleset: Ruleset
    route_localnet: bool = False
    warnings: tuple[str, ...] = field(default=())
    ipsets: IpSetDump | None = None     # ``ipset save`` contents; None: not given (-m set may match)
    rules: tuple[RoutingRule, ...] | None = None   # ``ip rule``; None: the kernel's three default rules
    sysctls: Sysctls = Sysctls()         # from the node's sysctl.txt; empty: the values pktverify assumes
    nft: NftRuleset | None = None        # the node's nftables ruleset (IPv4 tables); None: not given

    def local_addresses(self) -> frozenset[int]:
        """Every address configured on an interface (what the kernel calls ifaddrs)."""
        return frozenset(a.ip for i in self.interfaces.values() for a in i.addresses)
