"""The region ``pktverify diff`` compares and the boxes that cut it into cells (see :mod:`.compare`).

*Region*: the packets that may reach a changed rule with its match true (:func:`whole_region`),
and the packets a DNAT or REDIRECT turns into such packets (the filter and later tables see the
translated destination). Each chain's entry (the packets that can enter it) is a set of boxes
(:class:`EntryCache`), a superset that keeps the region sound.

*Cuts* (:func:`cut_boxes`): the boxes of every rule a packet of the region can meet, the same
rules as seen after a NAT, and the packets each NAT already gives its address or port to; with
the node's own boundaries (:func:`node_boundaries`: special ranges, its addresses, routes) they
decide the cells of :mod:`.cells`.
"""

from __future__ import annotations

import bisect

from ...model import rules as m
from ...model.node import NodeState
from ..headerspace import DPORT, DST, SPORT, SRC, Box, Universe, _intersect, _norm, jumps_into, meet, rule_box
from .cells import Work, reaching_region

__all__ = ["EntryCache", "SPECIAL", "cut_boxes", "joint_universe", "node_boundaries", "whole_region"]


def whole_region(views: tuple[m.Ruleset, m.Ruleset], node: NodeState, gone: list[m.Rule], added: list[m.Rule],
                 policy: str | None, universe: Universe, work: Work, cache: "EntryCache") -> list[tuple[Box, str]]:
    """The region as (box, where it comes from: the changed rule's FILE:LINE, a DNAT's, or why every
    packet is in it: ``policy``, a changed chain policy or order). ``views``: both sides' rules as
    boxes see them (iptables tables and nft tables' views); ``node``: its addresses."""
    if policy:
        return [(universe.everything(), policy)]
    region = _region(views[0], gone, universe, work, cache) + _region(views[1], added, universe, work, cache)
    boxes = [b for b, _o in region]
    return region + _dnat_preimage(views[0], boxes, universe, node, cache) + \
        _dnat_preimage(views[1], boxes, universe, node, cache)


def cut_boxes(views: tuple[m.Ruleset, m.Ruleset], node: NodeState, region: list[Box], universe: Universe,
              work: Work, cache: EntryCache, local: bool = False) -> list[Box]:
    """The boxes that cut ``region`` into cells: the rules packets of the region can meet (their own
    boxes: :func:`cutting_boxes`, also as the rules after a DNAT see them) and what decides each NAT;
    rules with the same matches cut alike, so each box once. ``local``: each rule's box met with the
    packets that can reach it (see :func:`cutting_boxes`)."""
    old, new = views
    boxes = cutting_boxes(old, region, universe, work, local) + cutting_boxes(new, region, universe, work, local) + \
        translated_cuts((old, new), region, universe, node, work, cache, local) + \
        nat_cut_boxes(old, universe, cache) + nat_cut_boxes(new, universe, cache)
    return list(dict.fromkeys(boxes))


_MAX_ENTRY_BOXES = 5_000


class _Entries:
    """For each chain of a table, boxes covering the packets that can enter it: a built-in chain
    all of them, a user chain those of each jump to it met with that jump's own entry (a
    superset: earlier rules are not subtracted, which keeps it sound)."""

    def __init__(self, table: m.Table, universe: Universe) -> None:
        self.table, self.universe, self.memo = table, universe, {}
        self.jumps = jumps_into(table)

    def __call__(self, chain: str) -> list:
        got = self.memo.get(chain)
        if got is not None:
            return got
        self.memo[chain] = [self.universe.everything()]          # a loop: everything (sound)
        c = self.table.chains.get(chain)
        if c is None or c.builtin:
            return self.memo[chain]
        out, seen = [], set()
        for parent, rule in self.jumps.get(chain, ()):
            jump = rule_box(rule, self.universe)[0]
            for e in self(parent):
                box = meet(jump, e)
                if box is not None and box not in seen:
                    seen.add(box)
                    out.append(box)
        if len(out) > _MAX_ENTRY_BOXES:
            out = [self.universe.everything()]
        self.memo[chain] = out
        return out


class EntryCache:
    """One :class:`_Entries` per table of each rule set, built once for every use in a diff."""

    def __init__(self, universe: Universe) -> None:
        self.universe, self.made = universe, {}

    def __call__(self, ruleset: m.Ruleset, table: str) -> _Entries:
        key = (id(ruleset), table)
        if key not in self.made:
            self.made[key] = _Entries(ruleset.tables[table], self.universe)
        return self.made[key]


def _region(ruleset: m.Ruleset, changed: list[m.Rule], universe: Universe, work: Work,
            entries: EntryCache) -> list[tuple[Box, str]]:
    """Boxes covering the packets that can reach the changed rules and match them (earlier ending
    rules of their chain taken away: :func:`.cells.reaching_region`), each with its rule's place."""
    out = []
    for rule in changed:
        chain = ruleset.tables[rule.table].chains[rule.chain]
        out += [(b, rule.location()) for b in reaching_region(rule, chain, entries(ruleset, rule.table)(rule.chain),
                                                              universe, work)]
    return out


def _translation(target, local: tuple) -> tuple[tuple | None, tuple | None] | None:
    """What a DNAT or REDIRECT gives the packet: (destination values or None when it keeps its
    address, port values or None when it keeps its port); None for any other target."""
    if type(target) is m.Dnat:
        dst = ((target.addr_low, target.addr_high),) if target.addr_low is not None else None
    elif type(target) is m.Redirect:
        dst = local
    else:
        return None
    port = ((target.port_low, target.port_high),) if target.port_low is not None else None
    return (dst, port) if dst is not None or port is not None else None


def _local(node: NodeState) -> tuple:
    return tuple(sorted((a.ip, a.ip) for i in node.interfaces.values() for a in i.addresses))


def _dnat_preimage(ruleset: m.Ruleset, region: list, universe: Universe, node: NodeState,
                   cache: EntryCache) -> list:
    """The packets that a DNAT or REDIRECT turns into packets of ``region`` (the filter and later
    tables see the translated destination): those DNAT rules' own boxes, met with their entries."""
    if not region:
        return []
    local = _local(node)
    out = []
    for table, chain in _nat_chains(ruleset):
        for rule in chain.rules:
            gives = _translation(rule.target, local)
            if gives is None:
                continue
            dst, port = gives
            if any((dst is None or _intersect(b[DST], dst)) and (port is None or _intersect(b[DPORT], port))
                   for b in region):
                box = rule_box(rule, universe)[0]
                out += [(b, f"{rule.location()} (its DNAT)") for b in (meet(box, e) for e in
                                                                        cache(ruleset, table)(chain.name))
                        if b is not None]
    return out


_NAT_TARGETS = (m.Dnat, m.Snat, m.Masquerade, m.Redirect)


def _nat_chains(ruleset: m.Ruleset) -> list[tuple[str, m.Chain]]:
    """(table name, chain) of every chain holding a NAT target, in any table (iptables' nat, or an
    nft table's view, where a chain of any name may translate)."""
    return [(name, chain) for name, table in ruleset.tables.items() for chain in table.chains.values()
            if any(type(r.target) in _NAT_TARGETS for r in chain.rules)]


def translated_cuts(rulesets: tuple[m.Ruleset, ...], region: list, universe: Universe, node: NodeState,
                     work: Work, cache: EntryCache, local_cuts: bool = False) -> list:
    """Boxes that cut the region as the rules after a DNAT or REDIRECT see it: every rule a
    translated packet of ``region`` can meet, with its destination (and port, when the NAT sets
    it) put back to the packets the NAT takes. Without them a cell could hold packets that the
    rules after the NAT tell apart by source or port. ``local_cuts``: those rules' boxes met with the
    translated packets that can reach them (:func:`cutting_boxes`, ``local``)."""
    local = _local(node)
    out: dict[Box, None] = {}
    region_dst = _norm([iv for r in region for iv in r[DST]])
    for ruleset in rulesets:
        for table, chain in _nat_chains(ruleset):
            entries = cache(ruleset, table)
            for rule in chain.rules:
                gives = _translation(rule.target, local)
                if gives is None:
                    continue
                dst, port = gives
                near = [e for e in entries(chain.name) if _intersect(e[DST], region_dst)]   # cheap first cut
                if not near:
                    continue
                box = rule_box(rule, universe)[0]
                own = [b for b in (meet(box, e) for e in near) if b is not None]
                work.spend(len(region) * len(own))
                taken = [b for b in (meet(o, r) for o in own for r in region) if b is not None]
                if not taken:
                    continue
                moved = [b[:DST] + ((dst or b[DST]),) + b[DST + 1:DPORT] + ((port or b[DPORT]),) + b[DPORT + 1:]
                         for b in taken]
                hits = [h for rs in rulesets for h in cutting_boxes(rs, moved, universe, work, local_cuts)]
                work.spend(len(hits) * len(taken))
                for h in hits:
                    for b in taken:
                        back = h[:DST] + (b[DST],) + h[DST + 1:DPORT] + ((b[DPORT] if port else h[DPORT]),) \
                            + h[DPORT + 1:]
                        out[back] = None
    return list(out)


def cutting_boxes(ruleset: m.Ruleset, region: list, universe: Universe, work: Work | None = None,
                  local: bool = False) -> list:
    """The boxes of every rule a packet of ``region`` can meet with its match true (a walk from the
    built-in chains into the chains those rules jump to); a rule for another destination address is
    skipped without building its box (most of a kube-proxy dump). ``work`` counts the rules passed.

    ``local``: each rule's box met with the packets of ``region`` that can reach it (the region
    met with the jumps on the way), not the box alone: a rule in a service's chain then cuts only
    that service's packets, not every destination's (an endpoint's ``-s POD/32`` hairpin rule would
    otherwise cut the sources of every ClusterIP). Sound: every jump on the way is itself a cut, so
    by induction along the walk all packets of a cell reach the same rules; a rule's match matters
    only to the packets that reach it, and those lie in what the walk met it with (a superset:
    earlier rules are not taken away), where the met box and the box answer alike. The rules of a
    chain for other destinations are then not passed at all (:class:`_DstIndex`)."""
    out = []
    for table in ruleset.tables.values():
        done: dict[str, set] = {}
        todo = [(name, list(region)) for name, c in table.chains.items() if c.builtin]
        while todo:
            chain, reg = todo.pop()
            seen = done.setdefault(chain, set())
            reg = [b for b in reg if b not in seen]
            if not reg:
                continue
            seen.update(reg)
            dsts = [b[DST] for b in reg]
            rules = _DstIndex.of(table.chains[chain]).near(dsts) if local else table.chains[chain].rules
            if work is not None:
                work.spend(len(rules) * len(reg))
            for rule in rules:
                point = _fixed_dst(rule)
                if point is not None and not any(lo <= point[0] and point[1] <= hi or lo <= point[1] and point[0] <= hi
                                                 for d in dsts for lo, hi in d):
                    continue
                box = rule_box(rule, universe)[0]
                hit = [b for b in (meet(box, r) for r in reg) if b is not None]
                if not hit:
                    continue
                if local:
                    out.extend(hit)
                else:
                    out.append(box)
                if type(rule.target) is m.Jump and rule.target.chain in table.chains:
                    todo.append((rule.target.chain, hit))
    return out


class _DstIndex:
    """A chain's rules by the destination range they require (a plain ``-d``): those that can meet
    some destination of a set of intervals, in chain order, without passing the others (a
    kube-proxy ``KUBE-SERVICES`` chain holds one rule per service port)."""

    _made: dict[int, tuple] = {}            # id(chain) -> (chain, index): the chain kept alive with it
    _WIDE = 1 << 16                         # ranges wider than this are kept with the rules of no -d
    _SMALL = 64                             # chains of fewer rules are passed whole, not indexed
    _KEPT = 64                              # indexes kept (a diff's big chains), then forgotten

    def __init__(self, chain: m.Chain, indexed: bool = True) -> None:
        self.rules = chain.rules
        self.free: list[int] = []
        points = []
        for i, rule in enumerate(chain.rules if indexed else ()):
            point = _fixed_dst(rule)
            if point is None or point[1] - point[0] > self._WIDE:
                self.free.append(i)
            else:
                points.append((point[0], point[1], i))
        points.sort()
        self.span = max((b - a for a, b, _i in points), default=0)
        self.lows = [p[0] for p in points]
        self.points = points

    @classmethod
    def of(cls, chain: m.Chain) -> "_DstIndex":
        got = cls._made.get(id(chain))
        if got is None or got[0] is not chain:
            if len(chain.rules) < cls._SMALL:
                return cls(chain, indexed=False)
            if len(cls._made) >= cls._KEPT:
                cls._made.clear()
            got = cls._made[id(chain)] = (chain, cls(chain))
        return got[1]

    def near(self, dsts: list) -> list[m.Rule]:
        """The rules whose destination range may meet one of ``dsts`` (each an interval set), in order."""
        if not self.points:
            return list(self.rules)
        picked = set(self.free)
        for d in dsts:
            for lo, hi in d:
                # a range [a, b] meets [lo, hi] when a <= hi and b >= lo; b - a <= span
                start = bisect.bisect_left(self.lows, lo - self.span)
                for k in range(start, bisect.bisect_right(self.lows, hi)):
                    a, b, i = self.points[k]
                    if b >= lo:
                        picked.add(i)
        return [self.rules[i] for i in sorted(picked)]


def _fixed_dst(rule: m.Rule) -> tuple[int, int] | None:
    """The destination range a rule requires (a plain ``-d``), or None."""
    for mt in rule.matches:
        if type(mt) is m.AddrMatch and mt.field == "dst" and not mt.invert:
            return mt.network, mt.network | (~mt.mask & 0xFFFFFFFF)
    return None


def joint_universe(a: m.Ruleset, b: m.Ruleset) -> Universe:
    ua, ub = Universe.of(a), Universe.of(b)
    names = sorted(set(ua.interfaces[:-1]) | set(ub.interfaces[:-1])) + ["\x00other"]
    return Universe(tuple(names), (), True)


# Addresses the kernel treats specially as source or destination (martians, loopback, multicast,
# broadcast): their ranges are boundaries of behaviour whatever the rules say.
SPECIAL = [(0, 0x00FFFFFF), (0x7F000000, 0x7FFFFFFF), (0xE0000000, 0xEFFFFFFF), (0xF0000000, 0xFFFFFFFE),
            (0xFFFFFFFF, 0xFFFFFFFF)]


def node_boundaries(node: NodeState, views: tuple[m.Ruleset, ...], source_routes: bool = False
                    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Address ranges the node itself tells apart, as (source cuts, destination cuts): special
    ranges and its own addresses for both (martian checks), every route's prefix for destinations
    (and for sources too when a rule uses rpfilter, a reverse route lookup, or ``source_routes``:
    an nft ``fib saddr``)."""
    own = list(SPECIAL) + [(a.ip, a.ip) for iface in node.interfaces.values() for a in iface.addresses]
    routed = [(r.network, r.network | (~r.mask & 0xFFFFFFFF)) for r in node.routes + node.local_routes]
    rpfilter = source_routes or any(type(mt) is m.RpFilterMatch for v in views for t in v.tables.values()
                                    for c in t.chains.values() for r in c.rules for mt in r.matches)
    return (own + routed if rpfilter else own), own + routed


def nat_cut_boxes(ruleset: m.Ruleset, universe: Universe, cache: EntryCache) -> list[Box]:
    """For each NAT rule, the packets it can translate (its box met with its chain's entries) that
    already have the address or port it gives: that decides what the NAT changes, so each cuts the
    cells it meets, and only those (a kube-proxy dump has 20,000 DNATs, each for its own service)."""
    out = []
    for table, chain in _nat_chains(ruleset):
        for rule in chain.rules:
            cuts = _nat_boundaries(rule)
            if not cuts:
                continue
            box = rule_box(rule, universe)[0]
            for entry in cache(ruleset, table)(chain.name):
                met = meet(box, entry)
                if met is not None:       # what it translates that already has what it gives
                    out += [met[:f] + (hit,) + met[f + 1:] for f, r in cuts for hit in (_intersect(met[f], (r,)),)
                            if hit]
    return out


def _nat_boundaries(rule: m.Rule) -> list[tuple[int, tuple[int, int]]]:
    """(field, range) of a NAT target's addresses and ports."""
    t, out = rule.target, []
    if type(t) is m.Dnat:
        if t.addr_low is not None:
            out.append((DST, (t.addr_low, t.addr_high)))
        if t.port_low is not None:
            out.append((DPORT, (t.port_low, t.port_high)))
    elif type(t) is m.Snat:
        out.append((SRC, (t.addr_low, t.addr_high)))
        if t.port_low is not None:
            out.append((SPORT, (t.port_low, t.port_high)))
    elif type(t) in (m.Redirect, m.Masquerade) and t.port_low is not None:
        out.append((DPORT if type(t) is m.Redirect else SPORT, (t.port_low, t.port_high)))
    return out

