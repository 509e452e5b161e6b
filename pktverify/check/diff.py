"""``pktverify diff``: which packets two rule sets of one node treat differently, exactly.

How it is exact over header space, not sampled:

1. Rules are matched up chain by chain (longest common subsequence of their matches and
   targets, comments aside). A packet that matches none of the unmatched ("changed") rules of
   either side, in chains whose policies agree, is matched by the same common rules in the same
   order on both sides, so its fate is the same. The packets that may differ therefore lie in the
   union of the packets that can reach a changed rule with its match true (its box, less what
   earlier ending rules of its chain take: :mod:`.diff_cells`); a changed policy puts every packet in.
2. That region is cut into *cells* (:func:`.diff_cells.cells`): one field at a time, into classes of
   values that every rule box of either side, every route, local or special address and NAT
   address or port holds all of or none of; the in-interface is one cell per interface. Within a
   cell every rule's box-expressible match, every route and every address-type test answers the
   same for all packets, so one packet per cell stands for the whole cell.
3. That packet is traced through both rule sets (first packet of a connection, mark 0); the cell
   differs when the outcomes differ: verdict, where it leaves, the NAT'd packet, probability.

Matches the boxes cannot express (tcp flags, sets, time, ...) may answer differently inside a
cell: when either side has one, the result says so (``exact`` false). Past :data:`MAX_CELLS` cells
or :data:`.diff_cells.MAX_WORK` units of work the rest is not compared: the result is then not
complete, its verdict is ``inexact`` unless a difference was already found, and it says what was
left (never "same").
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from ..eval.node_trace import NodeTracer
from ..model import rules as m
from ..model.addresses import format_ip
from ..model.node import NodeState
from ..model.packet import Packet
from ..model.trace import Outcome
from .diff_cells import MAX_WORK, PORT_PROTOS, Work, WorkBound, interfaces_of, reaching_region
from .diff_cells import cells as cell_classes
from .headerspace import DPORT, DST, PROTO, SPORT, SRC, Box, Universe, _intersect, _norm, jumps_into, meet, rule_box

__all__ = ["DiffClass", "DiffResult", "diff_rulesets", "changed_rules", "MAX_CELLS", "MAX_WORK"]

MAX_CELLS = 200_000
# Matches whose answer is not fixed by the fields a cell holds equal (addresses, protocol, ports,
# in-interface) and the node's state: everything else a first packet meets (marks and connmarks
# the rules set, ctstate NEW, addrtype, statistic branches, tcp SYN, icmp echo) is traced exactly.
_VARYING = (m.SetMatch, m.UnknownMatch, m.MaybeMatch, m.TimeMatch, m.RecentMatch)


@dataclass(frozen=True)
class DiffClass:
    """Packets with one change of fate: ``example`` (the packet, its in-interface or None for a
    locally generated one), what OLD and NEW do with it, the rules that decided on each side, and
    ``cells``: how many cells (see the module docstring) share exactly this change."""
    example: Packet
    in_iface: str | None
    old: tuple[str, ...]
    new: tuple[str, ...]
    old_rules: tuple[str, ...]
    new_rules: tuple[str, ...]
    cells: int = 1
    spans: tuple = ()              # per field (src, dst, proto, sport, dport): the values its cells cover
    interfaces: tuple[str, ...] = ()

    def describe_spans(self) -> list[str]:
        """``source 10.0.0.0-10.255.255.255, ...`` for each field the class does not cover whole."""
        names = ("source", "destination", "protocol", "source port", "destination port")
        tops = (0xFFFFFFFF, 0xFFFFFFFF, 255, 65535, 65535)
        out = []
        for name, span, top in zip(names, self.spans, tops):
            if span == ((0, top),):
                continue
            fmt = format_ip if name in ("source", "destination") else str
            out.append(f"{name} " + ", ".join(fmt(lo) if lo == hi else f"{fmt(lo)}-{fmt(hi)}" for lo, hi in span[:4])
                       + (" ..." if len(span) > 4 else ""))
        return out

    def to_json(self) -> dict:
        return {"example": {**self.example.to_json(), "in_iface": self.in_iface}, "old": list(self.old),
                "new": list(self.new), "old_rules": list(self.old_rules), "new_rules": list(self.new_rules),
                "cells": self.cells, "interfaces": list(self.interfaces),
                "spans": {n: [list(r) for r in span] for n, span in
                          zip(("src", "dst", "proto", "sport", "dport"), self.spans)}}


@dataclass
class DiffResult:
    """The classes found; ``cells`` compared and ``work`` done (:class:`.diff_cells.Work`).
    ``complete``: every cell of the region was compared (false: a bound was reached, and
    ``not_compared`` says what was left); ``exact``: complete, and no rule matches on what no
    packet field decides."""
    classes: list[DiffClass]
    changed_old: list[m.Rule]
    changed_new: list[m.Rule]
    cells: int
    exact: bool = True
    notes: list[str] = field(default_factory=list)
    complete: bool = True
    not_compared: str = ""
    work: int = 0

    @property
    def same(self) -> bool:
        """No difference, and every cell compared (a bound reached is never "same")."""
        return not self.classes and self.complete

    @property
    def verdict(self) -> str:
        """``same``, ``different`` (a class found: true whatever was left), or ``inexact`` (none
        found in what was compared, but a bound left some of the region out)."""
        return "different" if self.classes else "same" if self.complete else "inexact"


def _key(rule: m.Rule) -> tuple:
    return (tuple(mt for mt in rule.matches if type(mt) is not m.CommentMatch), rule.target)


def changed_rules(old: m.Ruleset, new: m.Ruleset) -> tuple[list[m.Rule], list[m.Rule], bool]:
    """The rules of each side outside the per-chain common subsequence, and whether a built-in
    chain's policy (or a table's existence) changed."""
    gone, added, policy = [], [], False
    for name in sorted(set(old.tables) | set(new.tables)):
        a, b = old.tables.get(name), new.tables.get(name)
        a_chains = a.chains if a else {}
        b_chains = b.chains if b else {}
        for chain in sorted(set(a_chains) | set(b_chains)):
            ca, cb = a_chains.get(chain), b_chains.get(chain)
            ra, rb = (ca.rules if ca else ()), (cb.rules if cb else ())
            builtin = chain in m.TABLE_CHAINS.get(name, ())
            if builtin and ((ca.policy if ca else None) or "ACCEPT") != ((cb.policy if cb else None) or "ACCEPT"):
                policy = True
            ka, kb = [_key(r) for r in ra], [_key(r) for r in rb]
            matcher = difflib.SequenceMatcher(None, ka, kb, autojunk=False)
            kept_a, kept_b = set(), set()
            for block in matcher.get_matching_blocks():
                kept_a.update(range(block.a, block.a + block.size))
                kept_b.update(range(block.b, block.b + block.size))
            gone += [r for i, r in enumerate(ra) if i not in kept_a]
            added += [r for i, r in enumerate(rb) if i not in kept_b]
    return gone, added, policy


def _fate(sent: Packet, outcomes: tuple[Outcome, ...]) -> tuple[str, ...]:
    """What happens to the packet, relative to it (so packets treated alike compare equal): the
    verdict, where it leaves, the address and port NAT gave it, the probability. A dropped or
    rejected packet's NAT does not matter: those outcomes count by verdict only."""
    shares: dict[str, float] = {}
    for o in outcomes:
        if o.verdict in ("drop", "reject"):
            text = o.verdict
        else:
            after, nat = o.packet, []
            # Relative to the packet sent: an address or port is named only when NAT changed it.
            for kind, addr, port, was_addr, was_port in (("DNAT", after.dst, after.dport, sent.dst, sent.dport),
                                                         ("SNAT", after.src, after.sport, sent.src, sent.sport)):
                if (addr, port) != (was_addr, was_port):
                    nat.append(f"{kind} to {format_ip(addr) if addr != was_addr else 'same address'}"
                               f"{f' port {port}' if port != was_port else ''}")
            where = f" on {o.out_iface}" if o.out_iface else ""
            text = f"{o.verdict}{where}{' (' + ', '.join(nat) + ')' if nat else ''}"
        shares[text] = shares.get(text, 0.0) + o.probability
    return tuple(f"{text} p={p:.6g}" if abs(p - 1.0) > 1e-9 else text for text, p in sorted(shares.items()))


def _deciders(outcomes: tuple[Outcome, ...], changed: set) -> set[tuple[str, int, str, str]]:
    """The rules that acted, as (file, line, ``table/chain #n TARGET``, rule text): every changed
    rule met (a jump too: a changed statistic branch is a jump) and every other rule that acted."""
    seen = set()
    for o in outcomes:
        for s in o.steps:
            if s.table is None or s.rule_index is None:
                continue
            if s.action.startswith(("jump", "goto")) and (s.source, s.line) not in changed:
                continue
            seen.add((s.source or "", s.line or 0, f"{s.table}/{s.chain} #{s.rule_index} {s.action.split(' ')[0]}",
                      s.rule))
    return seen


def _only_here(mine: set, theirs: set) -> tuple[str, ...]:
    """``file:line (what)`` of the deciders of one side that the other side has not (the same rule
    text at the same place in its chain counts as the same, whatever its line)."""
    other = {(what, text) for _src, _line, what, text in theirs}
    return tuple(f"{src}:{line} ({what})" for src, line, what, text in sorted(mine) if (what, text) not in other)


def diff_rulesets(old_node: NodeState, new_node: NodeState, *, max_cells: int = MAX_CELLS,
                  max_work: int = MAX_WORK) -> DiffResult:
    """Every class of packets whose fate differs between ``old_node`` and ``new_node`` (the same
    node with two rule sets: same interfaces and routes). Past ``max_cells`` cells or ``max_work``
    (see :mod:`.diff_cells`) the rest is not compared: ``complete`` is then false and
    ``not_compared`` says what was left, so a bound reached never reads as "same"."""
    old, new = old_node.ruleset, new_node.ruleset
    gone, added, policy = changed_rules(old, new)
    result = DiffResult([], gone, added, 0)
    if not gone and not added and not policy:
        return result
    work = Work(max_work)
    universe = _joint_universe(old, new)
    try:
        cache = _EntryCache(universe)
        region = _whole_region(old_node, new_node, gone, added, policy, universe, work, cache)
        # The rules packets of the region can meet cut it (their own boxes; see _cutting_boxes).
        boxes = _cutting_boxes(old, [b for b, _o in region], universe, work) + \
            _cutting_boxes(new, [b for b, _o in region], universe, work) + \
            _translated_cuts((old, new), [b for b, _o in region], universe, old_node, work, cache) + \
            _nat_cut_boxes(old, universe, cache) + _nat_cut_boxes(new, universe, cache)
        boxes = list(dict.fromkeys(boxes))       # rules with the same matches cut alike
    except WorkBound:
        result.complete, result.exact = False, False
        result.not_compared = "every packet the changed rules may see (the work bound was reached while finding them)"
        result.work = work.done
        return result
    every_rule = [r for rs in (old, new) for t in rs.tables.values() for c in t.chains.values() for r in c.rules]
    varying = sorted({type(mt).__name__ for r in every_rule for mt in r.matches if type(mt) in _VARYING})
    if varying:
        result.exact = False
        result.notes.append(f"some rules match on what no packet field decides ({', '.join(varying)}: set "
                            "contents, time, unmodelled matches): within a class those may still tell packets apart")
    src_cuts, dst_cuts = _node_boundaries(old_node, new_node)
    fixed: dict[int, list] = {SRC: [(e,) for e in src_cuts], DST: [(e,) for e in dst_cuts],
                              PROTO: [((p, p),) for p in (1,) + PORT_PROTOS]}
    # Every interface of the node is a cell of its own (routing and martian checks read it too);
    # None: generated on the node itself.
    ifaces = [(name, universe.interface_atom(name)) for name in old_node.interfaces if name != "lo"]
    old_tracer, new_tracer = NodeTracer(old_node), NodeTracer(new_node)
    gone_lines = {(r.source, r.line) for r in gone}
    added_lines = {(r.source, r.line) for r in added}
    seen: set[tuple] = set()
    groups: dict[tuple, list] = {}
    cells = 0
    stopped: int | None = None           # the region box the bound stopped in
    for at, (box, _origin) in enumerate(region):
        try:
            for atoms in cell_classes(box, boxes, fixed, work):
                for in_iface in interfaces_of(box, ifaces):
                    if (atoms, in_iface) in seen:         # the same cell from overlapping region boxes
                        continue
                    if cells >= max_cells:
                        raise WorkBound
                    seen.add((atoms, in_iface))
                    cells += 1
                    src, dst, proto, sport, dport = (a[0][0] for a in atoms)
                    ports = proto in PORT_PROTOS
                    pkt = Packet(proto, src, dst, sport if ports else 0, dport if ports else 0,
                                 0x02 if proto == 6 else 0, 8 if proto == 1 else -1, 0 if proto == 1 else -1)
                    before = old_tracer.trace(pkt, in_iface=in_iface).outcomes
                    after = new_tracer.trace(pkt, in_iface=in_iface).outcomes
                    fa, fb = _fate(pkt, before), _fate(pkt, after)
                    if fa != fb:
                        entry = groups.setdefault((fa, fb), [[], set(), set()])
                        entry[0].append((pkt, in_iface, atoms))
                        entry[1].update(_deciders(before, gone_lines))
                        entry[2].update(_deciders(after, added_lines))
        except WorkBound:
            stopped = at
            break
    result.cells = cells
    result.work = work.done
    if stopped is not None:
        result.complete, result.exact = False, False
        bound = f"{max_cells:,} cells" if cells >= max_cells else f"{max_work:,} units of work"
        origins = list(dict.fromkeys(o for _b, o in region[stopped:]))
        shown = ", ".join(origins[:3]) + (f" and {len(origins) - 3} more" if len(origins) > 3 else "")
        result.not_compared = (f"the rest of the packets reaching {shown} (stopped at the bound of {bound}; "
                               f"{stopped} of {len(region)} region box(es) compared whole)")
    for (fa, fb), (members, da, db) in groups.items():
        # The rules responsible: those that acted on one side and not the other.
        da, db = _only_here(da, db), _only_here(db, da)
        pkt, in_iface = _example(members, old_tracer, new_tracer, (fa, fb))
        spans = tuple(_hull([iv for mem in members for iv in mem[2][f]]) for f in range(5))
        result.classes.append(DiffClass(pkt, in_iface, fa, fb, da, db, len(members), spans,
                                        tuple(sorted({mem[1] or "local" for mem in members}))))
    return result


def _whole_region(old_node: NodeState, new_node: NodeState, gone: list[m.Rule], added: list[m.Rule], policy: bool,
                  universe: Universe, work: Work, cache: "_EntryCache") -> list[tuple[Box, str]]:
    """The region as (box, where it comes from: the changed rule's FILE:LINE, a DNAT's, or the
    policy change)."""
    if policy:
        return [(universe.everything(), "a changed chain policy")]
    region = _region(old_node.ruleset, gone, universe, work, cache) + \
        _region(new_node.ruleset, added, universe, work, cache)
    boxes = [b for b, _o in region]
    return region + _dnat_preimage(old_node.ruleset, boxes, universe, old_node, cache) + \
        _dnat_preimage(new_node.ruleset, boxes, universe, old_node, cache)


def _special(atom: tuple[int, int]) -> bool:
    return any(lo <= atom[0] and atom[1] <= hi for lo, hi in _SPECIAL)


def _host(atom: tuple[int, int]) -> int:
    """An address inside ``atom`` that reads as a host: not its low end when it spans more than
    two (10.1.2.1 for 10.1.2.0-10.1.2.255, not the network address)."""
    lo, hi = atom
    return lo + 1 if hi - lo >= 2 else lo


def _port(atom: tuple[int, int], preferred: tuple[int, ...]) -> int:
    """A port inside ``atom``: a usual one when it holds one, else its low end, never 0 unless
    the atom is port 0 alone."""
    lo, hi = atom
    usual = next((p for p in preferred if lo <= p <= hi), None)
    if usual is not None:
        return usual
    return lo + 1 if lo == 0 and hi > 0 else lo


def _example(members: list, old_tracer: NodeTracer, new_tracer: NodeTracer, fates: tuple) -> tuple[Packet, str | None]:
    """A representative packet of a class and its in-interface (None: generated locally): from the
    cell most like real traffic (TCP, addresses outside the special ranges), a host inside each
    address atom and a usual port inside each port atom, traced again to be sure it changes as
    the class says; else the cell's own packet (the low end of each atom)."""
    ranked = sorted(members, key=lambda m: (m[0].proto != 6, _special(m[2][0][0]), _special(m[2][1][0])))
    for pkt, in_iface, atoms in ranked[:3]:
        atoms = tuple(a[0] for a in atoms)          # the first interval of each class
        ports = pkt.proto in PORT_PROTOS
        better = Packet(pkt.proto, _host(atoms[0]), _host(atoms[1]), _port(atoms[3], (40000,)) if ports else 0,
                        _port(atoms[4], (80, 443, 8080)) if ports else 0, pkt.tcp_flags, pkt.icmp_type, pkt.icmp_code)
        fa = _fate(better, old_tracer.trace(better, in_iface=in_iface).outcomes)
        fb = _fate(better, new_tracer.trace(better, in_iface=in_iface).outcomes)
        if (fa, fb) == fates:
            return better, in_iface
    pkt, in_iface, _atoms = ranked[0]
    return pkt, in_iface


def _hull(atoms: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """The union of the atoms one field takes over a class's cells (merged intervals)."""
    out: list[list[int]] = []
    for lo, hi in sorted(set(atoms)):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


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


class _EntryCache:
    """One :class:`_Entries` per table of each rule set, built once for every use in a diff."""

    def __init__(self, universe: Universe) -> None:
        self.universe, self.made = universe, {}

    def __call__(self, ruleset: m.Ruleset, table: str) -> _Entries:
        key = (id(ruleset), table)
        if key not in self.made:
            self.made[key] = _Entries(ruleset.tables[table], self.universe)
        return self.made[key]


def _region(ruleset: m.Ruleset, changed: list[m.Rule], universe: Universe, work: Work,
            entries: _EntryCache) -> list[tuple[Box, str]]:
    """Boxes covering the packets that can reach the changed rules and match them (earlier ending
    rules of their chain taken away: :func:`.diff_cells.reaching_region`), each with its rule's place."""
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
                   cache: _EntryCache) -> list:
    """The packets that a DNAT or REDIRECT turns into packets of ``region`` (the filter and later
    tables see the translated destination): those DNAT rules' own boxes, met with their entries."""
    nat = ruleset.tables.get("nat")
    if nat is None or not region:
        return []
    entries = cache(ruleset, "nat")
    local = _local(node)
    out = []
    for chain in nat.chains.values():
        for rule in chain.rules:
            gives = _translation(rule.target, local)
            if gives is None:
                continue
            dst, port = gives
            if any((dst is None or _intersect(b[DST], dst)) and (port is None or _intersect(b[DPORT], port))
                   for b in region):
                box = rule_box(rule, universe)[0]
                out += [(b, f"{rule.location()} (its DNAT)") for b in (meet(box, e) for e in entries(chain.name))
                        if b is not None]
    return out


def _translated_cuts(rulesets: tuple[m.Ruleset, ...], region: list, universe: Universe, node: NodeState,
                     work: Work, cache: _EntryCache) -> list:
    """Boxes that cut the region as the rules after a DNAT or REDIRECT see it: every rule a
    translated packet of ``region`` can meet, with its destination (and port, when the NAT sets
    it) put back to the packets the NAT takes. Without them a cell could hold packets that the
    rules after the NAT tell apart by source or port."""
    local = _local(node)
    out: dict[Box, None] = {}
    region_dst = _norm([iv for r in region for iv in r[DST]])
    for ruleset in rulesets:
        nat = ruleset.tables.get("nat")
        entries = cache(ruleset, "nat") if nat else None
        for chain in (nat.chains.values() if nat else ()):
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
                hits = [h for rs in rulesets for h in _cutting_boxes(rs, moved, universe, work)]
                work.spend(len(hits) * len(taken))
                for h in hits:
                    for b in taken:
                        back = h[:DST] + (b[DST],) + h[DST + 1:DPORT] + ((b[DPORT] if port else h[DPORT]),) \
                            + h[DPORT + 1:]
                        out[back] = None
    return list(out)


def _cutting_boxes(ruleset: m.Ruleset, region: list, universe: Universe, work: Work | None = None) -> list:
    """The boxes of every rule a packet of ``region`` can meet with its match true (a walk from the
    built-in chains into the chains those rules jump to); a rule for another destination address is
    skipped without building its box (most of a kube-proxy dump). ``work`` counts the rules passed."""
    out = []
    for table in ruleset.tables.values():
        done: dict[str, set] = {}
        todo = [(name, list(region)) for name in m.TABLE_CHAINS.get(table.name, ()) if name in table.chains]
        while todo:
            chain, reg = todo.pop()
            seen = done.setdefault(chain, set())
            reg = [b for b in reg if b not in seen]
            if not reg:
                continue
            seen.update(reg)
            if work is not None:
                work.spend(len(table.chains[chain].rules) * len(reg))
            dsts = [b[DST] for b in reg]
            for rule in table.chains[chain].rules:
                point = _fixed_dst(rule)
                if point is not None and not any(lo <= point[0] and point[1] <= hi or lo <= point[1] and point[0] <= hi
                                                 for d in dsts for lo, hi in d):
                    continue
                box = rule_box(rule, universe)[0]
                hit = [b for b in (meet(box, r) for r in reg) if b is not None]
                if not hit:
                    continue
                out.append(box)
                if type(rule.target) is m.Jump and rule.target.chain in table.chains:
                    todo.append((rule.target.chain, hit))
    return out


def _fixed_dst(rule: m.Rule) -> tuple[int, int] | None:
    """The destination range a rule requires (a plain ``-d``), or None."""
    for mt in rule.matches:
        if type(mt) is m.AddrMatch and mt.field == "dst" and not mt.invert:
            return mt.network, mt.network | (~mt.mask & 0xFFFFFFFF)
    return None


def _joint_universe(a: m.Ruleset, b: m.Ruleset) -> Universe:
    ua, ub = Universe.of(a), Universe.of(b)
    names = sorted(set(ua.interfaces[:-1]) | set(ub.interfaces[:-1])) + ["\x00other"]
    return Universe(tuple(names), (), True)


# Addresses the kernel treats specially as source or destination (martians, loopback, multicast,
# broadcast): their ranges are boundaries of behaviour whatever the rules say.
_SPECIAL = [(0, 0x00FFFFFF), (0x7F000000, 0x7FFFFFFF), (0xE0000000, 0xEFFFFFFF), (0xF0000000, 0xFFFFFFFE),
            (0xFFFFFFFF, 0xFFFFFFFF)]


def _node_boundaries(*nodes: NodeState) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Address ranges the node itself tells apart, as (source cuts, destination cuts): special
    ranges and its own addresses for both (martian checks), every route's prefix for destinations
    (and for sources too when a rule uses rpfilter, a reverse route lookup)."""
    node = nodes[0]
    own = list(_SPECIAL) + [(a.ip, a.ip) for iface in node.interfaces.values() for a in iface.addresses]
    routed = [(r.network, r.network | (~r.mask & 0xFFFFFFFF)) for r in node.routes + node.local_routes]
    rpfilter = any(type(mt) is m.RpFilterMatch for n in nodes for t in n.ruleset.tables.values()
                   for c in t.chains.values() for r in c.rules for mt in r.matches)
    return (own + routed if rpfilter else own), own + routed


def _nat_cut_boxes(ruleset: m.Ruleset, universe: Universe, cache: _EntryCache) -> list[Box]:
    """For each NAT rule, the packets it can translate (its box met with its chain's entries) that
    already have the address or port it gives: that decides what the NAT changes, so each cuts the
    cells it meets, and only those (a kube-proxy dump has 20,000 DNATs, each for its own service)."""
    out = []
    nat = ruleset.tables.get("nat")
    for chain in (nat.chains.values() if nat else ()):
        for rule in chain.rules:
            cuts = _nat_boundaries(rule)
            if not cuts:
                continue
            box = rule_box(rule, universe)[0]
            for entry in cache(ruleset, "nat")(chain.name):
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
