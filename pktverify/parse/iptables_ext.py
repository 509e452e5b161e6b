"""The match modules and targets real nodes carry beyond kube-proxy's own (issue #10).

CNIs, kube-proxy's IPVS mode, istio, docker and home routers use ``set``,
``physdev``, ``owner``, ``conntrack`` in full, ``connmark``, ``rpfilter``,
``limit``, ``CONNMARK``, ``CT``, ``TPROXY``, ``NFQUEUE`` and more. Each is
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
  ``u32``, ``ipvs``, ``time`` without ``--at``).
"""

from __future__ import annotations

from collections.abc import Callable

from ..model import rules as m
from ..model.packet import TCP, UDP
from . import iptables_values as v

__all__ = ["EXT_MATCH_MODULES", "EXT_MATCH_BUILDERS", "EXT_TARGETS", "build_ext_target"]


class ExtSyntaxError(ValueError):
    """A value the kernel or iptables would refuse."""


def _u(text: str, what: str, limit: int = 0xFFFFFFFF) -> int:
    try:
        return v.c_uint(text, what, limit)
    except ValueError as exc:
        raise ExtSyntaxError(str(exc)) from None


def _range(text: str, what: str, limit: int = 0xFFFFFFFF, sep: str = ":") -> tuple[int, int]:
    low_text, s, high_text = text.partition(sep)
    low = _u(low_text, what, limit) if low_text else 0
    high = (_u(high_text, what, limit) if high_text else limit) if s else low
    if low > high:
        raise ExtSyntaxError(f"{what} range {text!r} has its start after its end")
    return low, high


def _value_mask(text: str, what: str) -> tuple[int, int]:
    value_text, sep, mask_text = text.partition("/")
    value = _u(value_text, what)
    mask = _u(mask_text, f"{what} mask") if sep else 0xFFFFFFFF
    return value & mask, mask


def _addr_net(text: str, parse=None) -> tuple[int, int]:
    try:
        return (parse or v.parse_network_text)(text)
    except ValueError as exc:
        raise ExtSyntaxError(str(exc)) from None


# option -> number of arguments, per module (merged into iptables_rule.MATCH_MODULES)
EXT_MATCH_MODULES: dict[str, dict[str, int]] = {
    "set": {"--match-set": 2, "--set": 2, "--return-nomatch": 0, "--update-counters": 0,
            "--update-subcounters": 0, "--packets-eq": 1, "--packets-lt": 1, "--packets-gt": 1,
            "--bytes-eq": 1, "--bytes-lt": 1, "--bytes-gt": 1},
    "physdev": {"--physdev-in": 1, "--physdev-out": 1, "--physdev-is-in": 0, "--physdev-is-out": 0,
                "--physdev-is-bridged": 0},
    "owner": {"--uid-owner": 1, "--gid-owner": 1, "--socket-exists": 0, "--suppl-groups": 0},
    "limit": {"--limit": 1, "--limit-burst": 1},
    "hashlimit": {"--hashlimit-upto": 1, "--hashlimit-above": 1, "--hashlimit": 1, "--hashlimit-burst": 1,
                  "--hashlimit-mode": 1, "--hashlimit-srcmask": 1, "--hashlimit-dstmask": 1,
                  "--hashlimit-name": 1, "--hashlimit-htable-size": 1, "--hashlimit-htable-max": 1,
                  "--hashlimit-htable-expire": 1, "--hashlimit-htable-gcinterval": 1,
                  "--hashlimit-rate-match": 0, "--hashlimit-rate-interval": 1},
    "connlimit": {"--connlimit-upto": 1, "--connlimit-above": 1, "--connlimit-mask": 1,
                  "--connlimit-saddr": 0, "--connlimit-daddr": 0},
    "quota": {"--quota": 1},
    "connbytes": {"--connbytes": 1, "--connbytes-dir": 1, "--connbytes-mode": 1},
    "pkttype": {"--pkt-type": 1},
    "rpfilter": {"--loose": 0, "--validmark": 0, "--accept-local": 0, "--invert": 0},
    "time": {"--datestart": 1, "--datestop": 1, "--timestart": 1, "--timestop": 1, "--monthdays": 1,
             "--weekdays": 1, "--kerneltz": 0, "--utc": 0, "--localtz": 0, "--contiguous": 0},
    "connmark": {"--mark": 1},
    "length": {"--length": 1},
    "ttl": {"--ttl-eq": 1, "--ttl-lt": 1, "--ttl-gt": 1},
    "tos": {"--tos": 1},
    "dscp": {"--dscp": 1, "--dscp-class": 1},
    "ecn": {"--ecn-tcp-cwr": 0, "--ecn-tcp-ece": 0, "--ecn-ip-ect": 1},
    "tcpmss": {"--mss": 1},
    "helper": {"--helper": 1},
    "policy": {"--dir": 1, "--pol": 1, "--strict": 0, "--reqid": 1, "--spi": 1, "--proto": 1, "--mode": 1,
               "--tunnel-src": 1, "--tunnel-dst": 1, "--next": 0},
    "devgroup": {"--src-group": 1, "--dst-group": 1},
    "ipvs": {"--ipvs": 0, "--vproto": 1, "--vaddr": 1, "--vport": 1, "--vdir": 1, "--vmethod": 1,
             "--vportctl": 1},
    "socket": {"--transparent": 0, "--nowildcard": 0, "--restore-skmark": 0},
    "cgroup": {"--path": 1, "--cgroup": 1},
    "bpf": {"--bytecode": 1, "--object-pinned": 1},
    "u32": {"--u32": 1},
    "mac": {"--mac-source": 1},
    "string": {"--algo": 1, "--from": 1, "--to": 1, "--string": 1, "--hex-string": 1, "--icase": 0},
    "esp": {"--espspi": 1},
    "ah": {"--ahspi": 1},
    "realm": {"--realm": 1},
    "cpu": {"--cpu": 1},
    "osf": {"--genre": 1, "--ttl": 1, "--log": 1},
}

# The conntrack module's options beyond --ctstate (iptables_rule owns the module's entry).
CONNTRACK_OPTIONS: dict[str, int] = {
    "--ctstate": 1, "--ctproto": 1, "--ctorigsrc": 1, "--ctorigdst": 1, "--ctreplsrc": 1, "--ctrepldst": 1,
    "--ctorigsrcport": 1, "--ctorigdstport": 1, "--ctreplsrcport": 1, "--ctrepldstport": 1,
    "--ctstatus": 1, "--ctexpire": 1, "--ctdir": 1}

CT_STATUS_BITS = {"EXPECTED": 1, "SEEN_REPLY": 2, "ASSURED": 4, "CONFIRMED": 8}
_PKTTYPES = {"unicast": 0, "host": 0, "broadcast": 1, "multicast": 2}
_DSCP_CLASSES = {**{f"CS{i}": i * 8 for i in range(8)}, "BE": 0, "EF": 46,
                 **{f"AF{c}{d}": c * 8 + d * 2 for c in range(1, 5) for d in range(1, 4)}}
_MAYBE = {
    "socket": "whether a local socket takes this packet is not in any dump",
    "cgroup": "the sending process's cgroup is not in any dump",
    "bpf": "the BPF program's answer is not evaluated",
    "u32": "u32 reads packet bytes pktverify does not model",
    "ipvs": "IPVS is not modelled yet (its virtual services are not in iptables-save)",
    "mac": "link-layer addresses are not in the dumps",
    "string": "packet payload is not modelled",
    "esp": "IPsec is not modelled", "ah": "IPsec is not modelled",
    "realm": "route realms are not in the dumps",
    "cpu": "the CPU that handles the packet is not known",
    "osf": "the sender's OS fingerprint is not modelled",
}


def _opts(module) -> dict[str, tuple[list[str], bool]]:
    return {opt: (vals, inv) for opt, vals, inv in module.opts}


def _one_invert(module) -> bool:
    return any(inv for _o, _v, inv in module.opts)


def _set(module, proto) -> list:
    o = _opts(module)
    spec = o.get("--match-set") or o.get("--set")
    if spec is None:
        raise ExtSyntaxError("-m set needs --match-set NAME src|dst[,src|dst...]")
    (name, flags), invert = spec
    dirs = []
    for flag in flags.split(","):
        if flag not in ("src", "dst"):
            raise ExtSyntaxError(f"--match-set flag {flag!r} is not src or dst")
        dirs.append(flag == "src")
    if not 1 <= len(dirs) <= 6:
        raise ExtSyntaxError("--match-set takes 1 to 6 src/dst flags")
    counters = " ".join(f"{opt} {vals[0]}" for opt, (vals, _inv) in o.items() if opt.startswith(("--packets", "--bytes")))
    return [m.SetMatch(name, tuple(dirs), invert, "--return-nomatch" in o, counters)]


def _physdev(module, proto) -> list:
    o = _opts(module)
    if not o:
        raise ExtSyntaxError("-m physdev needs at least one option")

    def port(opt):
        if opt not in o:
            return None
        (name,), inv = o[opt]
        return (name[:-1], True, inv) if name.endswith("+") else (name, False, inv)

    def flag(opt):
        return o[opt][1] if opt in o else None
    return [m.PhysdevMatch(port("--physdev-in"), port("--physdev-out"), flag("--physdev-is-in"),
                           flag("--physdev-is-out"), flag("--physdev-is-bridged"))]


def _owner(module, proto) -> list:
    o = _opts(module)
    if not o:
        raise ExtSyntaxError("-m owner needs --uid-owner, --gid-owner or --socket-exists")

    def ids(opt):
        if opt not in o:
            return None
        (text,), inv = o[opt]
        low, high = _range(text, opt, sep="-")
        return low, high, inv
    for opt in o:
        if opt in ("--uid-owner", "--gid-owner") and not _is_number_range(o[opt][0][0]):
            raise ExtSyntaxError(f"{opt} {o[opt][0][0]!r}: give the numeric id (names are not resolved)")
    return [m.OwnerMatch(ids("--uid-owner"), ids("--gid-owner"), o["--socket-exists"][1] if "--socket-exists" in o else None)]


def _is_number_range(text: str) -> bool:
    return all(part.isascii() and part.isdigit() for part in text.split("-") if part) and bool(text)


def _rate(text: str, what: str) -> None:
    number, _, unit = text.partition("/")
    if not (number.isascii() and number.isdigit()) or int(number) == 0:
        raise ExtSyntaxError(f"{what} {text!r} is not a rate such as 10/second")
    if unit and unit not in ("second", "sec", "s", "minute", "min", "m", "hour", "h", "day", "d"):
        raise ExtSyntaxError(f"{what} {text!r}: unknown time unit {unit!r}")


def _limit(module, proto) -> list:
    o = _opts(module)
    _rate(o.get("--limit", (["3/hour"], False))[0][0], "--limit")
    burst = _u(o.get("--limit-burst", (["5"], False))[0][0], "--limit-burst", 10000)
    if burst == 0:
        raise ExtSyntaxError("--limit-burst must be at least 1")
    return [m.FixedMatch("limit", not _one_invert(module),
                         "limit: the first packet of a fresh flow finds the bucket full", burst)]


def _hashlimit(module, proto) -> list:
    o = _opts(module)
    if "--hashlimit-name" not in o:
        raise ExtSyntaxError("-m hashlimit needs --hashlimit-name")
    above = "--hashlimit-above" in o
    rate = (o.get("--hashlimit-above") or o.get("--hashlimit-upto") or o.get("--hashlimit"))
    if rate is None:
        raise ExtSyntaxError("-m hashlimit needs --hashlimit-upto or --hashlimit-above")
    number = rate[0][0].split("/")[0].rstrip("kmgbKMGB")
    if not (number.isascii() and number.isdigit()):
        raise ExtSyntaxError(f"--hashlimit rate {rate[0][0]!r} is not a rate such as 10/second or 1mb/s")
    return [m.FixedMatch("hashlimit", not above, "hashlimit: the first packet of a fresh flow is within any rate")]


def _connlimit(module, proto) -> list:
    o = _opts(module)
    # xt_connlimit counts this connection too: a fresh flow in an empty table counts 1.
    if "--connlimit-above" in o:
        n = _u(o["--connlimit-above"][0][0], "--connlimit-above")
        hit = 1 > n
    elif "--connlimit-upto" in o:
        n = _u(o["--connlimit-upto"][0][0], "--connlimit-upto")
        hit = 1 <= n
    else:
        raise ExtSyntaxError("-m connlimit needs --connlimit-upto or --connlimit-above")
    return [m.FixedMatch("connlimit", hit != _one_invert(module),
                         "connlimit: a fresh flow is the only connection counted (1)")]


def _quota(module, proto) -> list:
    o = _opts(module)
    if "--quota" not in o:
        raise ExtSyntaxError("-m quota needs --quota BYTES")
    quota = _u(o["--quota"][0][0], "--quota", 2**64 - 1)
    # A full quota holds the first packet when it has room for it (a SYN is at most 60 bytes).
    return [m.FixedMatch("quota", (quota >= 60) != o["--quota"][1],
                         "quota: a fresh quota counter, the first packet")]


def _connbytes(module, proto) -> list:
    o = _opts(module)
    for opt in ("--connbytes", "--connbytes-dir", "--connbytes-mode"):
        if opt not in o:
            raise ExtSyntaxError(f"-m connbytes needs {opt}")
    low, high = _range(o["--connbytes"][0][0], "--connbytes", 2**64 - 1)
    mode, direction = o["--connbytes-mode"][0][0], o["--connbytes-dir"][0][0]
    if mode not in ("packets", "bytes", "avgpkt") or direction not in ("original", "reply", "both"):
        raise ExtSyntaxError("--connbytes-mode is packets|bytes|avgpkt and --connbytes-dir original|reply|both")
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


def _pkttype(module, proto) -> list:
    (text,), inv = _opts(module)["--pkt-type"]
    if text not in _PKTTYPES:
        raise ExtSyntaxError(f"--pkt-type {text!r} is not unicast, broadcast or multicast")
    value = _PKTTYPES[text]
    return [m.FactMatch("pkttype", "pkttype", ((value, value),), invert=inv)]


def _rpfilter(module, proto) -> list:
    o = _opts(module)
    return [m.RpFilterMatch("--loose" in o, "--validmark" in o, "--accept-local" in o, "--invert" in o)]


_WEEKDAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}


def _time(module, proto) -> list:
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
            raise ExtSyntaxError(f"{opt} {text!r} is not a date (YYYY-MM-DD[Thh:mm[:ss]])") from None
        return int(value.replace(tzinfo=dt.timezone.utc).timestamp())

    def daytime(opt: str, default: int) -> int:
        if opt not in o:
            return default
        parts = o[opt][0][0].split(":")
        if not 2 <= len(parts) <= 3 or not all(p.isascii() and p.isdigit() for p in parts):
            raise ExtSyntaxError(f"{opt} {o[opt][0][0]!r} is not a time (hh:mm[:ss])")
        h, mi, sec = (int(p) for p in (parts + ["0"])[:3])
        if h > 23 or mi > 59 or sec > 59:
            raise ExtSyntaxError(f"{opt} {o[opt][0][0]!r} is out of range")
        return h * 3600 + mi * 60 + sec

    def days(opt: str, names: dict | None, high: int, default: int) -> int:
        if opt not in o:
            return default
        (text,), inv = o[opt]
        bits = 0
        for word in text.split(","):
            value = names.get(word.lower()[:3]) if names and not word.isdigit() else (int(word) if word.isdigit() else None)
            if value is None or not 1 <= value <= high:
                raise ExtSyntaxError(f"{opt}: {word!r} is not a day")
            bits |= 1 << value
        return (default & ~bits) if inv else bits

    return [m.TimeMatch(date("--datestart", 0), date("--datestop", 2**31 - 1), daytime("--timestart", 0),
                        daytime("--timestop", 86399), days("--weekdays", _WEEKDAYS, 7, 0xFE),
                        days("--monthdays", None, 31, 0xFFFFFFFE), "--contiguous" in o, "--kerneltz" in o)]


def _connmark(module, proto) -> list:
    (text,), inv = _opts(module)["--mark"]
    value, mask = _value_mask(text, "connmark")
    return [m.FactMatch("connmark", "ctmark", ((value, value),), mask, inv)]


def _length(module, proto) -> list:
    (text,), inv = _opts(module)["--length"]
    low, high = _range(text, "--length", 0xFFFF)
    return [m.LengthMatch(low, high, inv)]


def _ttl(module, proto) -> list:
    out = []
    for opt, (vals, inv) in _opts(module).items():
        if inv and opt != "--ttl-eq":
            raise ExtSyntaxError(f"ttl: option {opt} cannot be inverted (write the other comparison)")
        n = _u(vals[0], opt, 255)
        ranges = {"--ttl-eq": ((n, n),), "--ttl-lt": ((0, n - 1),) if n else (), "--ttl-gt": ((n + 1, 255),)}[opt]
        out.append(m.FactMatch("ttl", "ttl", ranges, invert=inv))
    return out


def _tos(module, proto) -> list:
    (text,), inv = _opts(module)["--tos"]
    value, mask = _value_mask(text, "--tos") if not text[:1].isalpha() else (0, 0xFF)
    return [m.FactMatch("tos", "tos", ((value, value),), mask & 0xFF, inv)]


def _dscp(module, proto) -> list:
    o = _opts(module)
    if "--dscp-class" in o:
        (text,), inv = o["--dscp-class"]
        if text.upper() not in _DSCP_CLASSES:
            raise ExtSyntaxError(f"unknown --dscp-class {text!r}")
        value = _DSCP_CLASSES[text.upper()]
    else:
        (text,), inv = o["--dscp"]
        value = _u(text, "--dscp", 63)
    return [m.FactMatch("dscp", "dscp", ((value, value),), invert=inv)]


def _ecn(module, proto) -> list:
    out = []
    for opt, (vals, inv) in _opts(module).items():
        if opt == "--ecn-ip-ect":
            n = _u(vals[0], opt, 3)
            out.append(m.FactMatch("ecn", "ecn", ((n, n),), invert=inv))
        else:
            if proto != TCP:
                raise ExtSyntaxError(f"{opt} needs -p tcp")
            bit = 0x80 if opt == "--ecn-tcp-cwr" else 0x40
            out.append(m.FactMatch("ecn", "tcp_flags", ((bit, bit),), bit, inv))
    return out


def _tcpmss(module, proto) -> list:
    if proto != TCP:
        raise ExtSyntaxError("-m tcpmss needs -p tcp")
    _range(_opts(module)["--mss"][0][0], "--mss", 0xFFFF)
    return [m.MaybeMatch("tcpmss", "the SYN's MSS option depends on the sender")]


def _helper(module, proto) -> list:
    (name,), inv = _opts(module)["--helper"]
    # A fresh connection has no helper unless CT --helper gave it one (not modelled: say so).
    return [m.FixedMatch("helper", inv, f"helper {name!r}: fresh connections have no conntrack helper")]


def _policy(module, proto) -> list:
    o = _opts(module)
    if "--dir" not in o or "--pol" not in o:
        raise ExtSyntaxError("-m policy needs --dir in|out and --pol none|ipsec")
    pol = o["--pol"][0][0]
    if pol not in ("none", "ipsec") or o["--dir"][0][0] not in ("in", "out"):
        raise ExtSyntaxError("-m policy: --dir in|out, --pol none|ipsec")
    direction = o["--dir"][0][0]
    return [m.FixedMatch(f"policy --dir {direction}", pol == "none",
                         "policy: no IPsec policy applies (none are modelled)")]


def _devgroup(module, proto) -> list:
    out = []
    for opt, (vals, inv) in _opts(module).items():
        value, mask = _value_mask(vals[0], opt)
        out.append(m.FactMatch("devgroup", "in_group" if opt == "--src-group" else "out_group",
                               ((value, value),), mask, inv))
    return out


def _maybe(module, proto) -> list:
    return [m.MaybeMatch(module.name, _MAYBE[module.name])]


EXT_MATCH_BUILDERS: dict[str, Callable] = {
    "set": _set, "physdev": _physdev, "owner": _owner, "limit": _limit, "hashlimit": _hashlimit,
    "connlimit": _connlimit, "quota": _quota, "connbytes": _connbytes, "pkttype": _pkttype,
    "rpfilter": _rpfilter, "time": _time, "connmark": _connmark, "length": _length, "ttl": _ttl, "tos": _tos,
    "dscp": _dscp, "ecn": _ecn, "tcpmss": _tcpmss, "helper": _helper, "policy": _policy, "devgroup": _devgroup,
    **{name: _maybe for name in _MAYBE},
}


def conntrack_extra(module, proto) -> list:
    """``-m conntrack`` options other than --ctstate, as FactMatch/MaybeMatch values."""
    out = []
    for opt, vals, inv in module.opts:
        text = vals[0]
        if opt == "--ctstate":
            continue
        if opt == "--ctproto":
            try:
                p = v.parse_protocol(text)
            except ValueError as exc:
                raise ExtSyntaxError(str(exc)) from None
            out.append(m.FactMatch("conntrack", "ctproto", ((p, p),), invert=inv))
        elif opt in ("--ctorigsrc", "--ctorigdst", "--ctreplsrc", "--ctrepldst"):
            net, mask = _addr_net(text, v.parse_aton_network)   # conntrack asks getaddrinfo
            out.append(m.FactMatch("conntrack", opt[2:], ((net, net),), mask, inv))
        elif opt.endswith("port"):
            low, high = _range(text, opt, 0xFFFF)
            out.append(m.FactMatch("conntrack", opt[2:], ((low, high),), invert=inv))
        elif opt == "--ctstatus":
            bits = 0
            names = text.upper().split(",")
            for name in names:
                if name != "NONE" and name not in CT_STATUS_BITS:
                    raise ExtSyntaxError(f"unknown --ctstatus {name!r}")
                bits |= CT_STATUS_BITS.get(name, 0)
            # xt_conntrack tests whether any listed bit is set; NONE lists no bit, so it never
            # matches (and ! --ctstatus NONE always does): checked against the kernel.
            out.append(m.FactMatch("conntrack", "ctstatus_any", ((1, 1),), bits, inv))
        elif opt == "--ctdir":
            if inv:
                raise ExtSyntaxError('conntrack: option "--ctdir" cannot be inverted')
            if text not in ("ORIGINAL", "REPLY"):
                raise ExtSyntaxError("--ctdir is ORIGINAL or REPLY")
            value = 1 if text == "REPLY" else 0
            out.append(m.FactMatch("conntrack", "ctdir", ((value, value),), invert=inv))
        elif opt == "--ctexpire":
            _range(text, opt)
            out.append(m.MaybeMatch("conntrack", "a connection's remaining lifetime is not modelled"))
    return out


# Targets: option -> number of arguments (merged into iptables_rule.TARGETS).
EXT_TARGETS: dict[str, dict[str, int]] = {
    "CONNMARK": {"--set-xmark": 1, "--set-mark": 1, "--save-mark": 0, "--restore-mark": 0, "--and-mark": 1,
                 "--or-mark": 1, "--xor-mark": 1, "--nfmask": 1, "--ctmask": 1, "--mask": 1},
    "CT": {"--notrack": 0, "--zone": 1, "--zone-orig": 1, "--zone-reply": 1, "--helper": 1, "--ctevents": 1,
           "--expevents": 1, "--timeout": 1},
    "NOTRACK": {},
    "TPROXY": {"--on-port": 1, "--on-ip": 1, "--tproxy-mark": 1},
    "CHECKSUM": {"--checksum-fill": 0},
    "TCPMSS": {"--set-mss": 1, "--clamp-mss-to-pmtu": 0},
    "TTL": {"--ttl-set": 1, "--ttl-dec": 1, "--ttl-inc": 1},
    "DSCP": {"--set-dscp": 1, "--set-dscp-class": 1},
    "TOS": {"--set-tos": 1, "--and-tos": 1, "--or-tos": 1, "--xor-tos": 1},
    "ECN": {"--ecn-tcp-remove": 0},
    "CLASSIFY": {"--set-class": 1},
    "TRACE": {},
    "AUDIT": {"--type": 1},
    "SET": {"--add-set": 2, "--del-set": 2, "--map-set": 2, "--exist": 0, "--timeout": 1, "--map-mark": 0,
            "--map-prio": 0, "--map-queue": 0},
    "SECMARK": {"--selctx": 1},
    "CONNSECMARK": {"--save": 0, "--restore": 0},
    "NFQUEUE": {"--queue-num": 1, "--queue-balance": 1, "--queue-bypass": 0, "--fail-open": 0, "--queue-cpu-fanout": 0},
    "QUEUE": {},
    "IDLETIMER": {"--timeout": 1, "--label": 1, "--alarm": 0},
    "TCPOPTSTRIP": {"--strip-options": 1},
    "TEE": {"--gateway": 1, "--oif": 1},
    "LED": {"--led-trigger-id": 1, "--led-delay": 1, "--led-always-blink": 0},
    "RATEEST": {"--rateest-name": 1, "--rateest-interval": 1, "--rateest-ewmalog": 1},
    "ULOG": {"--ulog-nlgroup": 1, "--ulog-prefix": 1, "--ulog-cprange": 1, "--ulog-qthreshold": 1},
    "NETMAP": {"--to": 1},
}

_NOOP_NOTES = {
    "CHECKSUM": "fills in the checksum", "TCPMSS": "rewrites the SYN's MSS option", "DSCP": "rewrites DSCP",
    "TOS": "rewrites TOS", "ECN": "clears ECN bits", "CLASSIFY": "sets the traffic-control class",
    "TRACE": "marks the packet for tracing", "AUDIT": "writes an audit record", "SECMARK": "sets a security mark",
    "CONNSECMARK": "copies the security mark", "IDLETIMER": "restarts a timer", "TCPOPTSTRIP": "strips TCP options",
    "TEE": "sends a copy to another host (the original goes on)", "LED": "blinks an LED",
    "RATEEST": "counts the packet for a rate estimator",
    "SET": "adds to or removes from an ipset (later packets, not this walk, see the change)",
    "ULOG": "logs to userspace (the pre-3.17 netlink logger)",
}


def build_ext_target(name: str, opts: list, proto: int | None):
    """The model target for one of EXT_TARGETS (``opts``: [(option, values, inverted)])."""
    o = {opt: vals for opt, vals, _inv in opts}
    if name in _NOOP_NOTES:
        if name == "SET" and not ({"--add-set", "--del-set", "--map-set"} & set(o)):
            raise ExtSyntaxError("SET needs --add-set, --del-set or --map-set")
        if name == "TCPMSS" and proto != TCP:
            raise ExtSyntaxError("TCPMSS needs -p tcp")
        return m.NoOp(name, _NOOP_NOTES[name])
    if name == "TTL":
        if len(o) != 1:
            raise ExtSyntaxError("TTL needs exactly one of --ttl-set, --ttl-dec, --ttl-inc")
        (opt, (value,)), = o.items()
        n = _u(value, opt, 255)
        if opt != "--ttl-set" and n == 0:
            raise ExtSyntaxError(f"{opt} 0 does nothing (iptables refuses it)")
        return m.SetTtl(opt[6:], n)
    if name == "CONNMARK":
        return _connmark_target(o)
    if name == "NOTRACK" or (name == "CT" and "--notrack" in o):
        if name == "CT" and len(o) > 1:
            raise ExtSyntaxError("CT --notrack takes no other option")
        return m.NoTrack(name)
    if name == "CT":
        return m.NoOp("CT", "sets the connection's zone, helper or events (not modelled)")
    if name == "TPROXY":
        if "--on-port" not in o:
            raise ExtSyntaxError("TPROXY needs --on-port")
        if proto not in (TCP, UDP):
            raise ExtSyntaxError("TPROXY needs -p tcp or -p udp")
        port = _u(o["--on-port"][0], "--on-port", 0xFFFF)
        try:
            mark, mask = v.parse_mark(o["--tproxy-mark"][0]) if "--tproxy-mark" in o else (0, 0)
            addr = v.parse_addr(o["--on-ip"][0]) if "--on-ip" in o else 0
        except ValueError as exc:
            raise ExtSyntaxError(str(exc)) from None
        return m.Tproxy(port, addr, mark, mask)
    if name == "NETMAP":
        if "--to" not in o:
            raise ExtSyntaxError("NETMAP needs --to ADDRESS[/MASK]")
        net, mask = _addr_net(o["--to"][0])
        return m.Netmap(net, mask)
    if name in ("NFQUEUE", "QUEUE"):
        num = _u(o.get("--queue-num", ["0"])[0], "--queue-num", 0xFFFF)
        if "--queue-balance" in o:
            _range(o["--queue-balance"][0], "--queue-balance", 0xFFFF)
        return m.Nfqueue(num, "--queue-bypass" in o)
    raise ExtSyntaxError(f"target {name} is not modelled")


def _connmark_target(o: dict) -> m.ConnMark:
    ops = [k for k in o if k not in ("--nfmask", "--ctmask", "--mask")]
    if len(ops) != 1:
        raise ExtSyntaxError("CONNMARK needs exactly one of --set-xmark, --set-mark, --save-mark, "
                             "--restore-mark, --and-mark, --or-mark, --xor-mark")
    op = ops[0]
    full = 0xFFFFFFFF
    if op in ("--save-mark", "--restore-mark"):
        mask = _u(o["--mask"][0], "--mask") if "--mask" in o else None
        nfmask = mask if mask is not None else _u(o.get("--nfmask", ["0xffffffff"])[0], "--nfmask")
        ctmask = mask if mask is not None else _u(o.get("--ctmask", ["0xffffffff"])[0], "--ctmask")
        return m.ConnMark("save" if op == "--save-mark" else "restore", nfmask=nfmask, ctmask=ctmask)
    try:
        value, mask = v.parse_mark(o[op][0]) if op in ("--set-xmark", "--set-mark") else (_u(o[op][0], op), full)
    except ValueError as exc:
        raise ExtSyntaxError(str(exc)) from None
    if op == "--set-xmark":
        return m.ConnMark("set", value, mask)
    if op == "--set-mark":
        return m.ConnMark("set", value, mask | value)
    if op == "--and-mark":
        return m.ConnMark("set", 0, ~value & full)
    if op == "--or-mark":
        return m.ConnMark("set", value, value)
    return m.ConnMark("set", value, 0)

