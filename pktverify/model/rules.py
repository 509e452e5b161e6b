"""iptables rule sets as immutable data: matches, targets, rules, chains, tables.

Everything here is a plain value; what a match *means* for a packet lives in
``pktverify.eval``. Every rule remembers the file and line it came from so
that traces and errors can point back to the source. The match records are
:mod:`.matches`; they are named here too, with the targets and the structure, so
that ``rules.X`` reaches every record of a rule set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from .matches import (
    AddrMatch,
    AddrTypeMatch,
    CommentMatch,
    CtStateMatch,
    FactMatch,
    FixedMatch,
    IcmpTypeMatch,
    IfaceMatch,
    IpRangeMatch,
    LengthMatch,
    MarkMatch,
    Match,
    MaybeMatch,
    MultiportMatch,
    NthMatch,
    OwnerMatch,
    PhysdevMatch,
    PortMatch,
    ProtoMatch,
    RandomMatch,
    RecentMatch,
    RpFilterMatch,
    SetMatch,
    TcpFlagsMatch,
    TimeMatch,
    UnknownMatch,
)

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
    and obj.__module__ in (__name__, AddrMatch.__module__))      # the records here and in .matches
for _cls in MODEL_CLASSES:
    if _cls.__match_args__ == tuple(_cls.__dataclass_fields__):    # every field positional, in order
        _cls.__reduce__ = _reduce_by_fields
