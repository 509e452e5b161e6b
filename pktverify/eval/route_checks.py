"""The routing-stage checks of a node's path: martian addresses, the reverse-path filter, the
ways a route sends a packet (one per nexthop of a multipath route), why a lookup refused it, and
the step that records such a decision.

The kernel's reverse-path check (``fib_validate_source``) drops a packet when no route leads back
to its source (rp_filter 2, loose), or the route back leaves by another interface (rp_filter 1,
strict).
"""

from __future__ import annotations

from ..model.addresses import LIMITED_BROADCAST, format_ip, is_loopback, is_multicast, is_zeronet
from ..model.node import NodeState
from ..model.packet import Packet
from ..model.trace import Step
from .fib import Fib
from .state import WalkState, add_step

__all__ = ["ROUTE_ICMP", "martian_input", "next_hops", "reverse_path", "route_error", "with_step"]

_ROUTE_ERRORS = {
    "unreachable-net": ("reject", "no route to the destination (ICMP net unreachable)"),
    "unreachable": ("reject", "unreachable route (ICMP host unreachable)"),
    "prohibit": ("reject", "prohibit route (ICMP administratively prohibited)"),
    "blackhole": ("drop", "blackhole route"),
    "throw": ("reject", "throw route, no further table (ICMP net unreachable)"),
}

# The ICMP error the kernel itself sends when routing refuses a forwarded packet: (type, code).
ROUTE_ICMP = {"unreachable-net": (3, 0), "unreachable": (3, 1), "prohibit": (3, 13), "throw": (3, 0)}


def martian_input(node: NodeState, pkt: Packet, in_iface: str) -> str:
    """Why the kernel drops ``pkt`` arriving on ``in_iface`` as a martian (empty: it is none):
    a multicast, broadcast, 0.0.0.0/8 or (without route_localnet) loopback address."""
    if is_multicast(pkt.src) or pkt.src == LIMITED_BROADCAST:
        return "martian source (multicast or broadcast source)"
    if pkt.dst == LIMITED_BROADCAST or (pkt.src == 0 and pkt.dst == 0):
        return ""
    if is_zeronet(pkt.src):
        return "martian source (0.0.0.0/8)"
    if is_zeronet(pkt.dst):
        return "martian destination (0.0.0.0/8)"
    if in_iface == "lo" or node.route_localnet:
        return ""
    if is_loopback(pkt.dst):
        return f"martian destination: {format_ip(pkt.dst)} arrived on {in_iface} (route_localnet=0)"
    if is_loopback(pkt.src):
        return f"martian source: {format_ip(pkt.src)} arrived on {in_iface} (route_localnet=0)"
    return ""


def reverse_path(node: NodeState, fib: Fib, pkt: Packet, in_iface: str) -> str:
    """Why rp_filter drops ``pkt`` arriving on ``in_iface`` (empty: it passes, or rp_filter is 0).
    The kernel looks the source up as a destination (from ``lo``, mark 0): no usable route
    fails loose and strict mode, one leaving by another interface fails strict mode."""
    mode = node.sysctls.rp_filter(in_iface)
    if not mode:
        return ""
    back = fib.lookup(pkt.src, None, pkt.dst, 0, "lo")
    name = f"rp_filter={mode} on {in_iface} ({'strict' if mode == 1 else 'loose'})"
    if back.kind == "local" and not node.sysctls.accept_local(in_iface):
        return f"martian source: {format_ip(pkt.src)} is a local address ({name})"
    if back.kind not in ("unicast", "local"):
        return f"reverse-path filter: no route back to {format_ip(pkt.src)} ({name})"
    if mode == 1 and back.kind == "unicast":
        devs = [dev for _gw, dev, _share, _text in next_hops(fib, back.route, "out")]
        if in_iface not in devs:
            return (f"reverse-path filter: the route back to {format_ip(pkt.src)} leaves by {', '.join(devs)}, "
                    f"not {in_iface} ({name})")
    return ""


def route_error(result) -> tuple[str, str]:
    """(verdict, reason) of a lookup that found no unicast route; an ``ip rule``'s own action
    (blackhole, unreachable, prohibit) is named as the rule, not as a route."""
    verdict, reason = _ROUTE_ERRORS.get(result.kind, ("drop", result.kind))
    if result.route is None and result.rule is not None:
        reason = reason.replace(" route", f" ip rule (priority {result.rule.priority})", 1)
    return verdict, reason


def next_hops(fib: Fib, route, verb: str) -> list[tuple[int | None, str | None, float, str]]:
    """(gateway, device, share, step text) for each way ``route`` sends a packet. A multipath route
    gives one per nexthop, its share being its weight's: the kernel hashes each flow onto one."""
    text = fib.route_text(route)
    if not route.nexthops:
        return [(route.gateway, route.dev, 1.0, f"route: {text} → {verb} {route.dev}")]
    total = sum(w for _gw, _dev, w in route.nexthops)
    return [(gw, dev, w / total, f"route: {text} → nexthop via {format_ip(gw)} {verb} {dev} (weight {w} of {total}; "
                                 "the kernel's flow hash picks one nexthop per flow)")
            for gw, dev, w in route.nexthops]


def with_step(st: WalkState, text: str, route=None) -> WalkState:
    """``st`` with a step that is no rule: a routing decision (``route``: the route it used, or
    the ``ip rule`` that refused the packet, whose dump line the step then carries), a bridge,
    a martian check."""
    if route is not None and route.line:
        return add_step(st, Step(None, None, None, route.line, route.describe(), text, route.source or None))
    return add_step(st, Step(None, None, None, None, "", text))
