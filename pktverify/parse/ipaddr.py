"""Interface addresses from ``ip -j addr show`` (JSON) or ``ip -o addr show`` (text).

The format is detected from the content. IPv6 entries are skipped (pktverify
models IPv4); the order of addresses is kept, because REDIRECT uses the first.
"""

from __future__ import annotations

from ..errors import InputError
from ..model.addresses import AddressError, parse_ip
from ..model.node import SCOPES, IfAddr, Interface
from .json_input import line_of, load_json

__all__ = ["parse_ip_addr", "ipv6_note"]


def parse_ip_addr(text: str, *, source: str = "<ip addr>") -> dict[str, Interface]:
    """Return interfaces by name, in the dump's order."""
    stripped = text.lstrip()
    if not stripped:
        raise InputError(source, 1, "empty input", "")
    if stripped[0] == "[":
        return _parse_json(text, source)
    return _parse_text(text, source)


def _parse_json(text: str, source: str) -> dict[str, Interface]:
    doc = load_json(text, source, expect="ip -j addr show")
    interfaces: dict[str, Interface] = {}
    for entry in doc.items():
        if not isinstance(entry.value, dict) or "ifname" not in entry.value:
            raise entry.error("every entry needs 'ifname' (is this 'ip -j addr show' output?)")
        name = entry.str("ifname", required=True)
        if not name or "\0" in name or "/" in name:
            raise entry.child("ifname").error(f"bad interface name {name!r}")
        flags = entry.get("flags", list, default=[])
        if not all(isinstance(f, str) for f in flags):
            raise entry.child("flags").error("flags must be a list of strings")
        addrs = []
        for info in entry.list("addr_info"):
            if info.get("family", str) != "inet":
                continue
            try:
                ip = parse_ip(info.str("local", required=True, what=f"an address of {name}"))
                plen = info.int("prefixlen", required=True, what=f"an address of {name}")
                if not 0 <= plen <= 32:
                    raise AddressError(f"prefix length /{plen} is out of range 0-32")
                brd = parse_ip(info.str("broadcast")) if info.has("broadcast") else None
            except AddressError as exc:
                raise info.error(f"bad address on {name}: {exc}") from None
            scope = info.get("scope", (str, int), default="global")
            scope = scope if isinstance(scope, int) else _scope(scope, source, "", line_of(text, info.path))
            addrs.append(IfAddr(ip, plen, scope, bool(info.get("secondary", bool, default=False)), brd))
        interfaces[name] = Interface(name, tuple(addrs), "LOOPBACK" in flags or name == "lo",
                                     "UP" in flags or not flags)
    return interfaces


def _scope(text: str, source: str, line: str, lineno: int = 1) -> int:
    if text.isascii() and text.isdigit() and len(text) <= 3:
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
        if len(body) < 4 or not body[0].endswith(":") or not body[0][:-1].isascii() \
                or not body[0][:-1].isdigit():
            # Before the first good line the file may be anything (a wrong path): do not echo it.
            raise InputError(source, lineno, "not an 'ip -o addr show' line", line if collected else "")
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
            if plen_text and not (plen_text.isascii() and plen_text.isdigit() and len(plen_text) <= 2):
                raise AddressError(f"prefix length {plen_text!r} is not a number 0-32")
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
        raise InputError(source, 1, "no interfaces found", "")
    return {name: Interface(name, tuple(addrs), name == "lo") for name, addrs in collected.items()}


def ipv6_note(text: str, source: str) -> tuple[str, ...]:
    """A note when the dump has IPv6 addresses (skipped: pktverify models IPv4), else nothing."""
    count = text.count('"inet6"') if text.lstrip().startswith("[") else \
        sum(1 for line in text.split("\n") if " inet6 " in line)
    return (f"{source}: {count} IPv6 address(es) skipped (pktverify models IPv4)",) if count else ()
