"""A node's dumps (iptables-save and/or an nftables dump, ip addr, ip route) → :class:`NodeState`.

Completes what the kernel would have without being told: the ``lo``
interface, the ``local`` table (derived from the addresses exactly as
``fib_add_ifaddr`` does, unless the route dump includes it) and, for legacy
``route add`` input, the connected routes. Routes whose gateway is on no
connected subnet are refused, as the kernel refuses them.
"""

from __future__ import annotations

from pathlib import Path

from ..bulk import direct_constructor
from ..errors import InputError, InvalidArgument
from ..model.addresses import format_ip, in_network, is_zeronet
from ..model.ipsets import IpSetDump
from ..model.nft import NftRuleset
from ..model.node import IfAddr, Interface, NodeState, Route, RoutingRule
from ..model.rules import Ruleset, SetMatch
from ..parse.ipaddr import ipv6_note, parse_ip_addr
from ..parse.iproute import parse_routes
from ..parse.iprule import parse_ip_rules
from ..parse.ipset_save import parse_ipset_save
from ..parse.iptables_save import parse_iptables_save
from ..parse.source import read_text
from .model_cache import ModelCache
from .nft_node import load_node_nft

__all__ = ["load_node", "build_node", "kernel_routes_for"]

_LO = Interface("lo", (IfAddr(0x7F000001, 8, 254),), loopback=True)


def load_node(*, iptables: str | Path | None = None, addrs: str | Path, routes: str | Path,
              lenient: bool = False, name: str = "node", route_localnet: bool = False,
              ipsets: str | Path | None = None, rules: str | Path | None = None,
              cache: ModelCache | None = None, nft: str | Path | None = None) -> NodeState:
    """Read a node's dumps from files (``ipsets``: optional ``ipset save`` output; ``nft``: its
    nftables ruleset in any of nft's three forms; at least one of ``iptables`` and ``nft``); raise
    InputError (file:line) on bad input.  ``cache``: parsed rule sets kept between runs."""
    if iptables is None and nft is None:
        raise InvalidArgument("load_node needs the node's rules: iptables (iptables-save output), nft (nft -j list "
                              "ruleset output) or both")
    if iptables is not None:
        ruleset = parse_iptables_save(read_text(iptables, allow_empty=True), source=str(iptables), lenient=lenient,
                                      cache=cache)
    else:
        ruleset = parse_iptables_save("", source=f"<no iptables-save beside {nft}>")
    tables, nft_notes = None, ()
    if nft is not None:
        tables, nft_notes = load_node_nft(read_text(nft, allow_empty=True), source=str(nft),
                                          iptables_given=iptables is not None, cache=cache)
    addr_text = read_text(addrs)
    interfaces = parse_ip_addr(addr_text, source=str(addrs))
    dump = parse_routes(read_text(routes), source=str(routes))
    sets = parse_ipset_save(read_text(ipsets, allow_empty=True), source=str(ipsets)) if ipsets is not None else None
    policy = parse_ip_rules(read_text(rules), source=str(rules))[0] if rules is not None else None
    return build_node(name, interfaces, dump.routes, ruleset, legacy_routes=dump.legacy,
                      route_localnet=route_localnet, ipsets=sets,
                      notes=ipv6_note(addr_text, str(addrs)) + dump.notes + nft_notes, rules=policy, nft=tables)


def kernel_routes_for(interfaces: dict[str, Interface]) -> tuple[tuple[Route, ...], tuple[Route, ...]]:
    """The (local, main) routes the kernel adds for these addresses by itself."""
    local: list[Route] = []
    main: list[Route] = []
    for iface in interfaces.values():
        for a in iface.addresses:
            local.append(Route(a.ip, 0xFFFFFFFF, "local", None, iface.name, a.ip, 0, 254, "local"))
            if a.broadcast is not None and a.broadcast != 0xFFFFFFFF:
                local.append(Route(a.broadcast, 0xFFFFFFFF, "broadcast", None, iface.name, a.ip, 0, 253, "local"))
            prefix = a.network
            if a.secondary or is_zeronet(prefix) or (prefix == a.ip and a.prefixlen == 32):
                continue
            if iface.loopback:
                local.append(Route(prefix, a.mask, "local", None, iface.name, a.ip, 0, 254, "local"))
            else:
                main.append(Route(prefix, a.mask, "unicast", None, iface.name, a.ip, 0, 253, "main"))
            if a.prefixlen < 31:
                bcast = prefix | (~a.mask & 0xFFFFFFFF)
                local.append(Route(bcast, 0xFFFFFFFF, "broadcast", None, iface.name, a.ip, 0, 253, "local"))
    return tuple(local), tuple(main)


def build_node(name: str, interfaces: dict[str, Interface], routes: tuple[Route, ...],
               ruleset: Ruleset, *, legacy_routes: bool = False, route_localnet: bool = False,
               ipsets: IpSetDump | None = None, notes: tuple[str, ...] = (),
               rules: tuple[RoutingRule, ...] | None = None, nft: NftRuleset | None = None) -> NodeState:
    """Assemble a NodeState, deriving the kernel's own routes and checking the given ones
    (``nft``: the node's nftables tables its IPv4 packets pass, as :func:`.nft_node.node_nft` keeps them)."""
    if "lo" not in interfaces:
        interfaces = {"lo": _LO, **interfaces}
    local_derived, connected = kernel_routes_for(interfaces)
    given_local = tuple(r for r in routes if r.table == "local")
    main = [r for r in routes if r.table != "local"]
    if legacy_routes:
        main = list(connected) + main
    # Gateways resolve against the directly connected routes and the interfaces' subnets, read once:
    # a node with a route per peer node has N routes but only a few connected ones (was O(N^2)).
    on_link = [o for o in main if o.gateway is None and o.kind == "unicast" and o.dev]
    devices = {*(o.dev for o in main if o.dev), *interfaces}
    resolved = tuple(_resolve_dev(r, interfaces, on_link, devices) for r in main)
    for r in resolved:
        if r.dev is not None and r.dev not in interfaces:
            raise InputError(r.source, r.line, f"route uses device {r.dev}, which has no entry in the address dump",
                             r.describe())
    warnings = tuple(ruleset.warnings) + (ipsets.notes if ipsets is not None else ()) + tuple(notes)
    if ipsets is None and _uses_sets(ruleset):
        warnings += (f"{ruleset.source}: -m set rules may match or not (inexact) without the sets' contents: "
                     "give `ipset save` output (trace --ipsets FILE, ipsets: in the cluster YAML)",)
    if rules is None and any(r.table not in ("main", "local", "default") for r in routes):
        warnings += (f"{routes[0].source}: routes of tables other than main are not used without the node's "
                     "`ip rule` dump (give it: trace --rules FILE, rules: in the cluster YAML)",)
    return NodeState(name, interfaces, resolved, given_local or local_derived, ruleset, route_localnet,
                     warnings, ipsets, rules, nft=nft)


_SETS_USED: dict[int, tuple[Ruleset, bool]] = {}


def _uses_sets(ruleset: Ruleset) -> bool:
    """Whether a rule uses ``-m set`` (remembered per rule set object: a generated one is shared by
    every node of a cluster)."""
    known = _SETS_USED.get(id(ruleset))
    if known is not None and known[0] is ruleset:
        return known[1]
    used = any(type(mt) is SetMatch for t in ruleset.tables.values() for c in t.chains.values()
               for r in c.rules for mt in r.matches)
    if len(_SETS_USED) > 64:
        _SETS_USED.clear()
    _SETS_USED[id(ruleset)] = (ruleset, used)
    return used


_new_route = direct_constructor(Route)
_ROUTE_FIELDS = Route.__match_args__


def _with_dev(route: Route, dev: str) -> Route:
    """``replace(route, dev=dev)`` at a third of the cost (a node has a route per peer node)."""
    return _new_route(*(dev if name == "dev" else getattr(route, name) for name in _ROUTE_FIELDS))


def _resolve_dev(route: Route, interfaces: dict[str, Interface], on_link: list[Route], devices: set[str]) -> Route:
    """Give a gateway route its device, as the kernel does; refuse unreachable gateways (an
    ``onlink`` route says its gateway is on its device, which the kernel then takes as it is).
    ``on_link``: the main table's unicast routes without a gateway; ``devices``: every device
    a route or an interface names."""
    if route.nexthops:
        for gw, dev, _w in route.nexthops:
            if dev not in devices:
                raise InputError(route.source, route.line, f"nexthop device {dev} has no entry in the address dump",
                                 route.describe())
        return route
    if route.gateway is None or route.kind != "unicast":
        return route
    if route.onlink:
        if route.dev is None:
            raise InputError(route.source, route.line, "an onlink route needs a device (dev)", route.describe())
        return route
    candidates = [other.dev for other in on_link if in_network(route.gateway, other.network, other.mask)]
    candidates += [iface.name for iface in interfaces.values() for a in iface.addresses
                   if in_network(route.gateway, a.network, a.mask)]
    for dev in candidates:
        if route.dev == dev:
            return route
        if route.dev is None:
            return _with_dev(route, dev)
    raise InputError(route.source, route.line,
                     f"gateway {format_ip(route.gateway)} is on no connected subnet"
                     f"{' of ' + route.dev if route.dev else ''} (the kernel refuses this route)",
                     route.describe())
