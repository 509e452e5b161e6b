"""nftables rulesets as immutable data: tables, chains, rules, sets and maps, and the expression
and statement vocabulary of their rules.

Everything here is a plain value, the same whichever of the three forms it was read from (``nft -j
list ruleset`` JSON, ``nft list ruleset`` text, an ``nft -f`` script): values are canonical (IPv4
addresses, ports, protocols, marks and flag sets as ints; bitwise operations folded into the
kernel's ``(x & mask) ^ xor``; set elements in one sorted order; base chain priorities as numbers).
Only handles, lines and the rule text depend on the form, and records compare without them (nor
table and chain comments and netdev devices, which nft 1.0.6 leaves out of its JSON): the models
of one ruleset read from its three forms are ``==``. What a record *means* for a packet
lives in the evaluator; an expression the reader does not know is kept as :class:`NftUnknown`
with its raw form (may-match), never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

__all__ = [
    "PRIORITY_NAMES", "BRIDGE_PRIORITY_NAMES", "Prefix", "Range", "SetRef", "Element", "AnonSet",
    "Payload", "Meta", "Ct", "Fib", "Numgen", "Hash", "Bitwise", "Concat", "MapLookup", "NftUnknown",
    "Match", "NftVerdict", "Reject", "Queue", "Nat", "Mangle", "Vmap", "NoTrack", "Counter", "Log",
    "Limit", "Quota", "CtCount", "SetUpdate", "FlowAdd", "Xt", "NftRule", "NftChain", "NftSet",
    "Flowtable", "NamedObject", "NftTable", "NftRuleset", "Value", "Expr", "Statement",
]

# Base chain priority names (nft(8) "CHAIN PRIORITIES"): ip, ip6, inet, arp, netdev ...
PRIORITY_NAMES: dict[str, int] = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50,
                                  "srcnat": 100}
# ... and the bridge family's own numbers.
BRIDGE_PRIORITY_NAMES: dict[str, int] = {"dstnat": -300, "filter": -200, "out": 100, "srcnat": 300}


# ---------------------------------------------------------------- values
@dataclass(frozen=True, slots=True)
class Prefix:
    """``10.0.0.0/8``: an address (int) and a prefix length."""
    addr: int
    length: int


@dataclass(frozen=True, slots=True)
class Range:
    """``low-high`` (both ends included): addresses, ports, lengths."""
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class SetRef:
    """``@name``: a named set, map or flowtable of the same table."""
    name: str


@dataclass(frozen=True, slots=True)
class Element:
    """A set or map element: ``key`` (a value; a tuple for a concatenation), ``data`` for maps
    (a value, a tuple, or an :class:`NftVerdict` in verdict maps), ``timeout`` in ms."""
    key: object
    data: object = None
    timeout: int | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class AnonSet:
    """``{ a, b, c }`` written in the rule (an anonymous set or map), elements in canonical order."""
    elements: tuple[Element, ...]


# A value: int (addresses, ports, protocols, marks, flag sets), str (names nft keeps symbolic:
# interface names, icmp types, fib address types ...), bool (``fib ... oif missing``), Prefix,
# Range, or a tuple of these for a concatenation.
Value = Union[int, str, bool, Prefix, Range, tuple]


# ---------------------------------------------------------------- expressions
@dataclass(frozen=True, slots=True)
class Payload:
    """A header field: ``ip saddr``, ``tcp dport``, ``th dport``, ``icmp type``, ``tcp flags``."""
    protocol: str
    field: str


@dataclass(frozen=True, slots=True)
class Meta:
    """``meta KEY`` (``mark``, ``iifname``, ``l4proto``, ``skuid``, ``pkttype`` ...)."""
    key: str


@dataclass(frozen=True, slots=True)
class Ct:
    """``ct [original|reply] KEY`` (``state``, ``status``, ``mark``, ``zone``, ``ip saddr`` ...)."""
    key: str
    direction: str | None = None


@dataclass(frozen=True, slots=True)
class Fib:
    """``fib saddr|daddr [. iif|oif|mark] type|oif|oifname``."""
    flags: tuple[str, ...]
    result: str


@dataclass(frozen=True, slots=True)
class Numgen:
    """``numgen random|inc mod N [offset K]``."""
    mode: str
    mod: int
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Hash:
    """``jhash EXPR mod N [seed S] [offset K]`` or ``symhash mod N [offset K]`` (``expr`` None)."""
    kind: str
    mod: int
    expr: object = None
    seed: int = 0
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Bitwise:
    """``EXPR & a | b ^ c ...`` folded as the kernel stores it: ``(expr & mask) ^ xor`` (32 bits;
    a bit of ``mask`` is set iff the result depends on that bit of ``expr``)."""
    expr: object
    mask: int
    xor: int


@dataclass(frozen=True, slots=True)
class Concat:
    """``a . b . c``: the expressions' values side by side (set and map keys)."""
    items: tuple


@dataclass(frozen=True, slots=True)
class MapLookup:
    """``KEY map @m`` / ``KEY map { k : v, ... }``: the value the key maps to (nat addresses, marks)."""
    key: object
    data: object            # SetRef or AnonSet


@dataclass(frozen=True, slots=True)
class NftUnknown:
    """An expression or statement pktverify does not read: kept as written (text, or JSON as
    compact text), for the evaluator to treat as may-match."""
    raw: str


Expr = Union[Payload, Meta, Ct, Fib, Numgen, Hash, Bitwise, Concat, MapLookup, NftUnknown]


# ---------------------------------------------------------------- statements
@dataclass(frozen=True, slots=True)
class Match:
    """``LEFT [OP] RIGHT``: op ``==``, ``!=``, ``<``, ``>``, ``<=``, ``>=``, or ``in`` (a flag
    test: ``ct state established,related``); right a value, an AnonSet or a SetRef."""
    left: object
    op: str
    right: object


@dataclass(frozen=True, slots=True)
class NftVerdict:
    """accept, drop, return, continue, jump CHAIN, goto CHAIN."""
    kind: str
    chain: str | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """``reject [with icmp|icmpx TYPE | tcp reset]``; a bare reject is the family's default
    (``icmp port-unreachable`` in ip tables, ``icmpx port-unreachable`` in inet ones)."""
    kind: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Queue:
    """``queue [num N[-M]] [bypass,fanout]``: a userspace program decides."""
    low: int = 0
    high: int = 0
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Nat:
    """dnat, snat, masquerade or redirect: ``addr`` an int, Range, Prefix or MapLookup (None:
    keep / the interface's address), ``port`` an int, Range or expression; flags sorted
    (random, fully-random, persistent, netmap). ``family`` only where the table's does not say it."""
    kind: str
    addr: object = None
    port: object = None
    flags: tuple[str, ...] = ()
    family: str | None = None


@dataclass(frozen=True, slots=True)
class Mangle:
    """``meta mark set V``, ``ct mark set V``, ``ct zone set V``, ``ip dscp set V`` ...: ``key``
    (a Meta, Ct or Payload) takes ``value`` (an int or an expression such as a Bitwise)."""
    key: object
    value: object


@dataclass(frozen=True, slots=True)
class Vmap:
    """``KEY vmap @m`` / ``KEY vmap { k : verdict, ... }``."""
    key: object
    data: object


@dataclass(frozen=True, slots=True)
class NoTrack:
    """``notrack``: the packet gets no connection."""


@dataclass(frozen=True, slots=True)
class Counter:
    """``counter`` or ``counter name X``; the numbers the dump shows are state (not compared)."""
    name: str | None = None
    packets: int | None = field(default=None, compare=False)
    bytes: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Log:
    """``log [prefix P] [level L] [group G]``."""
    prefix: str | None = None
    level: str | None = None
    group: int | None = None


@dataclass(frozen=True, slots=True)
class Limit:
    """``limit rate [over] N/UNIT [burst B]``: ``unit`` "packets" or bytes per period (``bytes``)."""
    rate: int
    per: str
    burst: int = 5
    unit: str = "packets"
    over: bool = False


@dataclass(frozen=True, slots=True)
class Quota:
    """``quota [over|until] N UNIT``: ``bytes`` as a number; the used bytes are state."""
    bytes: int
    over: bool = False


@dataclass(frozen=True, slots=True)
class CtCount:
    """``ct count [over] N``."""
    count: int
    over: bool = False


@dataclass(frozen=True, slots=True)
class SetUpdate:
    """``add|update|delete @set { KEY [timeout T] [: DATA] }`` from the packet path."""
    op: str
    set: str
    key: object
    timeout: int | None = None
    data: object = None


@dataclass(frozen=True, slots=True)
class FlowAdd:
    """``flow add @ft`` (offload to a flowtable: affects established packets only)."""
    flowtable: str


@dataclass(frozen=True, slots=True)
class Xt:
    """An iptables-nft match or target (``xt`` in JSON, ``xt match "name"`` in text): its
    arguments are read from ``iptables-save``."""
    kind: str           # "match" or "target"
    name: str


Statement = Union[Match, NftVerdict, Reject, Queue, Nat, Mangle, Vmap, NoTrack, Counter, Log, Limit, Quota,
                  CtCount, SetUpdate, FlowAdd, Xt, NftUnknown]


# ---------------------------------------------------------------- structure
@dataclass(frozen=True, slots=True)
class NftRule:
    """One rule: its statements in order; ``handle`` (0 when the form has none), ``line`` in
    the dump (JSON: the index of the rule in the ``nftables`` list), ``text`` as nft prints it."""
    handle: int = field(compare=False)
    line: int = field(compare=False)
    text: str = field(compare=False)
    exprs: tuple
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class NftChain:
    """A chain; base chains have ``type`` (filter, nat, route), ``hook``, ``priority`` (the number
    after resolving names), ``policy`` (accept, drop) and, for netdev, ``devices``."""
    name: str
    rules: tuple[NftRule, ...] = ()
    type: str | None = None
    hook: str | None = None
    priority: int | None = None
    policy: str | None = None
    devices: tuple[str, ...] = field(default=(), compare=False)
    comment: str | None = field(default=None, compare=False)
    handle: int = field(default=0, compare=False)
    line: int = field(default=0, compare=False)

    @property
    def is_base(self) -> bool:
        return self.hook is not None


@dataclass(frozen=True, slots=True)
class NftSet:
    """A named set (``data`` None) or map: ``key_type`` the type names (several for a
    concatenation ``ipv4_addr . inet_proto . inet_service``), ``data`` the map's data type names
    (``("verdict",)`` for a verdict map); flags sorted (constant, dynamic, interval, timeout);
    ``timeout`` in ms; elements in canonical order."""
    name: str
    key_type: tuple[str, ...]
    data: tuple[str, ...] | None = None
    flags: tuple[str, ...] = ()
    timeout: int | None = None
    size: int | None = None
    elements: tuple[Element, ...] = ()
    comment: str | None = None
    handle: int = field(default=0, compare=False)
    line: int = field(default=0, compare=False)

    @property
    def is_map(self) -> bool:
        return self.data is not None


@dataclass(frozen=True, slots=True)
class Flowtable:
    """``flowtable NAME { hook ingress priority P; devices = { ... } }``."""
    name: str
    hook: str
    priority: int
    devices: tuple[str, ...] = ()
    handle: int = field(default=0, compare=False)
    line: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class NamedObject:
    """A stateful object (``counter``, ``quota``, ``limit``, ``ct helper`` ...) named in the table."""
    kind: str
    name: str
    line: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class NftTable:
    """One table: family (ip, ip6, inet, arp, bridge, netdev), name, and its objects in the
    order the kernel lists them (creation order)."""
    family: str
    name: str
    chains: tuple[NftChain, ...] = ()
    sets: tuple[NftSet, ...] = ()
    maps: tuple[NftSet, ...] = ()
    flowtables: tuple[Flowtable, ...] = ()
    objects: tuple[NamedObject, ...] = ()
    comment: str | None = field(default=None, compare=False)
    handle: int = field(default=0, compare=False)
    line: int = field(default=0, compare=False)

    def chain(self, name: str) -> NftChain | None:
        return next((c for c in self.chains if c.name == name), None)

    def set(self, name: str) -> NftSet | None:
        return next((s for s in (*self.sets, *self.maps) if s.name == name), None)


@dataclass(frozen=True, slots=True)
class NftRuleset:
    """What one dump holds: ``form`` "json", "text" (``nft list ruleset``) or "script" (``nft -f``).
    ``iptables_nft``: where the dump lists the tables iptables-nft wrote that a node reads from its
    iptables-save instead: ``tables``' ``family name`` in the dump's order with ``iptables NAME`` at their
    places (empty when there are none), since the order decides equal priorities."""
    source: str = field(compare=False)
    form: str = field(compare=False)
    tables: tuple[NftTable, ...] = ()
    iptables_nft: tuple[str, ...] = ()

    def table(self, family: str, name: str) -> NftTable | None:
        return next((t for t in self.tables if t.family == family and t.name == name), None)
