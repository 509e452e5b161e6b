"""The ``-m`` builders for iptables' own match modules (kube-proxy's set and a few more).

``tcp``/``udp``/``sctp`` ports and flags, ``multiport``, ``comment``, ``addrtype``,
``statistic``, ``mark``, ``conntrack``/``state``, ``iprange``, ``icmp`` and ``recent``;
each builder takes a :class:`~.iptables_kit.MatchModule` and the rule's protocol and
returns the model matches (registered in :mod:`.iptables_table`).
"""

from __future__ import annotations

from ..model import rules as m
from ..model.packet import ICMP, SCTP, TCP, UDP
from . import iptables_values as v
from .iptables_kit import MatchModule, RuleSyntaxError, checked, network, uint, uint_range

__all__ = ["ports", "multiport", "comment", "addrtype", "statistic", "mark", "ctstate", "iprange", "icmp",
           "recent", "conntrack_extra"]

CT_STATUS_BITS = {"EXPECTED": 1, "SEEN_REPLY": 2, "ASSURED": 4, "CONFIRMED": 8}


def ports(module: MatchModule, proto: int | None) -> list[object]:
    """``-m tcp|udp|sctp``: ports, and TCP's flags and options."""
    needed = {"tcp": TCP, "udp": UDP, "sctp": SCTP}[module.name]
    if proto != needed:
        raise RuleSyntaxError(f"-m {module.name} needs -p {module.name} in the same rule")
    out: list[object] = []
    for opt, vals, inv in module.opts:
        if opt in ("--sport", "--source-port", "--dport", "--destination-port"):
            low, high = checked(v.parse_port_range, vals[0])
            out.append(m.PortMatch("sport" if "s" == opt[2] else "dport", low, high, inv))
        elif opt == "--syn":
            out.append(m.TcpFlagsMatch(0x17, 0x02, inv))
        elif opt == "--tcp-flags":
            out.append(m.TcpFlagsMatch(checked(v.parse_tcp_flag_list, vals[0]),
                                       checked(v.parse_tcp_flag_list, vals[1]), inv))
        elif opt == "--tcp-option":
            uint(vals[0], "--tcp-option", 255)
            out.append(m.MaybeMatch("tcp", "which TCP options a packet carries depends on the sender"))
    return out


def multiport(module: MatchModule, proto: int | None) -> list[object]:
    """``-m multiport``: up to 15 ports or ranges."""
    if proto not in (TCP, UDP, SCTP):
        raise RuleSyntaxError("-m multiport needs -p tcp, udp or sctp")
    out: list[object] = []
    for opt, vals, inv in module.opts:
        field_name = {"--dports": "dport", "--destination-ports": "dport", "--sports": "sport",
                      "--source-ports": "sport", "--ports": "either"}[opt]
        ranges = tuple(checked(v.parse_port_range, part) for part in vals[0].split(","))
        if sum(1 if lo == hi else 2 for lo, hi in ranges) > 15:
            raise RuleSyntaxError("multiport takes at most 15 ports (a range counts as two)")
        out.append(m.MultiportMatch(field_name, ranges, inv))
    if not out:
        raise RuleSyntaxError("-m multiport needs --dports, --sports or --ports")
    return out


def comment(module: MatchModule, proto: int | None) -> list[object]:
    """``-m comment`` (the planner shares the usual one-comment case without calling this)."""
    if any(inv for _opt, _vals, inv in module.opts):
        raise RuleSyntaxError("--comment cannot be negated with '!'")
    return [m.CommentMatch(vals[0]) for _opt, vals, _inv in module.opts]


def addrtype(module: MatchModule, proto: int | None) -> list[object]:
    """``-m addrtype``: the source's or destination's address type on this node."""
    opts = {opt: (vals, inv) for opt, vals, inv in module.opts}
    limit = "in" if "--limit-iface-in" in opts else "out" if "--limit-iface-out" in opts else None
    if "--limit-iface-in" in opts and "--limit-iface-out" in opts:
        raise RuleSyntaxError("addrtype: --limit-iface-in and --limit-iface-out exclude each other")
    out: list[object] = []
    for opt, fld in (("--src-type", "src"), ("--dst-type", "dst")):
        if opt in opts:
            vals, inv = opts[opt]
            types = checked(lambda t: v.parse_name_list(t, v.ADDRTYPES, "address type"), vals[0])
            out.append(m.AddrTypeMatch(fld, types, inv, limit))
    if not out:
        raise RuleSyntaxError("-m addrtype needs --src-type or --dst-type")
    return out


def statistic(module: MatchModule, proto: int | None) -> list[object]:
    """``-m statistic``: random (a probability) or nth (a counter)."""
    opts = {opt: (vals, inv) for opt, vals, inv in module.opts}
    mode = opts.get("--mode", ([""], False))[0][0]
    invert = any(inv for _o, _v, inv in module.opts)
    if mode == "random":
        if "--probability" not in opts:
            raise RuleSyntaxError("statistic --mode random needs --probability")
        return [m.RandomMatch(checked(v.parse_probability, opts["--probability"][0][0]), invert)]
    if mode == "nth":
        if "--every" not in opts:
            raise RuleSyntaxError("statistic --mode nth needs --every")
        every = int(checked(v.parse_port, opts["--every"][0][0]))
        packet = int(checked(v.parse_port, opts.get("--packet", (["0"], False))[0][0]))
        if every < 1 or packet >= every:
            raise RuleSyntaxError("statistic nth needs --every >= 1 and 0 <= --packet < --every")
        return [m.NthMatch(every, packet, invert)]
    raise RuleSyntaxError(f"statistic --mode {mode!r} is not supported (use random or nth)")


def mark(module: MatchModule, proto: int | None) -> list[object]:
    """``-m mark``: the packet's firewall mark."""
    out: list[object] = []
    for _opt, vals, inv in module.opts:
        value, mask = checked(v.parse_mark, vals[0])
        out.append(m.MarkMatch(value & mask, mask, inv))
    return out


def ctstate(module: MatchModule, proto: int | None) -> list[object]:
    """``-m state`` and ``-m conntrack`` (whose other options :func:`conntrack_extra` reads)."""
    allowed = v.CTSTATES if module.name == "conntrack" else v.CTSTATES - {"SNAT", "DNAT"}
    out: list[object] = []
    for opt, vals, inv in module.opts:
        if opt in ("--ctstate", "--state"):
            out.append(m.CtStateMatch(checked(lambda t: v.parse_name_list(t, allowed, "state"), vals[0]), inv))
    if module.name == "conntrack":
        out += conntrack_extra(module, proto)
    if not out:
        raise RuleSyntaxError(f"-m {module.name} needs {'an option' if module.name == 'conntrack' else '--state'}")
    return out


def conntrack_extra(module: MatchModule, proto: int | None) -> list[object]:
    """``-m conntrack`` options other than --ctstate, as FactMatch/MaybeMatch values."""
    out: list[object] = []
    for opt, vals, inv in module.opts:
        text = vals[0]
        if opt == "--ctstate":
            continue
        if opt == "--ctproto":
            p = checked(v.parse_protocol, text)
            out.append(m.FactMatch("conntrack", "ctproto", ((p, p),), invert=inv))
        elif opt in ("--ctorigsrc", "--ctorigdst", "--ctreplsrc", "--ctrepldst"):
            net, mask = network(text, v.parse_aton_network)   # conntrack asks getaddrinfo
            out.append(m.FactMatch("conntrack", opt[2:], ((net, net),), mask, inv))
        elif opt.endswith("port"):
            low, high = uint_range(text, opt, 0xFFFF)
            out.append(m.FactMatch("conntrack", opt[2:], ((low, high),), invert=inv))
        elif opt == "--ctstatus":
            out.append(_ctstatus(text, inv))
        elif opt == "--ctdir":
            if inv:
                raise RuleSyntaxError('conntrack: option "--ctdir" cannot be inverted')
            if text not in ("ORIGINAL", "REPLY"):
                raise RuleSyntaxError("--ctdir is ORIGINAL or REPLY")
            value = 1 if text == "REPLY" else 0
            out.append(m.FactMatch("conntrack", "ctdir", ((value, value),), invert=inv))
        elif opt == "--ctexpire":
            uint_range(text, opt)
            out.append(m.MaybeMatch("conntrack", "a connection's remaining lifetime is not modelled"))
    return out


def _ctstatus(text: str, inv: bool) -> m.FactMatch:
    bits = 0
    for name in text.upper().split(","):
        if name != "NONE" and name not in CT_STATUS_BITS:
            raise RuleSyntaxError(f"unknown --ctstatus {name!r}")
        bits |= CT_STATUS_BITS.get(name, 0)
    # xt_conntrack tests whether any listed bit is set; NONE lists no bit, so it never
    # matches (and ! --ctstatus NONE always does): checked against the kernel.
    return m.FactMatch("conntrack", "ctstatus_any", ((1, 1),), bits, inv)


def iprange(module: MatchModule, proto: int | None) -> list[object]:
    """``-m iprange``: an address range, either side."""
    out: list[object] = []
    for opt, vals, inv in module.opts:
        low_text, dash, high_text = vals[0].partition("-")
        low = checked(v.parse_xt_addr, low_text)
        high = checked(v.parse_xt_addr, high_text) if dash else low
        if high < low:
            raise RuleSyntaxError(f"iprange {vals[0]!r} has its start after its end")
        out.append(m.IpRangeMatch("src" if opt == "--src-range" else "dst", low, high, inv))
    return out


def icmp(module: MatchModule, proto: int | None) -> list[object]:
    """``-m icmp``: a type, or a type and code range."""
    if proto != ICMP:
        raise RuleSyntaxError("-m icmp needs -p icmp in the same rule")
    out: list[object] = []
    for _opt, vals, inv in module.opts:
        t, lo, hi = checked(v.parse_icmp_type, vals[0])
        out.append(m.IcmpTypeMatch(t, lo, hi, inv))
    return out


def recent(module: MatchModule, proto: int | None) -> list[object]:
    """``-m recent``: one of --set, --rcheck, --update, --remove on a named list."""
    modes = [opt[2:] for opt, _vals, _inv in module.opts if opt in ("--set", "--rcheck", "--update", "--remove")]
    if len(modes) != 1:
        raise RuleSyntaxError("-m recent needs exactly one of --set, --rcheck, --update, --remove")
    name = next((vals[0] for opt, vals, _inv in module.opts if opt == "--name"), "DEFAULT")
    if not 0 < len(name) < 200:
        raise RuleSyntaxError("recent --name must be 1 to 199 characters")
    mask, hitcount = 0xFFFFFFFF, 0
    for opt, vals, _inv in module.opts:
        if opt in ("--seconds", "--hitcount"):
            number = uint(vals[0], opt, 0xFFFFFFFF)
            if opt == "--hitcount":
                hitcount = number
        elif opt == "--mask":
            mask = checked(v.parse_aton_addr, vals[0])    # getaddrinfo: 10.1 is 10.0.0.1
    invert = any(inv for _o, _v, inv in module.opts)
    dest = any(opt == "--rdest" for opt, _v, _i in module.opts)
    return [m.RecentMatch(modes[0], name, invert, dest, mask, hitcount)]
