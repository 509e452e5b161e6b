"""The matches of an iptables rule as immutable data: one record per ``-m`` module or option.

What a match *means* for a packet lives in ``pktverify.eval.matchers``; the rules, chains and
tables that hold them are :mod:`.rules` (which names these records too, so ``rules.X`` reaches
every record of a rule set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

__all__ = [
    "AddrMatch", "ProtoMatch", "IfaceMatch", "PortMatch", "MultiportMatch", "TcpFlagsMatch", "CommentMatch",
    "AddrTypeMatch", "RandomMatch", "NthMatch", "MarkMatch", "CtStateMatch", "IpRangeMatch", "IcmpTypeMatch",
    "RecentMatch", "UnknownMatch", "FactMatch", "MaybeMatch", "FixedMatch", "TimeMatch", "LengthMatch",
    "RpFilterMatch", "PhysdevMatch", "OwnerMatch", "SetMatch",
    "Match",
]


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
