"""The jump graph of one nftables table, and set elements against their declared types, for
:mod:`.nft_structure`.

Edges are every ``jump``/``goto`` a rule holds, the verdicts of its anonymous verdict maps, and
the verdicts of the named maps it looks up (``vmap @m``); a named map's own elements name chains
too (its elements are refused when they name a missing one, whether or not a rule uses the map).
The kernel validates from each base chain: a loop is refused, and so is a path of 16 or more
jumps (its jump stack holds 16 levels, the base chain's included).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass

from ...model import nft as n

__all__ = ["MAX_DEPTH", "Edge", "TableGraph", "element_problem", "match_problem", "script_order"]

MAX_DEPTH = 15          # nested jumps from a base chain the kernel follows (NFT_JUMP_STACK_SIZE 16 levels)


@dataclass(frozen=True)
class Edge:
    """``kind`` (jump, goto) to ``target`` from ``source`` (a chain; None for a map's element),
    written in ``origin`` (chain X / map M) at ``line``."""
    kind: str
    target: str
    source: str | None
    origin: str
    line: int


# Values and records that hold no verdict and no @name: the walk does not look inside them.
_LEAVES = (int, str, type(None), n.Payload, n.Meta, n.Ct, n.Prefix, n.Range, n.Fib, n.Numgen, n.Counter, n.Log,
           n.Limit, n.Quota, n.CtCount, n.NoTrack, n.Xt, n.NftUnknown, n.Reject, n.Queue)
_FIELDS: dict[type, tuple[str, ...]] = {}


def _walk(value: object) -> Iterator[object]:
    """``value`` and everything inside it that may hold a verdict or an @name (statements,
    expressions, elements), with a stack of its own (any depth)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _LEAVES):
            continue
        yield item
        if isinstance(item, tuple):
            stack.extend(reversed(item))
            continue
        names = _FIELDS.get(type(item))
        if names is None:
            names = tuple(f.name for f in dataclasses.fields(item)) if dataclasses.is_dataclass(item) else ()
            _FIELDS[type(item)] = names
        stack.extend(getattr(item, name) for name in reversed(names))


class TableGraph:
    """The edges and @name references of ``table`` and what base chains reach each chain."""

    def __init__(self, table: n.NftTable) -> None:
        self.table = table
        self.chains: dict[str, n.NftChain] = {c.name: c for c in table.chains}
        self.sets: dict[str, n.NftSet] = {s.name: s for s in (*table.sets, *table.maps)}
        self.edges: list[Edge] = []
        self.set_refs: list[tuple[str, int, str]] = []         # (name, line, origin)
        maps = {m.name: m for m in table.maps}
        for m in table.maps:
            for element in m.elements:
                if isinstance(element.data, n.NftVerdict) and element.data.chain is not None:
                    self.edges.append(Edge(element.data.kind, element.data.chain, None, f"map {m.name}", m.line))
        self.children: dict[str, list[Edge]] = {c.name: [] for c in table.chains}
        for chain in table.chains:
            for rule in chain.rules:
                self._rule(chain.name, rule, maps)
        self.sources: dict[str, set[str | None]] = {}       # target -> the chains (None: a map) naming it
        for e in self.edges:
            self.sources.setdefault(e.target, set()).add(e.source)
        self._reached: dict[str, list[n.NftChain]] = {}
        for chain in table.chains:
            if chain.is_base:
                for name in self._reach(chain.name):
                    self._reached.setdefault(name, []).append(chain)

    def _rule(self, chain: str, rule: n.NftRule, maps: dict[str, n.NftSet]) -> None:
        origin = f"chain {chain}"
        for item in _walk(rule.exprs):
            if isinstance(item, n.NftVerdict) and item.chain is not None:
                edge = Edge(item.kind, item.chain, chain, origin, rule.line)
                self.edges.append(edge)
                self.children[chain].append(edge)
            elif isinstance(item, n.SetRef):
                self.set_refs.append((item.name, rule.line, origin))
                for element in maps[item.name].elements if item.name in maps else ():
                    if isinstance(element.data, n.NftVerdict) and element.data.chain is not None:
                        self.children[chain].append(Edge(element.data.kind, element.data.chain, chain, origin,
                                                         rule.line))
            elif isinstance(item, (n.SetUpdate, n.FlowAdd)):
                name = item.set if isinstance(item, n.SetUpdate) else item.flowtable
                self.set_refs.append((name, rule.line, origin))

    def _next(self, chain: str) -> list[Edge]:
        """Edges out of ``chain`` to chains the table has (regular ones: a base chain is refused, PV157)."""
        out = []
        for e in self.children.get(chain, ()):
            target = self.chains.get(e.target)
            if target is not None and not target.is_base:
                out.append(e)
        return out

    def _reach(self, start: str) -> set[str]:
        seen = {start}
        todo = [start]
        while todo:
            for e in self._next(todo.pop()):
                if e.target not in seen:
                    seen.add(e.target)
                    todo.append(e.target)
        return seen

    def reached_from(self, chain: str) -> list[n.NftChain]:
        """The base chains that reach ``chain`` (itself, for a base chain), in table order."""
        return self._reached.get(chain, [])

    def unused(self, chain: n.NftChain) -> str | None:
        """Why no packet enters regular ``chain`` — nothing names it, or only chains it reaches itself
        (a loop nothing else enters) — or None (a base chain, one a base chain reaches, or a map names)."""
        if chain.is_base or self.reached_from(chain.name):
            return None
        sources = self.sources.get(chain.name, set())
        if not sources:
            return "no jump, goto or verdict map names it"
        if None not in sources and sources <= self._reach(chain.name):
            return f"only chains it reaches itself jump to it ({', '.join(sorted(sources))})"
        return None

    def loops(self) -> list[tuple[list[str], int]]:
        """Each loop a base chain reaches, once: its chains in order and the line of the jump closing it
        (a depth-first walk with its own stack: a path of thousands of jumps must not exhaust Python's)."""
        state: dict[str, int] = {}         # 1 on the path, 2 done
        found: list[tuple[list[str], int]] = []
        for base in (c for c in self.table.chains if c.is_base):
            if base.name in state:
                continue
            state[base.name] = 1
            path, stack = [base.name], [iter(self._next(base.name))]
            while stack:
                edge = next(stack[-1], None)
                if edge is None:
                    state[path.pop()] = 2
                    stack.pop()
                elif state.get(edge.target) == 1:
                    found.append((path[path.index(edge.target):], edge.line))
                elif edge.target not in state:
                    state[edge.target] = 1
                    path.append(edge.target)
                    stack.append(iter(self._next(edge.target)))
        return found

    def too_deep(self) -> list[tuple[n.NftChain, list[str], int]]:
        """Each base chain with a loop-free path of more than :data:`MAX_DEPTH` jumps: the path's first
        ``MAX_DEPTH + 2`` chains and the line of the base chain's jump that starts it. Found level by
        level (the chains ``k`` jumps away, each with the first parent seen); a path through a loop
        is PV153's."""
        out = []
        for base in (c for c in self.table.chains if c.is_base):
            levels: list[dict[str, tuple[str, Edge]]] = [{base.name: (base.name, None)}]
            while len(levels) <= MAX_DEPTH + 1:
                nxt: dict[str, tuple[str, Edge]] = {}
                for name in levels[-1]:
                    for e in self._next(name):
                        nxt.setdefault(e.target, (name, e))
                if not nxt:
                    break
                levels.append(nxt)
            else:
                path = [next(iter(levels[-1]))]
                for k in range(len(levels) - 1, 0, -1):
                    parent, edge = levels[k][path[0]]
                    path.insert(0, parent)
                if len(set(path)) == len(path):
                    out.append((base, path, edge.line))
        return out


# ---------------------------------------------------------------- element types
_INT_BITS = {"ipv4_addr": 32, "inet_service": 16, "inet_proto": 8, "mark": 32, "ct_state": 32, "ct_status": 32,
             "pkt_type": 8, "icmp_type": 8, "icmp_code": 8, "tcp_flag": 8, "iface_index": 32, "uid": 32, "gid": 32,
             "ipv4_dscp": 6, "ct_dir": 8, "ecn": 2, "ttl": 8, "length": 16}
_STRING_TYPES = frozenset({"ifname", "string"})


def _value_problem(type_name: str, value: object) -> str | None:
    if type_name in _STRING_TYPES:
        return None if isinstance(value, str) else f"{value!r} is no {type_name}"
    bits = _INT_BITS.get(type_name)
    if bits is None or isinstance(value, bool):
        return None                     # a type pktverify does not check
    top = (1 << bits) - 1
    if isinstance(value, int):
        return None if 0 <= value <= top else f"{value} does not fit {type_name} ({bits} bits)"
    if isinstance(value, n.Range):
        return None if 0 <= value.low <= value.high <= top else f"range {value.low}-{value.high} does not fit " \
                                                                f"{type_name}"
    if isinstance(value, n.Prefix):
        return None if 0 <= value.length <= bits else f"prefix /{value.length} does not fit {type_name}"
    if isinstance(value, str) and type_name in ("ipv4_addr", "inet_service", "inet_proto"):
        return f"{value!r} is no {type_name}"
    return None


def _typed_problem(types: tuple[str, ...], value: object, what: str) -> str | None:
    if len(types) > 1:
        if not isinstance(value, tuple) or len(value) != len(types):
            parts = len(value) if isinstance(value, tuple) else 1
            return f"{what} has {parts} part(s), the type {' . '.join(types)} has {len(types)}"
        return next((p for t, v in zip(types, value) if (p := _value_problem(t, v))), None)
    if isinstance(value, tuple):
        return f"{what} has {len(value)} parts, the type {types[0] if types else '?'} has 1"
    return _value_problem(types[0], value) if types else None


_PORTS = frozenset({"tcp", "udp", "sctp", "th", "udplite", "dccp"})
_FIELD_TYPES = {("ip", "saddr"): "ipv4_addr", ("ip", "daddr"): "ipv4_addr", ("ip", "protocol"): "inet_proto",
                ("ip", "ttl"): "ttl", ("ip", "length"): "length", ("meta", "mark"): "mark",
                ("meta", "l4proto"): "inet_proto", ("ct", "mark"): "mark"}


def match_problem(stmt: object) -> str | None:
    """Why nft would refuse the value a match compares a header field, mark or protocol with
    (``tcp dport 99999``, ``ip ttl 300``, ``meta mark 0x100000000``; None: it fits or is not checked)."""
    if not isinstance(stmt, n.Match):
        return None
    left = stmt.left
    if isinstance(left, n.Payload):
        key = ("th", "port") if left.protocol in _PORTS and left.field in ("sport", "dport") else \
            (left.protocol, left.field)
    elif isinstance(left, n.Meta):
        key = ("meta", left.key)
    elif isinstance(left, n.Ct) and left.direction is None:
        key = ("ct", left.key)
    else:
        return None
    type_name = "inet_service" if key == ("th", "port") else _FIELD_TYPES.get(key)
    if type_name is None:
        return None
    right = stmt.right
    values = [e.key for e in right.elements] if isinstance(right, n.AnonSet) else [right]
    return next((p for v in values if (p := _value_problem(type_name, v)) is not None), None)


def element_problem(s: n.NftSet, element: n.Element) -> str | None:
    """Why nft would refuse ``element`` in ``s`` (None: it fits, or pktverify does not check its type)."""
    key = _typed_problem(s.key_type, element.key, "the key")
    if key is not None:
        return key
    if not s.is_map:
        return None if element.data is None else "an element with data (': ...') in a set, not a map"
    if element.data is None:
        return "an element without data in a map"
    if s.data == ("verdict",):
        return None if isinstance(element.data, n.NftVerdict) else f"{element.data!r} is no verdict"
    if isinstance(element.data, n.NftVerdict):
        return f"a verdict ({element.data.kind}) in a map of {' . '.join(s.data or ())}"
    return _typed_problem(s.data or (), element.data, "the data")


# ---------------------------------------------------------------- script order
_COMMANDS = ("add", "create", "insert", "replace")
_ELEMENT = re.compile(r"^\s*(?:add|create)\s+element\s+(\S+)\s+(\S+)\s+(\S+)\s")
_VERDICT = re.compile(r"\b(jump|goto)\s+\"?([^\s,}\"]+)")


def script_order(table: n.NftTable, graph: TableGraph, lines: list[str], finding) -> list:
    """PV151/PV152 in an ``nft -f`` script (``lines``): a command that names a chain or set a later
    command adds (nft runs commands in order; the kernel refuses the name it does not have yet).
    Only command lines count: a table block may name what it declares further down."""
    if not lines:
        return []

    def command(line: int) -> bool:
        return 0 < line <= len(lines) and lines[line - 1].lstrip().startswith(_COMMANDS)

    out = []
    for e in graph.edges:
        target = graph.chains.get(e.target)
        if e.source is not None and target is not None and command(e.line) and e.line < target.line:
            out.append(finding("PV151", f"{e.kind} {e.target} in {e.origin}: the script adds chain {e.target} only "
                                        f"later (line {target.line}), and nft runs its commands in order", e.line))
    for name, line, origin in graph.set_refs:
        s = graph.sets.get(name)
        if s is not None and command(line) and line < s.line:
            out.append(finding("PV152", f"@{name} in {origin}: the script adds {name} only later (line {s.line}), "
                                        "and nft runs its commands in order", line))
    for number, text in enumerate(lines, 1):
        hit = _ELEMENT.match(text)
        if hit is None or (hit.group(1), hit.group(2)) != (table.family, table.name):
            continue
        for kind, chain in _VERDICT.findall(text):
            target = graph.chains.get(chain)
            if target is not None and number < target.line:
                out.append(finding("PV151", f"{kind} {chain} in an element of {hit.group(3)}: the script adds chain "
                                            f"{chain} only later (line {target.line}), and nft runs its commands in "
                                            "order", number))
    return out
