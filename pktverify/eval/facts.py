"""What the extension matches read (``FactMatch`` facts, length, rpfilter, physdev, owner, set).

Each ``compile_*`` returns a predicate over a :class:`WalkState`. Exact ones return a
bool; "tri-state" ones may also return None when the answer depends on something no
dump holds — the chain walker then follows both branches and marks them inexact.
The kernel source each follows is named in its docstring.
"""

from __future__ import annotations

from collections.abc import Callable

from ..model import rules as m
from ..model.addresses import is_multicast
from ..model.packet import ICMP, TCP, UDP
from .fib import Fib
from .ipsets import IpSets
from .state import CT_INVALID, CT_UNTRACKED, WalkState

__all__ = ["UNKNOWN_PORT", "compile_fact", "compile_length", "compile_time", "compile_rpfilter", "compile_physdev", "compile_owner",
           "compile_set", "fact_value", "TriPredicate"]

Predicate = Callable[[WalkState], bool]
TriPredicate = Callable[[WalkState], "bool | None"]

# A TCP SYN is 40 to 60 bytes (20 IP + 20 TCP + up to 40 of options: Linux sends 60, others 44-64
# with 40 of options at most): where a length range covers all or none of that, the answer is exact.
_SYN_LENGTHS = (40, 60)
_ANY_LENGTHS = (28, 65535)
_NO_CONNECTION = CT_INVALID | CT_UNTRACKED


def fact_value(fact: str, st: WalkState, fib: Fib) -> int:
    """The number ``fact`` has for the packet in ``st`` (see the table in the README)."""
    pkt, meta = st.pkt, st.meta
    if fact == "ttl":
        return pkt.ttl
    if fact in ("tos", "dscp", "ecn"):
        return 0                                  # pktverify's packets carry TOS 0
    if fact == "tcp_flags":
        return pkt.tcp_flags
    if fact == "ctmark":
        return st.ctmark
    if fact == "pkttype":
        return _pkttype(st, fib)
    if fact in ("in_group", "out_group"):
        return 0                                  # the kernel's default device group
    orig = meta.orig if meta is not None else pkt
    reply = meta.reply if meta is not None else False
    if fact == "ctproto":
        return orig.proto
    if fact == "ctdir":
        return 1 if reply else 0
    if fact in ("ctstatus", "ctstatus_any"):
        return 0b1010 if reply else 0                  # a reply has SEEN_REPLY and CONFIRMED; a new one none
    if fact.startswith("ctorig"):
        return {"ctorigsrc": orig.src, "ctorigdst": orig.dst, "ctorigsrcport": orig.sport,
                "ctorigdstport": orig.dport}[fact]
    # The reply tuple: what a reply must look like now, i.e. the current packet reversed (NAT
    # done so far included); for a packet of the reply direction, the packet itself.
    rep = pkt if reply else pkt.reversed()
    return {"ctreplsrc": rep.src, "ctrepldst": rep.dst, "ctreplsrcport": rep.sport, "ctrepldstport": rep.dport}[fact]


def _pkttype(st: WalkState, fib: Fib) -> int:
    """xt_pkttype: looped-back packets count as broadcast unless multicast; else by address."""
    if is_multicast(st.pkt.dst):
        return 2
    if st.in_iface == "lo":
        return 1
    return 1 if fib.addr_type(st.pkt.dst) == "BROADCAST" else 0


def compile_fact(mt: m.FactMatch, fib: Fib) -> Predicate:
    fact, ranges, mask, inv = mt.fact, mt.ranges, mt.mask, mt.invert
    if fact == "ctmark":
        # xt_connmark: a packet without a connection (raw tables, INVALID, UNTRACKED) matches
        # neither --mark nor ! --mark (found by the kernel campaign, seed 2718281).
        return lambda st: not st.ctbits & _NO_CONNECTION and any(
            lo <= (st.ctmark & mask) <= hi for lo, hi in ranges) != inv
    if fact == "ctstatus_any":
        return lambda st: bool(fact_value(fact, st, fib) & mask) != inv
    return lambda st: any(lo <= (fact_value(fact, st, fib) & mask) <= hi for lo, hi in ranges) != inv


def compile_length(mt: m.LengthMatch, fib: Fib) -> TriPredicate:
    """xt_length: the IP total length. The first packet's size is a range, not a number."""
    lo, hi, inv = mt.low, mt.high, mt.invert

    def pred(st: WalkState) -> bool | None:
        pkt = st.pkt
        if pkt.proto == TCP and pkt.tcp_flags & 0x02:
            low, high = _SYN_LENGTHS
        elif pkt.proto == TCP:
            low, high = 40, 65535
        else:
            low, high = _ANY_LENGTHS if pkt.proto in (UDP, ICMP) else (20, 65535)
        if lo <= low and high <= hi:
            return not inv
        if high < lo or low > hi:
            return inv
        return None
    return pred


def compile_rpfilter(mt: m.RpFilterMatch, fib: Fib) -> Predicate:
    """xt_rpfilter: looped-back packets pass; otherwise a FIB lookup of the source must give a
    unicast route (or local, with --accept-local) through the incoming interface (any, --loose)."""
    loose, accept_local, inv, validmark = mt.loose, mt.accept_local, mt.invert, mt.validmark

    def pred(st: WalkState) -> bool:
        if st.in_iface == "lo":
            return not inv
        pkt = st.pkt
        if (pkt.src >> 24) == 0 and (pkt.dst == 0xFFFFFFFF or (pkt.dst >> 8) == 0xE00000):
            return not inv
        res = fib.lookup(pkt.src, src=pkt.dst, mark=st.mark if validmark else 0)   # iif lo, as xt_rpfilter
        if res.kind not in ("unicast", "local") or (res.kind == "local" and not accept_local):
            return inv
        dev = res.route.dev if res.route is not None else None
        return (loose or dev == st.in_iface) != inv
    return pred


UNKNOWN_PORT = "?"      # a bridge port whose name no input says (a pod's veth in a cluster walk)


def compile_physdev(mt: m.PhysdevMatch, fib: Fib) -> TriPredicate:
    """xt_physdev. A packet that did not cross a bridge port matches only when every option
    given is inverted; one that did (``trace --physdev-in``, or a pod's packet in the cluster
    walk) is tested port by port. A port name nobody knows (:data:`UNKNOWN_PORT`) answers
    ``--physdev-is-*`` exactly and a name test with "may match"."""
    options = [mt.physdev_in, mt.physdev_out, mt.is_in, mt.is_out, mt.is_bridged]
    not_bridged = all((opt[2] if isinstance(opt, tuple) else opt) for opt in options if opt is not None)

    def port_ok(spec, name: str) -> bool | None:
        want, prefix, inv = spec
        if name == UNKNOWN_PORT:
            return None
        hit = bool(name) and (name.startswith(want) if prefix else name == want)
        return hit != inv

    def pred(st: WalkState) -> bool | None:
        meta = st.meta
        if meta is None or not meta.physdev_in:
            return not_bridged
        pin, pout = meta.physdev_in, meta.physdev_out
        if mt.is_bridged is not None and (bool(pout) == mt.is_bridged):
            return False
        if mt.is_in is not None and (bool(pin) == mt.is_in):
            return False
        if mt.is_out is not None and (bool(pout) == mt.is_out):
            return False
        answer: bool | None = True
        for spec, name in ((mt.physdev_in, pin), (mt.physdev_out, pout)):
            if spec is not None:
                ok = port_ok(spec, name)
                if ok is False:
                    return False
                if ok is None:
                    answer = None
        return answer
    return pred


def compile_owner(mt: m.OwnerMatch, fib: Fib) -> Predicate:
    """xt_owner: packets without a local socket (forwarded ones) match only when every option
    given is inverted; locally generated ones carry ``trace --uid/--gid`` (default 0)."""
    specs = [s for s in (mt.uid, mt.gid) if s is not None]
    all_inverted = all(s[2] for s in specs) and (mt.socket_exists is None or mt.socket_exists)

    def pred(st: WalkState) -> bool:
        meta = st.meta
        if meta is None or meta.uid is None or st.in_iface:
            return all_inverted
        if mt.socket_exists is not None and mt.socket_exists:
            return False                           # ! --socket-exists with a socket
        for spec, value in ((mt.uid, meta.uid), (mt.gid, meta.gid)):
            if spec is not None and (spec[0] <= value <= spec[1]) == spec[2]:
                return False
        return True
    return pred


def compile_set(mt: m.SetMatch, fib: Fib, sets: IpSets | None) -> TriPredicate:
    """xt_set: look the packet's fields up in the ipset (``ipset save`` contents). Without the
    contents, or with counter conditions (set element counters are in no dump), it may match."""
    if sets is None or mt.name not in sets.sets or mt.counters:
        return lambda st: None
    inv, dirs, nomatch_ok = mt.invert, mt.dirs, mt.return_nomatch
    lookup = sets.lookup

    def pred(st: WalkState) -> bool:
        found = lookup(mt.name, st.pkt, dirs, st.in_iface, st.out_iface)
        if found is None:             # a nomatch entry
            return nomatch_ok != inv
        return found != inv
    return pred


def compile_time(mt: m.TimeMatch, fib: Fib) -> TriPredicate:
    """xt_time at ``trace --at`` (UTC); without it, or in the kernel's timezone, it may match."""
    import datetime as dt

    def pred(st: WalkState) -> bool | None:
        at = st.meta.at if st.meta is not None else None
        if at is None or mt.kerneltz:
            return None
        if at < mt.date_start or at > mt.date_stop:
            return False
        stamp = at
        seconds = at % 86400
        if mt.day_start < mt.day_stop:
            if seconds < mt.day_start or seconds > mt.day_stop:
                return False
        else:
            if mt.day_start > seconds > mt.day_stop:
                return False
            if mt.contiguous and seconds <= mt.day_stop:
                stamp -= 86400       # the weekday of the day the period started
        day = dt.datetime.fromtimestamp(stamp, dt.timezone.utc)
        if not mt.weekdays & (1 << day.isoweekday()):
            return False
        return bool(mt.monthdays & (1 << day.day))
    return pred
