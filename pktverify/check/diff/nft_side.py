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
from dataclasses import replace

from ...model import nft as n
from ...model import rules as m
from ...model.node import NodeState

__all__ = ["side_view", "walk_values", "structure", "rewrites_headers", "origin_keys", "with_reached_chains", "nft_where",
           "unknown_nft"]


def side_view(node: NodeState) -> m.Ruleset:
    """The rules of ``node`` as boxes see them: its iptables ruleset, and the view of its nft tables
    beside it (:func:`..nft_view.box_view`) when it has any."""
    if node.nft is None:
        return node.ruleset
    from ..nft_view import box_view
    return with_reached_chains(box_view(node.nft, node.ruleset), node.nft)


def structure(nft: n.NftRuleset | None) -> tuple:
    """The base chains in dump order (table, name, type, hook, priority, policy), flowtables and
    named objects: what decides which chains run and in which order, apart from their rules."""
    if nft is None:
        return ()
    return tuple((t.family, t.name, c.name, c.type, c.hook, c.priority, c.policy or "accept")
                 for t in nft.tables for c in t.chains if c.is_base) + \
        tuple((t.family, t.name, t.flowtables, t.objects) for t in nft.tables if t.flowtables or t.objects)


def walk_values(value) -> list:
    """Every record inside ``value`` (a statement or expression), itself included."""
    out, todo = [], [value]
    while todo:
        v = todo.pop()
        out.append(v)
        if isinstance(v, (tuple, list)):
            todo.extend(v)
        elif hasattr(v, "__slots__") and not isinstance(v, (str, int)):
            todo.extend(getattr(v, s) for s in v.__slots__ if s not in ("line", "handle", "text"))
    return out


def rewrites_headers(nft: n.NftRuleset | None) -> bool:
    """Whether a rule rewrites a header field in place (a payload mangle: ``ip daddr set ...``)."""
    return nft is not None and any(type(s) is n.Mangle and type(s.key) is n.Payload
                                   for t in nft.tables for c in t.chains for r in c.rules for s in r.exprs)


def _named(rule: n.NftRule) -> set[str]:
    """The sets, maps and flowtables a rule names (``@s``, ``vmap @m``, ``add @s``, ``flow add @ft``)."""
    names = set()
    for v in walk_values(rule.exprs):
        if type(v) is n.SetRef:
            names.add(v.name)
        elif type(v) is n.SetUpdate:
            names.add(v.set)
        elif type(v) is n.FlowAdd:
            names.add(v.flowtable)
    return names


def origin_keys(nft: n.NftRuleset | None) -> Callable[[m.Rule], object]:
    """For a view rule, its nft rule's statements and the sets and maps that rule names (None for
    a rule of an iptables table), so that two view rules compare equal only when their nft rules do."""
    by_place: dict[tuple[str, str, int], object] = {}
    for t in (nft.tables if nft is not None else ()):
        label = f"{t.family} {t.name}"
        for c in t.chains:
            for i, r in enumerate(c.rules, 1):
                sets = tuple(sorted(((s.name, s) for s in (*t.sets, *t.maps) if s.name in _named(r)),
                                    key=lambda kv: kv[0]))
                by_place[(label, c.name, i)] = (r.exprs, sets)
    return lambda rule: by_place.get((rule.table, rule.chain, rule.index))


def _targets(rule: n.NftRule, table: n.NftTable) -> set[str]:
    """The chains a rule can enter: jump and goto, verdict map elements (written or named)."""
    out = set()
    for v in walk_values(rule.exprs):
        if type(v) is n.NftVerdict and v.chain is not None:
            out.add(v.chain)
        elif type(v) is n.Vmap and type(v.data) is n.SetRef:
            got = table.set(v.data.name)
            out |= {e.data.chain for e in (got.elements if got else ()) if type(e.data) is n.NftVerdict and e.data.chain}
    return out


def with_reached_chains(view: m.Ruleset, nft: n.NftRuleset) -> m.Ruleset:
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
            missing = sorted({x for r in c.rules for x in _targets(r, t)} - jumped)
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


def nft_where(nodes: tuple[NodeState, ...]) -> Callable[[str, int], str]:
    """How a rule's place is written: ``FILE:LINE``, and ``FILE: nftables[i]`` for a JSON nft dump
    (its line is the rule's index in the ``nftables`` list, as trace steps give it)."""
    json_sources = {node.nft.source for node in nodes if node.nft is not None and node.nft.form == "json"}
    return lambda source, line: f"{source}: nftables[{line}]" if source in json_sources else f"{source}:{line}"


def unknown_nft(view: m.Ruleset, nft: n.NftRuleset | None) -> list[str]:
    """The texts of the view's may-match conditions in rules of nft tables (what no box decides)."""
    if nft is None:
        return []
    labels = {f"{t.family} {t.name}" for t in nft.tables}
    return sorted({mt.text or mt.module for name in labels & set(view.tables)
                   for c in view.tables[name].chains.values() for r in c.rules for mt in r.matches
                   if type(mt) is m.UnknownMatch})
