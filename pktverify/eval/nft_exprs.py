"""nftables expressions compiled to getters on a branch's state, and matches to tri-state tests.

A getter returns the value the kernel's expression would load into its register, ``None`` when
no dump holds it (the rule is then may-match, as iptables' unknown modules are), or
:data:`ABSENT` when the expression breaks the rule (``tcp dport`` of a UDP packet: the implicit
``meta l4proto tcp`` dependency, which the readers leave out as nft lists rules; ``meta skuid`` of
a packet without a socket); ``iifname``/``iif`` of a locally generated packet (and ``oifname``/``oif``
before routing) is the empty name, as the kernel's ``nft_meta_store_ifname`` loads it, so ``iifname !=
"cni0"`` matches there (Docker 29 DNATs the host's own packets so). A compiled match returns
True, False or None (may-match). ``numgen`` and ``jhash``/``symhash`` are compiled with their
bucket fixed (``bucket``): the walker forks over the buckets (:mod:`.nft_rules`).
"""

from __future__ import annotations

from collections.abc import Callable

from ..model import nft as n
from ..model.addresses import is_multicast, prefix_mask
from ..model.packet import ICMP, SCTP, TCP, UDP
from .fib import Fib
from .nft_sets import ABSENT, SetLookup, compile_lookup, deleted_tag
from .state import CT_DNAT, CT_INVALID, CT_NEW, CT_SNAT, CT_UNTRACKED, WalkState

__all__ = ["ABSENT", "CT_TEMPLATE", "DST_DONE", "NAT_KNOWN", "SRC_DONE", "ZONE_BITS", "ZONE_ORIG", "ZONE_REPLY",
           "ZONE_SHIFT", "Getter", "compile_getter", "compile_match", "has_bucket", "ICMP_TYPES", "ICMP_CODES"]

Getter = Callable[[WalkState], object]

ICMP_TYPES = {"echo-reply": 0, "destination-unreachable": 3, "source-quench": 4, "redirect": 5, "echo-request": 8,
              "router-advertisement": 9, "router-solicitation": 10, "time-exceeded": 11, "parameter-problem": 12,
              "timestamp-request": 13, "timestamp-reply": 14, "info-request": 15, "info-reply": 16,
              "address-mask-request": 17, "address-mask-reply": 18}
ICMP_CODES = {"net-unreachable": 0, "host-unreachable": 1, "prot-unreachable": 2, "port-unreachable": 3,
              "frag-needed": 4, "net-prohibited": 9, "host-prohibited": 10, "admin-prohibited": 13}
_PROTO_OF = {"tcp": TCP, "udp": UDP, "sctp": SCTP, "icmp": ICMP}
# Headers an IPv4 packet never has: nft gives their payload a `meta nfproto ipv6` (or `meta l4proto
# ipv6-icmp`) dependency in inet tables, so the rule breaks (firewalld's inet table is full of them).
_IPV6_ONLY = frozenset({"ip6", "icmpv6"})
_PORTS = frozenset({TCP, UDP, SCTP})
# ``ct zone set`` before conntrack attaches a template to the packet (nft_ct_set_zone_eval): then
# ``ct state`` reads new and every other ct key breaks the rule, as without a connection (kernel lab);
# conntrack makes the connection in the template's zone. The zone rides in ctbits' high bits: the
# template bit, the directions it applies to (NF_CT_ZONE_DIR_ORIG/REPLY), and the 16-bit zone id.
CT_TEMPLATE, ZONE_ORIG, ZONE_REPLY, ZONE_SHIFT = 1 << 8, 1 << 9, 1 << 10, 16
ZONE_BITS = ZONE_ORIG | ZONE_REPLY | (0xFFFF << ZONE_SHIFT)
_NO_CT = CT_INVALID | CT_UNTRACKED | CT_TEMPLATE     # no connection (nf_ct_get gives none, or a template)


def has_bucket(expr: object) -> bool:
    """Whether ``expr`` (or a statement's expression) holds a numgen or hash (a fork point)."""
    t = type(expr)               # the model's records have no subclasses: their types say it
    if t not in _HOLDERS:
        return False
    if t is n.Numgen or t is n.Hash:
        return True
    if t is n.Match or t is n.Vmap or t is n.MapLookup:
        return has_bucket(getattr(expr, "left", None) or getattr(expr, "key", None))
    if t is n.Concat:
        return any(has_bucket(i) for i in expr.items)
    if t is n.Bitwise:
        return has_bucket(expr.expr)
    if t is n.Nat:
        return has_bucket(expr.addr) or has_bucket(expr.port)
    return has_bucket(expr.value)          # Mangle


_HOLDERS = frozenset({n.Numgen, n.Hash, n.Match, n.Vmap, n.MapLookup, n.Concat, n.Bitwise, n.Nat, n.Mangle})


def compile_getter(expr: object, fib: Fib, sets: dict, bucket: int | None = None) -> Getter:
    """The getter of ``expr`` (``sets``: the table's named sets and maps, compiled lazily)."""
    t = type(expr)
    if t is n.Payload:
        return _payload(expr)
    if t is n.Meta:
        return _meta(expr.key, fib)
    if t is n.Ct:
        return _ct(expr)
    if t is n.Fib:
        return _fib(expr, fib)
    if t is n.Numgen or t is n.Hash:
        value = bucket if bucket is not None else expr.offset
        return lambda st: value
    if t is n.Bitwise:
        inner, mask, xor = compile_getter(expr.expr, fib, sets, bucket), expr.mask, expr.xor

        def bitwise(st: WalkState) -> object:
            v = inner(st)
            if type(v) is int:
                return (v & mask) ^ xor
            if type(v) is tuple and v and v[0] == "status":     # unknown bits stay unknown under the mask
                unknown = v[2] & mask
                return ("status", ((v[1] & mask) ^ xor) & ~unknown, unknown)
            return v
        return bitwise
    if t is n.Concat:
        parts = tuple(compile_getter(i, fib, sets, bucket) for i in expr.items)
        if len(parts) == 3:                 # kube-proxy's daddr . l4proto . dport, without a generator
            a, b, c = parts

            def concat3(st: WalkState) -> object:
                vals = (a(st), b(st), c(st))
                return ABSENT if ABSENT in vals else vals
            return concat3

        def concat(st: WalkState) -> object:
            vals = tuple(g(st) for g in parts)
            return ABSENT if ABSENT in vals else vals
        return concat
    if t is n.MapLookup:
        key, lookup = compile_getter(expr.key, fib, sets, bucket), _lookup(expr.data, sets)

        def mapped(st: WalkState) -> object:
            found, data = lookup.find(key(st))
            return data if found else (None if found is None else ABSENT)
        return mapped
    if isinstance(expr, (int, str)):
        return lambda st: expr
    return lambda st: None          # NftUnknown and what no dump holds


def _lookup(data: object, sets: dict) -> SetLookup:
    if isinstance(data, n.SetRef):
        return sets[data.name]
    return compile_lookup(data.elements)


def _payload(p: n.Payload) -> Getter:
    proto, fld = p.protocol, p.field
    if proto in _IPV6_ONLY:
        return lambda st: ABSENT
    if proto == "ip":
        if fld in ("saddr", "daddr", "protocol", "ttl"):
            ix = {"saddr": 1, "daddr": 2, "protocol": 0, "ttl": 8}[fld]
            return lambda st: st.pkt[ix]
        if fld == "version":
            return lambda st: 4
        return lambda st: None               # length, dscp, id, frag-off ...: no dump holds them
    if proto == "th":
        ix = 3 if fld == "sport" else 4 if fld == "dport" else None
        if ix is None:
            return lambda st: None
        return lambda st: st.pkt[ix] if st.pkt.proto in _PORTS else None
    want = _PROTO_OF.get(proto)
    if want is None:
        return lambda st: None
    ix = {"sport": 3, "dport": 4, "flags": 5}.get(fld) if want != ICMP else \
        {"type": 6, "code": 7, "id": 3}.get(fld)
    if ix is None:
        return lambda st: ABSENT if st.pkt.proto != want else None
    return lambda st: st.pkt[ix] if st.pkt.proto == want else ABSENT


def _meta(key: str, fib: Fib) -> Getter:
    if key == "l4proto":
        return lambda st: st.pkt.proto
    if key == "nfproto":
        return lambda st: 2
    if key == "protocol":
        return lambda st: "ip"
    if key == "mark":
        return lambda st: st.mark
    if key in ("iifname", "iif"):          # no device: the kernel loads "" (index 0), the rule goes on
        return lambda st: st.in_iface or ""
    if key in ("oifname", "oif"):
        return lambda st: st.out_iface or ""
    if key in ("skuid", "skgid"):
        ix = 2 if key == "skuid" else 3          # TraceMeta.uid, .gid

        def owner(st: WalkState) -> object:
            meta = st.meta
            if st.in_iface or meta is None or meta[ix] is None:
                return ABSENT
            return meta[ix]
        return owner
    if key == "pkttype":
        def pkttype(st: WalkState) -> object:
            dst = st.pkt.dst
            if not st.in_iface:
                return "host"
            if dst == 0xFFFFFFFF or fib.addr_type(dst) == "BROADCAST":
                return "broadcast"
            return "multicast" if is_multicast(dst) else "host"
        return pkttype
    return lambda st: None


def _ct(ct: n.Ct) -> Getter:
    """ct keys. Without a connection (before conntrack, invalid, untracked) every key but ``state``
    breaks the rule (nft_ct_get_eval), so even ``ct mark != 0x5`` does not match there."""
    key, direction = ct.key, ct.direction
    if key == "state":
        return lambda st: (st.ctbits & 15) | (64 if st.ctbits & CT_UNTRACKED else 0)
    if key == "status":
        return _ct_status
    if key == "mark":
        return lambda st: ABSENT if st.ctbits & _NO_CT else st.ctmark
    if key == "zone":
        return _ct_zone(direction)
    if key == "l3proto":
        return lambda st: ABSENT if st.ctbits & _NO_CT else 2
    if key == "direction":
        return lambda st: ABSENT if st.ctbits & _NO_CT else ("reply" if st.meta is not None and st.meta.reply
                                                              else "original")
    fld = {"ip saddr": 1, "saddr": 1, "ip daddr": 2, "daddr": 2, "protocol": 0, "proto-src": 3,
           "proto-dst": 4}.get(key)
    if fld is None:
        return lambda st: ABSENT if st.ctbits & _NO_CT else None
    if direction == "reply":
        def reply(st: WalkState) -> object:
            if st.ctbits & _NO_CT:
                return ABSENT
            return st.pkt.reversed()[fld] if st.ctbits & CT_NEW else None   # a new one: as NAT made it so far
        return reply

    def original(st: WalkState) -> object:
        if st.ctbits & _NO_CT:
            return ABSENT
        return st.meta.orig[fld] if st.meta is not None else None
    return original


def _ct_zone(direction: str | None) -> Getter:
    """The connection's zone (``nf_ct_zone_id``): the id for a direction the zone applies to, else 0;
    without a direction the id itself."""
    want = ZONE_ORIG if direction == "original" else ZONE_REPLY if direction == "reply" else 0

    def zone(st: WalkState) -> object:
        bits = st.ctbits
        if bits & _NO_CT:
            return ABSENT
        if want and not bits & want:
            return 0
        return bits >> ZONE_SHIFT & 0xFFFF
    return zone


# IPS_SRC_NAT_DONE and IPS_DST_NAT_DONE: set when a new connection passes a NAT hook (translated or a
# null binding, nf_nat_inet_fn). Once any IPv4 nat chain exists (an ip or inet nat chain, the iptables nat
# table) the kernel registers all four NAT hooks, so the bits follow the hook order (kernel lab). The
# walk follows them on ctbits' high bits where the node's dumps tell whether NAT hooks exist
# (:mod:`.nft_hooks`): NAT_KNOWN, and DST_DONE / SRC_DONE once the packet passed that NAT hook.
_NAT_DONE = 128 | 256
NAT_KNOWN, DST_DONE, SRC_DONE = 1 << 11, 1 << 12, 1 << 13


def _ct_status(st: WalkState) -> object:
    """snat/dnat as NAT set them; a known connection is confirmed; whether it has seen a reply
    (seen-reply, assured) only its reply direction says; the NAT-done bits of a new connection as the
    walk followed them, else not known. What is not known goes with the value (``("status", known,
    unknown bits)``), for :func:`_status_test`."""
    bits = st.ctbits
    if bits & _NO_CT:
        return ABSENT
    value = (16 if bits & CT_SNAT else 0) | (32 if bits & CT_DNAT else 0)
    if bits & CT_NEW:
        if bits & NAT_KNOWN:
            return ("status", value | (256 if bits & DST_DONE else 0) | (128 if bits & SRC_DONE else 0), 0)
        return ("status", value, _NAT_DONE)
    if st.meta is not None and st.meta.reply:
        return ("status", value | 8 | 2 | 4, _NAT_DONE)
    return ("status", value | 8, 2 | 4 | _NAT_DONE)


def _fib(f: n.Fib, fib: Fib) -> Getter:
    use_src = "saddr" in f.flags
    iif, oif, mark = "iif" in f.flags, "oif" in f.flags, "mark" in f.flags
    if f.result == "type":
        def addr_type(st: WalkState) -> object:
            dev = (st.in_iface or "lo") if iif else (st.out_iface or None) if oif else None
            return fib.addr_type(st.pkt.src if use_src else st.pkt.dst, dev).lower()
        return addr_type

    def out_dev(st: WalkState) -> object:
        pkt = st.pkt
        addr, other = (pkt.src, pkt.dst) if use_src else (pkt.dst, pkt.src)
        res = fib.lookup(addr, None, other, st.mark if mark else 0, (st.in_iface or "lo") if iif else "lo")
        if res.kind != "unicast" or res.route is None:
            return None if res.kind == "local" else False
        dev = res.route.dev
        if iif and dev != (st.in_iface or "lo"):
            return False
        return dev
    return out_dev


def compile_match(m: n.Match, fib: Fib, sets: dict, bucket: int | None = None) -> Callable[[WalkState], object]:
    """A match as a tri-state test: True, False, or None (no dump says)."""
    if isinstance(m.left, n.Payload) and m.left.protocol in _IPV6_ONLY:
        return lambda st: False              # its right side holds IPv6 values: never compiled
    get = compile_getter(m.left, fib, sets, bucket)
    right, op = m.right, m.op
    if isinstance(right, (n.SetRef, n.AnonSet)):
        lookup = _lookup(right, sets)
        neg, tag = op == "!=", lookup.tag

        def member(st: WalkState) -> object:
            v = get(st)
            if v is ABSENT:
                return False
            if type(v) is tuple and v and v[0] == "status":
                found = _status_member(lookup, v[1], v[2])
                return found if found is None or not neg else not found
            found = lookup.find(v)[0]
            if tag is not None and st.meta is not None and st.meta.recent:
                found = _updated(lookup, tag, v, found, st.meta.recent)
            return found if found is None or not neg else not found
        return member
    if isinstance(m.left, n.Payload) and m.left.protocol == "icmp" and isinstance(right, str):
        right = (ICMP_TYPES if m.left.field == "type" else ICMP_CODES).get(right, right)
    test = _value_test(op, right)

    def match(st: WalkState) -> object:
        v = get(st)
        if v is ABSENT:
            return False
        if v is None:
            return None
        if type(v) is tuple and v and v[0] == "status":
            return _status_test(op, right, v[1], v[2])
        return test(v)
    return match


def _updated(lookup: SetLookup, tag: str, v: object, found: object, recent: frozenset) -> object:
    """A dynamic set's answer for ``v`` after this packet's or an earlier connection's ``add``/``update``
    (found) or ``delete`` (not found: an exact element is gone; one found by another test may be)."""
    if found is False and (tag, v) in recent:
        return True
    if found is True and (deleted_tag(tag), v) in recent:
        try:
            return False if v in lookup.exact else None
        except TypeError:
            return None
    return found


def _status_values(known: int, unknown: int) -> list[int]:
    """Every ct status value the unknown bits allow."""
    bits = [1 << i for i in range(32) if unknown >> i & 1]
    return [known | sum(b for i, b in enumerate(bits) if combo >> i & 1) for combo in range(1 << len(bits))]


def _status_member(lookup, known: int, unknown: int) -> object:
    """A set lookup of a ct status with unknown bits: decided when every allowed value agrees."""
    answers = {lookup.find(v)[0] for v in _status_values(known, unknown)}
    return answers.pop() if len(answers) == 1 else None


def _status_test(op: str, right: object, known: int, unknown: int) -> object:
    """A ct status test where some bits are not known (seen-reply and assured on an original-direction
    packet of a known connection; the NAT-done bits always): decided when every value the unknown
    bits allow gives the same answer, else None (may-match). A flag test (``ct status dnat``) reads
    only its bits; a comparison (``ct status != dnat``) reads the whole value, as the kernel compares
    it: after ``dnat`` the NAT-done bit is set too, so ``!= dnat`` matches (kernel campaign, seed
    20261208)."""
    test = _value_test(op, right)
    answers = {test(v) for v in _status_values(known, unknown)}
    return answers.pop() if len(answers) == 1 else None


def _value_test(op: str, right: object) -> Callable[[object], bool]:
    """``value OP right`` for a right side that is a value, prefix, range or flag set."""
    if op == "in":
        return lambda v: bool(v & right) if type(v) is int else v == right
    if isinstance(right, n.Prefix):
        mask, addr = prefix_mask(right.length), right.addr
        eq = lambda v: type(v) is int and v & mask == addr  # noqa: E731
    elif isinstance(right, n.Range):
        lo, hi = right.low, right.high
        eq = lambda v: type(v) is int and lo <= v <= hi  # noqa: E731
    elif isinstance(right, str) and right.endswith("*") and not right.endswith("\\*"):
        stem = right[:-1]
        eq = lambda v: isinstance(v, str) and v.startswith(stem)  # noqa: E731
    elif isinstance(right, bool):
        eq = lambda v: (v is not False) == right  # noqa: E731
    else:
        eq = right.__eq__ if not isinstance(right, tuple) else (lambda v: v == right)
    if op == "==":
        return lambda v: eq(v) is True
    if op == "!=":
        return lambda v: eq(v) is not True
    if isinstance(right, int):
        return {"<": lambda v: v < right, ">": lambda v: v > right, "<=": lambda v: v <= right,
                ">=": lambda v: v >= right}[op]
    return lambda v: eq(v) is True
