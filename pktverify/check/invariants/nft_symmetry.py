"""A node's nftables tables with its own address as a placeholder: what node symmetry compares.

:mod:`.node_symmetry` swaps two nodes only when every node's rules are the same once each node's
own address is written as a placeholder (see there). For nft tables that is this module's
:func:`nft_key`: the tables as they are (records compare structurally), except that an IPv4 address
equal to the node's own, in a position typed as an address (a value compared with ``ip saddr`` or
``ip daddr``, a NAT target, an element part of a set or map whose key or data type there is
``ipv4_addr``), becomes ``"own-ip"``. Only typed positions are rewritten: a mark or a port that
happens to equal the address stays a number, so it can never make two nodes look alike.

kube-proxy's nftables mode names a node's own address only in its ``nodeport-ips`` set, and nodes
loaded from generated rulesets share their chains, so the key costs a walk of each distinct chain
and set once (memoized by object).
"""

from __future__ import annotations

from dataclasses import replace

from ...model import nft as n
from .nft_addresses import is_address

__all__ = ["nft_key"]

OWN = "own-ip"
_ADDRESS = ("ipv4_addr",)


def _is_address(expr: object) -> bool:
    """An address, or an address under a mask (its compared value is an address too)."""
    return is_address(expr.expr if type(expr) is n.Bitwise else expr)


def _value(v: object, own: int) -> object:
    """``v`` (a value in an address position) with the own address as the placeholder."""
    kind = type(v)
    if kind is int:
        return OWN if v == own else v
    if kind is n.Range and v.low == own and v.high == own:
        return OWN
    if kind is n.Prefix and v.addr == own and v.length == 32:
        return OWN
    return v


def _element(e: n.Element, key_parts: tuple[bool, ...], data_parts: tuple[bool, ...], own: int) -> n.Element:
    key, data = e.key, e.data
    if any(key_parts):
        key = tuple(_value(v, own) if a else v for v, a in zip(key, key_parts)) if type(key) is tuple \
            else _value(key, own)
    if any(data_parts) and data is not None and type(data) is not n.NftVerdict:
        data = tuple(_value(v, own) if a else v for v, a in zip(data, data_parts)) if type(data) is tuple \
            else _value(data, own)
    return e if key is e.key and data is e.data else replace(e, key=key, data=data)


def _parts(expr: object) -> tuple[bool, ...]:
    items = expr.items if type(expr) is n.Concat else (expr,)
    return tuple(_is_address(i) for i in items)


def _anon(data: object, key_parts: tuple[bool, ...], data_parts: tuple[bool, ...], own: int) -> object:
    if type(data) is not n.AnonSet or not (any(key_parts) or any(data_parts)):
        return data
    elements = tuple(_element(e, key_parts, data_parts, own) for e in data.elements)
    return data if all(a is b for a, b in zip(elements, data.elements)) else n.AnonSet(elements)


def _statement(stmt: object, own: int) -> object:
    kind = type(stmt)
    if kind is n.Match:
        if type(stmt.right) is n.AnonSet:
            right = _anon(stmt.right, _parts(stmt.left), (), own)
        elif _is_address(stmt.left):
            right = _value(stmt.right, own)
        else:
            return stmt
        return stmt if right is stmt.right else replace(stmt, right=right)
    if kind is n.Vmap and type(stmt.data) is n.AnonSet:
        data = _anon(stmt.data, _parts(stmt.key), (), own)
        return stmt if data is stmt.data else replace(stmt, data=data)
    if kind is n.Nat:
        addr = stmt.addr
        if type(addr) is n.MapLookup:
            data = _anon(addr.data, _parts(addr.key), (True,), own)
            addr = addr if data is addr.data else replace(addr, data=data)
        else:
            addr = _value(addr, own)
        return stmt if addr is stmt.addr else replace(stmt, addr=addr)
    return stmt


def _rule_key(rule: n.NftRule, own: int) -> object:
    exprs = tuple(_statement(s, own) for s in rule.exprs)
    return rule if all(a is b for a, b in zip(exprs, rule.exprs)) else (exprs, rule.comment)


def _set_key(s: n.NftSet, own: int) -> object:
    key_parts = tuple(t in _ADDRESS for t in s.key_type)
    data_parts = tuple(t in _ADDRESS for t in (s.data or ()))
    if not (any(key_parts) or any(data_parts)):
        return s
    elements = tuple(_element(e, key_parts, data_parts, own) for e in s.elements)
    return s if all(a is b for a, b in zip(elements, s.elements)) else replace(s, elements=elements)


class _Probe(int):
    """Equals no address, but notes each one it is compared with: :func:`_typed_addresses` runs the
    rewrite with it as the own address to learn which addresses sit in typed positions."""

    seen: set[int]

    def __eq__(self, other: object) -> bool:
        if type(other) is int:
            self.seen.add(other)
        return False

    __hash__ = int.__hash__


def _typed_addresses(obj: object) -> frozenset[int]:
    """The addresses a chain or set holds in typed positions (those a rewrite could replace)."""
    probe = _Probe(-1)
    probe.seen = set()
    if type(obj) is n.NftChain:
        for rule in obj.rules:
            _rule_key(rule, probe)
    else:
        _set_key(obj, probe)
    return frozenset(probe.seen)


class NftKeys:
    """:func:`nft_key` with its chain and set keys memoized by object (nodes share them)."""

    def __init__(self) -> None:
        self._memo: dict[tuple[int, int | None], object] = {}
        self._named: dict[int, frozenset[int]] = {}
        self._keep: list[object] = []        # the memoized objects stay alive, so their ids stay theirs

    def _memoized(self, obj: object, own: int | None, make) -> object:
        """``make(obj, own)``, or ``obj`` itself when it never names ``own`` (the usual case: read
        once per object, whichever node asks)."""
        if own is None:
            return obj
        named = self._named.get(id(obj))
        if named is None:
            self._keep.append(obj)
            named = self._named[id(obj)] = _typed_addresses(obj)
        if own not in named:
            return obj
        key = (id(obj), own)
        if key not in self._memo:
            self._memo[key] = make(obj, own)
        return self._memo[key]

    def chain(self, c: n.NftChain, own: int | None) -> object:
        def make(c: n.NftChain, own: int) -> object:
            rules = tuple(_rule_key(r, own) for r in c.rules)
            return c if all(a is b for a, b in zip(rules, c.rules)) else (replace(c, rules=()), rules)
        return self._memoized(c, own, make)

    def set(self, s: n.NftSet, own: int | None) -> object:
        return self._memoized(s, own, _set_key)

    def key(self, nft: n.NftRuleset | None, own: int | None) -> tuple:
        """The node's nft tables, its own address ``own`` (None: none) as a placeholder."""
        if nft is None:
            return ()
        return tuple((t.family, t.name, t.flowtables, t.objects, tuple(self.chain(c, own) for c in t.chains),
                      tuple(self.set(s, own) for s in (*t.sets, *t.maps))) for t in nft.tables)


def nft_key(nft: n.NftRuleset | None, own: int | None) -> tuple:
    """The node's nft tables with ``own`` as a placeholder (see module); one call, no memo."""
    return NftKeys().key(nft, own)
