"""What an nftables table can tell apart about a flow's addresses: the address classes' reading of nft.

:mod:`.address_classes` cuts the address space at every prefix, range and NAT target a rule names,
so that inside one class every test gives the same answer. This module gives that reading for an
nft table (kube-proxy's nftables mode, or any other), as :mod:`.address_classes` does for iptables:

* every address a statement compares ``ip saddr``/``ip daddr`` (or conntrack's ``ct [original|reply]
  ip saddr|daddr``) with, directly, through a prefix mask (``ip saddr & 255.255.0.0 == 10.1.0.0``),
  in an anonymous or named set, or as a part of a concatenated set or map key
  (``ip daddr . meta l4proto . th dport vmap @service-ips``): its interval is a cut;
* every NAT target address (``dnat to 10.1.0.2:8080``, the address parts of a NAT map's data);
* ``fib`` reads addresses only through routes and local addresses, which are cuts already;
* which chains are walked for which destinations: a base chain of type ``nat`` is walked only by a
  connection's first packet, as iptables' nat table, so its chains form a :class:`.nat_graph.NatGraph`
  (a jump guarded by ``ip daddr X``, or a verdict map element keyed by a destination address, is
  taken only for that destination); chains reached from any other base chain are taken whole.

Unsound (the caller then checks every flow one by one, and says why): an address read where no
interval can say what it tells apart: a hash of addresses (``jhash ip saddr``, ``symhash``), a mask
that is not a prefix, a set the packet path updates or that has timeouts (kube-proxy's ClientIP
affinity sets remember exact client addresses, as ``-m recent`` does in iptables mode), a NAT to an
address range (the kernel picks by a hash of the addresses), a rewrite of an address, an
expression or statement pktverify does not read, and iptables-nft's ``xt`` statements.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ...model import nft as n
from ...model.addresses import is_prefix_mask
from ..nft_view_match import value_interval
from .nat_graph import Interval, NatGraph

__all__ = ["NftReader", "NftTableAddresses", "is_address"]

_ADDR_FIELDS = frozenset({"saddr", "daddr"})
_CT_ADDR_KEYS = frozenset({"saddr", "daddr", "ip saddr", "ip daddr"})
_DADDR = n.Payload("ip", "daddr")
_FREE_STATEMENTS = (n.Counter, n.Log, n.Limit, n.Quota, n.CtCount, n.Reject, n.Queue, n.NoTrack, n.FlowAdd)


@dataclass
class NftTableAddresses:
    """One table's reading: ``whole`` the cuts of the chains every packet may walk; ``graph`` its nat
    chains (None: no nat base chain) and ``tests`` what each chain names; ``unsound`` why no interval
    can stand for what it tests."""
    whole: list[Interval] = field(default_factory=list)
    graph: NatGraph | None = None
    tests: Callable[[str], list[Interval]] | None = None      # chain name -> what the chain names
    unsound: str = ""


def is_address(expr: object) -> bool:
    """Whether ``expr`` is an IPv4 address itself: ``ip saddr|daddr`` or conntrack's."""
    kind = type(expr)
    if kind is n.Payload:
        return expr.protocol == "ip" and expr.field in _ADDR_FIELDS
    return kind is n.Ct and expr.key in _CT_ADDR_KEYS


def _reads_address(expr: object) -> bool:
    """Whether ``expr`` (an expression tree) reads an IPv4 address anywhere, or may (unknown)."""
    kind = type(expr)
    if is_address(expr):
        return True
    if kind is n.Hash:
        return expr.expr is None or _reads_address(expr.expr)
    if kind is n.Bitwise:
        return _reads_address(expr.expr)
    if kind is n.Concat:
        return any(_reads_address(i) for i in expr.items)
    if kind is n.MapLookup:
        return _reads_address(expr.key)
    return kind is n.NftUnknown or (kind is n.Payload and expr.protocol.startswith("@"))


class _Unsound(Exception):
    """A statement reads an address in a way no interval can stand for."""


class _TableReader:
    """One table's named sets, and the ones the packet path updates, as rule readings look them up."""

    def __init__(self, table: n.NftTable, updated: frozenset[str]) -> None:
        self.table = table
        self.sets = {s.name: s for s in (*table.sets, *table.maps)}
        self.updated = updated

    # ---------------------------------------------------------- values
    def key_parts(self, key: object) -> list[tuple[int, bool]]:
        """The address parts of a key expression: (index in the concatenation, is it ``ip daddr``).
        Raises :class:`_Unsound` when a part reads an address other than plainly."""
        items = key.items if type(key) is n.Concat else (key,)
        out = []
        for i, item in enumerate(items):
            if is_address(item):
                out.append((i, item == _DADDR))
            elif _reads_address(item):
                raise _Unsound(f"a key part reads an address ({type(item).__name__})")
        return out

    def element_intervals(self, elements, parts: list[tuple[int, bool]], concat: bool) -> list[Interval]:
        out = []
        for e in elements:
            for i, _dst in parts:
                value = e.key[i] if concat else e.key
                iv = value_interval(value)
                if iv is None:
                    raise _Unsound(f"a set element {value!r} in an address position")
                out.append(iv)
        return out

    def elements_of(self, data: object, addressed: bool) -> tuple[n.Element, ...]:
        """A set's elements (anonymous or named); one the packet path changes, with an address key,
        is unsound (it remembers exact addresses)."""
        if type(data) is n.AnonSet:
            return data.elements
        if type(data) is n.SetRef and data.name in self.sets:
            s = self.sets[data.name]
            if addressed and (s.name in self.updated or "dynamic" in s.flags or "timeout" in s.flags
                              or s.timeout is not None):
                raise _Unsound(f"set {s.name} remembers exact addresses (updated from the packet path)")
            return s.elements
        raise _Unsound(f"a lookup of {data!r} (not a set of this table)")

    def data_addresses(self, map_ref: object) -> list[Interval]:
        """NAT targets among a NAT map's data (its address parts)."""
        s = self.sets.get(map_ref.name) if type(map_ref) is n.SetRef else None
        dtypes = s.data if s is not None else None
        out = []
        for e in self.elements_of(map_ref, False):
            values = e.data if type(e.data) is tuple else (e.data,)
            for j, v in enumerate(values):
                if dtypes is not None and j < len(dtypes) and dtypes[j] != "ipv4_addr":
                    continue
                if dtypes is None and j > 0:
                    continue        # anonymous NAT map: address first, then port
                iv = value_interval(v)
                if iv is not None:
                    out.append(iv)
        return out


class _RuleReading:
    """One rule: its cuts, NAT targets, destination condition and jumps (exact ones per address)."""

    def __init__(self, reader: _TableReader, rule: n.NftRule) -> None:
        self.tests: list[Interval] = []
        self.targets: list[Interval] = []
        self.jumps: list[tuple[Interval | None, str]] = []
        self.exact: list[tuple[int, str]] = []
        self.cond: Interval | None = None
        for stmt in rule.exprs:
            self.statement(reader, stmt)

    def statement(self, reader: _TableReader, stmt: object) -> None:
        kind = type(stmt)
        if kind is n.Match:
            self.match(reader, stmt)
        elif kind is n.Vmap:
            self.vmap(reader, stmt)
        elif kind is n.NftVerdict:
            if stmt.kind in ("jump", "goto") and stmt.chain is not None:
                self.jumps.append((self.cond, stmt.chain))
        elif kind is n.Nat:
            self.nat(reader, stmt)
        elif kind is n.Mangle:
            if _reads_address(stmt.key) or _reads_address(stmt.value):
                if type(stmt.value) is n.MapLookup and not _reads_address(stmt.key):
                    self.lookup(reader, stmt.value.key, stmt.value.data)
                else:
                    raise _Unsound("a statement writes or copies an address")
        elif kind is n.SetUpdate:
            pass                    # the lookups of an updated set are what tell addresses apart
        elif kind is n.Xt:
            raise _Unsound(f"an iptables-nft {stmt.kind} ({stmt.name})")
        elif kind is n.NftUnknown:
            raise _Unsound(f"a statement pktverify does not read ({stmt.raw[:60]})")
        elif not isinstance(stmt, _FREE_STATEMENTS):
            raise _Unsound(f"a {kind.__name__} statement")

    def match(self, reader: _TableReader, stmt: n.Match) -> None:
        left, right = stmt.left, stmt.right
        if type(right) in (n.AnonSet, n.SetRef):
            self.lookup(reader, left, right)
            return
        if not _reads_address(left):
            return
        if type(left) is n.Bitwise and is_address(left.expr):
            mask = left.mask
            if not is_prefix_mask(mask) or type(right) is not int:
                raise _Unsound("an address compared under a mask that is not a prefix")
            if stmt.op not in ("==", "!="):      # (x & mask) < v holds across many prefixes, not one
                raise _Unsound(f"a masked address compared with {stmt.op}")
            want = (right ^ left.xor) & mask
            iv = (want, want | (~mask & 0xFFFFFFFF))
        elif is_address(left):
            iv = value_interval(right)
            if iv is None:
                raise _Unsound(f"an address compared with {right!r}")
            if stmt.op in ("<", "<=", ">", ">="):
                v = iv[0]
                iv = {"<": (0, v - 1), "<=": (0, v), ">": (v + 1, 0xFFFFFFFF), ">=": (v, 0xFFFFFFFF)}[stmt.op]
                if iv[0] > iv[1]:
                    return
        else:
            raise _Unsound("an address read through an expression no interval can stand for")
        self.tests.append(iv)
        if left == _DADDR and stmt.op == "==":
            self.cond = self._narrowed(iv)

    def lookup(self, reader: _TableReader, key: object, data: object) -> None:
        parts = reader.key_parts(key)
        if parts:
            elements = reader.elements_of(data, True)
            self.tests += reader.element_intervals(elements, parts, type(key) is n.Concat)

    def vmap(self, reader: _TableReader, stmt: n.Vmap) -> None:
        parts = reader.key_parts(stmt.key)
        elements = reader.elements_of(stmt.data, bool(parts))
        concat = type(stmt.key) is n.Concat
        if parts:
            self.tests += reader.element_intervals(elements, parts, concat)
        dst = next((i for i, is_dst in parts if is_dst), None)
        for e in elements:
            verdict = e.data
            if type(verdict) is not n.NftVerdict or verdict.kind not in ("jump", "goto") or verdict.chain is None:
                continue
            iv = value_interval(e.key[dst] if concat else e.key) if dst is not None else None
            if iv is not None and iv[0] == iv[1] and self.cond is None:
                self.exact.append((iv[0], verdict.chain))
            else:
                self.jumps.append((self._narrowed(iv), verdict.chain))

    def _narrowed(self, iv: Interval | None) -> Interval | None:
        """The rule's destination condition so far, met with ``iv`` ((1, 0): nothing)."""
        if iv is None:
            return self.cond
        if self.cond is None:
            return iv
        low, high = max(self.cond[0], iv[0]), min(self.cond[1], iv[1])
        return (low, high) if low <= high else (1, 0)

    def nat(self, reader: _TableReader, stmt: n.Nat) -> None:
        addr, port = stmt.addr, stmt.port
        if type(port) is n.MapLookup:
            self.lookup(reader, port.key, port.data)
        elif _reads_address(port):
            raise _Unsound("a NAT port computed from an address")
        if type(addr) is n.MapLookup:
            self.lookup(reader, addr.key, addr.data)
            self.targets += reader.data_addresses(addr.data)
            return
        if addr is None:
            return
        iv = value_interval(addr)
        if iv is None or iv[0] != iv[1] or "netmap" in stmt.flags:
            raise _Unsound("a NAT to an address range or computed address picks by the packet's addresses")
        self.targets.append(iv)


class _ChainReading:
    """One chain's reading: what its rules name (``tests``, NAT targets included) and its
    structure (``jumps``, ``exact``, ``targets``), which nodes share when their chains and the maps
    that make the structure are the same objects."""
    __slots__ = ("tests", "jumps", "exact", "targets", "struct")

    def __init__(self, rules: list[_RuleReading]) -> None:
        self.tests = [iv for r in rules for iv in r.tests + r.targets]
        self.jumps = [j for r in rules for j in r.jumps]
        self.exact = [e for r in rules for e in r.exact]
        self.targets = [iv for r in rules for iv in r.targets]
        self.struct: object = self


class _Static:
    """The readings of a chains tuple's chains that name no set (the same on every node that
    holds the tuple), and the chains that do."""
    __slots__ = ("readings", "varying")

    def __init__(self, readings: dict[str, _ChainReading], varying: list[n.NftChain]) -> None:
        self.readings, self.varying = readings, varying


class _Layered:
    """A node's readings: its own for the chains that name sets, the shared ones for the rest."""
    __slots__ = ("base", "own")

    def __init__(self, base: dict[str, _ChainReading], own: dict[str, _ChainReading]) -> None:
        self.base, self.own = base, own

    def get(self, name: str) -> _ChainReading | None:
        found = self.own.get(name)
        return found if found is not None else self.base.get(name)

    def __getitem__(self, name: str) -> _ChainReading:
        found = self.own.get(name)
        return found if found is not None else self.base[name]

    def __contains__(self, name: str) -> bool:
        return name in self.own or name in self.base

    def tests(self, name: str) -> list[Interval]:
        """What chain ``name`` names (the per-chain tests the address classes ask for)."""
        return self[name].tests


class NftReader:
    """Reads nft tables for the address classes (see module), chain by chain, memoized
    by object: nodes whose rulesets were derived from one another (:mod:`...load.nft_derive`) share
    their chains, and so their readings and nat graphs."""

    def __init__(self) -> None:
        self._chains: dict[tuple, _ChainReading] = {}
        self._structs: dict[tuple, _ChainReading] = {}
        self._graphs: dict[tuple, NatGraph] = {}
        self._refs: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._updated: dict[int, frozenset[str]] = {}
        self._static: dict[int, _Static] = {}
        self._keep: list[object] = []       # what the memos' ids name stays alive

    def _refs_of(self, chain: n.NftChain) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(every set the chain's rules name, the ones that make its structure: vmaps, NAT maps)."""
        if id(chain) not in self._refs:
            self._keep.append(chain)
            every, struct = set(), set()
            for rule in chain.rules:
                for stmt in rule.exprs:
                    for ref, structural in _set_refs(stmt):
                        every.add(ref)
                        if structural:
                            struct.add(ref)
            self._refs[id(chain)] = (tuple(sorted(every)), tuple(sorted(struct)))
        return self._refs[id(chain)]

    def _chain(self, reader: _TableReader, chain: n.NftChain) -> _ChainReading:
        every, struct = self._refs_of(chain)
        sets = reader.sets
        key = (id(chain), tuple(id(sets.get(r)) for r in every), frozenset(reader.updated & set(every)))
        reading = self._chains.get(key)
        if reading is None:
            self._keep += [sets.get(r) for r in every]
            try:
                rules = [_RuleReading(reader, r) for r in chain.rules]
            except _Unsound as exc:
                raise _Unsound(f"chain {chain.name}: {exc}") from None
            reading = self._chains[key] = _ChainReading(rules)
            skey = (id(chain), tuple(id(sets.get(r)) for r in struct))
            reading.struct = self._structs.setdefault(skey, reading)
        return reading

    def _readings(self, reader: _TableReader, chains: tuple[n.NftChain, ...]) -> tuple[_Static, dict[str, _ChainReading]]:
        """Every chain's reading: those that name no set read once per chains tuple (nodes share
        them: :class:`_Static`), the others per node's sets (returned apart)."""
        static = self._static.get(id(chains))
        if static is None:
            fixed: dict[str, _ChainReading] = {}
            varying: list[n.NftChain] = []
            for chain in chains:
                if self._refs_of(chain)[0]:
                    varying.append(chain)
                else:
                    fixed[chain.name] = self._chain(reader, chain)
            static = self._static[id(chains)] = _Static(fixed, varying)
            self._keep.append(chains)
        return static, {chain.name: self._chain(reader, chain) for chain in static.varying}

    def read(self, table: n.NftTable) -> NftTableAddresses:
        """The address classes' reading of ``table`` (see module)."""
        if id(table.chains) not in self._updated:
            self._keep.append(table.chains)
            self._updated[id(table.chains)] = frozenset(
                s.set for c in table.chains for r in c.rules for s in r.exprs if type(s) is n.SetUpdate)
        reader = _TableReader(table, self._updated[id(table.chains)])
        out = NftTableAddresses()
        try:
            static, varying = self._readings(reader, table.chains)
        except _Unsound as exc:
            out.unsound = f"table {table.family} {table.name}, {exc}"
            return out
        readings = _Layered(static.readings, varying)
        nat_starts = {c.name for c in table.chains if c.is_base and c.type == "nat"}
        other_starts = {c.name for c in table.chains if c.is_base and c.type != "nat"}
        for name in _closure(other_starts, readings):
            out.whole += readings[name].tests
        if nat_starts:
            out.tests = readings.tests
            out.graph = self._graph(static, varying, nat_starts)
        return out

    def _graph(self, static: _Static, varying: dict[str, _ChainReading], starts: set[str]) -> NatGraph:
        key = (id(static), tuple((name, id(r.struct)) for name, r in varying.items()), frozenset(starts))
        graph = self._graphs.get(key)
        if graph is None:
            self._keep += [static, *(r.struct for r in varying.values())]
            structs = {name: r.struct for name, r in {**static.readings, **varying}.items()}
            exact: dict[str, dict[int, list[str]]] = {}
            for name, s in structs.items():
                for ip, target in s.exact:
                    exact.setdefault(name, {}).setdefault(ip, []).append(target)
            graph = self._graphs[key] = NatGraph({name: s.jumps for name, s in structs.items()}, exact,
                                                 {name: s.targets for name, s in structs.items()}, starts)
        return graph


def _set_refs(stmt: object):
    """(set name, does it make structure) for each named set or map a statement uses."""
    kind = type(stmt)
    if kind is n.Match and type(stmt.right) is n.SetRef:
        yield stmt.right.name, False
    elif kind is n.Vmap and type(stmt.data) is n.SetRef:
        yield stmt.data.name, True
    elif kind is n.Nat:
        for part in (stmt.addr, stmt.port):
            if type(part) is n.MapLookup and type(part.data) is n.SetRef:
                yield part.data.name, True
    elif kind is n.Mangle and type(stmt.value) is n.MapLookup and type(stmt.value.data) is n.SetRef:
        yield stmt.value.data.name, False


def _closure(starts: set[str], readings: _Layered) -> set[str]:
    """Chains reachable from ``starts`` by any jump (conditions ignored)."""
    seen = set(starts)
    todo = list(starts)
    while todo:
        r = readings.get(todo.pop())
        if r is None:
            continue
        for target in [t for _c, t in r.jumps] + [t for _ip, t in r.exact]:
            if target not in seen and target in readings:
                seen.add(target)
                todo.append(target)
    return seen
