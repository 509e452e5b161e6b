"""JSON input (``ip -j``, kubectl) read strictly, with ``file:line`` for every complaint.

* Strict: ``NaN``/``Infinity`` (which Python's json module accepts and no
  real tool prints), duplicate keys in one object, integers longer than
  Python converts, and nesting deeper than the interpreter follows are errors,
  not surprises later.
* Typed access: :class:`JsonNode` wraps a value with its path from the root;
  ``node.str("name")``, ``node.list("items")``, ... check the type, treat
  ``null`` as absent (as Kubernetes' Go decoder does), and raise an
  :class:`InputError` that names the line of the offending value.
* The line is found only when there is an error: the C decoder does not
  report positions, so :func:`line_of` re-reads the text with a small
  tokenizer and follows the path to the value.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import InputError

__all__ = ["load_json", "JsonNode", "line_of", "element_lines"]

Path = tuple  # of str keys and int indexes


class _Duplicate(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:40]} is too large a number")
    return value


class _LongNumber(ValueError):
    pass


_MAX_DIGITS = 40            # no tool prints a longer integer; Python's own limit (4300) has its own message


def _bounded_int(text: str) -> int:
    if len(text) > _MAX_DIGITS:
        raise _LongNumber(text)
    return int(text)


def load_json(text: str, source: str, *, expect: str) -> "JsonNode":
    """Decode ``text``; ``expect`` names the tool whose output it should be (for messages)."""
    try:
        return JsonNode(json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant,
                                   parse_float=_finite, parse_int=_bounded_int), (), text, source)
    except _LongNumber as exc:
        digits = str(exc)
        at = text.find(digits)
        line = text.count("\n", 0, at) + 1 if at >= 0 else 1
        raise InputError(source, line, f"invalid JSON ({expect}?): a number of {len(digits.lstrip('-'))} digits "
                         f"(at most {_MAX_DIGITS} are read)", _line(text, line)[:80]) from None
    except json.JSONDecodeError as exc:
        line = text.split("\n")[exc.lineno - 1] if exc.lineno - 1 < text.count("\n") + 1 else ""
        raise InputError(source, exc.lineno, f"invalid JSON ({expect}?): {exc.msg}", line.strip()[:120]) from None
    except _Duplicate as exc:
        key = str(exc)
        at = text.find(json.dumps(key))
        at = text.find(json.dumps(key), at + 1)
        line = text.count("\n", 0, at) + 1 if at >= 0 else 1
        raise InputError(source, line, f"key {key!r} appears twice in one object", _line(text, line)) from None
    except RecursionError:
        raise InputError(source, 1, "JSON nested too deeply", "") from None
    except ValueError as exc:       # NaN/Infinity, or an integer with thousands of digits
        raise InputError(source, 1, f"invalid JSON ({expect}?): {exc}", "") from None


class JsonNode:
    """A decoded JSON value with its path, for typed access and errors with lines."""
    __slots__ = ("value", "path", "_text", "source")

    def __init__(self, value: Any, path: Path, text: str, source: str) -> None:
        self.value, self.path, self._text, self.source = value, path, text, source

    # ---------------------------------------------------------------- errors
    def error(self, message: str) -> InputError:
        """An InputError at this value's line."""
        line = self.line()
        return InputError(self.source, line, message, _line(self._text, line))

    def line(self) -> int:
        """The line this value starts on (reads the text: for errors)."""
        return line_of(self._text, self.path)

    def where(self) -> str:
        return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(self.path)) \
            or "the document"

    # ---------------------------------------------------------------- access
    def child(self, key: str | int) -> "JsonNode":
        return JsonNode(self.value[key], (*self.path, key), self._text, self.source)

    def has(self, key: str) -> bool:
        return isinstance(self.value, dict) and self.value.get(key) is not None

    def get(self, key: str, kind: type | tuple, *, required: bool = False, default: Any = None,
            what: str = "") -> Any:
        """The value of ``key`` (an object's member) checked to be ``kind``; null counts as absent."""
        if not isinstance(self.value, dict):
            raise self.error(f"{self.where()} must be an object, not {_type(self.value)}")
        value = self.value.get(key)
        if value is None:
            if required:
                raise self.error(f"{what or self.where()} has no {key!r}")
            return default
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
            names = " or ".join(_type_name(k) for k in _kinds(kind))
            raise self.child(key).error(f"{self.child(key).where()} must be {names}, not {_type(value)}")
        return value

    def str(self, key: str, **kw) -> str | None:
        return self.get(key, str, **kw)

    def int(self, key: str, **kw) -> int | None:
        return self.get(key, int, **kw)

    def bool(self, key: str, **kw) -> bool | None:
        return self.get(key, bool, **kw)

    def obj(self, key: str, *, required: bool = False) -> "JsonNode":
        """A member that must be an object (an empty one when absent)."""
        if self.get(key, dict, required=required) is None:
            return JsonNode({}, (*self.path, key), self._text, self.source)
        return self.child(key)

    def list(self, key: str, *, required: bool = False) -> list["JsonNode"]:
        """A member that must be a list (empty when absent), as nodes."""
        if self.get(key, list, required=required) is None:
            return []
        return self.child(key).items()

    def items(self) -> list["JsonNode"]:
        """This value's elements; it must be a list."""
        if not isinstance(self.value, list):
            raise self.error(f"{self.where()} must be a list, not {_type(self.value)}")
        return [self.child(i) for i in range(len(self.value))]


def _kinds(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def _type_name(kind: type) -> str:
    return {str: "a string", int: "a number", float: "a number", bool: "true or false", dict: "an object",
            list: "a list"}.get(kind, kind.__name__)


def _type(value: Any) -> str:
    if value is None:
        return "null"
    return {str: "a string", int: "a number", float: "a number", bool: "a boolean", dict: "an object",
            list: "a list"}.get(type(value), type(value).__name__)


def _line(text: str, line: int) -> str:
    start = 0
    for _ in range(line - 1):
        start = text.find("\n", start) + 1
        if start == 0:
            return ""
    end = text.find("\n", start)
    return text[start:end if end >= 0 else len(text)].strip()[:160]


_TOKEN = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|([{}\[\]:,])|([^\s{}\[\]:,"]+))', re.S)


def line_of(text: str, path: Path) -> int:
    """The line on which the value at ``path`` starts (1 when it cannot be followed)."""
    pos = 0
    stack: list[list] = []       # per open container: [kind, current key or index, expecting key]
    target = list(path)
    n = len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            break
        start = m.start(1) if m.group(1) else m.start(2) if m.group(2) else m.start(3)
        pos = m.end()
        string, punct = m.group(1), m.group(2)
        frame = stack[-1] if stack else None
        if frame is not None and frame[0] == "obj" and frame[2] and string is not None:
            try:
                frame[1] = json.loads(string)
            except ValueError:
                frame[1] = string
            continue
        if punct == ":":
            if frame is not None:
                frame[2] = False
            continue
        if punct == ",":
            if frame is not None:
                if frame[0] == "obj":
                    frame[2] = True
                else:
                    frame[1] += 1
            continue
        if punct in ("}", "]"):
            stack.pop()
            continue
        # A value starts here: its path is the open containers' keys/indexes.
        here = [f[1] for f in stack]
        if here == target:
            return text.count("\n", 0, start) + 1
        if punct == "{":
            stack.append(["obj", None, True])
        elif punct == "[":
            stack.append(["arr", 0, False])
    return 1


_SPACE = re.compile(r"[ \t\n\r]*")


def element_lines(text: str) -> list[int]:
    """The line each element of a top-level JSON list starts on, in one pass: each element is
    skipped by the C decoder and the newlines before it counted once (a 150,000-route table is
    read in linear time). Text that is not a well-formed list gives the lines found so far."""
    decoder = json.JSONDecoder(parse_int=_bounded_int, parse_float=_finite, parse_constant=_no_constant)
    out: list[int] = []
    pos = _SPACE.match(text, 0).end()
    if not text.startswith("[", pos):
        return out
    pos = _SPACE.match(text, pos + 1).end()
    counted, line = 0, 1
    while pos < len(text) and text[pos] != "]":
        line += text.count("\n", counted, pos)
        counted = pos
        out.append(line)
        try:
            _value, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return out
        pos = _SPACE.match(text, pos).end()
        if text.startswith(",", pos):
            pos = _SPACE.match(text, pos + 1).end()
    return out
