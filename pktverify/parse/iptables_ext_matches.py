"""The ``-m`` builders for the match modules real nodes carry beyond kube-proxy's own.

CNIs, kube-proxy's IPVS mode, istio, docker and home routers use ``set``,
``physdev``, ``owner``, ``connmark``, ``rpfilter``, ``limit`` and more. Each is
parsed here into a model value with the kernel's meaning (read from the
``xt_*.c`` sources):

* exact where the packet, its connection or the node's dumps decide it
  (``FactMatch``, ``LengthMatch``, ``RpFilterMatch``, ``PhysdevMatch``,
  ``OwnerMatch``, ``SetMatch``);
* fixed for the first packet of a fresh flow where the answer depends on
  counters that start empty (``FixedMatch``: ``limit``, ``hashlimit``,
  ``connlimit``, ``quota``, ``connbytes``), the step says so;
* "may match" (``MaybeMatch``, inexact outcomes, no --lenient needed) where
  it depends on something no dump holds (``socket``, ``cgroup``, ``bpf``,
  ``u32``, ``ipvs``, ``time`` without ``--at``): :func:`maybe`.

Each builder is registered, with its options, in :mod:`.iptables_table`.
"""

from __future__ import annotations

from ..model import rules as m
from ..model.packet import TCP
from .iptables_kit import (MatchBuilder, MatchModule, RuleSyntaxError, any_inverted, required, uint, uint_range,
                           value_mask)
from .iptables_kit import options_by_name as _opts

__all__ = ["set_match", "physdev", "owner", "limit", "hashlimit", "connlimit", "quota", "connbytes", "pkttype",
           "rpfilter", "time", "connmark", "length", "ttl", "tos", "dscp", "ecn", "tcpmss", "helper", "policy",
           "devgroup", "maybe"]

_PKTTYPES = {"unicast": 0, "host": 0, "broadcast": 1, "multicast": 2}
_DSCP_CLASSES = {**{f"CS{i}": i * 8 for i in range(8)}, "BE": 0, "EF": 46,
                 **{f"AF{c}{d}": c * 8 + d * 2 for c in range(1, 5) for d in range(1, 4)}}


def set_match(module: MatchModule, proto: int | None) -> list:
    """``-m set``: membership of an ipset (the node's ipset dump decides)."""
    o = _opts(module)
    spec = o.get("--match-set") or o.get("--set")
    if spec is None:
        raise RuleSyntaxError("-m set needs --match-set NAME src|dst[,src|dst...]")
    (name, flags), invert = spec
    dirs = []
    for flag in flags.split(","):
        if flag not in ("src", "dst"):
            raise RuleSyntaxError(f"--match-set flag {flag!r} is not src or dst")
        dirs.append(flag == "src")
    if not 1 <= len(dirs) <= 6:
        raise RuleSyntaxError("--match-set takes 1 to 6 src/dst flags")
    counters = " ".join(f"{opt} {vals[0]}" for opt, (vals, _inv) in o.items() if opt.startswith(("--packets", "--bytes")))
    return [m.SetMatch(name, tuple(dirs), invert, "--return-nomatch" in o, counters)]


def physdev(module: MatchModule, proto: int | None) -> list:
    """``-m physdev``: the bridge ports a bridged packet enters and leaves by."""
    o = _opts(module)
    if not o:
        raise RuleSyntaxError("-m physdev needs at least one option")

    def port(opt):
        if opt not in o:
            return None
        (name,), inv = o[opt]
        return (name[:-1], True, inv) if name.endswith("+") else (name, False, inv)

    def flag(opt):
        return o[opt][1] if opt in o else None
    return [m.PhysdevMatch(port("--physdev-in"), port("--physdev-out"), flag("--physdev-is-in"),
                           flag("--physdev-is-out"), flag("--physdev-is-bridged"))]


def owner(module: MatchModule, proto: int | None) -> list:
    """``-m owner``: the sending socket's uid, gid (numeric only)."""
    o = _opts(module)
    if not o:
        raise RuleSyntaxError("-m owner needs --uid-owner, --gid-owner or --socket-exists")

    def ids(opt):
        if opt not in o:
            return None
        (text,), inv = o[opt]
        low, high = uint_range(text, opt, sep="-")
        return low, high, inv
    for opt in o:
        if opt in ("--uid-owner", "--gid-owner") and not _is_number_range(o[opt][0][0]):
            raise RuleSyntaxError(f"{opt} {o[opt][0][0]!r}: give the numeric id (names are not resolved)")
    return [m.OwnerMatch(ids("--uid-owner"), ids("--gid-owner"), o["--socket-exists"][1] if "--socket-exists" in o else None)]


def _is_number_range(text: str) -> bool:
    return all(part.isascii() and part.isdigit() for part in text.split("-") if part) and bool(text)


def _rate(text: str, what: str) -> None:
    number, _, unit = text.partition("/")
    if not (number.isascii() and number.isdigit()) or int(number) == 0:
        raise RuleSyntaxError(f"{what} {text!r} is not a rate such as 10/second")
    if unit and unit not in ("second", "sec", "s", "minute", "min", "m", "hour", "h", "day", "d"):
        raise RuleSyntaxError(f"{what} {text!r}: unknown time unit {unit!r}")


def limit(module: MatchModule, proto: int | None) -> list:
    """``-m limit``: the first packet of a fresh flow finds the bucket full."""
    o = _opts(module)
    _rate(o.get("--limit", (["3/hour"], False))[0][0], "--limit")
    burst = uint(o.get("--limit-burst", (["5"], False))[0][0], "--limit-burst", 10000)
    if burst == 0:
        raise RuleSyntaxError("--limit-burst must be at least 1")
    return [m.FixedMatch("limit", not any_inverted(module),
                         "limit: the first packet of a fresh flow finds the bucket full", burst)]


def hashlimit(module: MatchModule, proto: int | None) -> list:
    """``-m hashlimit``: the first packet of a fresh flow is within any rate."""
    o = _opts(module)
    if "--hashlimit-name" not in o:
        raise RuleSyntaxError("-m hashlimit needs --hashlimit-name")
    above = "--hashlimit-above" in o
    rate = (o.get("--hashlimit-above") or o.get("--hashlimit-upto") or o.get("--hashlimit"))
    if rate is None:
        raise RuleSyntaxError("-m hashlimit needs --hashlimit-upto or --hashlimit-above")
    number = rate[0][0].split("/")[0].rstrip("kmgbKMGB")
    if not (number.isascii() and number.isdigit()):
        raise RuleSyntaxError(f"--hashlimit rate {rate[0][0]!r} is not a rate such as 10/second or 1mb/s")
    return [m.FixedMatch("hashlimit", not above, "hashlimit: the first packet of a fresh flow is within any rate")]


def connlimit(module: MatchModule, proto: int | None) -> list:
    """``-m connlimit``: a fresh flow is the only connection counted."""
    o = _opts(module)
    # xt_connlimit counts this connection too: a fresh flow in an empty table counts 1.
    if "--connlimit-above" in o:
        n = uint(o["--connlimit-above"][0][0], "--connlimit-above")
        hit = 1 > n
    elif "--connlimit-upto" in o:
        n = uint(o["--connlimit-upto"][0][0], "--connlimit-upto")
        hit = 1 <= n
    else:
        raise RuleSyntaxError("-m connlimit needs --connlimit-upto or --connlimit-above")
    return [m.FixedMatch("connlimit", hit != any_inverted(module),
                         "connlimit: a fresh flow is the only connection counted (1)")]


def quota(module: MatchModule, proto: int | None) -> list:
    """``-m quota``: a fresh quota counter."""
    o = _opts(module)
    if "--quota" not in o:
        raise RuleSyntaxError("-m quota needs --quota BYTES")
    quota = uint(o["--quota"][0][0], "--quota", 2**64 - 1)
    # A full quota holds the first packet when it has room for it (a SYN is at most 60 bytes).
    return [m.FixedMatch("quota", (quota >= 60) != o["--quota"][1],
                         "quota: a fresh quota counter, the first packet")]


def connbytes(module: MatchModule, proto: int | None) -> list:
    """``-m connbytes``: counters of a fresh flow's first packet."""
    o = _opts(module)
    for opt in ("--connbytes", "--connbytes-dir", "--connbytes-mode"):
        if opt not in o:
            raise RuleSyntaxError(f"-m connbytes needs {opt}")
    low, high = uint_range(o["--connbytes"][0][0], "--connbytes", 2**64 - 1)
    mode, direction = o["--connbytes-mode"][0][0], o["--connbytes-dir"][0][0]
    if mode not in ("packets", "bytes", "avgpkt") or direction not in ("original", "reply", "both"):
        raise RuleSyntaxError("--connbytes-mode is packets|bytes|avgpkt and --connbytes-dir original|reply|both")
    # Conntrack counts a packet before the tables see it: the first packet makes 1 packet.
    if mode == "packets":
        count = {"original": 1, "reply": 0, "both": 1}[direction]
        hit = low <= count <= high
        return [m.FixedMatch("connbytes", hit != o["--connbytes"][1],
                             f"connbytes: the first packet of a fresh flow, {count} packet(s) counted")]
    if direction == "reply":
        return [m.FixedMatch("connbytes", (low <= 0 <= high) != o["--connbytes"][1],
                             "connbytes: a fresh flow has no reply bytes")]
    return [m.MaybeMatch("connbytes", "the first packet's size in bytes is not modelled")]


def pkttype(module: MatchModule, proto: int | None) -> list:
    """``-m pkttype``: unicast, broadcast or multicast."""
    (text,), inv = required(module, "--pkt-type")
    if text not in _PKTTYPES:
        raise RuleSyntaxError(f"--pkt-type {text!r} is not unicast, broadcast or multicast")
    value = _PKTTYPES[text]
    return [m.FactMatch("pkttype", "pkttype", ((value, value),), invert=inv)]


def rpfilter(module: MatchModule, proto: int | None) -> list:
    """``-m rpfilter``: a reverse-path lookup in the node's routes."""
    o = _opts(module)
    return [m.RpFilterMatch("--loose" in o, "--validmark" in o, "--accept-local" in o, "--invert" in o)]


_WEEKDAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}


def time(module: MatchModule, proto: int | None) -> list:
    """libxt_time's options as xt_time reads them (UTC unless --kerneltz)."""
    import datetime as dt

    o = _opts(module)

    def date(opt: str, default: int) -> int:
        if opt not in o:
            return default
        text = o[opt][0][0]
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise RuleSyntaxError(f"{opt} {text!r} is not a date (YYYY-MM-DD[Thh:mm[:ss]])") from None
        return int(value.replace(tzinfo=dt.timezone.utc).timestamp())

    def daytime(opt: str, default: int) -> int:
        if opt not in o:
            return default
        parts = o[opt][0][0].split(":")
        if not 2 <= len(parts) <= 3 or not all(p.isascii() and p.isdigit() for p in parts):
            raise RuleSyntaxError(f"{opt} {o[opt][0][0]!r} is not a time (hh:mm[:ss])")
        h, mi, sec = (int(p) for p in (parts + ["0"])[:3])
        if h > 23 or mi > 59 or sec > 59:
            raise RuleSyntaxError(f"{opt} {o[opt][0][0]!r} is out of range")
        return h * 3600 + mi * 60 + sec

    def days(opt: str, names: dict | None, high: int, default: int) -> int:
        if opt not in o:
            return default
        (text,), inv = o[opt]
        bits = 0
        for word in text.split(","):
            value = names.get(word.lower()[:3]) if names and not word.isdigit() else (int(word) if word.isdigit() else None)
            if value is None or not 1 <= value <= high:
                raise RuleSyntaxError(f"{opt}: {word!r} is not a day")
            bits |= 1 << value
        return (default & ~bits) if inv else bits

    return [m.TimeMatch(date("--datestart", 0), date("--datestop", 2**31 - 1), daytime("--timestart", 0),
                        daytime("--timestop", 86399), days("--weekdays", _WEEKDAYS, 7, 0xFE),
                        days("--monthdays", None, 31, 0xFFFFFFFE), "--contiguous" in o, "--kerneltz" in o)]


def connmark(module: MatchModule, proto: int | None) -> list:
    """``-m connmark``: the connection's mark."""
    (text,), inv = required(module, "--mark")
    value, mask = value_mask(text, "connmark")
    return [m.FactMatch("connmark", "ctmark", ((value, value),), mask, inv)]


def length(module: MatchModule, proto: int | None) -> list:
    """``-m length``: the packet's length."""
    (text,), inv = required(module, "--length")
    low, high = uint_range(text, "--length", 0xFFFF)
    return [m.LengthMatch(low, high, inv)]


def ttl(module: MatchModule, proto: int | None) -> list:
    """``-m ttl``: the IP TTL compared with a number."""
    out = []
    for opt, (vals, inv) in _opts(module).items():
        if inv and opt != "--ttl-eq":
            raise RuleSyntaxError(f"ttl: option {opt} cannot be inverted (write the other comparison)")
        n = uint(vals[0], opt, 255)
        ranges = {"--ttl-eq": ((n, n),), "--ttl-lt": ((0, n - 1),) if n else (), "--ttl-gt": ((n + 1, 255),)}[opt]
        out.append(m.FactMatch("ttl", "ttl", ranges, invert=inv))
    return out


def tos(module: MatchModule, proto: int | None) -> list:
    """``-m tos``: the IP TOS byte."""
    (text,), inv = required(module, "--tos")
    value, mask = value_mask(text, "--tos") if not text[:1].isalpha() else (0, 0xFF)
    return [m.FactMatch("tos", "tos", ((value, value),), mask & 0xFF, inv)]


def dscp(module: MatchModule, proto: int | None) -> list:
    """``-m dscp``: the DSCP field, by number or class."""
    o = _opts(module)
    if "--dscp-class" in o:
        (text,), inv = o["--dscp-class"]
        if text.upper() not in _DSCP_CLASSES:
            raise RuleSyntaxError(f"unknown --dscp-class {text!r}")
        value = _DSCP_CLASSES[text.upper()]
    else:
        if "--dscp" not in o:
            raise RuleSyntaxError("DSCP match: Parameter --dscp is required")
        (text,), inv = o["--dscp"]
        value = uint(text, "--dscp", 63)
    return [m.FactMatch("dscp", "dscp", ((value, value),), invert=inv)]


def ecn(module: MatchModule, proto: int | None) -> list:
    """``-m ecn``: ECN bits of the IP header or TCP flags."""
    out = []
    for opt, (vals, inv) in _opts(module).items():
        if opt == "--ecn-ip-ect":
            n = uint(vals[0], opt, 3)
            out.append(m.FactMatch("ecn", "ecn", ((n, n),), invert=inv))
        else:
            if proto != TCP:
                raise RuleSyntaxError(f"{opt} needs -p tcp")
            bit = 0x80 if opt == "--ecn-tcp-cwr" else 0x40
            out.append(m.FactMatch("ecn", "tcp_flags", ((bit, bit),), bit, inv))
    return out


def tcpmss(module: MatchModule, proto: int | None) -> list:
    """``-m tcpmss``: the SYN's MSS option (may match)."""
    if proto != TCP:
        raise RuleSyntaxError("-m tcpmss needs -p tcp")
    uint_range(required(module, "--mss")[0][0], "--mss", 0xFFFF)
    return [m.MaybeMatch("tcpmss", "the SYN's MSS option depends on the sender")]


def helper(module: MatchModule, proto: int | None) -> list:
    """``-m helper``: the connection's conntrack helper (fresh ones have none)."""
    (name,), inv = required(module, "--helper")
    # A fresh connection has no helper unless CT --helper gave it one (not modelled: say so).
    return [m.FixedMatch("helper", inv, f"helper {name!r}: fresh connections have no conntrack helper")]


def policy(module: MatchModule, proto: int | None) -> list:
    """``-m policy``: IPsec policy (none is modelled)."""
    o = _opts(module)
    if "--dir" not in o or "--pol" not in o:
        raise RuleSyntaxError("-m policy needs --dir in|out and --pol none|ipsec")
    pol = o["--pol"][0][0]
    if pol not in ("none", "ipsec") or o["--dir"][0][0] not in ("in", "out"):
        raise RuleSyntaxError("-m policy: --dir in|out, --pol none|ipsec")
    direction = o["--dir"][0][0]
    return [m.FixedMatch(f"policy --dir {direction}", pol == "none",
                         "policy: no IPsec policy applies (none are modelled)")]


def devgroup(module: MatchModule, proto: int | None) -> list:
    """``-m devgroup``: the interfaces' device groups."""
    out = []
    for opt, (vals, inv) in _opts(module).items():
        value, mask = value_mask(vals[0], opt)
        out.append(m.FactMatch("devgroup", "in_group" if opt == "--src-group" else "out_group",
                               ((value, value),), mask, inv))
    return out


def maybe(note: str) -> MatchBuilder:
    """The builder of a module whose answer depends on something no dump holds: "may match", saying why."""
    def build(module: MatchModule, proto: int | None) -> list:
        return [m.MaybeMatch(module.name, note)]
    return build
