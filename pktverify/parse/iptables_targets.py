"""The ``-j`` builders: one function per target extension, from its options to a model target.

A builder takes the target's name, its options as ``(option, values, invert)`` in rule
order and the rule's protocol; :func:`.iptables_table.build_target` has already refused
a negated option and a ``-g`` to anything but a chain or verdict.  Targets that do not
change the packet's path (logging, checksums, classes) are :func:`noop` with a note
saying what they do.  Each builder is registered, with its options, in
:mod:`.iptables_table`.
"""

from __future__ import annotations

from ..model import rules as m
from ..model.packet import SCTP, TCP, UDP
from . import iptables_values as v
from .iptables_kit import (
    RuleSyntaxError,
    TargetBuilder,
    TargetOptions,
    checked,
    network,
    uint,
    uint_range,
)

__all__ = ["verdict", "reject", "log", "nflog", "mark", "dnat", "snat", "masquerade", "redirect", "noop",
           "set_target", "tcpmss", "ttl", "connmark", "notrack", "ct", "tproxy", "netmap", "nfqueue"]



def _by_name(opts: TargetOptions) -> dict[str, list[str]]:
    return {opt: vals for opt, vals, _inv in opts}


def verdict(name: str, opts: TargetOptions, proto: int | None) -> m.Verdict:
    """ACCEPT, DROP, RETURN."""
    return m.Verdict(name)


def reject(name: str, opts: TargetOptions, proto: int | None) -> m.Reject:
    """REJECT with an ICMP error or a TCP reset."""
    kind = _by_name(opts).get("--reject-with", ["icmp-port-unreachable"])[0]
    if kind not in v.REJECT_TYPES:
        raise RuleSyntaxError(f"unknown --reject-with {kind!r} (valid: {', '.join(sorted(set(v.REJECT_TYPES.values())))})")
    if v.REJECT_TYPES[kind] == "tcp-reset" and proto != TCP:
        raise RuleSyntaxError("--reject-with tcp-reset needs -p tcp")
    return m.Reject(v.REJECT_TYPES[kind])


_LOG_LEVELS = {"emerg", "panic", "alert", "crit", "err", "error", "warn", "warning", "notice", "info", "debug"}
# NFLOG's numeric options and their ranges (libxt_NFLOG: XTTYPE_UINT16 / XTTYPE_UINT32).
_NFLOG_NUMBERS = {"--nflog-group": 0xFFFF, "--nflog-threshold": 0xFFFF, "--nflog-range": 0xFFFFFFFF,
                  "--nflog-size": 0xFFFFFFFF}


def log(name: str, opts: TargetOptions, proto: int | None) -> m.NoOp:
    """LOG: refuses the levels iptables refuses; the packet goes on."""
    level = _by_name(opts).get("--log-level", ["4"])[0]
    if level.lower() not in _LOG_LEVELS:
        uint(level, "--log-level", 7)
    return m.NoOp(name)


def nflog(name: str, opts: TargetOptions, proto: int | None) -> m.NoOp:
    """NFLOG: refuses the numbers iptables refuses; the packet goes on."""
    o = _by_name(opts)
    for opt, limit in _NFLOG_NUMBERS.items():
        if opt in o:
            uint(o[opt][0], opt, limit)
    return m.NoOp(name)


def mark(name: str, opts: TargetOptions, proto: int | None) -> m.SetMark:
    """MARK: set, and, or, xor the packet's mark."""
    if len(opts) != 1:
        raise RuleSyntaxError("MARK needs exactly one of --set-xmark, --set-mark, --or-mark, --and-mark, --xor-mark")
    opt, vals, _inv = opts[0]
    value, mask = checked(v.parse_mark, vals[0])
    full = 0xFFFFFFFF
    if opt == "--set-xmark":
        return m.SetMark(value, mask)
    if opt == "--set-mark":
        return m.SetMark(value, mask | value)
    if opt == "--and-mark":
        return m.SetMark(0, ~value & full)
    if opt == "--or-mark":
        return m.SetMark(value, value)
    return m.SetMark(value, 0)  # --xor-mark


def dnat(name: str, opts: TargetOptions, proto: int | None) -> m.Dnat:
    """DNAT --to-destination."""
    o = _by_name(opts)
    if "--to-destination" not in o:
        raise RuleSyntaxError("DNAT needs --to-destination")
    al, ah, pl, ph = checked(lambda t: v.parse_nat_range(t, need_addr=False), o["--to-destination"][0])
    if pl is not None and proto not in (TCP, UDP, SCTP):
        raise RuleSyntaxError("DNAT to a port needs -p tcp, udp or sctp")
    return m.Dnat(al, ah, pl, ph, "--random" in o, "--persistent" in o)


def snat(name: str, opts: TargetOptions, proto: int | None) -> m.Snat:
    """SNAT --to-source."""
    o = _by_name(opts)
    if "--to-source" not in o:
        raise RuleSyntaxError("SNAT needs --to-source")
    al, ah, pl, ph = checked(lambda t: v.parse_nat_range(t, need_addr=True), o["--to-source"][0])
    if pl is not None and proto not in (TCP, UDP, SCTP):
        raise RuleSyntaxError("SNAT to a port needs -p tcp, udp or sctp")
    return m.Snat(al, ah, pl, ph, "--random" in o, "--random-fully" in o, "--persistent" in o)


def _to_ports(name: str, o: dict[str, list[str]], proto: int | None) -> tuple[int | None, int | None]:
    if "--to-ports" not in o:
        return None, None
    if proto not in (TCP, UDP, SCTP):
        raise RuleSyntaxError(f"{name} --to-ports needs -p tcp, udp or sctp")
    return checked(lambda t: v.parse_port_range(t, "-"), o["--to-ports"][0])


def masquerade(name: str, opts: TargetOptions, proto: int | None) -> m.Masquerade:
    """MASQUERADE: SNAT to the outgoing interface's address."""
    o = _by_name(opts)
    pl, ph = _to_ports(name, o, proto)
    return m.Masquerade(pl, ph, "--random" in o, "--random-fully" in o)


def redirect(name: str, opts: TargetOptions, proto: int | None) -> m.Redirect:
    """REDIRECT: DNAT to the node itself."""
    o = _by_name(opts)
    pl, ph = _to_ports(name, o, proto)
    return m.Redirect(pl, ph, "--random" in o)


def noop(note: str) -> TargetBuilder:
    """The builder of a target that leaves the packet's path alone; ``note`` says what it does."""
    def build(name: str, opts: TargetOptions, proto: int | None) -> m.NoOp:
        return m.NoOp(name, note)
    return build


def set_target(name: str, opts: TargetOptions, proto: int | None) -> m.NoOp:
    """SET: adds to or removes from an ipset (later packets, not this walk, see the change)."""
    if not ({"--add-set", "--del-set", "--map-set"} & set(_by_name(opts))):
        raise RuleSyntaxError("SET needs --add-set, --del-set or --map-set")
    return m.NoOp(name, "adds to or removes from an ipset (later packets, not this walk, see the change)")


def tcpmss(name: str, opts: TargetOptions, proto: int | None) -> m.NoOp:
    """TCPMSS: rewrites the SYN's MSS option."""
    if proto != TCP:
        raise RuleSyntaxError("TCPMSS needs -p tcp")
    return m.NoOp(name, "rewrites the SYN's MSS option")


def ttl(name: str, opts: TargetOptions, proto: int | None) -> m.SetTtl:
    """TTL: set, decrement or increment the IP TTL."""
    o = _by_name(opts)
    if len(o) != 1:
        raise RuleSyntaxError("TTL needs exactly one of --ttl-set, --ttl-dec, --ttl-inc")
    (opt, (value,)), = o.items()
    n = uint(value, opt, 255)
    if opt != "--ttl-set" and n == 0:
        raise RuleSyntaxError(f"{opt} 0 does nothing (iptables refuses it)")
    return m.SetTtl(opt[6:], n)


def connmark(name: str, opts: TargetOptions, proto: int | None) -> m.ConnMark:
    """CONNMARK: set the connection's mark, or save or restore it from the packet's."""
    o = _by_name(opts)
    ops = [k for k in o if k not in ("--nfmask", "--ctmask", "--mask")]
    if len(ops) != 1:
        raise RuleSyntaxError("CONNMARK needs exactly one of --set-xmark, --set-mark, --save-mark, "
                              "--restore-mark, --and-mark, --or-mark, --xor-mark")
    op = ops[0]
    full = 0xFFFFFFFF
    if op in ("--save-mark", "--restore-mark"):
        mask = uint(o["--mask"][0], "--mask") if "--mask" in o else None
        nfmask = mask if mask is not None else uint(o.get("--nfmask", ["0xffffffff"])[0], "--nfmask")
        ctmask = mask if mask is not None else uint(o.get("--ctmask", ["0xffffffff"])[0], "--ctmask")
        return m.ConnMark("save" if op == "--save-mark" else "restore", nfmask=nfmask, ctmask=ctmask)
    value, mask = checked(v.parse_mark, o[op][0]) if op in ("--set-xmark", "--set-mark") else (uint(o[op][0], op), full)
    if op == "--set-xmark":
        return m.ConnMark("set", value, mask)
    if op == "--set-mark":
        return m.ConnMark("set", value, mask | value)
    if op == "--and-mark":
        return m.ConnMark("set", 0, ~value & full)
    if op == "--or-mark":
        return m.ConnMark("set", value, value)
    return m.ConnMark("set", value, 0)


def notrack(name: str, opts: TargetOptions, proto: int | None) -> m.NoTrack:
    """NOTRACK: the connection is not tracked."""
    return m.NoTrack(name)


def ct(name: str, opts: TargetOptions, proto: int | None) -> m.NoTrack | m.NoOp:
    """CT: --notrack, or a zone, helper or events (not modelled)."""
    o = _by_name(opts)
    if "--notrack" in o:
        if len(o) > 1:
            raise RuleSyntaxError("CT --notrack takes no other option")
        return m.NoTrack(name)
    return m.NoOp("CT", "sets the connection's zone, helper or events (not modelled)")


def tproxy(name: str, opts: TargetOptions, proto: int | None) -> m.Tproxy:
    """TPROXY: deliver to a local socket without rewriting the destination."""
    o = _by_name(opts)
    if "--on-port" not in o:
        raise RuleSyntaxError("TPROXY needs --on-port")
    if proto not in (TCP, UDP):
        raise RuleSyntaxError("TPROXY needs -p tcp or -p udp")
    port = uint(o["--on-port"][0], "--on-port", 0xFFFF)
    mark_value, mask = checked(v.parse_mark, o["--tproxy-mark"][0]) if "--tproxy-mark" in o else (0, 0)
    addr = checked(v.parse_addr, o["--on-ip"][0]) if "--on-ip" in o else 0
    return m.Tproxy(port, addr, mark_value, mask)


def netmap(name: str, opts: TargetOptions, proto: int | None) -> m.Netmap:
    """NETMAP: map a network one to one."""
    o = _by_name(opts)
    if "--to" not in o:
        raise RuleSyntaxError("NETMAP needs --to ADDRESS[/MASK]")
    net, mask = network(o["--to"][0])
    return m.Netmap(net, mask)


def nfqueue(name: str, opts: TargetOptions, proto: int | None) -> m.Nfqueue:
    """NFQUEUE and QUEUE: hand the packet to userspace."""
    o = _by_name(opts)
    num = uint(o.get("--queue-num", ["0"])[0], "--queue-num", 0xFFFF)
    if "--queue-balance" in o:
        uint_range(o["--queue-balance"][0], "--queue-balance", 0xFFFF)
    return m.Nfqueue(num, "--queue-bypass" in o)
