"""``nft -j list ruleset`` (libnftables JSON, schema 1: libnftables-json(5)) read into
:class:`NftRuleset`.

The document is ``{"nftables": [{"metainfo": ...}, {"table": ...}, {"chain": ...}, {"set": ...},
{"map": ...}, {"rule": {..., "expr": [...]}}, ...]}``; each object is read into the same
builder as the text and script readers, so that the three forms give equal models. A rule's
``line`` is its index in the ``nftables`` list. Errors: ``FILE: <json path>: what is wrong``.
"""

from __future__ import annotations

from ..bulk import cyclic_gc_paused
from ..errors import InputError
from ..model.nft import NftRule, NftRuleset
from .json_input import load_json
from .nft_build import RulesetBuilder, SetBuilder, TableBuilder, add_rule, new_flowtable, new_object
from .nft_format import format_rule
from .nft_json_expr import JsonProblem, element_list, statement
from .nft_values import ValueProblem, drop_dependencies, parse_time_ms, resolve_priority

__all__ = ["parse_nft_json", "looks_like_nft_json"]

_OBJECTS = frozenset({"counter", "quota", "limit", "ct helper", "ct timeout", "ct expectation", "secmark",
                      "synproxy"})


def looks_like_nft_json(text: str) -> bool:
    """Whether ``text`` is JSON with an ``"nftables"`` member near its start."""
    head = text.lstrip()[:200]
    return head.startswith("{") and '"nftables"' in head


def parse_nft_json(text: str, source: str) -> NftRuleset:
    """Read an ``nft -j list ruleset`` dump."""
    root = load_json(text, source, expect="nft -j list ruleset")
    if not isinstance(root.value, dict) or not isinstance(root.value.get("nftables"), list):
        raise InputError(source, 0, "the document: not `nft -j list ruleset` output (no \"nftables\" list)")
    rs = RulesetBuilder()
    with cyclic_gc_paused():
        _items(rs, root.value["nftables"], source)
    return rs.freeze(source, "json")


def _items(rs: RulesetBuilder, items: list, source: str) -> None:
    for index, item in enumerate(items):
        path = f"nftables[{index}]"
        try:
            _item(rs, item, index, path)
        except JsonProblem as exc:
            raise InputError(source, 0, f"{exc.path}: {exc}") from None
        except ValueProblem as exc:
            raise InputError(source, 0, f"{path}: {exc}") from None
        except (KeyError, TypeError, AttributeError, ValueError) as exc:    # a member of a type nft never writes
            raise InputError(source, 0, f"{path}: malformed ({type(exc).__name__}: {exc})") from None


def _item(rs: RulesetBuilder, item: object, index: int, path: str) -> None:
    if not isinstance(item, dict) or len(item) != 1:
        raise JsonProblem(path, "each entry must be an object with one member (table, chain, rule, set, ...)")
    kind, body = next(iter(item.items()))
    path = f"{path}.{kind}"
    if kind == "metainfo":
        version = body.get("json_schema_version", 1) if isinstance(body, dict) else None
        if version != 1:
            raise JsonProblem(path, f"json_schema_version {version!r}: only schema 1 is read")
        return
    if not isinstance(body, dict):
        raise JsonProblem(path, "must be an object")
    if kind == "table":
        table = rs.table(_str(body, "family", path), _str(body, "name", path), index)
        table.handle, table.comment = body.get("handle", 0), body.get("comment")
        return
    reader = _READERS.get(kind)
    if reader is None and kind not in _OBJECTS:
        raise JsonProblem(path, f"unknown object {kind!r} (a list output holds table, chain, rule, set, map, "
                                "element, flowtable and stateful objects)")
    table = rs.need_table(_str(body, "family", path), _str(body, "table", path))
    if reader is None:
        table.objects[(kind, _str(body, "name", path))] = new_object(kind, body["name"], index)
    else:
        reader(table, body, index, path)


def _typed(body: dict, key: str, kinds: tuple, default: object, path: str) -> object:
    """``body[key]`` when of one of ``kinds`` (bool is no int), ``default`` when absent."""
    value = body.get(key, default)
    if value is not default and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
        raise JsonProblem(f"{path}.{key}", f"must be {' or '.join(k.__name__ for k in kinds)}, not {value!r}")
    return value


def _str(body: dict, key: str, path: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise JsonProblem(f"{path}.{key}", "missing" if value is None else f"must be a string, not {value!r}")
    return value


def _chain(table: TableBuilder, body: dict, index: int, path: str) -> None:
    chain = table.chain(_str(body, "name", path), index)
    chain.handle = _typed(body, "handle", (int,), 0, path)
    if "hook" in body:
        devices = body.get("dev", body.get("devices", ()))
        if not isinstance(devices, (str, list, tuple)) or any(not isinstance(d, str) for d in devices):
            raise JsonProblem(f"{path}.dev", f"must be a device name or a list of them, not {devices!r}")
        chain.base = {"type": _str(body, "type", path), "hook": _str(body, "hook", path),
                      "priority": resolve_priority(_typed(body, "prio", (int, str), 0, path), table.family),
                      "policy": _typed(body, "policy", (str,), "accept", path),
                      "devices": (devices,) if isinstance(devices, str) else tuple(devices)}
    if "comment" in body:
        chain.base["comment"] = _typed(body, "comment", (str,), None, path)


def _rule(table: TableBuilder, body: dict, index: int, path: str) -> None:
    chain = table.need_chain(_str(body, "chain", path))
    exprs = body.get("expr", [])
    if not isinstance(exprs, list):
        raise JsonProblem(f"{path}.expr", "must be a list")
    stmts = tuple(drop_dependencies([statement(e, f"{path}.expr[{i}]", table.family) for i, e in enumerate(exprs)],
                                     table.family))
    comment = body.get("comment")
    text = format_rule(stmts, comment, table.family, table.sets)
    add_rule(chain, NftRule(body.get("handle", 0), index, text, stmts, comment))


def _types(value: object, path: str) -> tuple:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(" . "))
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if isinstance(value, dict) and "typeof" in value:
        return ("integer",)
    raise JsonProblem(path, f"a type must be a name or a list of names, not {value!r}")


def _set(table: TableBuilder, body: dict, index: int, path: str, kind: str = "set") -> None:
    name = _str(body, "name", path)
    key = _types(body.get("type"), f"{path}.type")
    data = _types(body["map"], f"{path}.map") if kind == "map" else None
    one = table.sets.get(name) or SetBuilder(name, key, data, line=index)
    table.sets[name] = one
    one.handle = body.get("handle", 0)
    flags = body.get("flags", [])
    one.flags |= {flags} if isinstance(flags, str) else set(flags)
    if "timeout" in body:
        one.timeout = _seconds(body["timeout"], f"{path}.timeout")
    one.size, one.comment = body.get("size"), body.get("comment")
    one.add(element_list(body.get("elem", []), f"{path}.elem", key, data))


def _seconds(value: object, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value * 1000
    if isinstance(value, str):
        return parse_time_ms(value)
    raise JsonProblem(path, f"a timeout must be a number of seconds, not {value!r}")


def _element(table: TableBuilder, body: dict, index: int, path: str) -> None:
    one = table.need_set(_str(body, "name", path))
    one.add(element_list(body.get("elem", []), f"{path}.elem", one.key_type, one.data))


def _flowtable(table: TableBuilder, body: dict, index: int, path: str) -> None:
    name = _str(body, "name", path)
    devices = body.get("dev", ())
    table.flowtables[name] = new_flowtable(name, body.get("hook", "ingress"),
                                           resolve_priority(body.get("prio", 0), table.family),
                                           (devices,) if isinstance(devices, str) else tuple(devices),
                                           body.get("handle", 0), index)


_READERS = {"chain": _chain, "rule": _rule, "set": _set,
            "map": lambda t, b, i, p: _set(t, b, i, p, "map"), "element": _element, "flowtable": _flowtable}
