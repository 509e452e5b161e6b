"""nftables NAT statements (dnat, snat, masquerade, redirect) done as iptables' NAT targets are:
the address and port (a value, a range, a prefix, or looked up in a map: ``dnat to ip daddr
map { ... }``) become the target record, and :mod:`.nat` computes the rewrite as nf_nat does.
A statement whose map holds no element for the packet breaks the rule (no NAT, the next rule).
"""

from __future__ import annotations

from collections.abc import Callable

from ..model import nft as n
from ..model import rules as m
from ..model.addresses import prefix_mask
from . import nat
from .fib import Fib
from .nft_exprs import ABSENT, compile_getter

__all__ = ["compile_nat", "NAT_KINDS"]

NAT_KINDS = frozenset({"DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP"})


def _ends(value: object) -> tuple:
    """(low, high) of an address or port value; (None, None) for none."""
    if value is None:
        return None, None
    if isinstance(value, n.Range):
        return value.low, value.high
    if isinstance(value, n.Prefix):
        return value.addr, value.addr | (~prefix_mask(value.length) & 0xFFFFFFFF)
    return value, value


def _target(kind: str, addr: object, port: object, flags: tuple):
    alo, ahi = _ends(addr)
    plo, phi = _ends(port)
    rnd, fully, persistent = "random" in flags, "fully-random" in flags, "persistent" in flags
    if kind == "dnat":
        return m.Dnat(alo, ahi, plo, phi, rnd, persistent)
    if kind == "snat":
        return m.Snat(alo, ahi, plo, phi, rnd, fully, persistent)
    if kind == "masquerade":
        return m.Masquerade(plo, phi, rnd, fully)
    return m.Redirect(plo, phi, rnd)


def compile_nat(stmt: n.Nat, fib: Fib, sets: dict, bucket: int | None) -> Callable:
    """``fn(st, ctx) -> (kind, NatResult) | None`` (None: a map held nothing for the packet: the
    rule breaks; a NatResult with no packet: the kernel drops it)."""
    addr_get = _value_getter(stmt.addr, fib, sets, bucket)
    port_get = _value_getter(stmt.port, fib, sets, bucket)
    kind, flags = stmt.kind, stmt.flags
    netmap = "netmap" in flags and isinstance(stmt.addr, n.Prefix)

    def apply(st, ctx):
        addr, port = addr_get(st), port_get(st)
        if addr is ABSENT or port is ABSENT:
            return None
        if isinstance(addr, tuple):            # a map's data ``addr . port``
            addr, port = addr[0], addr[1] if len(addr) > 1 else port
        pkt = st.pkt
        if netmap:
            mask = prefix_mask(stmt.addr.length)
            target = m.Netmap(stmt.addr.addr, mask)
            return "NETMAP", nat.apply_netmap(pkt, target, kind == "dnat")
        target = _target(kind, addr, port, flags)
        if kind == "dnat":
            return "DNAT", nat.apply_dnat(pkt, target)
        if kind == "snat":
            return "SNAT", nat.apply_snat(pkt, target)
        if kind == "redirect":
            return "REDIRECT", nat.apply_redirect(pkt, target, fib, st.in_iface)
        return "MASQUERADE", nat.apply_masquerade(pkt, target, fib, st.out_iface, ctx.next_hop if ctx else pkt.dst)
    return apply


def _value_getter(value: object, fib: Fib, sets: dict, bucket: int | None):
    if value is None or isinstance(value, (int, n.Range, n.Prefix)):
        return lambda st: value
    return compile_getter(value, fib, sets, bucket)
