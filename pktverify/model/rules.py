"""iptables rule sets as immutable data: matches, targets, rules, chains, tables.

Everything here is a plain value; what a match *means* for a packet lives in
``pktverify.eval``. Every rule remembers the file and line it came from so
that traces and errors can point back to the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

__all__ = [
    "TABLE_CHAINS", "TABLE_ORDER",
    "AddrMatch", "ProtoMatch", "IfaceMatch", "PortMatch", "MultiportMatch", "TcpFlagsMatch",
    "CommentMatch", "AddrTypeMatch", "RandomMatch", "NthMatch", "MarkMatch", "CtStateMatch",
    "IpRangeMatch", "IcmpTypeMatch", "RecentMatch", "UnknownMatch", "FactMatch", "MaybeMatch",
    "FixedMatch", "LengthMatch", "TimeMatch", "RpFilterMatch", "PhysdevMatch", "OwnerMatch", "SetMatch", "Match",
    "Verdict", "Reject", "Jump", "Dnat", "Snat", "Masquerade", "Redirect", "SetMark", "NoOp",
    "SetTtl", "ConnMark", "NoTrack", "Tproxy", "Nfqueue", "Netmap", "UnknownTarget", "Target", "Rule", "Chain",
    "Table", "Ruleset", "NON_TERMINATING_TARGETS",
]

# Built-in chains of each table (the kernel's own list).
TABLE_CHAINS: dict[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}
TABLE_ORDER = ("raw", "mangle", "nat", "filter", "security")

# Targets the kernel documents as non-terminating: a rule with one of them lets the packet go
# on to the next rule (iptables-extensions(8)). An unknown target of this list continues.
NON_TERMINATING_TARGETS = frozenset({
    "AUDIT", "CHECKSUM", "CLASSIFY", "CONNMARK", "CONNSECMARK", "CT", "DSCP", "ECN", "HL", "HMARK",
    "IDLETIMER", "LED", "LOG", "MARK", "NFLOG", "RATEEST", "SECMARK", "SET", "TCPMSS", "TCPOPTSTRIP",
    "TEE", "TOS", "TRACE", "TTL", "ULOG"})


# ---------------------------------------------------------------- matches
@dataclass(frozen=True, slots=True)
class AddrMatch:
    """``-s``/``-d``: ``field`` is "src" or "dst"."""
    field: str
    network: int
    mask: int
    invert: bool = False


@dataclass(frozen=True, slots=True)
class ProtoMatch:
    """``-p``: protocol number; 0 means "all"."""
    proto: int
    invert: bool = False


@dataclass(frozen=True, slots=True)
class IfaceMatch:
    """``-i``/``-o``: ``direction`` "in" or "out"; ``prefix`` true for a trailing ``+``."""
    direction: str
    name: str
    prefix: bool
    invert: bool = False


@dataclass(frozen=True, slots=True)
class PortMatch:
    """tcp/udp/sctp ``--sport``/``--dport``: inclusive range on ``field`` ("sport"/"dport")."""
    field: str
    low: int
    high: int
    invert: bool = False


@dataclass(frozen=True, slots=True)
class MultiportMatch:
    """``-m multiport``: ``field`` "sport", "dport" or "either"; ranges inclusive."""
    field: str
    ranges: tuple[tuple[int, int], ...]
    invert: bool = False


@dataclass(frozen=True, slots=True)
class TcpFlagsMatch:
    """``--tcp-flags MASK COMP`` (``--syn`` is SYN,RST,ACK,FIN SYN)."""
    mask: int
    comp: int
    invert: bool = False


@dataclass(frozen=True, slots=True)
class CommentMatch:
    """``-m comment``: always matches."""
    text: str


@dataclass(frozen=True, slots=True)
class AddrTypeMatch:
    """``-m addrtype``: ``field`` "src"/"dst"; ``types`` e.g. {"LOCAL"}."""
    field: str
    types: frozenset[str]
    invert: bool = False
    limit_iface: str | None = None  # "in" / "out" / None


@dataclass(frozen=True, slots=True)
class RandomMatch:
    """``-m statistic --mode random``: ``probability`` is the kernel's exact value (k / 2**31)."""
    probability: float
    invert: bool = False


@dataclass(frozen=True, slots=True)
class NthMatch:
    """``-m statistic --mode nth``: modelled as its long-run share ``1/every``."""
    every: int
    packet: int
    invert: bool = False


@dataclass(frozen=True, slots=True)
class MarkMatch:
    """``-m mark --mark VALUE[/MASK]``."""
    value: int
    mask: int
    invert: bool = False


@dataclass(frozen=True, slots=True)
class CtStateMatch:
    """``-m conntrack --ctstate`` / ``-m state --state``."""
    states: frozenset[str]
    invert: bool = False


@dataclass(frozen=True, slots=True)
class IpRangeMatch:
    """``-m iprange --src-range/--dst-range A-B`` (inclusive)."""
    field: str
    low: int
    high: int
    invert: bool = False


@dataclass(frozen=True, slots=True)
class IcmpTypeMatch:
    """``-m icmp --icmp-type``; ``icmp_type`` 255 means any; codes inclusive."""
    icmp_type: int
    code_low: int
    code_high: int
    invert: bool = False


@dataclass(frozen=True, slots=True)
class RecentMatch:
    """``-m recent``: ``mode`` set/rcheck/update/remove. Lists start empty (a fresh client)
    unless the trace is given entries an earlier connection left (``TraceMeta.recent``).
    ``dest``: ``--rdest`` (the list holds destinations); ``mask``: ``--mask``; ``hitcount``:
    ``--hitcount`` (0: none)."""
    mode: str
    name: str
    invert: bool = False
    dest: bool = False
    mask: int = 0xFFFFFFFF
    hitcount: int = 0


@dataclass(frozen=True, slots=True)
class UnknownMatch:
    """A match module we do not model (only with ``--lenient``): "may match"."""
    module: str
    text: str


@dataclass(frozen=True, slots=True)
class FactMatch:
    """A test of one number the packet, its connection or its socket has (``fact``, see
    ``pktverify.eval.facts``): ``(fact & mask)`` within one of ``ranges`` (inclusive).
    ``module`` is the -m module it came from (ttl, connmark, conntrack, tos, dscp, ...)."""
    module: str
    fact: str
    ranges: tuple[tuple[int, int], ...]
    mask: int = 0xFFFFFFFF
    invert: bool = False


@dataclass(frozen=True, slots=True)
class MaybeMatch:
    """A match whose answer depends on something no dump holds (``why``): it may match or not,
    so both branches are followed and the outcomes are inexact. Not an error, even without --lenient."""
    module: str
    why: str


@dataclass(frozen=True, slots=True)
class FixedMatch:
    """A match whose answer is fixed for the first packet of a fresh flow (``limit``, ``quota``,
    ``connlimit``, ``policy --pol none``, ...): ``matches``, and ``why`` for the trace step."""
    module: str
    matches: bool
    why: str
    burst: int = 0        # limit: tokens in a full bucket (a second packet of the trace through the
                          # same rule finds it empty when this is 1)


@dataclass(frozen=True, slots=True)
class TimeMatch:
    """``-m time`` (xt_time): dates as UTC epoch seconds, times of day as seconds since midnight,
    ``weekdays`` bits 1 (Mon) to 7 (Sun), ``monthdays`` bits 1-31; ``kerneltz``: in the kernel's
    timezone, which no dump holds."""
    date_start: int = 0
    date_stop: int = 2**31 - 1
    day_start: int = 0
    day_stop: int = 86399
    weekdays: int = 0xFE
    monthdays: int = 0xFFFFFFFE
    contiguous: bool = False
    kerneltz: bool = False


@dataclass(frozen=True, slots=True)
class LengthMatch:
    """``-m length --length A:B``: the IP total length, decided where the packet's size is."""
    low: int
    high: int
    invert: bool = False


@dataclass(frozen=True, slots=True)
class RpFilterMatch:
    """``-m rpfilter``: the reverse-path test against the FIB, as xt_rpfilter makes it."""
    loose: bool = False
    validmark: bool = False
    accept_local: bool = False
    invert: bool = False


@dataclass(frozen=True, slots=True)
class PhysdevMatch:
    """``-m physdev``: bridge ports. Each option is None (not given) or (value, inverted)."""
    physdev_in: tuple[str, bool, bool] | None = None      # (name, prefix '+', inverted)
    physdev_out: tuple[str, bool, bool] | None = None
    is_in: bool | None = None        # None: not given; else "inverted"
    is_out: bool | None = None
    is_bridged: bool | None = None


@dataclass(frozen=True, slots=True)
class OwnerMatch:
    """``-m owner``: the local socket's uid/gid range (each (low, high, inverted) or None), or
    ``--socket-exists`` (its inversion flag, or None)."""
    uid: tuple[int, int, bool] | None = None
    gid: tuple[int, int, bool] | None = None
    socket_exists: bool | None = None


@dataclass(frozen=True, slots=True)
class SetMatch:
    """``-m set --match-set NAME FLAGS``: ``dirs`` says, per dimension of the set, whether it is
    taken from the packet's source (True) or destination (False)."""
    name: str
    dirs: tuple[bool, ...]
    invert: bool = False
    return_nomatch: bool = False
    counters: str = ""            # counter conditions given (their answer is not in any dump)


Match = Union[AddrMatch, ProtoMatch, IfaceMatch, PortMatch, MultiportMatch, TcpFlagsMatch,
              CommentMatch, AddrTypeMatch, RandomMatch, NthMatch, MarkMatch, CtStateMatch,
              IpRangeMatch, IcmpTypeMatch, RecentMatch, UnknownMatch, FactMatch, MaybeMatch,
              FixedMatch, LengthMatch, RpFilterMatch, PhysdevMatch, OwnerMatch, SetMatch, TimeMatch]


# ---------------------------------------------------------------- targets
@dataclass(frozen=True, slots=True)
class Verdict:
    """ACCEPT, DROP or RETURN."""
    name: str


@dataclass(frozen=True, slots=True)
class Reject:
    """REJECT; ``with_`` is the ``--reject-with`` type."""
    with_: str = "icmp-port-unreachable"


@dataclass(frozen=True, slots=True)
class Jump:
    """``-j CHAIN`` (``goto`` false) or ``-g CHAIN`` (``goto`` true) to a user chain."""
    chain: str
    goto: bool = False


@dataclass(frozen=True, slots=True)
class Dnat:
    """DNAT ``--to-destination [A[-B]][:P[-Q]]``; ``addr_low`` None keeps the address."""
    addr_low: int | None
    addr_high: int | None
    port_low: int | None
    port_high: int | None
    random: bool = False
    persistent: bool = False


@dataclass(frozen=True, slots=True)
class Snat:
    """SNAT ``--to-source A[-B][:P[-Q]]``."""
    addr_low: int
    addr_high: int
    port_low: int | None
    port_high: int | None
    random: bool = False
    random_fully: bool = False
    persistent: bool = False


@dataclass(frozen=True, slots=True)
class Masquerade:
    """MASQUERADE [``--to-ports P[-Q]``]."""
    port_low: int | None = None
    port_high: int | None = None
    random: bool = False
    random_fully: bool = False


@dataclass(frozen=True, slots=True)
class Redirect:
    """REDIRECT [``--to-ports P[-Q]``]."""
    port_low: int | None = None
    port_high: int | None = None
    random: bool = False


@dataclass(frozen=True, slots=True)
class SetMark:
    """MARK, normalised as the kernel stores it: ``mark = (mark & ~mask) ^ value``."""
    value: int
    mask: int


@dataclass(frozen=True, slots=True)
class NoOp:
    """A non-terminating target with no effect on what pktverify models (LOG, NFLOG, CHECKSUM,
    TCPMSS, ...): the packet goes on to the next rule. ``note`` says what it does that is not
    modelled (a header field, a counter), for the trace step."""
    name: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class SetTtl:
    """TTL ``--ttl-set/--ttl-dec/--ttl-inc``: ``op`` "set", "dec" or "inc"."""
    op: str
    value: int


@dataclass(frozen=True, slots=True)
class ConnMark:
    """CONNMARK. ``op`` "set": ctmark = (ctmark & ~mask) ^ value; "save": ctmark = (ctmark & ~ctmask)
    ^ (mark & nfmask); "restore": mark = (mark & ~nfmask) ^ (ctmark & ctmask)."""
    op: str
    value: int = 0
    mask: int = 0
    nfmask: int = 0xFFFFFFFF
    ctmask: int = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class NoTrack:
    """``CT --notrack`` / ``NOTRACK`` (raw table): the packet gets no connection (state UNTRACKED, no NAT)."""
    name: str = "CT"


@dataclass(frozen=True, slots=True)
class Tproxy:
    """TPROXY (mangle PREROUTING): hands the packet to a local socket on ``port`` (``addr``, 0: the
    incoming interface's) and sets the mark; with no such socket the kernel drops it."""
    port: int
    addr: int = 0
    mark: int = 0
    mask: int = 0


@dataclass(frozen=True, slots=True)
class Netmap:
    """NETMAP ``--to NET/MASK``: the network part of the address is replaced, the host part kept
    (the destination in PREROUTING/OUTPUT, the source in POSTROUTING/INPUT)."""
    network: int
    mask: int


@dataclass(frozen=True, slots=True)
class Nfqueue:
    """NFQUEUE/QUEUE: a userspace program decides; ``bypass`` accepts when none listens."""
    num: int = 0
    bypass: bool = False


@dataclass(frozen=True, slots=True)
class UnknownTarget:
    """A target we do not model (only with ``--lenient``)."""
    name: str


Target = Union[Verdict, Reject, Jump, Dnat, Snat, Masquerade, Redirect, SetMark, NoOp, SetTtl, ConnMark,
               NoTrack, Tproxy, Nfqueue, Netmap, UnknownTarget]


# ---------------------------------------------------------------- structure
@dataclass(frozen=True, slots=True)
class Rule:
    """One ``-A`` line: its matches (in order), its target, and where it came from."""
    table: str
    chain: str
    index: int          # 1-based position in the chain, as `iptables -L --line-numbers`
    source: str
    line: int
    text: str
    matches: tuple[Match, ...]
    target: Target | None

    def location(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(frozen=True, slots=True)
class Chain:
    """A chain: ``policy`` is ACCEPT/DROP for built-ins and None for user chains."""
    name: str
    policy: str | None
    rules: tuple[Rule, ...]
    line: int = 0
    declaration: str = ""

    @property
    def builtin(self) -> bool:
        return self.policy is not None


@dataclass(frozen=True, slots=True)
class Table:
    """One ``*table`` section (several sections of one table are merged by the parser)."""
    name: str
    chains: dict[str, Chain] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ruleset:
    """A node's iptables state: the four tables (missing ones are empty, built-ins ACCEPT)."""
    source: str
    tables: dict[str, Table]
    warnings: tuple[str, ...] = ()

    def rule_count(self) -> int:
        return sum(len(c.rules) for t in self.tables.values() for c in t.chains.values())


def _reduce_by_fields(obj) -> tuple:
    """Pickle a model object as ``(class, field values)``: loading calls the class, which is 2x
    faster than the slotted dataclass's default state restore (the model cache loads ~1M)."""
    return type(obj), tuple(getattr(obj, name) for name in type(obj).__match_args__)


MODEL_CLASSES: frozenset[type] = frozenset(
    obj for obj in list(globals().values())
    if isinstance(obj, type) and getattr(obj, "__dataclass_fields__", None) is not None
    and obj.__module__ == __name__)
for _cls in MODEL_CLASSES:
    if _cls.__match_args__ == tuple(_cls.__dataclass_fields__):    # every field positional, in order
        _cls.__reduce__ = _reduce_by_fields
