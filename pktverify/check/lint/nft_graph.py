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

__all__ = ["Edge", "TableGraph", "element_problem", "script_order", "MAX_DEPTH"]

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


def _walk(value: object) -> Iterator[object]:
    """``value`` and everything inside it (statements, expressions, values, elements)."""
    yield value
    if isinstance(value, tuple):
        for item in value:
            yield from _walk(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _walk(getattr(value, f.name))


class TableGraph:
    """The edges and @name references of ``table`` and what base chains reach each chain."""

    def __init__(self, table: n.NftTable) -> None:
        self.table = table
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
            target = self.table.chain(e.target)
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
        sources = {e.source for e in self.edges if e.target == chain.name}
        if not sources:
            return "no jump, goto or verdict map names it"
        if None not in sources and sources <= self._reach(chain.name):
            return f"only chains it reaches itself jump to it ({', '.join(sorted(sources))})"
        return None

    def loops(self) -> list[tuple[list[str], int]]:
        """Each loop a base chain reaches, once: its chains in order and the line of the jump closing it."""
        state: dict[str, int] = {}         # 1 on the stack, 2 done
        found: list[tuple[list[str], int]] = []
        for base in (c for c in self.table.chains if c.is_base):
            stack: list[str] = []
            self._dfs(base.name, state, stack, found)
        return found

    def _dfs(self, chain: str, state: dict[str, int], stack: list[str], found: list) -> None:
        state[chain] = 1
        stack.append(chain)
        for e in self._next(chain):
            if state.get(e.target) == 1:
                found.append((stack[stack.index(e.target):], e.line))
            elif e.target not in state:
                self._dfs(e.target, state, stack, found)
        stack.pop()
        state[chain] = 2

    def too_deep(self) -> list[tuple[n.NftChain, list[str], int]]:
        """Each base chain with a loop-free path deeper than :data:`MAX_DEPTH`: the path's first
        ``MAX_DEPTH + 2`` chains and the line of the base chain's jump that starts it."""
        depth: dict[str, int] = {}
        out = []
        for base in (c for c in self.table.chains if c.is_base):
            best = max(self._next(base.name), key=lambda e: self._depth(e.target, depth, set()), default=None)
            if best is not None and 1 + self._depth(best.target, depth, set()) > MAX_DEPTH:
                out.append((base, [base.name] + self._path(best.target, depth, MAX_DEPTH + 1), best.line))
        return out

    def _depth(self, chain: str, memo: dict[str, int], onstack: set[str]) -> int:
        """The longest loop-free jump path down from ``chain`` (a loop is PV153's, not counted)."""
        if chain in memo:
            return memo[chain]
        if chain in onstack:
            return 0
        onstack.add(chain)
        d = max((1 + self._depth(e.target, memo, onstack) for e in self._next(chain)), default=0)
        onstack.discard(chain)
        memo[chain] = d
        return d

    def _path(self, chain: str, memo: dict[str, int], length: int) -> list[str]:
        path = [chain]
        while len(path) < length:
            nxt = [e.target for e in self._next(path[-1]) if e.target not in path]
            if not nxt:
                break
            path.append(max(nxt, key=lambda t: memo.get(t, 0)))
        return path


# ---------------------------------------------------------------- element types
_INT_BITS = {"ipv4_addr": 32, "inet_service": 16, "inet_proto": 8, "mark": 32, "ct_state": 32, "ct_status": 32,
             "pkt_type": 8, "icmp_type": 8, "icmp_code": 8, "tcp_flag": 8, "iface_index": 32, "uid": 32, "gid": 32,
             "ipv4_dscp": 6, "ct_dir": 8, "ecn": 2}
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
        target = table.chain(e.target)
        if e.source is not None and target is not None and command(e.line) and e.line < target.line:
            out.append(finding("PV151", f"{e.kind} {e.target} in {e.origin}: the script adds chain {e.target} only "
                                        f"later (line {target.line}), and nft runs its commands in order", e.line))
    for name, line, origin in graph.set_refs:
        s = table.set(name)
        if s is not None and command(line) and line < s.line:
            out.append(finding("PV152", f"@{name} in {origin}: the script adds {name} only later (line {s.line}), "
                                        "and nft runs its commands in order", line))
    for number, text in enumerate(lines, 1):
        hit = _ELEMENT.match(text)
        if hit is None or (hit.group(1), hit.group(2)) != (table.family, table.name):
            continue
        for kind, chain in _VERDICT.findall(text):
            target = table.chain(chain)
            if target is not None and number < target.line:
                out.append(finding("PV151", f"{kind} {chain} in an element of {hit.group(3)}: the script adds chain "
                                            f"{chain} only later (line {target.line}), and nft runs its commands in "
                                            "order", number))
    return out
