"""YAML as pktverify reads it: every mapping remembers its lines, input is bounded before it is built.

The safe loader refuses duplicate keys, non-scalar keys, numbers longer than any port or timeout,
recursive aliases, nesting deeper than MAX_YAML_DEPTH and alias bombs (MAX_YAML_VALUES values once
expanded), each as an :class:`~pktverify.errors.InputError` at its line; :class:`YamlContext`
reads typed fields and Kubernetes names from the mappings with the same ``file:line`` errors. The
cluster YAML reader (:mod:`.cluster_yaml`) is built on it.
"""

from __future__ import annotations

import yaml

from ..errors import InputError
from ..limits import MAX_YAML_DEPTH, MAX_YAML_VALUES
from ..model.addresses import AddressError, format_network, parse_ip, parse_network
from .k8s_names import KINDS, label_key, label_value

__all__ = ["YamlMap", "YamlContext", "load_yaml", "mapping_list", "labels", "port_number", "short"]


class YamlMap(dict):
    """A YAML mapping that remembers its line, and each key's line."""
    line: int = 0
    key_lines: dict


class YamlProblem(Exception):
    """Raised inside the YAML constructor; turned into an InputError with the line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> YamlMap:
    out = YamlMap()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            raise YamlProblem(line, "a mapping key must be a plain word, not a list or mapping")
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise YamlProblem(line, f"duplicate key {key!r} (it is also on line {out.key_lines[key]})")
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)

_MAX_INT_CHARS = 40         # no port or timeout is longer; int() of 5,000 digits fails with Python's own message


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    """YAML's integers (decimal, 0x, 0o, 0b, 1:30), bounded in length before they are converted."""
    if len(node.value) > _MAX_INT_CHARS:
        raise YamlProblem(node.start_mark.line + 1, f"a number of {len(node.value):,} characters (at most "
                                                 f"{_MAX_INT_CHARS} are read)")
    return yaml.SafeLoader.construct_yaml_int(loader, node)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _check_graph(root: yaml.Node) -> None:
    """Refuse recursive aliases, nesting deeper than MAX_YAML_DEPTH and more than MAX_YAML_VALUES
    values once aliases are expanded, before anything is constructed (iterative: no recursion)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            line = node.start_mark.line + 1
            if depth[key] > MAX_YAML_DEPTH:
                raise YamlProblem(line, f"nesting deeper than {MAX_YAML_DEPTH} levels")
            if size[key] > MAX_YAML_VALUES:
                raise YamlProblem(line, f"more than {MAX_YAML_VALUES:,} values once aliases are expanded "
                                     "(an alias bomb?)")
            continue
        if key in size:
            continue
        if key in on_path:
            raise YamlProblem(node.start_mark.line + 1, "a recursive alias (an anchor used inside itself)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
        if len(stack) > MAX_YAML_VALUES:
            raise YamlProblem(node.start_mark.line + 1, "too many values")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load_yaml(text: str, ctx: YamlContext):
    """The document, or InputError naming the line for anything YAML or our bounds refuse."""
    loader = None
    try:
        loader = _Loader(text)        # the reader checks every character here
        try:
            root = loader.get_single_node()
        except RecursionError:
            raise YamlProblem(loader.line + 1, "nesting too deep") from None
        if root is None:
            raise YamlProblem(1, "empty document")
        _check_graph(root)
        return loader.construct_document(root)
    except YamlProblem as exc:
        raise ctx.error(exc.line, exc.message) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ctx.error(mark.line + 1 if mark else 1, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        raise ctx.error(line, f"invalid YAML: character {exc.character!r} is not allowed in YAML "
                              f"(position {exc.position})") from None
    except yaml.YAMLError as exc:
        raise ctx.error(1, f"invalid YAML: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()


class YamlContext:
    """Reads one YAML file's mappings: typed fields, names, addresses, each error at its ``file:line``."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = text.split("\n")

    def error(self, line: int, message: str) -> InputError:
        text = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
        return InputError(self.source, line, message, text)

    def field(self, m: YamlMap, key: str, kind: type | tuple, *, required: bool = True, default=None):
        if key not in m:
            if required:
                raise self.error(m.line, f"missing required key {key!r}")
            return default
        value = m[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.error(m.key_lines[key], f"{key} must be a {names}, not {type(value).__name__}")
        return value

    def name(self, m: YamlMap, key: str, kind: str, *, required: bool = True, default: str | None = None,
             allow_empty: bool = False):
        """A Kubernetes name, checked as the API server checks a ``kind`` (see :mod:`.k8s_names`)."""
        value = self.field(m, key, str, required=required, default=default)
        if value is not None and key in m and not (allow_empty and value == ""):
            self.check_name(value, kind, m.key_lines[key])
        return value

    def check_name(self, value: str, kind: str, line: int) -> None:
        why = KINDS[kind](value)
        if why:
            raise self.error(line, f"{kind} {value!r} {why}")

    def only(self, m: YamlMap, allowed: set[str], what: str) -> None:
        for key in m:
            if key not in allowed:
                raise self.error(m.key_lines[key], f"unknown key {key!r} in {what} (valid: {', '.join(sorted(allowed))})")

    def ip(self, m: YamlMap, key: str) -> int:
        try:
            return parse_ip(str(self.field(m, key, str)))
        except AddressError as exc:
            raise self.error(m.key_lines[key], str(exc)) from None

    def net(self, m: YamlMap, key: str, *, exact: bool = True) -> tuple[int, int]:
        text = self.field(m, key, str)
        if "/" not in text:
            raise self.error(m.key_lines[key], f"{key} must be a CIDR like 10.1.0.0/16")
        try:
            net = parse_network(text)
        except AddressError as exc:
            raise self.error(m.key_lines[key], str(exc)) from None
        if exact and parse_ip(text.split("/")[0]) != net[0]:
            raise self.error(m.key_lines[key], f"{key} {text} has host bits set (did you mean {format_network(*net)}?)")
        return net


def mapping_list(ctx: YamlContext, doc: YamlMap, key: str, *, required: bool = True) -> list[YamlMap]:
    items = ctx.field(doc, key, list, required=required, default=[])
    for item in items:
        if not isinstance(item, YamlMap):
            raise ctx.error(doc.key_lines[key], f"each entry of {key} must be a mapping")
    return items


def labels(ctx: YamlContext, m: YamlMap, key: str) -> tuple[tuple[str, str], ...] | None:
    value = ctx.field(m, key, dict, required=False)
    if value is None:
        return None
    line = m.key_lines[key]
    out = []
    for k, v in value.items():
        line = value.key_lines.get(k, line) if isinstance(value, YamlMap) else line
        if not isinstance(k, str) or not isinstance(v, str):
            raise ctx.error(line, f"{key}: keys and values must be strings (quote values such as "
                                  f"'true' or '1'), not {type(k).__name__}: {type(v).__name__}")
        why = label_key(k)
        if why:
            raise ctx.error(line, f"label key {k!r}: {why}")
        why = label_value(v)
        if why:
            raise ctx.error(line, f"label value {v!r} of {k}: {why}")
        out.append((k, v))
    return tuple(sorted(out))


def port_number(ctx: YamlContext, value, line: int, what: str) -> int:
    if type(value) is not int or not 0 < value < 65536:
        raise ctx.error(line, f"{what} {short(value)} is not a port number 1-65535")
    return value


def short(value) -> str:
    """A value for a message: scalars as they are, structures by their type only."""
    return repr(value)[:60] if isinstance(value, (str, int, float, bool)) or value is None else type(value).__name__
