"""A header-space view of an nftables ruleset: its rules as iptables-model rules, for lint and diff.

Never evaluated: the view only feeds header-space analysis (:mod:`.headerspace`). Every ``ip`` and
``inet`` table becomes an ``m.Table`` named ``"FAMILY NAME"`` (a space, so it never collides with
iptables' ``filter``, ``nat``, ...), each chain an ``m.Chain`` (base chains with policy ``ACCEPT``
or ``DROP``, user chains None), each nft rule one or more ``m.Rule`` (one per action, in order):
``source`` the ruleset's, ``line`` the nft rule's (JSON: its index in the ``nftables`` list, as
:class:`..model.nft.NftRule` keeps it), ``index`` its 1-based position in its nft chain, ``text``
as nft prints it (a view rule of one set or map element: ``"TEXT [element KEY]"``).

Sound: a view rule's box holds every packet for which the nft rule reaches that action; it is
exact (no ``m.UnknownMatch``) only when it holds exactly those. nft evaluates left to right, so an
action's view rule carries the matches before it only: a match after a mark set does not guard the
mark set. What the box cannot say (fib, ct status, numgen, limit, sets the packet path changes,
...) is an ``m.UnknownMatch``; a statement that may change the packet in a way the view does not
write is an ``m.UnknownTarget`` (lint treats it as changing the packet). Lookups of a
concatenation, verdict maps and NAT maps are expanded, one view rule per element (up to
:data:`MAX_ELEMENTS` per rule; beyond, one rule with an opaque match).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..eval.nft_rules import reject_with
from ..load.nft_node import iptables_nft_table
from ..model import nft as n
from ..model import rules as m
from ..model.addresses import format_ip
from ..parse.nft_format import format_statement
from ..parse.nft_values import dtype_of
from .nft_view_match import (
    NEVER,
    implied,
    mangle_target,
    nat_target,
    resolve_th,
    set_match,
    statement_implied,
    value_match,
    verdict_target,
)

__all__ = ["MAX_ELEMENTS", "View", "ViewRule", "box_view", "build_view"]

MAX_ELEMENTS = 20_000                 # view rules one nft rule's expansions may make


@dataclass(frozen=True)
class ViewRule:
    """What lint needs beside a view rule: the nft ``rule`` and its 1-based ``position`` in its
    chain; ``element`` the key of the set or map element it comes from (None: the whole rule);
    ``entry``: the first view rule of the rule (or of the element) — its box holds every packet for
    which any of the rule's (element's) actions runs."""
    rule: n.NftRule
    position: int
    element: str | None
    entry: bool


@dataclass
class View:
    """The view (``ruleset``) and, per (view table, chain), a :class:`ViewRule` per view rule, aligned;
    ``missing``: a rule or map names a chain or set its table does not have (nft refuses that)."""
    ruleset: m.Ruleset
    info: dict[tuple[str, str], list[ViewRule]] = field(default_factory=dict)
    missing: bool = False


def box_view(nft: n.NftRuleset, iptables: m.Ruleset | None = None) -> m.Ruleset:
    """An iptables-model view of ``nft`` for header-space analysis (see module); with ``iptables`` (a
    mixed node's iptables-save), its tables are included unchanged and the nft tables iptables-nft
    wrote (``xt`` statements, iptables' table and chain names) are left to them."""
    return build_view(nft, iptables).ruleset


def build_view(nft: n.NftRuleset, iptables: m.Ruleset | None = None) -> View:
    """:func:`box_view` with the :class:`ViewRule` of every view rule."""
    tables: dict[str, m.Table] = dict(iptables.tables) if iptables is not None else {}
    view = View(m.Ruleset(nft.source, tables))
    for table in nft.tables:
        if table.family not in ("ip", "inet") or (iptables is not None and iptables_nft_table(table)):
            continue
        name = f"{table.family} {table.name}"
        ctx = _Table(table, name, nft.source)
        chains = {}
        for chain in table.chains:
            rules: list[m.Rule] = []
            infos: list[ViewRule] = []
            for pos, rule in enumerate(chain.rules, 1):
                for vr, info in _Rule(ctx, chain.name, pos, rule).view():
                    rules.append(vr)
                    infos.append(info)
            policy = (chain.policy or "accept").upper() if chain.is_base else None
            chains[chain.name] = m.Chain(chain.name, policy, tuple(rules), chain.line)
            view.info[(name, chain.name)] = infos
        tables[name] = m.Table(name, chains)
        view.missing = view.missing or ctx.missing or _jumps_missing(table, chains)
    return view


def _jumps_missing(table: n.NftTable, chains: dict[str, m.Chain]) -> bool:
    """Whether a view rule or a verdict map's element jumps or goes to a chain the table lacks."""
    if any(type(r.target) is m.Jump and r.target.chain not in chains for c in chains.values() for r in c.rules):
        return True
    return any(isinstance(e.data, n.NftVerdict) and e.data.chain is not None and e.data.chain not in chains
               for s in table.maps for e in s.elements)


class _Table:
    """A table's sets as the view reads them: constant ones by name (state ones are opaque)."""

    def __init__(self, table: n.NftTable, name: str, source: str) -> None:
        self.table, self.name, self.source, self.family = table, name, source, table.family
        updated = {s.set for c in table.chains for r in c.rules for s in r.exprs if type(s) is n.SetUpdate}
        self.names = {s.name for s in (*table.sets, *table.maps)}
        self.missing = not updated <= self.names
        self.constant = {s.name: s for s in (*table.sets, *table.maps)
                         if s.name not in updated and "dynamic" not in s.flags and "timeout" not in s.flags
                         and s.timeout is None and all(e.timeout is None for e in s.elements)}
        self.memo: dict[n.Match, list] = {}          # one match's view matches (elements repeat ports, protocols)

    def elements(self, data: object) -> tuple[n.Element, ...] | None:
        """The elements of an anonymous set or a constant named one (None: unknown or state)."""
        if isinstance(data, n.AnonSet):
            return data.elements
        if isinstance(data, n.SetRef):
            if data.name in self.constant:
                return self.constant[data.name].elements
            self.missing = self.missing or data.name not in self.names
        return None


@dataclass
class _Branch:
    """One way through a rule: the view matches so far (``("th", field, values, invert)`` for a
    ``th`` port, decided when a view rule is made), the element it took, whether it emitted yet."""
    matches: list
    element: str | None = None
    fresh: bool = True


class _Rule:
    """One nft rule translated, statement by statement (see module)."""

    def __init__(self, ctx: _Table, chain: str, position: int, rule: n.NftRule) -> None:
        self.ctx, self.chain, self.position, self.rule = ctx, chain, position, rule
        self.out: list[tuple[m.Rule, ViewRule]] = []

    def view(self) -> list[tuple[m.Rule, ViewRule]]:
        branches = [_Branch([])]
        for stmt in self.rule.exprs:
            if not branches:
                break
            branches = self._statement(stmt, branches)
        for b in branches:
            if b.fresh:                      # matches only (or continue): the rule, with no effect
                self._emit(b, None)
        return self.out

    def _statement(self, stmt: object, branches: list[_Branch]) -> list[_Branch]:
        t = type(stmt)
        needs = statement_implied(stmt)
        for b in branches:
            b.matches += needs
        if t is n.Match:
            keyed = self._expansion(stmt.left, stmt.right, stmt.op, len(branches))
            if keyed == []:                  # a constant empty set: no packet passes (the rule stays seen)
                for b in branches:
                    b.matches.append(NEVER)
                return branches
            if keyed is not None:
                return [_Branch(b.matches + ms, _label(b.element, text)) for b in branches for ms, text, _d in keyed]
            for b in branches:
                b.matches += self._match(stmt)
            return branches
        if t is n.Vmap:
            return self._vmap(stmt, branches)
        if t is n.NftVerdict:
            if stmt.kind == "continue":
                return branches
            for b in branches:
                self._emit(b, verdict_target(stmt))
            return []
        if t is n.Nat:
            return self._nat(stmt, branches)
        if t is n.Reject:
            for b in branches:
                if stmt.kind.startswith("tcp"):        # nft adds `meta l4proto tcp` (eval.nft_exprs)
                    b.matches.append(m.ProtoMatch(6))
                self._emit(b, m.Reject(reject_with(stmt)))
            return []
        if t is n.Queue:
            for b in branches:
                self._emit(b, m.Nfqueue(stmt.low, "bypass" in stmt.flags))
            return []
        if t in (n.Limit, n.Quota, n.CtCount) or (t is n.Xt and stmt.kind == "match"):
            for b in branches:
                b.matches.append(self._unknown(stmt))
            return branches
        target, breaks = self._effect(stmt)
        for b in branches:
            self._emit(b, target)
            if breaks:                       # the rule may stop here (a full set, a map without the key)
                b.matches.append(self._unknown(stmt))
        return branches

    # ------------------------------------------------------------ matches
    def _match(self, stmt: n.Match) -> list:
        """The view matches of one nft match (an opaque one when the box cannot say it)."""
        memo = self.ctx.memo
        got = memo.get(stmt)
        if got is None:
            got = memo[stmt] = self._match_new(stmt)
            if len(memo) > 100_000:
                memo.clear()
        return list(got)

    def _match_new(self, stmt: n.Match) -> list:
        left, op, right = stmt.left, stmt.op, stmt.right
        needs = implied(left)
        if needs is NEVER:
            return [NEVER]
        if isinstance(right, (n.SetRef, n.AnonSet)):
            elements = self.ctx.elements(right)
            got = set_match(left, op, elements) if elements is not None else None
        else:
            got = value_match(left, op, right)
        if got is None:
            got = [self._unknown(stmt)]
        return needs + got

    def _expansion(self, key: object, data: object, op: str, ways: int) -> list | None:
        """Per element of a lookup on a concatenation (or of a map): (its view matches, its key as
        nft prints it, its data); None when not expanded (a single field, opaque, past the cap)."""
        if op != "==" or (not isinstance(key, n.Concat) and self._kind(data) == "set"):
            return None
        elements = self.ctx.elements(data)
        if elements is None or ways * len(elements) > MAX_ELEMENTS:
            return None                      # (a constant empty one: [], no key is in it)
        out = []
        for e in elements:
            parts = key.items if isinstance(key, n.Concat) else (key,)
            values = e.key if isinstance(key, n.Concat) else (e.key,)
            if not isinstance(values, tuple) or len(values) != len(parts):
                return None
            ms = [mt for p, v in zip(parts, values) for mt in self._match(n.Match(p, "==", v))]
            out.append((ms, _key_text(key, e.key, self.ctx.family), e.data))
        return out

    def _kind(self, data: object) -> str:
        if isinstance(data, n.SetRef):
            s = self.ctx.table.set(data.name)
            return "map" if s is not None and s.is_map else "set"
        return "map" if isinstance(data, n.AnonSet) and any(e.data is not None for e in data.elements) else "set"

    def _unknown(self, stmt: object) -> m.UnknownMatch:
        return m.UnknownMatch("nft", format_statement(stmt, self.ctx.family))

    # ------------------------------------------------------------ actions
    def _vmap(self, stmt: n.Vmap, branches: list[_Branch]) -> list[_Branch]:
        """Per element: a view rule with its verdict; the branches of ``continue`` elements go on."""
        keyed = self._expansion(stmt.key, stmt.data, "==", len(branches))
        if keyed == []:                      # a constant empty map: no verdict, the rule goes on
            return branches
        going = []
        if keyed is None:                    # opaque: each verdict it may give, behind an opaque match
            elements = self.ctx.elements(stmt.data) or ()
            verdicts = list(dict.fromkeys(e.data for e in elements if isinstance(e.data, n.NftVerdict)))
            opaque = self._unknown(stmt)
            for b in branches:
                b.matches.append(opaque)
                for v in verdicts or [n.NftVerdict("drop"), n.NftVerdict("accept")]:
                    if v.kind != "continue":
                        self._emit(_Branch(list(b.matches), b.element, b.fresh), verdict_target(v))
                        b.fresh = False
                if any(v.kind == "continue" for v in verdicts) or self.ctx.elements(stmt.data) is None:
                    going.append(b)
            return going
        for b in branches:
            for ms, text, verdict in keyed:
                sub = _Branch(b.matches + ms, _label(b.element, text))
                if isinstance(verdict, n.NftVerdict) and verdict.kind == "continue":
                    going.append(sub)
                else:
                    self._emit(sub, verdict_target(verdict) if isinstance(verdict, n.NftVerdict) else m.UnknownTarget("vmap"))
        return going

    def _nat(self, stmt: n.Nat, branches: list[_Branch]) -> list[_Branch]:
        """NAT ends the rule (it accepts); a map's addresses expanded per element, else everything."""
        if stmt.family == "ip6":
            for b in branches:
                self._emit(_Branch(b.matches + [NEVER], b.element, b.fresh), m.Dnat(None, None, None, None))
            return []
        if isinstance(stmt.addr, n.MapLookup) and stmt.port is None:
            keyed = self._expansion(stmt.addr.key, stmt.addr.data, "==", len(branches))
            if keyed == []:                  # a constant empty map: the lookup breaks the rule
                for b in branches:
                    self._emit(_Branch(b.matches + [NEVER], b.element, b.fresh), m.Dnat(None, None, None, None))
                return []
            if keyed is not None and all(isinstance(d, (int, tuple)) for _ms, _t, d in keyed):
                for b in branches:
                    for ms, text, data in keyed:
                        addr, port = (data[0], data[1] if len(data) > 1 else None) if isinstance(data, tuple) \
                            else (data, None)
                        self._emit(_Branch(b.matches + ms, _label(b.element, text)), nat_target(stmt, addr, port))
                return []
        plain = all(v is None or isinstance(v, (int, n.Range, n.Prefix)) for v in (stmt.addr, stmt.port))
        for b in branches:
            if plain:
                self._emit(b, nat_target(stmt, stmt.addr, stmt.port))
            else:                            # a map or expression: may break the rule; any address
                b.matches.append(self._unknown(stmt))
                self._emit(b, nat_target(stmt, n.Range(0, 0xFFFFFFFF), n.Range(0, 65535)))
        return []

    def _effect(self, stmt: object) -> tuple[m.Target | None, bool]:
        """The target of a statement that lets the rule go on, and whether the rule may stop there."""
        t = type(stmt)
        if t is n.Counter:
            return m.NoOp("counter"), False
        if t is n.Log:
            return m.NoOp("log"), False
        if t is n.FlowAdd:
            return m.NoOp("flow add"), False
        if t is n.SetUpdate:
            return m.NoOp(f"{stmt.op} @{stmt.set}"), True
        if t is n.NoTrack:
            return m.NoTrack("notrack"), False
        if t is n.Mangle:
            target = mangle_target(stmt)
            if target is not None:
                return target, False
        return m.UnknownTarget(format_statement(stmt, self.ctx.family)), True

    def _emit(self, b: _Branch, target: m.Target | None) -> None:
        rule = self.rule
        text = rule.text if b.element is None else f"{rule.text} [element {b.element}]"
        vr = m.Rule(self.ctx.name, self.chain, self.position, self.ctx.source, rule.line, text,
                    tuple(resolve_th(b.matches, self.rule, self.ctx.family)), target)
        self.out.append((vr, ViewRule(rule, self.position, b.element, b.fresh)))
        b.fresh = False


def _label(before: str | None, text: str) -> str:
    return text if before is None else f"{before}, {text}"


def _key_text(key: object, value: object, family: str) -> str:
    """An element's key as nft prints it (``10.0.0.1 . tcp . 80``)."""
    parts = key.items if isinstance(key, n.Concat) else (key,)
    values = value if isinstance(key, n.Concat) and isinstance(value, tuple) else (value,)
    fast = [_scalar_text(dtype_of(p)[0], v) for p, v in zip(parts, values)]
    if len(fast) == len(parts) and None not in fast:
        return " . ".join(fast)          # type: ignore[arg-type]
    text = format_statement(n.Match(key, "==", n.AnonSet((n.Element(value),))), family)
    return text[text.rfind("{ ") + 2:-2] if text.endswith(" }") else text


def _scalar_text(dtype: str | None, v: object) -> str | None:
    """An address, protocol or port as nft prints it (None: left to the formatter)."""
    if type(v) is int:
        if dtype == "integer":           # numgen and hash buckets
            return str(v)
        if dtype == "ipv4_addr":
            return format_ip(v)
        if dtype == "inet_service":
            return str(v)
        if dtype == "inet_proto":
            return _PROTO_NAMES.get(v)
    if isinstance(v, n.Range) and dtype in ("ipv4_addr", "inet_service"):
        low, high = _scalar_text(dtype, v.low), _scalar_text(dtype, v.high)
        return f"{low}-{high}"
    if isinstance(v, n.Prefix) and dtype == "ipv4_addr":
        return f"{format_ip(v.addr)}/{v.length}"
    return None


_PROTO_NAMES = {6: "tcp", 17: "udp", 132: "sctp", 1: "icmp"}


