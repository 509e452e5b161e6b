"""The statements of the nft rule grammar that start with a keyword (``jump``, ``reject``,
``dnat``, ``counter``, ``log``, ``limit`` ...): one reader each, for :class:`.nft_rule.RuleParser`
(:data:`HANDLERS`, by keyword)."""

from __future__ import annotations

from typing import Any

from ..model import nft as m
from .nft_values import convert, dtype_of

__all__ = ["HANDLERS", "unquote", "DEFAULT_REJECT", "BYTE_UNITS"]

# A bare ``reject``: what the kernel sends, by table family (``icmp`` elsewhere).
DEFAULT_REJECT = {"inet": "icmpx", "ip6": "icmpv6", "bridge": "icmpx", "netdev": "icmpx"}
BYTE_UNITS = {"bytes": 1, "kbytes": 1024, "mbytes": 1024 ** 2, "gbytes": 1024 ** 3}
RuleParser = Any        # a .nft_rule.RuleParser (which imports this module: no import back)


# ---------------------------------------------------------------- statement keywords
def unquote(word: str) -> str:
    """A name as written, bare or in double quotes (chain names may hold ``/ . :``)."""
    return word[1:-1] if len(word) >= 2 and word[0] == '"' and word[-1] == '"' else word


def _jump(p: RuleParser, kind: str) -> m.NftVerdict:
    return m.NftVerdict(kind, unquote(p.next("a chain name")))


def _reject(p: RuleParser) -> m.Reject:
    if not p.take("with"):
        return m.Reject(DEFAULT_REJECT.get(p.family, "icmp"), "port-unreachable")
    kind = p.next("icmp, icmpx or tcp")
    if kind == "tcp":
        p.expect("reset")
        return m.Reject("tcp reset")
    p.take("type")
    return m.Reject(kind, p.next("an icmp type"))


def _queue(p: RuleParser) -> m.Queue:
    low = high = 0
    flags: list[str] = []
    while p.peek() in ("num", "flags", "to", "bypass", "fanout", ","):
        word = p.next()
        if word in ("num", "to"):
            value = convert(p.next("a queue number"), None)
            low, high = (value.low, value.high) if not isinstance(value, int) else (value, value)
        elif word in ("bypass", "fanout"):
            flags.append(word)
    return m.Queue(low, high, tuple(sorted(flags)))


def _counter(p: RuleParser) -> m.Counter:
    if p.take("name"):
        return m.Counter(convert(p.next("a counter name"), None))
    numbers = {}
    while p.peek() in ("packets", "bytes"):
        word = p.next()
        numbers[word] = int(p.next("a number"))
    return m.Counter(None, numbers.get("packets"), numbers.get("bytes"))


def _log(p: RuleParser) -> m.Log:
    prefix = level = group = None
    while p.peek() in ("prefix", "level", "group", "snaplen", "queue-threshold", "flags"):
        word, value = p.next(), p.next("a log option's value")
        if word == "prefix":
            prefix = convert(value, None)
        elif word == "level":
            level = None if value == "warn" else value
        elif word == "group":
            group = int(value)
        elif word == "flags":
            while p.take(","):
                p.next()
    return m.Log(prefix, level, group)


def _limit(p: RuleParser) -> m.Limit:
    p.expect("rate")
    over = p.take("over")
    p.take("until")
    rate, unit = p.next("a rate"), "packets"
    if "/" not in rate:
        rate = f"{rate} {p.next('a unit')}"
    number, _, per = rate.partition("/")
    number, _, byte_unit = number.partition(" ")
    value = int(number) * (BYTE_UNITS.get(byte_unit, 1))
    if byte_unit:
        unit = "bytes"
    burst = 5 if unit == "packets" else 0
    if p.take("burst"):
        burst = int(p.next("a burst"))
        burst *= BYTE_UNITS.get(p.next("packets or bytes"), 1)
    return m.Limit(value, per, burst, unit, over)


def _quota(p: RuleParser) -> m.Quota:
    over = p.take("over")
    p.take("until")
    amount = int(p.next("a quota"))
    amount *= BYTE_UNITS.get(p.next("a unit"), 1)
    if p.take("used"):
        p.pos += 2
    return m.Quota(amount, over)


def _nat_target(p: RuleParser, kind: str) -> tuple[object, object]:
    if p.starts_expr():
        expr = p.expr()
        p.expect("map")
        return m.MapLookup(expr, p.map_data(dtype_of(expr), ("ipv4_addr", "inet_service"))), None
    word = p.next("an address or :port")
    addr_text, port_text = word, None
    if word.startswith("["):
        addr_text, _, port_text = word[1:].partition("]")
        port_text = port_text[1:] or None
    elif word.startswith(":"):
        addr_text, port_text = "", word[1:]
    elif ":" in word and word.count(":") == 1:
        addr_text, _, port_text = word.rpartition(":")
    elif p.peek() == ":":
        p.pos += 1
        port_text = p.next("a port")
    addr = convert(addr_text, "ipv6_addr" if p.family == "ip6" else "ipv4_addr") if addr_text else None
    port = convert(port_text, "inet_service") if port_text else None
    return addr, port


def _nat(p: RuleParser, kind: str) -> m.Nat:
    family = p.next() if p.peek() in ("ip", "ip6") and p.peek(1) == "to" else None
    if p.family in ("ip", "ip6"):
        family = None
    addr = port = None
    if p.take("to"):
        addr, port = _nat_target(p, kind)
    flags: list[str] = []
    while p.peek() in ("random", "fully-random", "persistent", "netmap", ","):
        word = p.next()
        if word != ",":
            flags.append(word)
    return m.Nat(kind, addr, port, tuple(sorted(flags)), family)


def _comment(p: RuleParser) -> None:
    p.comment = convert(p.next("a comment"), None)
    return None


def _flow(p: RuleParser) -> m.FlowAdd:
    p.next("add or offload")
    return m.FlowAdd(p.next("@flowtable").lstrip("@"))


def _xt(p: RuleParser) -> m.Xt:
    kind = p.next("match or target")
    return m.Xt(kind, convert(p.next("a name"), None))


def _ct_count(p: RuleParser) -> m.CtCount:
    p.expect("count")
    over = p.take("over")
    return m.CtCount(int(p.next("a count")), over)


HANDLERS = {
    "jump": lambda p: _jump(p, "jump"), "goto": lambda p: _jump(p, "goto"), "reject": _reject, "queue": _queue,
    "counter": _counter, "log": _log, "limit": _limit, "quota": _quota, "notrack": lambda p: m.NoTrack(),
    "dnat": lambda p: _nat(p, "dnat"), "snat": lambda p: _nat(p, "snat"),
    "masquerade": lambda p: _nat(p, "masquerade"), "redirect": lambda p: _nat(p, "redirect"),
    "comment": _comment, "flow": _flow, "xt": _xt, "ct": _ct_count,
}
