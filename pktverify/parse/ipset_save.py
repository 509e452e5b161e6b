"""``ipset save`` text → :class:`~pktverify.model.ipsets.IpSetDump`.

Reads the ``create NAME TYPE [options]`` and ``add NAME ENTRY [options]`` lines
``ipset save`` prints, for the set types Kubernetes components write:
``hash:ip``, ``hash:net`` (with ``nomatch`` entries), ``hash:ip,port``,
``hash:ip,port,ip``, ``hash:ip,port,net``, ``hash:net,port``, ``hash:net,iface``,
``bitmap:port`` and ``list:set``. IPv6 sets (``family inet6``) are skipped with
a note. Anything else is an error naming ``file:line``.
"""

from __future__ import annotations

from ..errors import InputError
from ..model.addresses import AddressError, parse_ip, parse_network
from ..model.ipsets import IpSet, IpSetDump, SetEntry
from ..model.packet import PROTO_NUMBERS
from .tokens import TokenError, split_args

__all__ = ["parse_ipset_save", "SET_TYPES"]

# Set type -> its dimensions' kinds.
SET_TYPES: dict[str, tuple[str, ...]] = {
    "hash:ip": ("ip",), "hash:net": ("net",), "hash:ip,port": ("ip", "port"),
    "hash:ip,port,ip": ("ip", "port", "ip"), "hash:ip,port,net": ("ip", "port", "net"),
    "hash:net,port": ("net", "port"), "hash:net,iface": ("net", "iface"), "bitmap:port": ("port",),
    "bitmap:ip": ("ip",), "hash:net,net": ("net", "net"), "hash:net,port,net": ("net", "port", "net"),
    "list:set": ("set",),
}
_PORT_PROTOCOLS = {**PROTO_NUMBERS, "udplite": 136}
# ipset's own ICMP names (lib/icmp.c), as ``ipset save`` prints a hash:*,port entry of protocol
# icmp (``icmp:echo-request``; a type/code without a name as ``icmp:8/1``): (type, code).
ICMP_NAMES = {
    "echo-reply": (0, 0), "pong": (0, 0), "network-unreachable": (3, 0), "host-unreachable": (3, 1),
    "protocol-unreachable": (3, 2), "port-unreachable": (3, 3), "fragmentation-needed": (3, 4),
    "source-route-failed": (3, 5), "network-unknown": (3, 6), "host-unknown": (3, 7),
    "network-prohibited": (3, 9), "host-prohibited": (3, 10), "tos-network-unreachable": (3, 11),
    "tos-host-unreachable": (3, 12), "communication-prohibited": (3, 13), "host-precedence-violation": (3, 14),
    "precedence-cutoff": (3, 15), "source-quench": (4, 0), "network-redirect": (5, 0), "host-redirect": (5, 1),
    "tos-network-redirect": (5, 2), "tos-host-redirect": (5, 3), "echo-request": (8, 0), "ping": (8, 0),
    "router-advertisement": (9, 0), "router-solicitation": (10, 0), "ttl-zero-during-transit": (11, 0),
    "ttl-zero-during-reassembly": (11, 1), "ip-header-bad": (12, 0), "required-option-missing": (12, 1),
    "timestamp-request": (13, 0), "timestamp-reply": (14, 0), "address-mask-request": (17, 0),
    "address-mask-reply": (18, 0),
}
_ENTRY_OPTIONS = {"timeout": 1, "packets": 1, "bytes": 1, "comment": 1, "skbmark": 1, "skbprio": 1,
                  "skbqueue": 1, "nomatch": 0}


def parse_ipset_save(text: str, *, source: str = "<ipset save>") -> IpSetDump:
    """Parse ``ipset save`` output; raise InputError naming file:line on anything else."""
    sets: dict[str, IpSet] = {}
    entries: dict[str, list[SetEntry]] = {}
    skipped: list[str] = []
    notes: list[str] = []
    recognised = False
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = split_args(line)
        except TokenError as exc:
            raise InputError(source, lineno, str(exc), line) from None
        if not recognised and words[0] not in ("create", "add", "-N", "-A"):
            raise InputError(source, lineno, "not 'ipset save' output (expected create/add lines)", "")
        recognised = True
        if words[0] in ("create", "-N"):
            if len(words) < 3:
                raise InputError(source, lineno, "create needs a name and a type", line)
            name, kind, opts = words[1], words[2], words[3:]
            if name in sets or name in skipped:
                raise InputError(source, lineno, f"set {name} is created twice", line)
            if "inet6" in opts:
                skipped.append(name)
                notes.append(f"{source}:{lineno}: IPv6 set {name} skipped (pktverify models IPv4)")
                continue
            if kind not in SET_TYPES:
                raise InputError(source, lineno, f"set type {kind!r} is not supported (supported: "
                                 f"{', '.join(SET_TYPES)})", line)
            netmask = 32
            if "netmask" in opts:
                i = opts.index("netmask")
                value = opts[i + 1] if i + 1 < len(opts) else ""
                netmask = int(value) if value.isascii() and value.isdigit() and len(value) <= 2 else -1
                if not 1 <= netmask <= 32:
                    raise InputError(source, lineno, "netmask must be 1-32", line)
            sets[name] = IpSet(name, kind, SET_TYPES[kind], netmask, lineno)
            entries[name] = []
        elif words[0] in ("add", "-A"):
            if len(words) < 3:
                raise InputError(source, lineno, "add needs a set name and an entry", line)
            name = words[1]
            if name in skipped:
                continue
            if name not in sets:
                raise InputError(source, lineno, f"add to set {name}, which is not created before", line)
            entries[name].append(_entry(sets[name], words[2], words[3:], source, lineno, line))
        else:
            raise InputError(source, lineno, "not an 'ipset save' line (create/add)", line)
    for name, s in list(sets.items()):
        sets[name] = IpSet(s.name, s.kind, s.dims, s.netmask, s.line, tuple(entries[name]))
    for s in sets.values():
        if s.kind == "list:set":
            for e in s.entries:
                if e.values[0] not in sets and e.values[0] not in skipped:
                    raise InputError(source, s.line, f"list:set {s.name} holds {e.values[0]}, which is not created", "")
    return IpSetDump(source, sets, tuple(notes))


def _entry(s: IpSet, text: str, opts: list[str], source: str, lineno: int, line: str) -> SetEntry:
    parts = text.split(",")
    if len(parts) != len(s.dims):
        raise InputError(source, lineno, f"an entry of {s.kind} has {len(s.dims)} part(s)", line)
    values: list = []
    try:
        for kind, part in zip(s.dims, parts):
            values.append(_value(kind, part, s.netmask))
    except (AddressError, ValueError) as exc:
        raise InputError(source, lineno, f"bad entry for {s.kind}: {exc}", line) from None
    i = 0
    nomatch = False
    while i < len(opts):
        word = opts[i]
        if word not in _ENTRY_OPTIONS:
            raise InputError(source, lineno, f"unknown entry option {word!r}", line)
        nomatch = nomatch or word == "nomatch"
        i += 1 + _ENTRY_OPTIONS[word]
    return SetEntry(tuple(values), nomatch)


def _icmp(text: str) -> tuple[int, int]:
    """An ICMP entry's (type, code): ipset's name, or TYPE/CODE (each 0-255)."""
    named = ICMP_NAMES.get(text.lower())
    if named is not None:
        return named
    type_text, slash, code_text = text.partition("/")
    if slash and all(t.isascii() and t.isdigit() and len(t) <= 3 and int(t) <= 255 for t in (type_text, code_text)):
        return int(type_text), int(code_text)
    raise ValueError(f"{text!r} is not an ICMP type/code (a name such as echo-request, or TYPE/CODE with each 0-255)")


def _value(kind: str, part: str, netmask: int):
    if kind == "ip":
        if "-" in part or "/" in part:
            raise ValueError(f"{part!r}: ipset save lists single addresses for this type")
        ip = parse_ip(part)
        mask = (0xFFFFFFFF << (32 - netmask)) & 0xFFFFFFFF
        return ip & mask, mask
    if kind == "net":
        network, mask = parse_network(part) if "/" in part else (parse_ip(part), 0xFFFFFFFF)
        return network, mask
    if kind == "port":
        proto_text, sep, port_text = part.rpartition(":")
        proto = _PORT_PROTOCOLS.get(proto_text.lower(), -1) if sep else 6
        if proto < 0:
            raise ValueError(f"unknown protocol {proto_text!r}")
        if proto == PROTO_NUMBERS["icmp"]:
            # The kernel keeps an ICMP entry's type and code where a port would be: type << 8 | code.
            icmp_type, code = _icmp(port_text)
            return proto, icmp_type << 8 | code, icmp_type << 8 | code
        low_text, dash, high_text = port_text.partition("-")
        if not low_text.isascii() or not low_text.isdigit() or (dash and not (high_text.isascii() and high_text.isdigit())) \
                or len(low_text) > 5 or len(high_text) > 5:
            raise ValueError(f"port {port_text!r} is not a number")
        low, high = int(low_text), int(high_text) if dash else int(low_text)
        if high > 65535 or low > high:
            raise ValueError(f"port {port_text!r} is out of range")
        return proto, low, high
    if kind == "iface":
        physdev = part.startswith("physdev:")
        name = part[len("physdev:"):] if physdev else part
        if not name or len(name) > 15:
            raise ValueError(f"interface {part!r} is not valid")
        return physdev, name
    return part   # a member set's name (list:set)
