"""An nftables ruleset as bytes and back, for the model cache: bounded, typed, model/nft.py's records only.

The iptables entries (:mod:`.model_codec`) are laid out in columns for rules that are flat; an nft
rule is a tree of expressions and statements, so its entry is a table of rows instead, in the same
spirit (JSON of arrays and plain values: ``json.loads`` builds at most what it reads and hashes no
value but strings):

    ["pktverify nft model 1", ROWS, ROOT]

ROWS holds each distinct record and tuple of the ruleset once, children before parents. A row is
``[K, v1, v2, ...]``: K 0 is a tuple (its items), else 1 + the index of the record's class in
:data:`_CLASSES` followed by every one of its fields in order (those that do not compare too:
handles, lines, a rule's text, a counter's numbers). A value is a JSON scalar (null, true, false,
an integer, a string) or ``[i]``, a reference to row i, which must stand before the row that
refers to it: the rows are built in one pass, nothing can refer to itself, and what the encoder
shares stays shared. ROOT is ``[i]``, the :class:`NftRuleset`'s row.

Decoding checks every field against its annotation in model/nft.py while it builds the rows (a
str, an int of at most 129 bits, a bool, None only where optional, a record only of the classes the
field allows, a tuple only of the element types it allows; ``object`` fields take any of these),
and the names the evaluator dispatches on against the few it knows (a verdict, a chain's policy,
type and hook, a match's operator, a NAT kind, a ruleset's form ...). A tuple's element types are
computed once, when its row is built, so a field that refers to a shared tuple is checked in
constant time: work and memory are linear in the entry's size. Anything else raises
:class:`BadEntry`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from itertools import repeat
from typing import Any

from ..bulk import direct_constructor
from ..model import nft as n
from .model_shape import BadEntry, load_entry_json

__all__ = ["encode_nft", "decode_nft"]

_TAG = "pktverify nft model 1"
_INT_LIMIT = 2 ** 129           # IPv6 addresses and masks are 128-bit ints
_NONE = type(None)
_SCALARS = frozenset({str, int, bool, _NONE})

# Every record class of model/nft.py, in a fixed order (a row's class is its index here, from 1).
_CLASSES: tuple[type, ...] = tuple(sorted((cls for cls in vars(n).values()
                                           if isinstance(cls, type) and dataclasses.is_dataclass(cls)
                                           and cls.__module__ == n.__name__), key=lambda c: c.__name__))
_INDEX = {cls: k for k, cls in enumerate(_CLASSES, 1)}
_FIELDS = {cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in _CLASSES}
_ANY = _SCALARS | {tuple} | set(_CLASSES)

# Fields the model annotates loosely (``object``, a bare ``tuple``) whose values the readers build
# of a few kinds only, and the evaluator expects no other: a rule's statements, a match's left side
# (an expression), a map's data (a named or anonymous set), a concatenation's parts.
_EXPRS = typing.get_args(n.Expr)
_STATEMENTS = typing.get_args(n.Statement)
_NARROWED: dict[tuple[type, str], tuple[frozenset, frozenset | None]] = {
    (n.NftRule, "exprs"): (frozenset({tuple}), frozenset(_STATEMENTS)),
    (n.Match, "left"): (frozenset(_EXPRS), None),
    (n.Vmap, "key"): (frozenset(_EXPRS), None),
    (n.Vmap, "data"): (frozenset({n.SetRef, n.AnonSet}), None),
    (n.MapLookup, "key"): (frozenset(_EXPRS), None),
    (n.MapLookup, "data"): (frozenset({n.SetRef, n.AnonSet}), None),
    (n.Bitwise, "expr"): (frozenset(_EXPRS), None),
    (n.Concat, "items"): (frozenset({tuple}), frozenset(_EXPRS)),
}
_CHAIN_HOOKS = frozenset({None, "prerouting", "input", "forward", "output", "postrouting", "ingress", "egress"})
# Fields the evaluator reads as one of a few names: any other value would mean something else.
_NAMES: dict[tuple[type, str], frozenset] = {
    (n.NftRuleset, "form"): frozenset({"json", "text", "script"}),
    (n.NftTable, "family"): frozenset({"ip", "ip6", "inet", "arp", "bridge", "netdev"}),
    (n.NftChain, "type"): frozenset({None, "filter", "nat", "route"}),
    (n.NftChain, "hook"): _CHAIN_HOOKS,
    (n.NftChain, "policy"): frozenset({None, "accept", "drop"}),
    (n.NftVerdict, "kind"): frozenset({"accept", "drop", "return", "continue", "jump", "goto"}),
    (n.Match, "op"): frozenset({"==", "!=", "<", ">", "<=", ">=", "in"}),
    (n.Nat, "kind"): frozenset({"dnat", "snat", "masquerade", "redirect"}),
    (n.Numgen, "mode"): frozenset({"random", "inc"}),
    (n.Hash, "kind"): frozenset({"jhash", "symhash"}),
    (n.SetUpdate, "op"): frozenset({"add", "update", "delete"}),
    (n.Xt, "kind"): frozenset({"match", "target"}),
    (n.Prefix, "length"): frozenset(range(129)),
}


class _Spec:
    """How one field is checked: the types its value may have (``allowed``), for a tuple the
    types its items may have (``items``; None: any), and the names it may hold (``names``)."""

    __slots__ = ("name", "allowed", "items", "names")

    def __init__(self, owner: type, name: str, hint: Any) -> None:
        self.name = name
        self.names = _NAMES.get((owner, name))
        self.allowed, self.items = _NARROWED.get((owner, name)) or _types_of(hint)


def _union(hint: Any) -> tuple:
    if typing.get_origin(hint) is typing.Union or isinstance(hint, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _types_of(hint: Any) -> tuple[frozenset, frozenset | None]:
    """(allowed types, allowed item types of a tuple or None) for an annotation of model/nft.py."""
    allowed: set = set()
    items: frozenset | None = None
    for part in _union(hint):
        origin = typing.get_origin(part)
        if part is object:
            return frozenset(_ANY), None
        if part is tuple or origin is tuple:
            allowed.add(tuple)
            args = typing.get_args(part)
            if args and args[1:] == (Ellipsis,):
                items = frozenset(_types_of(args[0])[0])
            elif args:
                raise TypeError(f"nft cache: cannot store {hint}")
        elif part in _SCALARS or part in _INDEX:
            allowed.add(part)
        else:
            raise TypeError(f"nft cache: cannot store {hint}")
    return frozenset(allowed), items


def _schema(cls: type) -> tuple[_Spec, ...]:
    hints = typing.get_type_hints(cls, vars(n))
    return tuple(_Spec(cls, name, hints[name]) for name in _FIELDS[cls])


_SPECS = {cls: _schema(cls) for cls in _CLASSES}
_MAKERS = {cls: direct_constructor(cls) for cls in _CLASSES}


# ---------------------------------------------------------------- encoding
def encode_nft(ruleset: n.NftRuleset) -> bytes:
    """The entry for ``ruleset``: decoding it gives a ruleset equal in every field (those that do
    not compare too), whose shared records stay shared (and equal ones are stored once)."""
    rows: list[list] = []
    by_id: dict[int, tuple] = {}        # id of a record or tuple -> its reference (the ruleset holds them all)
    # Equal rows are stored once, found by their values: a reference is held as a 1-tuple (json
    # writes it as [i]), which equals no scalar; a row with a bool is found by its values' types too,
    # so that 1 and True are never taken for each other.
    by_row: dict[tuple, tuple] = {}

    def code(v: Any) -> Any:
        t = type(v)
        if t in _SCALARS:
            if t is int and not -_INT_LIMIT < v < _INT_LIMIT:
                raise BadEntry("an integer of more than 129 bits")
            return v
        ref = by_id.get(id(v))
        if ref is None:
            if t is tuple:
                row = [0, *map(code, v)]
            elif t in _INDEX:
                row = [_INDEX[t], *map(code, map(getattr, repeat(v), _FIELDS[t]))]
            else:
                raise BadEntry(f"a {t.__name__} is no nft record")
            key = tuple(row)
            if bool in set(map(type, row)):
                key = (key, tuple(map(type, row)))
            ref = by_row.get(key)
            if ref is None:
                ref = by_row[key] = (len(rows),)
                rows.append(row)
            by_id[id(v)] = ref
        return ref

    if type(ruleset) is not n.NftRuleset:
        raise BadEntry("not an nft ruleset")
    root = code(ruleset)
    return json.dumps([_TAG, rows, list(root)], separators=(",", ":"), check_circular=False, allow_nan=False).encode()


# ---------------------------------------------------------------- decoding
# Per class, the fields the evaluator reads as names (their positions), and the verdict's check.
_NAMED = {cls: tuple((j, spec.names) for j, spec in enumerate(_SPECS[cls]) if spec.names is not None)
          for cls in _CLASSES}


def decode_nft(data: bytes) -> n.NftRuleset:
    """The ruleset ``data`` holds, every field checked (see the module's docstring); raise BadEntry
    (saying why) for anything else. Work and memory are linear in ``len(data)``."""
    doc = load_entry_json(data, kind="nft ", numbers="integers", max_digits=41, floats=False)   # 2**129: 39 digits
    if type(doc) is not list or len(doc) != 3 or doc[0] != _TAG or type(doc[1]) is not list:
        raise BadEntry("not an nft cache entry of this version")
    built = _Rows().build(doc[1])
    root = doc[2]
    if type(root) is not list or len(root) != 1 or type(root[0]) is not int or not 0 <= root[0] < len(built) \
            or type(built[root[0]]) is not n.NftRuleset:
        raise BadEntry("its root is no nft ruleset")
    return built[root[0]]


class _Rows:
    """One entry's rows being built: the values so far, each row's kind (its record's class or
    scalar type; for a tuple, the frozenset of its items' kinds), and per class and field which
    kinds the field takes (filled as kinds are met, so that a row's fields are checked by one
    dictionary lookup each)."""

    def __init__(self) -> None:
        self.built: list = []
        self.kinds: list = []
        self.takes = {cls: tuple({t: True for t in spec.allowed} for spec in _SPECS[cls]) for cls in _CLASSES}
        self.verdict_maps: set[int] = set()     # ids of the element tuples of verdict maps checked (all alive)

    def build(self, rows: list) -> list:
        built, kinds, count = self.built, self.kinds, len(_CLASSES)
        for row in rows:
            if type(row) is not list or not row or type(row[0]) is not int or not 0 <= row[0] <= count:
                raise BadEntry("a row is not [class, values...]")
            values = row[1:]
            vk = list(map(type, values))
            if list in vk:
                self._resolve(values, vk)
            if int in vk:
                ints = [v for v, t in zip(values, vk) if t is int]
                if min(ints) <= -_INT_LIMIT or max(ints) >= _INT_LIMIT:
                    raise BadEntry("integer out of range")
            if row[0] == 0:
                built.append(tuple(values))
                kinds.append(frozenset(vk))
                continue
            cls = _CLASSES[row[0] - 1]
            takes = self.takes[cls]
            if len(values) != len(takes):
                raise BadEntry(f"a {cls.__name__} with {len(values)} fields, not {len(takes)}")
            if not all(map(dict.get, takes, vk)):
                self._check(cls, vk)
            for j, names in _NAMED[cls]:
                if values[j] not in names:
                    raise BadEntry(f"{cls.__name__}.{_SPECS[cls][j].name}: a value that is no valid name")
            if cls is n.NftVerdict and (values[0] in ("jump", "goto")) != (type(values[1]) is str):
                raise BadEntry("NftVerdict: a jump or goto names a chain, no other verdict does")
            if cls is n.Match and values[1] == "in" and type(values[2]) is not int:
                raise BadEntry("Match: a flag test (in) of something else than flags")
            obj = _MAKERS[cls](*values)
            if cls is n.Vmap and type(obj.data) is n.AnonSet or cls is n.NftSet and obj.data == ("verdict",):
                self._verdicts(obj.elements if cls is n.NftSet else obj.data.elements)
            built.append(obj)
            kinds.append(cls)
        return built

    def _verdicts(self, elements: tuple) -> None:
        """A verdict map's elements map to verdicts (each tuple checked once, however often shared)."""
        if id(elements) not in self.verdict_maps:
            if not all(type(e.data) is n.NftVerdict for e in elements):
                raise BadEntry("a verdict map element maps to something else than a verdict")
            self.verdict_maps.add(id(elements))

    def _resolve(self, values: list, vk: list) -> None:
        """References (``[i]``, to an earlier row) replaced by the rows' values and kinds."""
        built, kinds, size = self.built, self.kinds, len(self.built)
        for j, t in enumerate(vk):
            if t is list:
                c = values[j]
                if len(c) != 1 or type(c[0]) is not int or not 0 <= c[0] < size:
                    raise BadEntry("a reference to nothing (or to a later row)")
                values[j] = built[c[0]]
                vk[j] = kinds[c[0]]

    def _check(self, cls: type, vk: list) -> None:
        """Learn whether each field of ``cls`` takes the kind it has here; raise BadEntry if not."""
        for spec, takes, kind in zip(_SPECS[cls], self.takes[cls], vk):
            ok = takes.get(kind)
            if ok is None:
                if type(kind) is frozenset:             # a tuple, by its items' kinds
                    ok = tuple in spec.allowed and (spec.items is None or kind <= spec.items)
                else:
                    ok = kind in spec.allowed
                takes[kind] = ok
            if not ok:
                what = "a tuple" if type(kind) is frozenset else f"a {kind.__name__}"
                raise BadEntry(f"{cls.__name__}.{spec.name}: {what} where it cannot be")
