"""Policy routing rules from ``ip -j rule show`` (JSON) or ``ip rule show`` (text).

The format is detected from the content. IPv6 rules (``ip -6 rule``) are not
part of either dump; a rule with an IPv6 selector is skipped with a note.
"""

from __future__ import annotations

from ..errors import InputError
from ..model.addresses import AddressError, parse_ip, parse_network, prefix_mask
from ..model.node import RoutingRule, table_name
from .json_input import element_lines, load_json

__all__ = ["parse_ip_rules"]

_ACTIONS = {"blackhole", "unreachable", "prohibit", "nop"}
_IGNORED_ONE = {"pref", "priority", "order", "tos", "dsfield", "realms", "suppress_prefixlength",
                "suppress_ifgroup", "uidrange", "ipproto", "sport", "dport", "protocol", "proto", "l3mdev"}


def parse_ip_rules(text: str, *, source: str = "<ip rule>") -> tuple[tuple[RoutingRule, ...], tuple[str, ...]]:
    """The rules sorted by priority, and notes on what was skipped."""
    stripped = text.lstrip()
    if not stripped:
        raise InputError(source, 1, "no rules found (a node always has the local, main and default rules)", "")
    rules = _parse_json(text, source) if stripped[0] == "[" else _parse_text(text, source)
    for rule in rules:
        if rule.action == "goto" and rule.goto <= rule.priority:
            # fib_nl_newrule: "Backward goto not supported" (a goto to itself included): such a
            # rule cannot be on a node, and would loop if it were.
            raise InputError(source, rule.line, f"rule {rule.priority} goes to {rule.goto}, which is not after it: "
                             "the kernel refuses backward gotos ('Backward goto not supported')",
                             f"{rule.priority}: goto {rule.goto}")
    return tuple(sorted(rules, key=lambda r: r.priority)), ()


def _mark(text: str) -> int:
    value = int(text, 16) if text.lower().startswith("0x") else int(text)
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"mark {text} is out of range")
    return value


def _parse_json(text: str, source: str) -> list[RoutingRule]:
    doc = load_json(text, source, expect="ip -j rule show")
    lines = element_lines(text)
    out = []
    for n, entry in enumerate(doc.items()):
        line = lines[n] if n < len(lines) else 1
        if not isinstance(entry.value, dict) or "priority" not in entry.value:
            raise entry.error("every rule needs 'priority' (is this 'ip -j rule show' output?)")
        for key in ("uidrange", "ipproto", "sport", "dport", "l3mdev", "tun_id"):
            if entry.has(key):
                raise entry.error(f"rule selector {key!r} is not modelled")
        try:
            src = _selector(entry.str("src", default="all"), entry.int("srclen", default=None))
            dst = _selector(entry.str("dst", default="all"), entry.int("dstlen", default=None))
            mark = entry.get("fwmark", (str, int), default=None)
            mask = entry.get("fwmask", (str, int), default=None)
            fwmark = None if mark is None else (_mark(str(mark)), _mark(str(mask)) if mask is not None else 0xFFFFFFFF)
        except (AddressError, ValueError) as exc:
            raise entry.error(f"bad rule: {exc}") from None
        action = entry.str("action", default="lookup") if not entry.has("goto") else "goto"
        if action not in _ACTIONS | {"lookup", "goto"}:
            raise entry.child("action").error(f"rule action {action!r} is not modelled")
        table = table_name(str(entry.get("table", (str, int), default="main")))
        for key in ("priority", "goto"):
            value = entry.int(key, default=0)
            if not 0 <= value <= 0xFFFFFFFF:
                raise entry.child(key).error(f"rule {key} {value} is out of range 0-4294967295")
        out.append(RoutingRule(entry.int("priority", required=True), action, table, src, dst,
                               None if fwmark is None else (fwmark[0] & fwmark[1], fwmark[1]),
                               entry.str("iif"), entry.str("oif"), "not" in entry.value,
                               entry.int("goto", default=0), source, line))
    return out


def _selector(text: str, plen: int | None) -> tuple[int, int] | None:
    if text == "all" or text is None:
        return None
    if plen is not None and not 0 <= plen <= 32:
        raise AddressError(f"prefix length {plen} is out of range 0-32")
    if ":" in text:
        raise AddressError(f"{text}: IPv6 selectors are not modelled")
    if "/" in text:
        return parse_network(text)
    mask = prefix_mask(32 if plen is None else plen)
    return parse_ip(text) & mask, mask


def _parse_text(text: str, source: str) -> list[RoutingRule]:
    out = []
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, sep, rest = line.partition(":")
        if not sep or not head.isascii() or not head.isdigit() or len(head) > 10 or int(head) > 0xFFFFFFFF:
            raise InputError(source, lineno, "not an 'ip rule show' line (PRIORITY: selectors action)",
                             line if out else "")
        # ip rule's state flags: [detached] (iif/oif down), [unresolved] (a goto whose target
        # priority has no rule: the kernel passes over it, as the FIB model does)
        words = rest.replace("[detached]", "").replace("[unresolved]", "").split()
        invert = bool(words) and words[0] == "not"
        if invert:
            words = words[1:]
        src = dst = fwmark = None
        iif = oif = None
        action, table, goto = "lookup", "main", 0
        i = 0
        try:
            while i < len(words):
                word = words[i]
                arg = words[i + 1] if i + 1 < len(words) else None
                if word == "from" and arg:
                    src = _selector(arg, None)
                elif word == "to" and arg:
                    dst = _selector(arg, None)
                elif word == "fwmark" and arg:
                    value, _, mask = arg.partition("/")
                    m = _mark(mask) if mask else 0xFFFFFFFF
                    fwmark = (_mark(value) & m, m)
                elif word in ("iif", "dev") and arg:
                    iif = arg
                elif word == "oif" and arg:
                    oif = arg
                elif word in ("lookup", "table") and arg:
                    table = table_name(arg)
                elif word == "goto" and arg and arg.isascii() and arg.isdigit() and len(arg) <= 10 and \
                        int(arg) <= 0xFFFFFFFF:
                    action, goto = "goto", int(arg)
                elif word in _ACTIONS:
                    action = word
                    i += 1
                    continue
                elif word in ("uidrange", "ipproto", "sport", "dport", "l3mdev"):
                    raise InputError(source, lineno, f"rule selector {word!r} is not modelled", line)
                elif word in _IGNORED_ONE and arg:
                    pass
                else:
                    raise InputError(source, lineno, f"unknown rule word {word!r}", line)
                i += 2
        except (AddressError, ValueError) as exc:
            raise InputError(source, lineno, f"bad rule: {exc}", line) from None
        out.append(RoutingRule(int(head), action, table, src, dst, fwmark, iif, oif, invert, goto, source, lineno))
    if not out:
        raise InputError(source, 1, "no rules found", "")
    return out
