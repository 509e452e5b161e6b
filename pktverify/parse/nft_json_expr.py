"""Expressions, values and statements of libnftables JSON rules (libnftables-json(5)), for
:mod:`.nft_json`: each object becomes the record the text reader builds for the same rule."""

from __future__ import annotations

import json

from ..model import nft as m
from . import nft_values as nv
from .nft_stmts import BYTE_UNITS, DEFAULT_REJECT
from .nft_values import FLAG_TYPES, ValueProblem, convert, dtype_of, flags_of, fold_bitwise, negated_flags

__all__ = ["JsonProblem", "expression", "value", "element_list", "statement"]

_OPS = frozenset({"==", "!=", "<", ">", "<=", ">=", "in"})


class JsonProblem(ValueError):
    """What is wrong, and the JSON path where."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def _one(v: object, path: str) -> tuple[str, object]:
    if not isinstance(v, dict) or len(v) != 1:
        raise JsonProblem(path, f"expected an object with one member, not {_short(v)}")
    return next(iter(v.items()))


def _short(v: object) -> str:
    text = json.dumps(v, separators=(",", ":"))
    return text if len(text) <= 80 else text[:77] + "..."


def expression(v: object, path: str) -> object:
    """A left-hand expression (payload, meta, ct, fib, numgen, hash, bitwise, concat, map)."""
    kind, body = _one(v, path)
    sub = f"{path}.{kind}"
    if kind == "payload" and isinstance(body, dict) and "protocol" in body:
        return m.Payload(body["protocol"], body["field"])
    if kind == "meta":
        return m.Meta(body["key"])
    if kind == "ct":
        return m.Ct(body["key"], body.get("dir"))
    if kind == "fib":
        flags = body.get("flags", [])
        return m.Fib(tuple([flags] if isinstance(flags, str) else flags), body["result"])
    if kind == "numgen":
        return m.Numgen(body["mode"], body["mod"], body.get("offset", 0))
    if kind in ("jhash", "symhash"):
        inner = expression(body["expr"], f"{sub}.expr") if "expr" in body else None
        return m.Hash(kind, body["mod"], inner, body.get("seed", 0), body.get("offset", 0))
    if kind in ("&", "|", "^"):
        if not isinstance(body, list) or len(body) != 2:
            raise JsonProblem(sub, "a bitwise operation has two operands")
        left = expression(body[0], f"{sub}[0]")
        return fold_bitwise(left, kind, _constant(body[1], dtype_of(left)[0], f"{sub}[1]"))
    if kind == "concat":
        return m.Concat(tuple(expression(e, f"{sub}[{i}]") for i, e in enumerate(body)))
    if kind == "map":
        key = expression(body["key"], f"{sub}.key")
        return m.MapLookup(key, map_data(body["data"], f"{sub}.data", dtype_of(key), (None,)))
    return m.NftUnknown(_short(v))


def _constant(v: object, dtype: str | None, path: str) -> int:
    if isinstance(v, list):
        return flags_of(v, dtype)
    out = value(v, (dtype,), path)
    if not isinstance(out, int):
        raise JsonProblem(path, f"expected a number or flags, not {_short(v)}")
    return out


def value(v: object, dtypes: tuple, path: str) -> object:
    """A right-hand value of types ``dtypes`` (one per concatenated part)."""
    dtype = dtypes[0] if dtypes else None
    if isinstance(v, str) and v.startswith("@"):
        return m.SetRef(v[1:])
    if isinstance(v, (str, int)):
        return convert(v, dtype)
    if isinstance(v, list):
        return flags_of(v, dtype)
    kind, body = _one(v, path)
    if kind == "prefix":
        if ":" in body["addr"]:
            return convert(f"{body['addr']}/{body['len']}", "ipv6_addr")
        addr = convert(body["addr"], "ipv4_addr")
        return nv.canonical(m.Prefix(addr, body["len"]), "ipv4_addr")
    if kind == "range":
        low, high = (value(b, (dtype,), f"{path}.range[{i}]") for i, b in enumerate(body))
        return nv.canonical(m.Range(low, high), dtype)
    if kind == "concat":
        return tuple(value(b, (dtypes[i] if i < len(dtypes) else None,), f"{path}.concat[{i}]")
                     for i, b in enumerate(body))
    if kind == "set":
        items = body if isinstance(body, list) else [body]
        return nv.anon_set(element_list(items, f"{path}.set", dtypes, None, raw=True), dtypes)
    raise JsonProblem(path, f"not a value: {_short(v)}")


def element_list(items: object, path: str, keys: tuple, data: tuple | None, raw: bool = False) -> tuple:
    """Set or map elements: ``v``, ``{"elem": {"val": v, ...}}``, or ``[key, data]`` in maps."""
    if not isinstance(items, list):
        raise JsonProblem(path, "elements must be a list")
    out = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        mapped = None
        if isinstance(item, list):
            if len(item) != 2:
                raise JsonProblem(where, "a map element is [key, data]")
            item, mapped = item
            mapped = _element_data(mapped, f"{where}[1]", data)
        timeout = comment = None
        if isinstance(item, dict) and "elem" in item:
            body = item["elem"]
            timeout = body["timeout"] * 1000 if "timeout" in body else None
            comment, item = body.get("comment"), body["val"]
        out.append(m.Element(value(item, keys, where), mapped, timeout, comment))
    return out if raw else nv.sort_elements(out, keys)


def _element_data(v: object, path: str, data: tuple | None) -> object:
    if isinstance(v, dict) and len(v) == 1:
        verdict = _verdict(v)
        if verdict is not None:
            return verdict
    return value(v, data or (None,), path)


def _verdict(v: dict) -> m.NftVerdict | None:
    kind, body = next(iter(v.items()))
    if kind in ("accept", "drop", "return", "continue"):
        return m.NftVerdict(kind)
    if kind in ("jump", "goto"):
        return m.NftVerdict(kind, body["target"])
    return None


def map_data(v: object, path: str, keys: tuple, data: tuple) -> object:
    if isinstance(v, str) and v.startswith("@"):
        return m.SetRef(v[1:])
    kind, body = _one(v, path)
    if kind != "set":
        raise JsonProblem(path, f"map data must be @name or a set, not {_short(v)}")
    return m.AnonSet(element_list(body, f"{path}.set", keys, data))


def statement(v: object, path: str, family: str) -> object:
    """One statement of a rule's ``expr`` list."""
    kind, body = _one(v, path)
    sub = f"{path}.{kind}"
    try:
        verdict = _verdict(v)
        if verdict is not None:
            return verdict
        reader = _STATEMENTS.get(kind)
        if reader is not None:
            return reader(body if body is not None else {}, sub, family)
    except (KeyError, TypeError, AttributeError) as exc:
        raise JsonProblem(sub, f"malformed {kind} ({type(exc).__name__}: {exc})") from None
    except ValueProblem as exc:
        raise JsonProblem(sub, str(exc)) from None
    return m.NftUnknown(_short(v))


def _match(b: dict, path: str, family: str) -> m.Match:
    op = b.get("op", "==")
    if op == "!":                               # none of the flags set: (x & FLAGS) == 0
        left = expression(b["left"], f"{path}.left")
        return negated_flags(left, value(b["right"], dtype_of(left), f"{path}.right"))
    if op not in _OPS:
        raise JsonProblem(f"{path}.op", f"unknown operator {op!r}")
    left = expression(b["left"], f"{path}.left")
    right = value(b["right"], dtype_of(left), f"{path}.right")
    if isinstance(left, m.Fib) and left.result == "oif" and isinstance(right, bool):
        pass
    elif op == "in" and not isinstance(right, int) and dtype_of(left)[0] not in FLAG_TYPES:
        op = "=="
    return m.Match(left, op, right)


def _nat(kind: str, b: dict, path: str, family: str) -> m.Nat:
    addr = b.get("addr")
    if isinstance(addr, dict) and "map" in addr:
        key = expression(addr["map"]["key"], f"{path}.addr.map.key")
        addr = m.MapLookup(key, map_data(addr["map"]["data"], f"{path}.addr.map.data", dtype_of(key),
                                       ("ipv4_addr", "inet_service")))
    elif addr is not None:
        addr = value(addr, ("ipv6_addr" if family == "ip6" else "ipv4_addr",), f"{path}.addr")
    port = b.get("port")
    if port is not None:
        port = value(port, ("inet_service",), f"{path}.port")
    flags = b.get("flags", [])
    flags = [flags] if isinstance(flags, str) else flags
    nat_family = None if family in ("ip", "ip6") else b.get("family")
    return m.Nat(kind, addr, port, tuple(sorted(flags)), nat_family)


def _mangle(b: dict, path: str, family: str) -> m.Mangle:
    key = expression(b["key"], f"{path}.key")
    raw = b["value"]
    if isinstance(raw, dict) and next(iter(raw)) not in ("prefix", "range", "concat", "set"):
        return m.Mangle(key, expression(raw, f"{path}.value"))
    return m.Mangle(key, value(raw, dtype_of(key), f"{path}.value"))


def _reject(b: dict, path: str, family: str) -> m.Reject:
    kind = b.get("type")
    if kind is None:
        return m.Reject(DEFAULT_REJECT.get(family, "icmp"), "port-unreachable")
    return m.Reject(kind, b.get("expr"))


def _limit(b: dict, path: str, family: str) -> m.Limit:
    unit = b.get("rate_unit", "packets")
    rate = b["rate"] * BYTE_UNITS.get(unit, 1)
    bytes_ = unit != "packets"
    burst = b.get("burst", 0 if bytes_ else 5) * BYTE_UNITS.get(b.get("burst_unit", "packets"), 1)
    return m.Limit(rate, b.get("per", "second"), burst, "bytes" if bytes_ else "packets", bool(b.get("inv")))


def _queue(b: dict, path: str, family: str) -> m.Queue:
    num = value(b.get("num", 0), (None,), f"{path}.num")
    low, high = (num.low, num.high) if isinstance(num, m.Range) else (num, num)
    flags = b.get("flags", [])
    return m.Queue(low, high, tuple(sorted([flags] if isinstance(flags, str) else flags)))


def _set_update(b: dict, path: str, family: str) -> m.SetUpdate:
    elem, timeout = b["elem"], None
    if isinstance(elem, dict) and "elem" in elem:
        timeout = elem["elem"]["timeout"] * 1000 if "timeout" in elem["elem"] else None
        elem = elem["elem"]["val"]
    key = expression(elem, f"{path}.elem")
    data = b.get("data")
    if data is not None:
        data = expression(data, f"{path}.data") if isinstance(data, dict) else value(data, (None,), f"{path}.data")
    return m.SetUpdate(b["op"], (b.get("set") or b["map"]).lstrip("@"), key, timeout, data)


_STATEMENTS = {
    "match": _match, "mangle": _mangle, "reject": _reject, "limit": _limit, "queue": _queue,
    "dnat": lambda b, p, f: _nat("dnat", b, p, f), "snat": lambda b, p, f: _nat("snat", b, p, f),
    "masquerade": lambda b, p, f: _nat("masquerade", b, p, f), "redirect": lambda b, p, f: _nat("redirect", b, p, f),
    "vmap": lambda b, p, f: m.Vmap(k := expression(b["key"], f"{p}.key"),
                                 map_data(b["data"], f"{p}.data", dtype_of(k), ("verdict",))),
    "counter": lambda b, p, f: m.Counter(b) if isinstance(b, str) else m.Counter(None, b.get("packets"),
                                                                                  b.get("bytes")),
    "log": lambda b, p, f: m.Log(b.get("prefix"), None if b.get("level", "warn") == "warn" else b["level"],
                               b.get("group")),
    "quota": lambda b, p, f: m.Quota(b["val"] * BYTE_UNITS.get(b.get("val_unit", "bytes"), 1), bool(b.get("inv"))),
    "ct count": lambda b, p, f: m.CtCount(b["val"], bool(b.get("inv"))),
    "notrack": lambda b, p, f: m.NoTrack(),
    "set": _set_update, "map": _set_update,
    "flow": lambda b, p, f: m.FlowAdd(b["flowtable"].lstrip("@")),
    "xt": lambda b, p, f: m.Xt(b.get("type", ""), b.get("name", "")),
}
