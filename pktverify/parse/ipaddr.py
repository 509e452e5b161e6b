"""Interface addresses from ``ip -j addr show`` (JSON) or ``ip -o addr show`` (text).

The format is detected from the content. IPv6 entries are skipped (pktverify
models IPv4); the order of addresses is kept, because REDIRECT uses the first.
"""

from __future__ import annotations

import json

from ..errors import InputError
from ..model.addresses import AddressError, parse_ip
from ..model.node import SCOPES, IfAddr, Interface

__all__ = ["parse_ip_addr"]


def parse_ip_addr(text: str, *, source: str = "<ip addr>") -> dict[str, Interface]:
    """Return interfaces by name, in the dump's order."""
    stripped = text.lstrip()
    if not stripped:
        raise InputError(source, 1, "empty input", "")
    if stripped[0] == "[":
        return _parse_json(text, source)
    return _parse_text(text, source)


def _parse_json(text: str, source: str) -> dict[str, Interface]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(source, exc.lineno, f"invalid JSON: {exc.msg}", text.split("\n")[exc.lineno - 1][:80]) from None
    if not isinstance(data, list):
        raise InputError(source, 1, "expected the JSON list that 'ip -j addr show' prints", text[:80])
    interfaces: dict[str, Interface] = {}
    for entry in data:
        if not isinstance(entry, dict) or "ifname" not in entry:
            raise InputError(source, 1, "every entry needs 'ifname' (is this 'ip -j addr show' output?)", str(entry)[:80])
        name = entry["ifname"]
        flags = entry.get("flags", [])
        addrs = []
        for info in entry.get("addr_info", []):
            if info.get("family") != "inet":
                continue
            try:
                ip = parse_ip(str(info.get("local")))
                plen = int(info.get("prefixlen"))
                if not 0 <= plen <= 32:
                    raise AddressError(f"prefix length /{plen} is out of range 0-32")
                brd = parse_ip(info["broadcast"]) if info.get("broadcast") else None
            except (AddressError, TypeError, ValueError) as exc:
                raise InputError(source, 1, f"bad address on {name}: {exc}", json.dumps(info)[:120]) from None
            scope = _scope(str(info.get("scope", "global")), source, json.dumps(info)[:120])
            addrs.append(IfAddr(ip, plen, scope, bool(info.get("secondary")), brd))
        interfaces[name] = Interface(name, tuple(addrs), "LOOPBACK" in flags or name == "lo",
                                     "UP" in flags or not flags)
    return interfaces


def _scope(text: str, source: str, line: str, lineno: int = 1) -> int:
    if text.isdigit():
        return int(text)
    if text not in SCOPES:
        raise InputError(source, lineno, f"unknown scope {text!r} (valid: {', '.join(SCOPES)})", line)
    return SCOPES[text]


def _parse_text(text: str, source: str) -> dict[str, Interface]:
    collected: dict[str, list[IfAddr]] = {}
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip().rstrip("\r")
        if not line or line.startswith("#"):
            continue
        body = line.split("\\")[0].split()
        # "2: eth0    inet 10.0.0.1/24 brd 10.0.0.255 scope global eth0"
        if len(body) < 4 or not body[0].endswith(":") or not body[0][:-1].isdigit():
            raise InputError(source, lineno, "not an 'ip -o addr show' line", line)
        name = body[1].split("@")[0]
        family = body[2]
        if family == "inet6":
            collected.setdefault(name, [])
            continue
        if family != "inet":
            raise InputError(source, lineno, f"unknown address family {family!r}", line)
        try:
            ip_text, _, plen_text = body[3].partition("/")
            ip = parse_ip(ip_text)
            plen = int(plen_text) if plen_text else 32
            if not 0 <= plen <= 32:
                raise AddressError(f"prefix length /{plen} is out of range 0-32")
        except (AddressError, ValueError) as exc:
            raise InputError(source, lineno, f"bad address: {exc}", line) from None
        scope, secondary, brd = 0, False, None
        words = body[4:]
        i = 0
        while i < len(words):
            word = words[i]
            if word in ("brd", "broadcast") and i + 1 < len(words):
                try:
                    brd = parse_ip(words[i + 1])
                except AddressError as exc:
                    raise InputError(source, lineno, f"bad broadcast: {exc}", line) from None
                i += 2
            elif word == "scope" and i + 1 < len(words):
                scope = _scope(words[i + 1], source, line, lineno)
                i += 2
            elif word == "secondary":
                secondary = True
                i += 1
            else:
                i += 1   # label, flags (dynamic, noprefixroute, ...)
        collected.setdefault(name, []).append(IfAddr(ip, plen, scope, secondary, brd))
    if not collected:
        raise InputError(source, 1, "no interfaces found", text[:80])
    return {name: Interface(name, tuple(addrs), name == "lo") for name, addrs in collected.items()}
