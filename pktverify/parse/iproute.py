"""Routes from ``ip -j route show`` (JSON), ``ip route show`` (text) or legacy
``route add -net N netmask M gw G`` lines. The format is detected from the content.

``ip route`` dumps are taken as the whole main table (and the local table
when they include it). Legacy ``route add`` lines are what was added on top
of the kernel's own connected routes, which the node builder then derives.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import NamedTuple

from ..errors import InputError
from ..model.addresses import AddressError, parse_ip, parse_network, prefix_mask
from ..model.node import SCOPES, Route
from .json_input import element_lines, load_json

__all__ = ["RouteDump", "parse_routes"]

_KINDS = ("unicast", "local", "broadcast", "blackhole", "unreachable", "prohibit", "throw",
          "multicast", "anycast", "nat")
_ONE_ARG_IGNORED = {"proto", "protocol", "mtu", "advmss", "rtt", "rttvar", "reordering", "window",
                    "cwnd", "ssthresh", "realms", "rto_min", "initcwnd", "initrwnd", "features",
                    "quickack", "congctl", "pref", "expires", "hoplimit", "nhid", "tos", "dsfield",
                    "fastopen_no_cookie", "ttl-propagate"}
_FLAGS_IGNORED = {"onlink", "linkdown", "pervasive", "dead", "offload", "trap", "notify",
                  "rt_offload", "rt_trap", "lock"}


_ASCII_NUMBER = re.compile(r"[0-9]{1,10}\Z")


class RouteDump(NamedTuple):
    """Parsed routes; ``legacy`` is True for ``route add`` input (connected routes not included);
    ``notes`` say what was skipped (IPv6 routes)."""
    routes: tuple[Route, ...]
    legacy: bool
    notes: tuple[str, ...] = ()


def parse_routes(text: str, *, source: str = "<ip route>") -> RouteDump:
    """Parse any of the three route formats into Route values (``dev`` may be None for legacy)."""
    lines = [(n, line.strip()) for n, line in enumerate(text.split("\n"), 1)]
    content = [(n, line) for n, line in lines if line and not line.startswith("#")]
    if not content:
        raise InputError(source, 1, "no routes found (the file is empty or only comments)", "")
    first_line, first = content[0]
    if first[0] == "[":
        return _with_notes(_parse_json(text, source), False, source)
    legacy = first.startswith(("route ", "/sbin/route ", "sudo route "))
    try:
        return _with_notes(_parse_legacy(text, source) if legacy else _parse_text(text, source), legacy, source)
    except InputError as exc:
        if exc.line != first_line:
            raise
        # The very first line is not a route: perhaps not a route dump at all; do not echo it.
        raise InputError(source, exc.line, f"not 'ip route' or 'route add' output ({exc.message})", "") from None


def _with_notes(parsed: tuple[tuple[Route, ...], int], legacy: bool, source: str) -> RouteDump:
    routes, skipped = parsed
    notes = (f"{source}: {skipped} IPv6 route(s) skipped (pktverify models IPv4)",) if skipped else ()
    return RouteDump(routes, legacy, notes)


def _net(text: str) -> tuple[int, int]:
    if text == "default":
        return 0, 0
    return parse_network(text)


def _parse_json(text: str, source: str) -> tuple[tuple[Route, ...], int]:
    doc = load_json(text, source, expect="ip -j route show")
    routes = []
    skipped = 0
    lines = element_lines(text)
    for n, entry in enumerate(doc.items()):
        if not isinstance(entry.value, dict) or "dst" not in entry.value:
            raise entry.error("every route needs 'dst' (is this 'ip -j route show' output?)")
        if ":" in str(entry.value.get("dst")) or ":" in str(entry.value.get("gateway", "")):
            skipped += 1                  # IPv6 (table all, dual stack): pktverify models IPv4
            continue
        nexthops = _json_nexthops(entry) if entry.has("nexthops") else ()
        kind = entry.str("type", default="unicast")
        if kind not in _KINDS:
            raise entry.child("type").error(f"unknown route type {kind!r}")
        try:
            network, mask = _net(entry.str("dst", required=True))
            gateway = parse_ip(entry.str("gateway")) if entry.has("gateway") else None
            prefsrc = parse_ip(entry.str("prefsrc")) if entry.has("prefsrc") else None
        except AddressError as exc:
            raise entry.error(f"bad address: {exc}") from None
        metric = entry.int("metric", default=0)
        if not 0 <= metric <= 0xFFFFFFFF:
            raise entry.child("metric").error(f"metric {metric} is out of range")
        scope = entry.get("scope", (str, int), default="global")
        if isinstance(scope, str) and not _ASCII_NUMBER.match(scope) and scope not in SCOPES:
            raise entry.child("scope").error(f"unknown scope {scope!r} (valid: {', '.join(SCOPES)})")
        scope = int(scope) if isinstance(scope, int) or _ASCII_NUMBER.match(scope) else SCOPES[scope]
        table = entry.get("table", (str, int), default="main")
        dev = entry.str("dev")
        line = lines[n] if n < len(lines) else 1
        flags = entry.get("flags", list, default=[])
        routes.append(Route(network, mask, kind, gateway, dev, prefsrc, metric, scope, str(table), source, line,
                            "onlink" in flags, nexthops))
    return tuple(routes), skipped


def _json_nexthops(entry) -> tuple:
    """``"nexthops": [{"gateway", "dev", "weight"}, ...]`` as ((gateway, dev, weight), ...)."""
    out = []
    for nh in entry.list("nexthops"):
        try:
            gateway = parse_ip(nh.str("gateway", required=True, what="a nexthop"))
        except AddressError as exc:
            raise nh.error(f"bad nexthop: {exc}") from None
        weight = nh.int("weight", default=1)
        if not 1 <= weight <= 256:
            raise nh.child("weight").error(f"nexthop weight {weight} is out of range 1-256")
        out.append((gateway, nh.str("dev", required=True, what="a nexthop"), weight))
    if not out:
        raise entry.child("nexthops").error("a multipath route needs at least one nexthop")
    return tuple(out)


def _parse_text(text: str, source: str) -> tuple[tuple[Route, ...], int]:
    routes = []
    skipped = 0
    last_line = 0
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip().rstrip("\r")
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if words[0] == "nexthop":
            # `ip route` prints a multipath route's nexthops on the lines after it.
            if not routes or routes[-1].gateway is not None or routes[-1].line != last_line:
                raise InputError(source, lineno, "a nexthop line must follow its multipath route", line)
            routes[-1] = replace(routes[-1], nexthops=routes[-1].nexthops + (_text_nexthop(words, source, lineno, line),))
            continue
        kind = "unicast"
        if words[0] in _KINDS:
            kind = words.pop(0)
        if not words:
            raise InputError(source, lineno, "route without a destination", line)
        if ":" in words[0] or "inet6" in words or any(":" in w for w in words[1:3] if w not in ("via",)):
            skipped += 1                  # IPv6 (ip route show table all, dual stack): pktverify models IPv4
            continue
        try:
            network, mask = _net(words[0])
        except AddressError as exc:
            raise InputError(source, lineno, f"bad destination: {exc}", line) from None
        routes.append(_text_route(words, kind, network, mask, source, lineno, line))
        last_line = lineno
    if not routes:
        raise InputError(source, 1, "no routes found", "")
    return tuple(routes), skipped


def _text_route(words: list[str], kind: str, network: int, mask: int, source: str, lineno: int,
                line: str) -> Route:
    """One ``ip route`` line's attributes after its destination (``via``, ``dev``, ``src``, ``metric``,
    ``scope``, ``table``; flags and attributes that do not change the lookup are skipped)."""
    gateway = prefsrc = None
    dev, metric, scope, table = None, 0, 0, "main"
    onlink = "onlink" in words
    i = 1
    while i < len(words):
        word = words[i]
        arg = words[i + 1] if i + 1 < len(words) else None
        try:
            if word == "via" and arg:
                gateway, i = _via(words, i)
            elif word == "dev" and arg:
                dev = arg
            elif word == "src" and arg:
                prefsrc = parse_ip(arg)
            elif word == "metric" and arg and _ASCII_NUMBER.match(arg):
                metric = int(arg)
            elif word == "scope" and arg:
                scope = int(arg) if _ASCII_NUMBER.match(arg) else SCOPES[arg]
            elif word == "table" and arg:
                table = arg
            elif word in _ONE_ARG_IGNORED and arg:
                pass
            elif word in _FLAGS_IGNORED:
                i += 1
                continue
            else:
                raise InputError(source, lineno, f"unknown route attribute {word!r}", line)
        except (AddressError, KeyError) as exc:
            raise InputError(source, lineno, f"bad value for {word}: {exc}", line) from None
        i += 2
    return Route(network, mask, kind, gateway, dev, prefsrc, metric, scope, table, source, lineno, onlink)


def _via(words: list[str], i: int) -> tuple[int, int]:
    """``via [inet] GATEWAY`` at ``words[i]``: the gateway, and the index two before the word after it
    (the callers step by two)."""
    at = i + 1
    if at < len(words) and words[at] == "inet":
        at += 1
    return parse_ip(words[at] if at < len(words) else ""), at - 1


def _text_nexthop(words: list[str], source: str, lineno: int, line: str) -> tuple[int, str, int]:
    """``nexthop via GW dev DEV weight N`` as (gateway, dev, weight)."""
    gateway, dev, weight = None, None, 1
    i = 1
    try:
        while i < len(words):
            word, arg = words[i], (words[i + 1] if i + 1 < len(words) else None)
            if word == "via" and arg:
                gateway, i = _via(words, i)
            elif word == "dev" and arg:
                dev = arg
            elif word == "weight" and arg and _ASCII_NUMBER.match(arg) and 1 <= int(arg) <= 256:
                weight = int(arg)
            elif word in _FLAGS_IGNORED:
                i += 1
                continue
            else:
                raise InputError(source, lineno, f"unknown nexthop attribute {word!r}", line)
            i += 2
    except AddressError as exc:
        raise InputError(source, lineno, f"bad nexthop: {exc}", line) from None
    if gateway is None or dev is None:
        raise InputError(source, lineno, "a nexthop needs via GATEWAY and dev DEVICE", line)
    return gateway, dev, weight


def _parse_legacy(text: str, source: str) -> tuple[tuple[Route, ...], int]:
    routes = []
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip().rstrip("\r")
        if not line or line.startswith("#"):
            continue
        words = line.split()
        while words and words[0] in ("sudo", "/sbin/route"):
            words[0:1] = ["route"] if words[0] == "/sbin/route" else []
        if len(words) < 3 or words[0] != "route" or words[1] != "add":
            raise InputError(source, lineno, "expected 'route add -net N netmask M gw G'", line)
        routes.append(_legacy_route(words[2:], source, lineno, line))
    if not routes:
        raise InputError(source, 1, "no routes found", "")
    return tuple(routes), 0


def _legacy_route(words: list[str], source: str, lineno: int, line: str) -> Route:
    """The words of one ``route add`` after ``add``: ``-net N netmask M``, ``-host H`` or ``default``,
    then ``gw``, ``dev``, ``metric``, ``reject`` or a trailing device name."""
    network = mask = gateway = dev = None
    metric = 0
    kind = "unicast"
    i = 0
    try:
        while i < len(words):
            word = words[i]
            arg = words[i + 1] if i + 1 < len(words) else None
            if word == "-net" and arg:
                network, mask = parse_network(arg)
                i += 2
            elif word == "-host" and arg:
                network, mask = parse_ip(arg), 0xFFFFFFFF
                i += 2
            elif word == "default":
                network, mask = 0, 0
                i += 1
            elif word in ("netmask", "genmask") and arg:
                nm = parse_ip(arg)
                plen = bin(nm).count("1")
                if prefix_mask(plen) != nm:
                    raise InputError(source, lineno, f"non-contiguous netmask {arg}", line)
                mask = nm
                i += 2
            elif word in ("gw", "gateway") and arg:
                gateway = parse_ip(arg)
                i += 2
            elif word == "dev" and arg:
                dev = arg
                i += 2
            elif word == "metric" and arg and _ASCII_NUMBER.match(arg):
                metric = int(arg)
                i += 2
            elif word == "reject":
                kind = "unreachable"
                i += 1
            elif i == len(words) - 1 and network is not None and dev is None and not word.startswith("-"):
                dev = word      # route add -net N netmask M eth0
                i += 1
            else:
                raise InputError(source, lineno, f"unknown route option {word!r}", line)
    except AddressError as exc:
        raise InputError(source, lineno, f"bad address: {exc}", line) from None
    if network is None or mask is None:
        raise InputError(source, lineno, "route add needs -net N netmask M, -host H or default", line)
    if network & ~mask & 0xFFFFFFFF:
        raise InputError(source, lineno, "network address has host bits set for this netmask (route refuses it)", line)
    if gateway is None and dev is None and kind == "unicast":
        raise InputError(source, lineno, "route add needs gw G or dev D", line)
    return Route(network, mask, kind, gateway, dev, None, metric, 0, "main", source, lineno)
