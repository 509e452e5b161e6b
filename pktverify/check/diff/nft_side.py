"""What ``pktverify diff`` needs of a side's nftables ruleset beyond its box view.

The region argument of :mod:`.compare` (a packet that meets no changed rule is treated alike) holds
for nft as for iptables once three things are true, and this module makes them so:

* **Rules compare by what they do.** A view rule (:func:`..nft_view.box_view`) keys by its matches
  and target, and also by its nft rule's own statements and the contents of every set and map that
  rule names (:func:`origin_keys`): a changed element of a named set changes the rules that read it,
  even when the view cannot express the lookup.
* **The order of base chains is the same.** Which base chains run on a hook, in which order (type,
  priority, and the dump's order for equal priorities), with which policy: when it differs
  (:func:`structure`), every packet is in the region.
* **No rule moves a packet in header space within a walk.** nft can rewrite an address or port in
  place (``ip daddr set``, ``tcp dport set``), which a later rule's box does not follow: then every
  packet is in the region too (:func:`rewrites_headers`).

It also gives the chains the view reaches no other way a jump from the chain that names them
(:func:`with_reached_chains`: a verdict map past the view's expansion cap), so every chain a packet
can enter has an entry, and says how nft rules are named in the output (:func:`nft_where`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ...model import nft as n
from ...model import rules as m
from ...model.node import NodeState
from ...parse.nft_format import format_statement
from ..headerspace import DPORT, DST, PROTO, SPORT, SRC
from ..nft_view import build_view

__all__ = ["SideView", "side_view", "walk_values", "structure", "rewrites_headers", "origin_keys",
           "with_reached_chains", "all_facts", "interface_names", "lookup_cuts", "nft_where",
           "unknown_nft"]


@dataclass(frozen=True)
class SideView:
    """One side's rules as boxes see them (``ruleset``: its iptables tables and the view of its nft
    tables) and, for each view rule, what else it is keyed by (``origin``, see :func:`origin_keys`)."""
    ruleset: m.Ruleset
    origin: Callable[[m.Rule], object] | None = None
    fib_saddr: bool = False         # an nft rule reads the route back to the source (fib saddr)


def side_view(node: NodeState) -> SideView:
    """The rules of ``node`` as boxes see them: its iptables ruleset, and the view of its nft tables
    beside it (:func:`..nft_view.build_view`) when it has any. ``node.nft`` holds only the tables its
    nft dump is read for (those iptables-nft wrote are read from iptables-save), so each is viewed."""
    if node.nft is None:
        return SideView(node.ruleset)
    view = build_view(node.nft)
    ruleset = replace(view.ruleset, tables={**node.ruleset.tables, **view.ruleset.tables})
    facts = all_facts(node.nft)
    return SideView(with_reached_chains(ruleset, node.nft, facts), origin_keys(node.nft, view, facts),
                    any(f[2] for f in facts.values()))


def structure(nft: n.NftRuleset | None) -> tuple:
    """The base chains in dump order (table, name, type, hook, priority, policy), flowtables and
    named objects, and the place of iptables-nft's tables among them (``NftRuleset.iptables_nft``):
    what decides which chains run and in which order, apart from their rules."""
    if nft is None:
        return ()
    return tuple((t.family, t.name, c.name, c.type, c.hook, c.priority, c.policy or "accept")
                 for t in nft.tables for c in t.chains if c.is_base) + \
        tuple((t.family, t.name, t.flowtables, t.objects) for t in nft.tables if t.flowtables or t.objects) + \
        nft.iptables_nft            # where iptables-nft's tables stand among them: their order on a hook


_LEAVES = (int, str, float, type(None))
_FIELDS: dict[type, tuple[str, ...]] = {}


def walk_values(value) -> list:
    """Every record and tuple inside ``value`` (a statement or expression), itself included
    (numbers and strings left out)."""
    out, todo = [], [value]
    while todo:
        v = todo.pop()
        if isinstance(v, _LEAVES):
            continue
        out.append(v)
        if type(v) is tuple or type(v) is list:
            todo.extend(v)
            continue
        names = _FIELDS.get(type(v))
        if names is None:
            names = _FIELDS[type(v)] = tuple(x for x in getattr(type(v), "__slots__", ())
                                             if x not in ("line", "handle", "text", "comment", "packets", "bytes"))
        todo.extend(getattr(v, x) for x in names)
    return out


def rewrites_headers(nft: n.NftRuleset | None) -> bool:
    """Whether a rule rewrites a header field in place (a payload mangle: ``ip daddr set ...``)."""
    return nft is not None and any(type(s) is n.Mangle and type(s.key) is n.Payload
                                   for t in nft.tables for c in t.chains for r in c.rules for s in r.exprs)


def _facts(rule: n.NftRule, table: n.NftTable) -> tuple[frozenset, frozenset, bool]:
    """What one walk over a rule finds: the sets, maps and flowtables it names (``@s``, ``vmap @m``,
    ``add @s``, ``flow add @ft``), the chains it can enter (jump and goto, verdict map elements,
    written or named), and whether it reads the route back to the source (``fib saddr``)."""
    names, chains, fib = set(), set(), False
    for v in walk_values(rule.exprs):
        kind = type(v)
        if kind is n.SetRef:
            names.add(v.name)
        elif kind is n.SetUpdate:
            names.add(v.set)
        elif kind is n.FlowAdd:
            names.add(v.flowtable)
        elif kind is n.NftVerdict and v.chain is not None:
            chains.add(v.chain)
        elif kind is n.Vmap and type(v.data) is n.SetRef:
            got = table.set(v.data.name)
            chains |= {e.data.chain for e in (got.elements if got else ()) if type(e.data) is n.NftVerdict
                       and e.data.chain}
        elif kind is n.Fib and "saddr" in v.flags:
            fib = True
    return frozenset(names), frozenset(chains), fib


def all_facts(nft: n.NftRuleset) -> dict[int, tuple[frozenset, frozenset, bool]]:
    """:func:`_facts` of every rule, by ``id`` of the rule."""
    return {id(r): _facts(r, t) for t in nft.tables for c in t.chains for r in c.rules}


def origin_keys(nft: n.NftRuleset, view, facts: dict) -> Callable[[m.Rule], object]:
    """For a view rule, its nft rule's statements and the contents of the sets and maps that rule
    names (None for a rule of an iptables table), so that two view rules compare equal only when
    their nft rules do. A view rule of one element of the one set or map its rule names, exact
    (no opaque match or target), holds that element itself: it is keyed without the set, so one
    changed element of kube-proxy's 10,000-service map changes one view rule, not 10,000.
    ``view``: the :class:`..nft_view.View` of ``nft`` (its rules, and what each comes from)."""
    keys: dict[int, object] = {}
    for t in nft.tables:
        label = f"{t.family} {t.name}"
        table = view.ruleset.tables.get(label)
        sets = {s.name: s for s in (*t.sets, *t.maps)}
        for c in t.chains:
            chain = table.chains.get(c.name) if table is not None else None
            whole: dict[int, tuple] = {}
            for vr, about in zip(chain.rules if chain else (), view.info.get((label, c.name), ())):
                names = facts[id(about.rule)][0]
                if id(about.rule) not in whole:
                    whole[id(about.rule)] = tuple((x, sets.get(x)) for x in sorted(names))
                alone = about.element is not None and len(names) == 1 and _exact(vr)
                keys[id(vr)] = (about.rule.exprs, about.element if alone else whole[id(about.rule)])
    return lambda rule: keys.get(id(rule))


def _exact(rule: m.Rule) -> bool:
    return type(rule.target) is not m.UnknownTarget and not any(type(mt) is m.UnknownMatch for mt in rule.matches)


def with_reached_chains(view: m.Ruleset, nft: n.NftRuleset, facts: dict) -> m.Ruleset:
    """``view`` with a jump (no match) to every chain an nft rule can enter that no view rule jumps
    to, at the end of the rule's chain: every chain a packet can enter then has an entry (a superset)."""
    tables = dict(view.tables)
    for t in nft.tables:
        label = f"{t.family} {t.name}"
        vt = tables.get(label)
        if vt is None:
            continue
        jumped = {r.target.chain for c in vt.chains.values() for r in c.rules if type(r.target) is m.Jump}
        chains = dict(vt.chains)
        for c in t.chains:
            missing = sorted({x for r in c.rules for x in facts[id(r)][1]} - jumped)
            missing = [x for x in missing if x in chains and not chains[x].builtin and c.name in chains]
            if not missing:
                continue
            jumped |= set(missing)
            have = chains[c.name]
            extra = tuple(m.Rule(label, c.name, 0, nft.source, c.line, f"(a jump to {x} the view does not spell out)",
                                 (), m.Jump(x)) for x in missing)
            chains[c.name] = replace(have, rules=have.rules + extra)
        tables[label] = replace(vt, chains=chains)
    return replace(view, tables=tables)


def interface_names(nft: n.NftRuleset | None) -> set[str]:
    """The interface names an nft ruleset tests (``iifname``/``oifname`` values, in sets and
    concatenations too; a wildcard ``eth*`` as ``eth0``): a stand-in node needs each as an
    interface of its own, whether or not the view can put the test in a box."""
    if nft is None:
        return set()
    out: set[str] = set()
    for t in nft.tables:
        for st in (*t.sets, *t.maps):
            parts = [i for i, k in enumerate(st.key_type) if k == "ifname"]
            for e in st.elements if parts else ():
                key = e.key if isinstance(e.key, tuple) else (e.key,)
                out |= {key[i] for i in parts if i < len(key) and isinstance(key[i], str)}
        for c in t.chains:
            for r in c.rules:
                for v in walk_values(r.exprs):
                    if type(v) in (n.Match, n.Vmap, n.MapLookup) and _names_iface(v.left if type(v) is n.Match
                                                                                   else v.key):
                        out |= _keys(v.right if type(v) is n.Match else v.data)
    return {x[:-1] + "0" if x.endswith("*") else x for x in out if 0 < len(x) <= 15}


def _names_iface(left: object) -> bool:
    items = left.items if type(left) is n.Concat else (left,)
    return any(type(i) is n.Meta and i.key in ("iifname", "oifname") for i in items)


def _keys(value: object) -> set[str]:
    """The strings in a value or in the keys of a written set (a named set's are read above)."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, tuple):
        return {x for v in value for x in _keys(v)}
    if type(value) is n.AnonSet:
        return {x for e in value.elements for x in _keys(e.key)}
    return set()


_BOX_FIELDS = {("ip", "saddr"): SRC, ("ip", "daddr"): DST, ("ip", "protocol"): PROTO}
_MAX_LOOKUP_CUTS = 50_000


def _box_field(expr: object) -> int | None:
    """The box field an expression reads (addresses, protocol, ports), or None."""
    if type(expr) is n.Payload:
        if expr.field in ("sport", "dport") and expr.protocol in ("tcp", "udp", "sctp", "th"):
            return SPORT if expr.field == "sport" else DPORT
        return _BOX_FIELDS.get((expr.protocol, expr.field))
    if type(expr) is n.Meta and expr.key == "l4proto":
        return PROTO
    return None


def _span(value: object) -> tuple[int, int] | None:
    if type(value) is int and not isinstance(value, bool):
        return (value, value)
    if type(value) is n.Range:
        return (value.low, value.high)
    if type(value) is n.Prefix and 0 <= value.length <= 32:
        return (value.addr, value.addr | (0xFFFFFFFF >> value.length if value.length < 32 else 0))
    return None


def lookup_cuts(nft: n.NftRuleset | None, universe) -> list:
    """A box per element of every set or map lookup on addresses, protocol and ports (each part of
    a concatenation on its field): cuts that make such a lookup answer alike within a cell even where
    the view leaves it opaque (a set the packet path changes, past the expansion cap). Only cells are
    finer for them, never the region; past :data:`_MAX_LOOKUP_CUTS` boxes the rest are left out."""
    out: dict = {}
    everything = universe.everything()
    for t in (nft.tables if nft is not None else ()):
        for c in t.chains:
            for r in c.rules:
                for v in walk_values(r.exprs):
                    if type(v) is n.Match and type(v.right) in (n.SetRef, n.AnonSet):
                        key, data = v.left, v.right
                    elif type(v) in (n.Vmap, n.MapLookup):
                        key, data = v.key, v.data
                    else:
                        continue
                    parts = key.items if type(key) is n.Concat else (key,)
                    fields = [_box_field(p) for p in parts]
                    if all(f is None for f in fields):
                        continue
                    got = t.set(data.name) if type(data) is n.SetRef else data
                    for e in (got.elements if got is not None else ()):
                        values = e.key if type(key) is n.Concat and isinstance(e.key, tuple) else (e.key,)
                        box = list(everything)
                        for f, value in zip(fields, values):
                            span = _span(value) if f is not None else None
                            if span is not None:
                                box[f] = (span,)
                        out[tuple(box)] = None
                        if len(out) >= _MAX_LOOKUP_CUTS:
                            return list(out)
    return list(out)


def nft_where(nodes: tuple[NodeState, ...]) -> Callable[[str, int], str]:
    """How a rule's place is written: ``FILE:LINE``, and ``FILE: nftables[i]`` for a JSON nft dump
    (its line is the rule's index in the ``nftables`` list, as trace steps give it)."""
    json_sources = {node.nft.source for node in nodes if node.nft is not None and node.nft.form == "json"}
    return lambda source, line: f"{source}: nftables[{line}]" if source in json_sources else f"{source}:{line}"


def unknown_nft(view: m.Ruleset, nft: n.NftRuleset | None) -> list[str]:
    """The texts of the view's opaque conditions in rules of nft tables (what no box decides), but
    ``numgen random``: the evaluator follows each of its buckets with its exact share for every
    packet alike, so it never tells two packets of a cell apart."""
    if nft is None:
        return []
    labels = {f"{t.family} {t.name}" for t in nft.tables}
    decided = _decided_lookups(nft)
    return sorted({mt.text or mt.module for name in labels & set(view.tables)
                   for c in view.tables[name].chains.values() for r in c.rules for mt in r.matches
                   if type(mt) is m.UnknownMatch and not (mt.text or "").startswith(("numgen random ", "fib "))
                   and mt.text not in decided})


def _decided_lookups(nft: n.NftRuleset) -> set[str]:
    """The set lookups every cell answers alike though the view leaves them opaque (a set the packet
    path changes, such as kube-proxy's affinity sets): every part of the key is an address, the
    protocol or a port, and every element of the set as dumped cuts the cells (:func:`lookup_cuts`,
    under its bound). A cell's packets are first packets traced alike, so what one adds to the set
    the others would add too. (``fib`` is decided too: the node's addresses and routes cut them.)"""
    out: set[str] = set()
    total = 0
    for t in nft.tables:
        # What the packet path adds: a lookup of the very key that was added answers alike for a
        # cell's packets; another key (add the daddr, look the saddr up) could tell them apart.
        added: dict[str, set] = {}
        for c in t.chains:
            for r in c.rules:
                for v in walk_values(r.exprs):
                    if type(v) is n.SetUpdate:
                        added.setdefault(v.set, set()).add(v.key)
        for c in t.chains:
            for r in c.rules:
                for v in walk_values(r.exprs):
                    if type(v) is not n.Match or type(v.right) not in (n.SetRef, n.AnonSet):
                        continue
                    parts = v.left.items if type(v.left) is n.Concat else (v.left,)
                    got = t.set(v.right.name) if type(v.right) is n.SetRef else v.right
                    if got is None or any(_box_field(p) is None for p in parts):
                        continue
                    if type(v.right) is n.SetRef and added.get(v.right.name, {v.left}) != {v.left}:
                        continue
                    keys = [e.key if type(v.left) is n.Concat and isinstance(e.key, tuple) else (e.key,)
                            for e in got.elements]
                    total += len(keys)
                    if all(len(k) == len(parts) and all(_span(x) is not None for x in k) for k in keys):
                        out.add(format_statement(v, t.family))
    return out if total < _MAX_LOOKUP_CUTS else set()
