"""Interfaces and routes written as ``ip -j addr show`` / ``ip -j route show`` print them.

``generate --out`` writes a node folder in the one layout every reader and the
collect script share (see :data:`NODE_FILES`), so generated nodes, collected real
nodes and kubectl input folders are interchangeable.
"""

from __future__ import annotations

import json

from ..model.addresses import format_ip, mask_length
from ..model.node import SCOPES, Interface, Route

__all__ = ["NODE_FILES", "addrs_to_json", "routes_to_json"]

_SCOPE_NAMES = {254: "host", 253: "link", 200: "site", 0: "global", 255: "nowhere"}


def addrs_to_json(interfaces: dict[str, Interface]) -> str:
    """The ``ip -j addr show`` JSON of ``interfaces`` (IPv4 addresses only)."""
    out = []
    for index, iface in enumerate(interfaces.values(), 1):
        flags = (["LOOPBACK"] if iface.loopback else ["BROADCAST", "MULTICAST"]) + (["UP", "LOWER_UP"] if iface.up else [])
        info = []
        for a in iface.addresses:
            entry = {"family": "inet", "local": format_ip(a.ip), "prefixlen": a.prefixlen}
            if a.broadcast is not None:
                entry["broadcast"] = format_ip(a.broadcast)
            entry["scope"] = _SCOPE_NAMES.get(a.scope, str(a.scope))
            if a.secondary:
                entry["secondary"] = True
            entry["label"] = iface.name
            info.append(entry)
        out.append({"ifindex": index, "ifname": iface.name, "flags": flags, "addr_info": info})
    return json.dumps(out, indent=2) + "\n"


def routes_to_json(routes: tuple[Route, ...]) -> str:
    """The ``ip -j route show`` JSON of ``routes``."""
    out = []
    for r in routes:
        entry: dict = {}
        if r.kind != "unicast":
            entry["type"] = r.kind
        entry["dst"] = "default" if r.mask == 0 and r.network == 0 else \
            (format_ip(r.network) if r.mask == 0xFFFFFFFF else f"{format_ip(r.network)}/{mask_length(r.mask)}")
        if r.gateway is not None:
            entry["gateway"] = format_ip(r.gateway)
        if r.dev:
            entry["dev"] = r.dev
        if r.scope != SCOPES["global"]:
            entry["scope"] = _SCOPE_NAMES.get(r.scope, str(r.scope))
        if r.prefsrc is not None:
            entry["prefsrc"] = format_ip(r.prefsrc)
        if r.metric:
            entry["metric"] = r.metric
        if r.table not in ("main", ""):
            entry["table"] = r.table
        entry["flags"] = ["onlink"] if r.onlink else []
        out.append(entry)
    return json.dumps(out, indent=2) + "\n"
