"""``pktverify diff``: which packets two rule sets of one node treat differently, exactly.

How it is exact over header space, not sampled:

1. Rules are matched up chain by chain (longest common subsequence of their matches and
   targets, comments aside). A packet that matches none of the unmatched ("changed") rules of
   either side, in chains whose policies agree, is matched by the same common rules in the same
   order on both sides, so its fate is the same. The packets that may differ therefore lie in the
   union of the packets that can reach a changed rule with its match true (its box, less what
   earlier ending rules of its chain take: :mod:`.region`); a changed policy puts every packet in.
2. That region is cut into *cells* (:func:`.cells.cells`): one field at a time, into classes of
   values that every rule box of either side, every route, local or special address and NAT
   address or port holds all of or none of; the in-interface is one cell per interface. Within a
   cell every rule's box-expressible match, every route and every address-type test answers the
   same for all packets, so one packet per cell stands for the whole cell.
3. That packet is traced through both rule sets (first packet of a connection, mark 0); the cell
   differs when the outcomes differ: verdict, where it leaves, the NAT'd packet, probability.

Matches the boxes cannot express (tcp flags, sets, time, ...) may answer differently inside a
cell: when either side has one, the result says so (``exact`` false). Past :data:`MAX_CELLS` cells
or :data:`.cells.MAX_WORK` units of work the rest is not compared: the result is then not
complete, its verdict is ``inexact`` unless a difference was already found, and it says what was
left (never "same").
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable

from ...eval.node_trace import NodeTracer
from ...model import rules as m
from ...model.addresses import format_ip
from ...model.node import NodeState
from ...model.packet import Packet
from ...model.trace import Outcome
from ..headerspace import DST, PROTO, SRC, Box, Universe
from .cells import MAX_WORK, PORT_PROTOS, Work, WorkBound, interfaces_of
from .cells import cells as cell_classes
from .nft_side import SideView, lookup_cuts, nft_where, rewrites_headers, side_view, structure, unknown_nft
from .region import SPECIAL, EntryCache, cut_boxes, joint_universe, node_boundaries, whole_region
from .result import DiffClass, DiffResult

__all__ = ["DiffClass", "DiffResult", "diff_rulesets", "changed_rules", "MAX_CELLS", "MAX_WORK"]

MAX_CELLS = 200_000
# Matches whose answer is not fixed by the fields a cell holds equal (addresses, protocol, ports,
# in-interface) and the node's state: everything else a first packet meets (marks and connmarks
# the rules set, ctstate NEW, addrtype, statistic branches, tcp SYN, icmp echo) is traced exactly.
_VARYING = (m.SetMatch, m.UnknownMatch, m.MaybeMatch, m.TimeMatch, m.RecentMatch)


def _key(rule: m.Rule, origin: Callable[[m.Rule], object] | None = None) -> tuple:
    base = (tuple(mt for mt in rule.matches if type(mt) is not m.CommentMatch), rule.target)
    return base if origin is None else base + (origin(rule),)


def changed_rules(old: m.Ruleset, new: m.Ruleset, origins: tuple[Callable[[m.Rule], object] | None, ...] = (None, None)
                  ) -> tuple[list[m.Rule], list[m.Rule], bool]:
    """The rules of each side outside the per-chain common subsequence, and whether a built-in
    chain's policy (or a table's existence) changed. ``origins``: per side, what else a rule is
    keyed by (an nft view rule: its nft rule and the sets it reads, :func:`.nft_side.origin_keys`)."""
    gone, added, policy = [], [], False
    for name in sorted(set(old.tables) | set(new.tables)):
        a, b = old.tables.get(name), new.tables.get(name)
        a_chains = a.chains if a else {}
        b_chains = b.chains if b else {}
        for chain in sorted(set(a_chains) | set(b_chains)):
            ca, cb = a_chains.get(chain), b_chains.get(chain)
            ra, rb = (ca.rules if ca else ()), (cb.rules if cb else ())
            builtin = (ca is not None and ca.builtin) or (cb is not None and cb.builtin)
            if builtin and ((ca.policy if ca else None) or "ACCEPT") != ((cb.policy if cb else None) or "ACCEPT"):
                policy = True
            ka, kb = [_key(r, origins[0]) for r in ra], [_key(r, origins[1]) for r in rb]
            if ka == kb:
                continue
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


_HANDLE = re.compile(r" # handle (\d+)$")


def _deciders(outcomes: tuple[Outcome, ...], changed: set) -> set[tuple[str, int, str, str]]:
    """The rules that acted, as (file, line, ``table/chain #n TARGET``, rule text): every changed
    rule met (a jump too: a changed statistic branch is a jump) and every other rule that acted.
    An nft rule's step names its table as ``family name`` and ends its text with its handle."""
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


def _only_here(mine: set, theirs: set, where: Callable[[str, int], str]) -> tuple[str, ...]:
    """``file:line (what)`` of the deciders of one side that the other side has not (the same rule
    text at the same place in its chain counts as the same, whatever its line or nft handle);
    ``where`` writes the place (JSON nft dumps: ``file: nftables[i]``), with the nft handle."""
    other = {(what, _HANDLE.sub("", text)) for _src, _line, what, text in theirs}
    out = []
    for src, line, what, text in sorted(mine):
        if (what, _HANDLE.sub("", text)) in other:
            continue
        handle = _HANDLE.search(text)
        out.append(f"{where(src, line)} ({what}{f', handle {handle.group(1)}' if handle else ''})")
    return tuple(out)



def diff_rulesets(old_node: NodeState, new_node: NodeState, *, max_cells: int = MAX_CELLS,
                  max_work: int = MAX_WORK, views: tuple[SideView, SideView] | None = None,
                  label: Callable | None = None, local_cuts: bool = False) -> DiffResult:
    """Every class of packets whose fate differs between ``old_node`` and ``new_node`` (the same
    node with two rule sets: same interfaces and routes; each side's ``ruleset`` and ``nft``).
    ``views``: each side's rules as boxes see them (default :func:`.nft_side.side_view` of each
    node: its iptables ruleset, with the view of its nft tables beside it). Past ``max_cells`` cells or
    ``max_work`` (see :mod:`.cells`) the rest is not compared: ``complete`` is then false and
    ``not_compared`` says what was left, so a bound reached never reads as "same". ``label``: per
    differing cell, ``label(atoms, in_iface, old outcomes, new outcomes, old fate, new fate)`` says
    which deliberate difference it is ("" none; :mod:`.deliberate`); classes are split by it.
    ``local_cuts``: cut by each rule's box met with what can reach it (:func:`.region.cutting_boxes`):
    coarser cells, the same classes of packets (``verify --compare-mode``; ``diff`` keeps its cells)."""
    sides = views or (side_view(old_node), side_view(new_node))
    views = (sides[0].ruleset, sides[1].ruleset)
    gone, added, policy, notes = _changes(old_node, new_node, sides)
    result = DiffResult([], gone, added, 0, notes=notes, json_sources=frozenset(
        s.source for s in (old_node.nft, new_node.nft) if s is not None and s.form == "json"))
    if not gone and not added and not policy:
        return result
    work = Work(max_work)
    universe = joint_universe(*views)
    try:
        cache = EntryCache(universe)
        region = whole_region(views, old_node, gone, added, policy, universe, work, cache)
        # The rules packets of the region can meet cut it (their own boxes; see region.cutting_boxes).
        boxes = cut_boxes(views, old_node, [b for b, _o in region], universe, work, cache, local_cuts)
        # nft set lookups the view may leave opaque answer alike within a cell cut by their elements.
        boxes = list(dict.fromkeys(boxes + lookup_cuts(old_node.nft, universe) + lookup_cuts(new_node.nft, universe)))
    except WorkBound:
        result.complete, result.exact = False, False
        result.not_compared = "every packet the changed rules may see (the work bound was reached while finding them)"
        result.work = work.done
        return result
    _note_varying(result, views, (old_node.nft, new_node.nft))
    tracers = (NodeTracer(old_node), NodeTracer(new_node))
    changed = ({(r.source, r.line) for r in gone}, {(r.source, r.line) for r in added})
    fib = sides[0].fib_saddr or sides[1].fib_saddr
    groups, cells, stopped = _compare_cells((old_node, new_node), views, fib, tracers, region, boxes, universe,
                                            changed, max_cells, work, label, (DST, PROTO) if local_cuts else (PROTO,))
    result.cells = cells
    result.work = work.done
    if stopped is not None:
        result.complete, result.exact = False, False
        bound = f"{max_cells:,} cells" if cells >= max_cells else f"{max_work:,} units of work"
        origins = list(dict.fromkeys(o for _b, o in region[stopped:]))
        shown = ", ".join(origins[:3]) + (f" and {len(origins) - 3} more" if len(origins) > 3 else "")
        result.not_compared = (f"the rest of the packets reaching {shown} (stopped at the bound of {bound}; "
                               f"{stopped} of {len(region)} region box(es) compared whole)")
    where = nft_where((old_node, new_node))
    for (fa, fb, why), (members, da, db) in groups.items():
        # The rules responsible: those that acted on one side and not the other.
        da, db = _only_here(da, db, where), _only_here(db, da, where)
        pkt, in_iface = _example(members, tracers[0], tracers[1], (fa, fb))
        spans = tuple(_hull([iv for mem in members for iv in mem[2][f]]) for f in range(5))
        result.classes.append(DiffClass(pkt, in_iface, fa, fb, da, db, len(members), spans,
                                        tuple(sorted({mem[1] or "local" for mem in members})), why))
    return result


def _changes(old_node: NodeState, new_node: NodeState, sides: tuple[SideView, SideView]
             ) -> tuple[list[m.Rule], list[m.Rule], str | None, list[str]]:
    """The changed rules of each side, why every packet is in the region (None: only the packets
    that may meet a changed rule are), and notes."""
    gone, added, policy = changed_rules(sides[0].ruleset, sides[1].ruleset, (sides[0].origin, sides[1].origin))
    notes = []
    why = "a changed chain policy" if policy else None
    if why is None and structure(old_node.nft) != structure(new_node.nft):
        why = "a changed set or order of nft base chains (type, hook, priority, policy), flowtables or objects"
    if why is None and (gone or added) and (rewrites_headers(old_node.nft) or rewrites_headers(new_node.nft)):
        why = "an nft rule that rewrites a header field in place"
        notes.append("an nft rule rewrites a header field in place (a payload mangle, which boxes do not follow): "
                     "every packet is compared")
    return gone, added, why, notes


def _note_varying(result: DiffResult, views: tuple[m.Ruleset, m.Ruleset], nfts: tuple) -> None:
    """Not exact when a rule matches on what no packet field decides (:data:`_VARYING`): say which
    (for nft tables, the expressions themselves)."""
    labels = {f"{t.family} {t.name}" for s in nfts if s is not None for t in s.tables}
    # An nft table's opaque matches are named below, by their nft text.
    varying = sorted({type(mt).__name__ for rs in views for name, t in rs.tables.items() for c in t.chains.values()
                      for r in c.rules for mt in r.matches
                      if type(mt) in _VARYING and not (type(mt) is m.UnknownMatch and name in labels)})
    if varying:
        result.exact = False
        result.notes.append(f"some rules match on what no packet field decides ({', '.join(varying)}: set "
                            "contents, time, unmodelled matches): within a class those may still tell packets apart")
    exprs = sorted({e for v, s in zip(views, nfts) for e in unknown_nft(v, s)})
    if exprs:
        result.exact = False
        shown = "; ".join(exprs[:6]) + (f"; and {len(exprs) - 6} more" if len(exprs) > 6 else "")
        result.notes.append(f"nft expressions no packet field decides ({shown}): within a class those may still "
                            "tell packets apart")


def _compare_cells(nodes: tuple[NodeState, NodeState], views: tuple[m.Ruleset, m.Ruleset], fib: bool,
                   tracers: tuple[NodeTracer, NodeTracer], region: list[tuple[Box, str]], boxes: list[Box],
                   universe: Universe, changed: tuple[set, set], max_cells: int, work: Work,
                   label: Callable | None = None, first: tuple[int, ...] = (PROTO,)
                   ) -> tuple[dict[tuple, list], int, int | None]:
    """One packet per cell of ``region`` traced through both sides: the cells whose fates differ,
    grouped by (old fate, new fate, deliberate label) as [cells, old deciders, new deciders]; the cells compared; the
    region box a bound stopped in (None: every cell compared). ``fib``: an nft rule reads the route
    back to the source (its prefixes cut sources too); ``first``: the fields cut first (:func:`.cells.cells`)."""
    src_cuts, dst_cuts = node_boundaries(nodes[0], views, fib)
    fixed: dict[int, list] = {SRC: [(e,) for e in src_cuts], DST: [(e,) for e in dst_cuts],
                              PROTO: [((p, p),) for p in (1,) + PORT_PROTOS]}
    # Every interface of the node is a cell of its own (routing and martian checks read it too);
    # None: generated on the node itself.
    ifaces = [(name, universe.interface_atom(name)) for name in nodes[0].interfaces if name != "lo"]
    seen: set[tuple] = set()
    groups: dict[tuple, list] = {}
    cells = 0
    for at, (box, _origin) in enumerate(region):
        try:
            for atoms in cell_classes(box, boxes, fixed, work, first):
                for in_iface in interfaces_of(box, ifaces):
                    if (atoms, in_iface) in seen:         # the same cell from overlapping region boxes
                        continue
                    if cells >= max_cells:
                        raise WorkBound
                    seen.add((atoms, in_iface))
                    cells += 1
                    _compare_cell(atoms, in_iface, tracers, changed, groups, label)
        except WorkBound:
            return groups, cells, at
    return groups, cells, None


def _compare_cell(atoms: tuple, in_iface: str | None, tracers: tuple[NodeTracer, NodeTracer],
                  changed: tuple[set, set], groups: dict[tuple, list], label: Callable | None = None) -> None:
    """Trace the cell's own packet (the low end of each atom) on both sides; a change of fate joins
    its group with the rules that decided on each side."""
    src, dst, proto, sport, dport = (a[0][0] for a in atoms)
    ports = proto in PORT_PROTOS
    pkt = Packet(proto, src, dst, sport if ports else 0, dport if ports else 0,
                 0x02 if proto == 6 else 0, 8 if proto == 1 else -1, 0 if proto == 1 else -1)
    before = tracers[0].trace(pkt, in_iface=in_iface).outcomes
    after = tracers[1].trace(pkt, in_iface=in_iface).outcomes
    fa, fb = _fate(pkt, before), _fate(pkt, after)
    if fa != fb:
        why = label(atoms, in_iface, before, after, fa, fb) if label is not None else None
        entry = groups.setdefault((fa, fb, why), [[], set(), set()])
        entry[0].append((pkt, in_iface, atoms))
        entry[1].update(_deciders(before, changed[0]))
        entry[2].update(_deciders(after, changed[1]))


def _special(atom: tuple[int, int]) -> bool:
    return any(lo <= atom[0] and atom[1] <= hi for lo, hi in SPECIAL)


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

