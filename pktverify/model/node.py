"""A node's network state: interfaces with addresses, routes, and its rule set."""

from __future__ import annotations

from dataclasses import dataclass, field

from .addresses import format_ip, mask_length, prefix_mask
from .ipsets import IpSetDump
from .rules import Ruleset

__all__ = ["IfAddr", "Interface", "Route", "NodeState", "SCOPES"]

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
        return " ".join(parts)


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

    def local_addresses(self) -> frozenset[int]:
        """Every address configured on an interface (what the kernel calls ifaddrs)."""
        return frozenset(a.ip for i in self.interfaces.values() for a in i.addresses)
