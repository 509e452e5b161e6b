"""A rule set as bytes and back, for the model cache: bounded, typed, never more than it holds.

The cache used to be a pickle, but even a pickle that may build only pktverify's classes and
plain values is not bounded: its frozenset and dict opcodes hash what they are given, and a
172-byte entry holding a frozenset of nested tuples shared through the memo (a DAG of
2-tuples) hashes 2**24 tuples; 100 levels never finish.  No check after loading can stop
that, and checking the opcodes first (pickletools) costs 3 s for a 110k-rule dump.

So an entry is JSON (``json.loads`` hashes no value but strings, shares nothing, and so builds
at most what it reads), holding only arrays of plain values, in columns:

    ["pktverify model 2", STRINGS, [[CLASS, COUNT, COLUMN, ...], ...], [SOURCE, WARNINGS, TABLES]]

``STRINGS`` lists each distinct string once; a string field's column holds indices into it
(an optional one's 0 is None).  Each section holds the matches or targets of one class, a
column per field, in the order of the sections; a rule refers to its matches by their index
among the matches and to its target by its index among the targets (from 1; 0 is None), so a
reference's type is where it points, and what the parser shares stays shared.  A table is
``[NAME, its chains' names, policies, lines, declarations, rule counts, ranks, its rules'
sources (one index when all are the same), lines (as runs: [starts, lengths]), texts,
matches, targets]``: a rule's table, chain and index are where it stands, so they cannot
disagree with it.  Other fields hold their value, tuples as arrays, frozensets as sorted
arrays.

Decoding checks every field against its dataclass annotation while it builds the objects,
column by column (``set(map(type, column))`` runs at C speed), so the work is linear in the
entry's size and each shared match or target is checked once, when it is built; nested tuples
where the annotation has none are refused, so are floats that are not finite, integers
outside [0, 2**64), and values other than the few names the evaluator reads in a verdict, a
policy or a match's direction.  Each table's structure is checked with
:func:`.model_shape.check_table`.  Any failure raises :class:`BadEntry` saying why.
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections import deque
from itertools import chain as _concat
from itertools import islice, repeat
from operator import add
from typing import Any, Callable

from ..bulk import direct_constructor
from ..model import rules as m
from .model_shape import BadEntry, chain_ranks, check_table, check_tables, load_entry_json

__all__ = ["BadEntry", "encode_ruleset", "decode_ruleset"]

_TAG = "pktverify model 2"
_INT_LIMIT = 2 ** 64
_NONE = type(None)


# Fields the evaluator reads as one of a few names: any other value would mean something else.
_NAMES: dict[tuple[type, str], frozenset] = {
    (m.AddrMatch, "field"): frozenset({"src", "dst"}),
    (m.IpRangeMatch, "field"): frozenset({"src", "dst"}),
    (m.AddrTypeMatch, "field"): frozenset({"src", "dst"}),
    (m.AddrTypeMatch, "limit_iface"): frozenset({"in", "out", None}),
    (m.IfaceMatch, "direction"): frozenset({"in", "out"}),
    (m.PortMatch, "field"): frozenset({"sport", "dport"}),
    (m.MultiportMatch, "field"): frozenset({"sport", "dport", "either"}),
    (m.Verdict, "name"): frozenset({"ACCEPT", "DROP", "RETURN"}),
    (m.Chain, "policy"): frozenset({"ACCEPT", "DROP", None}),
}


# ---------------------------------------------------------------- the schema, from the annotations
class _Field:
    """How one dataclass field is stored: ``kind`` is str/int/bool/float (a column of them, None
    allowed when ``optional``), ref (one model object), refs (a tuple of them), named (a dict
    keyed by their names) or plain (any other value, checked by ``plain``)."""

    __slots__ = ("name", "kind", "scalar", "optional", "classes", "plain", "names")

    def __init__(self, owner: type, name: str, hint: Any) -> None:
        self.name = name
        self.optional = False
        self.scalar: type | None = None
        self.classes: frozenset[type] = frozenset()
        self.plain: Callable[[Any], Any] | None = None
        self.names = _NAMES.get((owner, name))
        declared = hint
        args = _union_args(hint)
        if args is not None and _NONE in args:
            self.optional = True
            args = tuple(a for a in args if a is not _NONE)
            hint = args[0] if len(args) == 1 else typing.Union[args]
        origin = typing.get_origin(hint)
        if hint in (str, int, bool, float):
            self.kind, self.scalar = hint.__name__, hint
        elif _model_classes(hint):
            self.kind, self.classes = "ref", _model_classes(hint)
        elif origin is tuple and typing.get_args(hint)[1:] == (Ellipsis,) and _model_classes(typing.get_args(hint)[0]):
            self.kind, self.classes = "refs", _model_classes(typing.get_args(hint)[0])
        elif origin is dict and typing.get_args(hint)[0] is str and _model_classes(typing.get_args(hint)[1]):
            self.kind, self.classes = "named", _model_classes(typing.get_args(hint)[1])
        else:
            self.kind, self.plain, self.optional = "plain", _plain_checker(declared), False
        if self.kind == "named" and not all("name" in c.__dataclass_fields__ for c in self.classes):
            raise TypeError(f"model cache: {owner.__name__}.{name} is keyed by a name its values lack")


def _union_args(hint: Any) -> tuple | None:
    if typing.get_origin(hint) is typing.Union or isinstance(hint, types.UnionType):
        return typing.get_args(hint)
    return None


def _model_classes(hint: Any) -> frozenset[type]:
    """The model classes ``hint`` names (a class or a union of them), else empty."""
    args = _union_args(hint) or (hint,)
    if all(a in m.MODEL_CLASSES for a in args):
        return frozenset(args)
    return frozenset()


def _plain_checker(hint: Any) -> Callable[[Any], Any]:
    """A function giving the value of ``hint`` a JSON value stands for, raising BadEntry otherwise."""
    args = _union_args(hint)
    if args is not None:
        checkers = [_plain_checker(a) for a in args if a is not _NONE]
        nullable = _NONE in args
        if len(checkers) != 1:
            raise TypeError(f"model cache: cannot store {hint}")
        inner = checkers[0]
        return lambda v: None if v is None and nullable else inner(v)
    if hint in (str, bool):
        return lambda v: v if type(v) is hint else _bad(f"{hint.__name__} expected")
    if hint is int:
        return lambda v: v if type(v) is int and 0 <= v < _INT_LIMIT else _bad("integer out of range")
    origin, params = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple and params[1:] == (Ellipsis,):
        each = _plain_checker(params[0])
        return lambda v: tuple(map(each, v)) if type(v) is list else _bad("array expected")
    if origin is tuple:
        checkers = [_plain_checker(p) for p in params]
        return lambda v: tuple(c(x) for c, x in zip(checkers, v)) if type(v) is list and len(v) == len(checkers) \
            else _bad(f"array of {len(checkers)} expected")
    if origin is frozenset:
        each = _plain_checker(params[0])
        return lambda v: frozenset(map(each, v)) if type(v) is list else _bad("array expected")
    raise TypeError(f"model cache: cannot store {hint}")


def _bad(why: str):
    raise BadEntry(why)


class _Schema:
    """A model class's fields in order, and how to build one without its __init__."""

    def __init__(self, cls: type) -> None:
        hints = typing.get_type_hints(cls, vars(m))
        self.cls = cls
        self.fields = [_Field(cls, name, hints[name]) for name in cls.__dataclass_fields__]
        self.setters = [getattr(cls, name).__set__ for name in cls.__dataclass_fields__]
        direct_constructor(cls)             # refuses a class with a __post_init__ to run

    def build(self, columns: list, count: int | None = None) -> list:
        """One object per row of ``columns`` (one iterable per field, ``count`` rows: by default
        the first column's length), its slots set directly."""
        objs = list(map(object.__new__, repeat(self.cls, len(columns[0]) if count is None else count)))
        for setter, column in zip(self.setters, columns):
            deque(map(setter, objs, column), 0)
        return objs


_SCHEMAS: dict[str, _Schema] = {cls.__name__: _Schema(cls) for cls in sorted(m.MODEL_CLASSES, key=lambda c: c.__name__)}
_BY_CLASS = {schema.cls: schema for schema in _SCHEMAS.values()}


_STRUCTURE = (m.Ruleset, m.Table, m.Chain, m.Rule)
# Matches and targets: stored in sections by class; they hold plain values only.
_LEAVES = {name: schema for name, schema in _SCHEMAS.items() if schema.cls not in _STRUCTURE}
if any(fld.kind in ("ref", "refs", "named") for schema in _LEAVES.values() for fld in schema.fields):
    raise TypeError("model cache: a match or target holding model objects needs a new entry layout")
_RULE = {fld.name: fld for fld in _SCHEMAS["Rule"].fields}
_CHAIN = {fld.name: fld for fld in _SCHEMAS["Chain"].fields}
_RULESET = {fld.name: fld for fld in _SCHEMAS["Ruleset"].fields}
_INT = _Field(m.Chain, "line", int)         # a plain int column (the chains' rule counts)
# A rule refers to its matches and its target by index, in two lists: one holds matches only,
# the other targets only, so where a reference points says its type.
_MATCH_CLASSES = _RULE["matches"].classes
if _MATCH_CLASSES & _RULE["target"].classes or set(_LEAVES) != {c.__name__ for c in
                                                              _MATCH_CLASSES | _RULE["target"].classes}:
    raise TypeError("model cache: every match or target class is one of the two")
if tuple(m.Jump.__dataclass_fields__)[0] != "chain":
    raise TypeError("model cache: Jump's first field must be its chain")


# The structure is stored by position: a rule's table, chain and index are where it stands.
_LAYOUT = {m.Ruleset: ("source", "tables", "warnings"), m.Table: ("name", "chains"),
           m.Chain: ("name", "policy", "rules", "line", "declaration"),
           m.Rule: ("table", "chain", "index", "source", "line", "text", "matches", "target")}
if any(tuple(cls.__dataclass_fields__) != names for cls, names in _LAYOUT.items()):
    raise TypeError("model cache: the rule set's classes changed; update the entry layout")


# ---------------------------------------------------------------- encoding
def encode_ruleset(ruleset: m.Ruleset) -> bytes:
    """The entry for ``ruleset``: decoding it gives an equal rule set, whose matches and targets
    are shared as in this one."""
    strings: dict[str, int] = {}
    leaves: dict[type, dict[int, Any]] = {}
    rules = [rule for table in ruleset.tables.values() for chain in table.chains.values() for rule in chain.rules]
    for rule in rules:
        for leaf in rule.matches:
            leaves.setdefault(type(leaf), {})[id(leaf)] = leaf
        if rule.target is not None:
            leaves.setdefault(type(rule.target), {})[id(rule.target)] = rule.target
    index: dict[int, int] = {id(None): 0}          # matches from 0; targets from 1, 0 is None
    counts = {True: 0, False: 1}
    sections = []
    for cls in sorted(leaves, key=lambda c: c.__name__):
        objs = list(leaves[cls].values())
        section: list[Any] = [cls.__name__, len(objs)]
        section.extend(_encode_column(fld, [getattr(o, fld.name) for o in objs], strings, index)
                       for fld in _BY_CLASS[cls].fields)
        is_match = cls in _MATCH_CLASSES
        for o in objs:
            index[id(o)] = counts[is_match]
            counts[is_match] += 1
        sections.append(section)
    tables = [_encode_table(table, strings, index) for table in ruleset.tables.values()]
    root = [strings.setdefault(ruleset.source, len(strings)), list(ruleset.warnings), tables]
    return json.dumps([_TAG, list(strings), sections, root], separators=(",", ":"),
                      check_circular=False, allow_nan=False).encode()


def _encode_table(table: m.Table, strings: dict[str, int], index: dict[int, int]) -> list:
    chains = list(table.chains.values())
    rules = [rule for chain in chains for rule in chain.rules]
    out = [strings.setdefault(table.name, len(strings))]
    out.extend(_encode_column(_CHAIN[name], [getattr(c, name) for c in chains], strings, index)
               for name in ("name", "policy", "line", "declaration"))
    out.append([len(c.rules) for c in chains])
    out.append(chain_ranks(table))
    sources = _encode_column(_RULE["source"], [r.source for r in rules], strings, index)
    out.append(sources[0] if sources and sources.count(sources[0]) == len(sources) else sources)
    out.append(_line_runs([r.line for r in rules]))
    out.extend(_encode_column(_RULE[name], [getattr(r, name) for r in rules], strings, index)
               for name in ("text", "matches", "target"))
    return out


def _line_runs(lines: list[int]) -> list[list[int]]:
    """``[starts, lengths]``: runs of consecutive line numbers (a table's rules mostly are)."""
    starts: list[int] = []
    lengths: list[int] = []
    for line in lines:
        if lengths and line == starts[-1] + lengths[-1]:
            lengths[-1] += 1
        else:
            starts.append(line)
            lengths.append(1)
    return [starts, lengths]


def _encode_column(fld: _Field, column: list, strings: dict[str, int], index: dict[int, int]) -> list:
    if fld.kind == "str":
        shift = 1 if fld.optional else 0       # an optional string's 0 is None
        return [0 if v is None else strings.setdefault(v, len(strings)) + shift for v in column]
    if fld.kind == "ref":
        return [index[id(v)] for v in column]
    if fld.kind == "refs":
        return [[index[id(v)] for v in values] for values in column]
    if fld.kind == "plain":
        return [_plain_json(v) for v in column]
    return column


def _plain_json(value: Any) -> Any:
    if type(value) is tuple:
        return [_plain_json(v) for v in value]
    if type(value) is frozenset:
        return sorted(value)
    return value


# ---------------------------------------------------------------- decoding
def decode_ruleset(data: bytes) -> m.Ruleset:
    """The rule set ``data`` holds, every field checked against the model's annotations; raise
    BadEntry (saying why) for anything else.  Work and memory are linear in ``len(data)``."""
    doc = load_entry_json(data, kind="", numbers="finite numbers", max_digits=20, floats=True)
    if type(doc) is not list or len(doc) != 4 or doc[0] != _TAG:
        raise BadEntry("not a cache entry of this version")
    _, strings, sections, root = doc
    if type(strings) is not list or not set(map(type, strings)) <= {str}:
        raise BadEntry("its string table holds something else")
    if type(sections) is not list or type(root) is not list or len(root) != 3 or type(root[2]) is not list:
        raise BadEntry("not [tag, strings, sections, rule set]")
    ctx = _Context((strings, [None, *strings]), len(data))
    try:
        for section in sections:
            _decode_section(section, ctx)
        source, warnings, tables = root
        source = strings[source]
        warnings = _RULESET["warnings"].plain(warnings)
        built = [_decode_table(table, ctx) for table in tables]
    except (IndexError, TypeError):
        raise BadEntry("a reference to nothing or a value of the wrong type") from None
    check_tables([table.name for table in built])
    by_name = {table.name: table for table in built}
    return _SCHEMAS["Ruleset"].build([[source], [by_name], [warnings]])[0]


class _Context:
    """What decoding one entry refers to: its strings (as is, and with None first), the matches
    and the targets built so far (None first, so a rule's 0 is no target; a match list holds
    matches only and a target list targets only: a reference is of the right type by where it
    points), the chain each target jumps to (None: no jump), and the entry's size (no count may
    exceed it)."""

    __slots__ = ("strings", "matches", "targets", "jump_to", "budget")

    def __init__(self, strings: tuple[list, list], budget: int) -> None:
        self.strings, self.budget = strings, budget
        self.matches: list = []
        self.targets: list = [None]
        self.jump_to: list = [None]


def _decode_section(section: Any, ctx: _Context) -> list:
    if type(section) is not list or len(section) < 2 or type(section[0]) is not str:
        raise BadEntry("a section is not [class, count, columns...]")
    schema = _LEAVES.get(section[0])
    count = section[1]
    if schema is None:
        raise BadEntry(f"{section[0][:40]!r} is no match or target")
    if type(count) is not int or not 0 <= count <= ctx.budget or len(section) != 2 + len(schema.fields):
        raise BadEntry(f"a {schema.cls.__name__} section has a wrong count or wrong columns")
    columns = [_decode_column(fld, column, count, ctx) for fld, column in zip(schema.fields, section[2:])]
    built = schema.build(columns)
    if schema.cls in _MATCH_CLASSES:
        ctx.matches.extend(built)
    else:
        ctx.targets.extend(built)
        ctx.jump_to.extend(columns[0] if schema.cls is m.Jump else repeat(None, count))


def _decode_table(table: Any, ctx: _Context) -> m.Table:
    if type(table) is not list or len(table) != 12:
        raise BadEntry("a table is not [name, 6 chain columns, 5 rule columns]")
    name = ctx.strings[0][table[0]]
    names = table[1]
    count = len(names) if type(names) is list else -1
    names, policies, lines, declarations = (_decode_column(_CHAIN[f], column, count, ctx) for f, column in
                                            zip(("name", "policy", "line", "declaration"), table[1:5]))
    sizes = _decode_column(_INT, table[5], count, ctx)
    ranks = _decode_column(_INT, table[6], count, ctx)
    total = sum(sizes)
    if total > ctx.budget:
        raise BadEntry("more rules than the entry could hold")
    sources = table[7]
    sources = [ctx.strings[0][sources]] * total if type(sources) is int else \
        _decode_column(_RULE["source"], sources, total, ctx)
    rule_lines = _decode_runs(table[8], total)
    texts, matches, targets = (_decode_column(_RULE[f], column, total, ctx) for f, column in
                               zip(("text", "matches", "target"), table[9:]))
    if name not in m.TABLE_CHAINS:
        raise BadEntry(f"{name[:20]!r} is no table")
    check_table(name, names, policies, sizes, list(map(ctx.jump_to.__getitem__, table[11])), ranks)
    rules = _SCHEMAS["Rule"].build([
        repeat(name, total), _concat.from_iterable(map(repeat, names, sizes)),
        _concat.from_iterable(map(range, repeat(1), [size + 1 for size in sizes])),
        sources, rule_lines, texts, matches, targets], total)
    ordered = iter(rules)
    groups = list(map(tuple, map(islice, repeat(ordered), sizes)))
    chains = _SCHEMAS["Chain"].build([names, policies, groups, lines, declarations])
    by_name = dict(zip(names, chains))              # no name twice: check_table
    return _SCHEMAS["Table"].build([[name], [by_name]])[0]


def _decode_column(fld: _Field, column: Any, count: int, ctx: _Context | None) -> list:
    """The field's values from its stored column (of ``count`` rows), each checked against the
    field's type."""
    kind, where = fld.kind, fld.name
    if type(column) is not list or len(column) != count:
        raise BadEntry(f"{where}: a column of the wrong length")
    if kind == "str":                      # indices into the strings (for an optional one: None first)
        values = list(map(ctx.strings[fld.optional].__getitem__, column))
    elif kind in ("int", "bool", "float"):
        allowed = {fld.scalar, _NONE} if fld.optional else {fld.scalar}
        if not set(map(type, column)) <= allowed:
            raise BadEntry(f"{where}: {kind} expected")
        present = [v for v in column if v is not None] if fld.optional else column
        if kind == "int" and present and not (min(present) >= 0 and max(present) < _INT_LIMIT):
            raise BadEntry(f"{where}: integer out of range")
        if kind == "float" and not all(map(math.isfinite, present)):
            raise BadEntry(f"{where}: a float that is not finite")
        values = column
    elif kind == "ref":                     # a rule's target (0: None)
        values = list(map(ctx.targets.__getitem__, column))
    elif kind == "refs":                    # a rule's matches
        if not set(map(type, column)) <= {list}:
            raise BadEntry(f"{where}: array expected")
        values = list(map(tuple, map(map, repeat(ctx.matches.__getitem__), column)))
    elif kind == "plain":
        values = list(map(fld.plain, column))
    else:
        raise BadEntry(f"{where}: not stored in a column")
    if fld.names is not None and not set(values) <= fld.names:
        raise BadEntry(f"{where}: a value that is no valid name")
    return values


def _decode_runs(column: Any, count: int) -> list[int]:
    """A rule line column stored as ``[starts, lengths]`` (see ``_line_runs``)."""
    if type(column) is not list or len(column) != 2:
        raise BadEntry("line: not [starts, lengths]")
    starts = _decode_column(_INT, column[0], len(column[0]) if type(column[0]) is list else -1, None)
    lengths = _decode_column(_INT, column[1], len(starts), None)
    if sum(lengths) != count or (starts and max(map(add, starts, lengths)) > _INT_LIMIT):
        raise BadEntry("line: runs that are not one line per rule")
    return list(_concat.from_iterable(map(range, starts, map(add, starts, lengths))))
