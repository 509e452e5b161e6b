"""``pktverify diff`` end to end: read both rule sets onto one node (its dumps, a cluster's node, or a
stand-in node with one interface per name the rules use) and, with a cluster, compare invariants.

Each side is an iptables-save or an nft ruleset in any of nft's three forms, told by content as
``lint`` and ``trace`` tell them (``--nft``: nft whatever the content): two iptables-saves, two nft
rulesets, or one of each (a migration: does the nft translation do the same?). A mixed node's half
that does not change is given beside them (``--iptables``, ``--nft-beside``) or comes from the
cluster's node."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ...errors import InvalidArgument
from ...load.nft_node import load_node_nft
from ...load.node import build_node
from ...model import rules as m
from ...model.nft import NftRuleset
from ...model.node import NodeState
from ...parse.ipaddr import parse_ip_addr
from ...parse.iproute import parse_routes
from ...parse.iptables_save import parse_iptables_save
from ...parse.source import read_text
from ..headerspace import Universe
from ..lint.nft_structure import looks_like_nft
from .compare import MAX_CELLS, diff_rulesets
from .deliberate import mode_facts
from .nft_side import SideView, interface_names, side_view
from .result import DiffResult

__all__ = ["DiffRun", "run_diff"]


@dataclass
class DiffRun:
    """The packet classes (``result``) and, with a cluster, the invariant changes: (name, before, after)
    where before/after are the violation messages."""
    old: str
    new: str
    result: DiffResult
    node: str
    invariants: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.result.same and not self.invariants

    @property
    def all_deliberate(self) -> bool:
        """Between kube-proxy's two modes, compared whole and exactly: every class found is a
        documented mode difference, and no invariant changed (``diff`` exits 0)."""
        r = self.result
        return bool(r.modes) and r.complete and r.exact and not r.unexplained and not self.invariants

    @property
    def verdict(self) -> str:
        """``different`` (a class of packets or an invariant changed), ``same`` (every cell compared
        exactly, nothing changed) or ``inexact`` (no difference found, but a bound was reached or a
        rule matches on what no packet field decides)."""
        if self.result.classes or self.invariants:
            return "different"
        return "same" if self.result.same else "inexact"


def _stand_in(views: tuple[SideView, ...], nfts: tuple[NftRuleset | None, ...] = ()) -> tuple[str, str]:
    """Addresses and routes of a node with eth0 (default route) and one interface per exact name the
    rules use (iptables' and nft's: in the views' boxes, and every name an nft rule or set tests),
    each on its own /24: enough to tell every interface the rules name apart."""
    names: set[str] = set().union(*(interface_names(x) for x in nfts))
    for ruleset in views:
        universe = Universe.of(ruleset.ruleset)
        names |= {n for n in universe.interfaces if "\x00" not in n}
        names |= {n[:-2] + "0" for n in universe.interfaces if n.endswith("\x00w") and len(n[:-2]) < 15}
    names.discard("lo")
    ifaces = ["eth0"] + sorted(names - {"eth0"})
    addrs = ["1: lo    inet 127.0.0.1/8 scope host lo"]
    routes = ["default via 192.0.2.254 dev eth0"]
    for i, name in enumerate(ifaces):
        net = "192.0.2" if name == "eth0" else f"100.64.{i}"
        addrs.append(f"{i + 2}: {name}    inet {net}.1/24 scope global {name}")
        routes.append(f"{net}.0/24 dev {name} proto kernel scope link src {net}.1")
    return "\n".join(addrs) + "\n", "\n".join(routes) + "\n"


@dataclass(frozen=True)
class _Side:
    """One side's rules: ``kind`` of the file given ("iptables" or "nft"), its iptables ruleset and
    nft tables (None: none), and notes on what was read from where."""
    kind: str
    ruleset: m.Ruleset
    nft: NftRuleset | None
    notes: tuple[str, ...] = ()


def _kind(text: str, force_nft: bool) -> str:
    return "nft" if force_nft or looks_like_nft(text) else "iptables"


def read_sides(old: str | Path, new: str | Path, *, force_nft: bool = False, iptables: str | Path | None = None,
               nft_beside: str | Path | None = None, lenient: bool = False) -> tuple[_Side, _Side]:
    """Both sides, each an iptables-save or an nft ruleset (told by content, or nft when
    ``force_nft``), with the half that does not change beside them: ``iptables`` (an iptables-save
    beside nft sides) or ``nft_beside`` (an nft ruleset beside iptables sides)."""
    texts = [(p, read_text(p, allow_empty=True)) for p in (old, new)]
    kinds = [_kind(t, force_nft) for _p, t in texts]
    if iptables is not None and "iptables" in kinds:
        raise InvalidArgument(f"--iptables goes beside nft rulesets: {texts[kinds.index('iptables')][0]} is an "
                              "iptables-save (give the node's nft ruleset beside iptables sides with --nft-beside)")
    if nft_beside is not None and "nft" in kinds:
        raise InvalidArgument(f"--nft-beside goes beside iptables-save files: {texts[kinds.index('nft')][0]} is an "
                              "nft ruleset (give the node's iptables-save beside nft sides with --iptables)")
    beside_rules = parse_iptables_save(read_text(iptables, allow_empty=True), source=str(iptables), lenient=lenient) \
        if iptables is not None else None
    beside_nft = load_node_nft(read_text(nft_beside, allow_empty=True), source=str(nft_beside), iptables_given=True) \
        if nft_beside is not None else None
    sides = []
    for (path, text), kind in zip(texts, kinds):
        if kind == "iptables":
            rules = parse_iptables_save(text, source=str(path), lenient=lenient)
            sides.append(_Side(kind, rules, beside_nft[0] if beside_nft else None, beside_nft[1] if beside_nft else ()))
        else:
            tables, notes = load_node_nft(text, source=str(path), iptables_given=beside_rules is not None)
            rules = beside_rules or parse_iptables_save("", source=f"<no iptables-save beside {path}>")
            sides.append(_Side(kind, rules, tables, notes))
    return sides[0], sides[1]


def run_diff(old: str | Path, new: str | Path, *, addrs=None, routes=None, cluster=None, node=None,
             lenient: bool = False, max_cells: int = MAX_CELLS, force_nft: bool = False,
             iptables: str | Path | None = None, nft_beside: str | Path | None = None) -> DiffRun:
    """``diff OLD NEW`` on one node: each an iptables-save or an nft ruleset (see :func:`read_sides`);
    the node from its dumps (``addrs``, ``routes``), a cluster's node (its other half, and its
    invariants compared), or a stand-in node."""
    views = None
    if cluster is not None:
        old_node, new_node, name, invariants, notes, primary = _cluster_sides(old, new, cluster, node, lenient,
                                                                              force_nft)
    else:
        a, b = read_sides(old, new, force_nft=force_nft, iptables=iptables, nft_beside=nft_beside, lenient=lenient)
        if addrs is not None:
            dump = parse_routes(read_text(routes), source=str(routes))
            base = build_node("node", parse_ip_addr(read_text(addrs), source=str(addrs)), dump.routes, a.ruleset,
                              legacy_routes=dump.legacy)
        else:
            views = (side_view(NodeState("node", {}, (), (), a.ruleset, nft=a.nft)),
                     side_view(NodeState("node", {}, (), (), b.ruleset, nft=b.nft)))
            a_text, r_text = _stand_in(views, (a.nft, b.nft))
            dump = parse_routes(r_text, source="<stand-in routes>")
            base = build_node("node", parse_ip_addr(a_text, source="<stand-in addrs>"), dump.routes, a.ruleset)
        old_node, new_node = replace(base, ruleset=a.ruleset, nft=a.nft), replace(base, ruleset=b.ruleset, nft=b.nft)
        name, invariants, notes, primary = "node", [], list(dict.fromkeys(a.notes + b.notes)), None
    facts = mode_facts(old_node, new_node, primary)
    result = diff_rulesets(old_node, new_node, max_cells=max_cells, views=views,
                           label=facts.label if facts is not None else None)
    result.notes[:0] = notes
    if facts is not None:
        result.modes = "iptables → nftables" if facts.nft_new else "nftables → iptables"
    return DiffRun(str(old), str(new), result, name, invariants)


def _cluster_sides(old, new, cluster, node, lenient: bool, force_nft: bool):
    """Both sides as the cluster's node ``node`` with OLD, then NEW, as its iptables-save or nft
    ruleset (the node's other dumps kept: a mixed node's other half), each verified: the nodes as
    verify read them, the node's name, the invariants that changed, notes, and the node's address."""
    from ...load.cluster import load_cluster
    from ..lint.cluster import proposed_cluster
    from ..verify_run import verify
    spec = load_cluster(cluster)
    kinds = [_kind(read_text(p, allow_empty=True), force_nft) for p in (old, new)]
    before, name = proposed_cluster(spec, node, str(old), kinds[0])
    after, _ = proposed_cluster(spec, node, str(new), kinds[1])
    report_before, report_after = verify(before, lenient=lenient), verify(after, lenient=lenient)
    invariants = []
    for inv_before, inv_after in zip(report_before.results, report_after.results):
        a = tuple(v.message for v in inv_before.violations)
        b = tuple(v.message for v in inv_after.violations)
        if a != b:
            invariants.append((inv_before.name, a, b))
    old_node, new_node = report_before.walker.states[name], report_after.walker.states[name]
    notes = []
    if kinds[0] != kinds[1]:
        kept = [f"{p}: the node's {'nft ruleset' if k == 'iptables' else 'iptables-save'} from the cluster kept "
                "beside it" for p, k in zip((old, new), kinds)]
        notes.append(f"{kept[0]}; {kept[1]}")
    return old_node, new_node, name, invariants, notes, spec.node(name).ip
