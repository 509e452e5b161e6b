"""Set and map blocks of the nft language (``set s { type ...; flags ...; elements = { ... } }``),
for :mod:`.nft_text`: the type (``ipv4_addr . inet_proto . inet_service : verdict``, or
``typeof`` expressions), flags, timeout, size, comment and elements."""

from __future__ import annotations

from .nft_build import SetBuilder, TableBuilder
from .nft_rule import RuleParser
from .nft_values import ValueProblem, convert, dtype_of, parse_time_ms

__all__ = ["read_set_block"]

_SKIPPED = frozenset({"policy", "gc-interval", "auto-merge", "counter", "size"})


def read_set_block(r, table: TableBuilder, kind: str, name: str, line: int) -> None:
    """Read ``{ ... }`` after ``set NAME``/``map NAME`` (reader ``r`` at the brace) into ``table``."""
    handle = r.handle_here()
    r.expect("{")
    props: dict = {"flags": set()}
    pending = None
    while True:
        r.skip_blank()
        tok = r.next("'}'")
        if tok == "}":
            break
        end = r.statement_end()
        if tok in ("type", "typeof"):
            props["key"], props["data"] = _types(r, r.pos, end, tok == "typeof", table.family)
        elif tok == "flags":
            props["flags"] |= {w for w in r.toks[r.pos:end] if w != ","}
        elif tok == "timeout":
            props["timeout"] = parse_time_ms(r.next("a time"))
        elif tok == "size":
            props["size"] = int(r.next("a size"))
        elif tok == "comment":
            props["comment"] = convert(r.next("a comment"), None)
        elif tok == "elements":
            r.expect("=")
            r.expect("{")
            pending = r.pos
            end = _skip_braces(r.toks, r.pos)
        elif tok not in _SKIPPED:
            raise ValueProblem(f"unexpected {tok!r} in {kind} {name}")
        r.pos = max(r.pos, end)
    one = _builder(table, kind, name, line, handle, props)
    if pending is not None:
        saved = r.pos
        r.pos = pending
        one.add(r.parser(table).elements(one.key_type, one.data))
        r.pos = saved


def _builder(table: TableBuilder, kind: str, name: str, line: int, handle: int, props: dict) -> SetBuilder:
    if "key" not in props:
        raise ValueProblem(f"{kind} {name} has no type")
    if kind == "map" and props["data"] is None:
        raise ValueProblem(f"map {name} has no data type (type KEY : DATA)")
    one = table.sets.get(name)
    if one is None:
        one = table.sets[name] = SetBuilder(name, props["key"], props["data"], line=line)
    one.handle = handle or one.handle
    one.flags |= props["flags"]
    for key in ("timeout", "size", "comment"):
        if key in props:
            setattr(one, key, props[key])
    return one


def _types(r, start: int, end: int, typeof: bool, family: str) -> tuple[tuple, tuple | None]:
    words = r.toks[start:end]
    key, data = words, None
    if ":" in words:
        cut = words.index(":")
        key, data = words[:cut], words[cut + 1:]
    if typeof:
        return _typeof(r.toks, start, start + len(key), family), (
            _typeof(r.toks, start + len(key) + 1, end, family) if data is not None else None)
    return tuple(w for w in key if w != "."), (tuple(w for w in data if w != ".") if data is not None else None)


def _typeof(toks: list, start: int, end: int, family: str) -> tuple:
    if toks[start] == "verdict":
        return ("verdict",)
    return tuple(t or "integer" for t in dtype_of(RuleParser(toks, start, end, family).expr()))


def _skip_braces(toks: list, pos: int) -> int:
    depth = 1
    while pos < len(toks) and depth:
        depth += (toks[pos] == "{") - (toks[pos] == "}")
        pos += 1
    return pos
