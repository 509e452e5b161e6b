"""``verify --compare-mode``: does switching kube-proxy between its iptables and nftables modes change
any packet's fate on this cluster?

For each node, the rules it has in the cluster's own mode (its given dumps, or generated) are diffed
(:func:`.diff.diff_rulesets`, exact over header space) against the rules kube-proxy writes in the
other mode for the same Services and EndpointSlices (:mod:`..generate.node_state`), on the node's own
addresses and routes. What is not kube-proxy's stays: on a node with given dumps, kube-proxy's
iptables chains (``KUBE-SERVICES``, ``KUBE-SVC-*``, ... and the jumps to them) or its ``table ip
kube-proxy`` are taken out and the other mode's put in, the node's other rules kept. Differences
that are kube-proxy's documented mode differences are labelled (:mod:`.diff.deliberate`).

Each node's header space is cut destination first, and each rule cuts only the packets that can
reach it (the boxes of the rules a destination's packets meet, met with the jumps on the way:
:func:`.diff.region.cutting_boxes`, ``local``): a service's rules then cut only its own ClusterIP's
packets, so the cells grow with the services, not with their product (the same classes as ``pktverify
diff``'s cells, in far fewer cells).

Nodes whose two sides are the same (same addresses, routes and both rule sets) are diffed once.
Nodes of a real cluster differ in at least their own addresses and routes, which decide where a
DNAT'd packet leaves; a per-node diff is the only sound answer there, each within ``max_cells``
(by default :func:`cell_bound`: it grows with the service ports).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from ..errors import InvalidArgument
from ..generate.node_state import generate_node
from ..load.cluster_nodes import cluster_nodes
from ..load.nft_node import load_node_nft
from ..model import rules as m
from ..model.cluster import ClusterSpec
from ..model.nft import NftRuleset
from ..model.node import NodeState
from ..parse.iptables_save import parse_iptables_save
from .diff.cells import MAX_WORK
from .diff.compare import MAX_CELLS, diff_rulesets
from .diff.deliberate import mode_facts
from .diff.result import DiffResult

__all__ = ["ModeComparison", "NodeComparison", "compare_modes", "cell_bound", "CELLS_PER_PORT"]

# kube-proxy's iptables-mode chains (kubelet's own KUBE-FIREWALL, KUBE-KUBELET-CANARY stay).
_PROXY_CHAINS = ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ",
                 "KUBE-FORWARD", "KUBE-PROXY-FIREWALL", "KUBE-PROXY-CANARY")
_PROXY_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-SEP-", "KUBE-EXT-", "KUBE-FW-", "KUBE-XLB-")


@dataclass
class NodeComparison:
    """One node: its ``result`` (the classes whose fate changes, each labelled deliberate or not)
    and ``same_as``: the node whose diff it shares (None: diffed itself)."""
    node: str
    result: DiffResult
    same_as: str | None = None

    @property
    def changes(self) -> bool:
        """Some packet's fate changes on this node."""
        return bool(self.result.classes)

    @property
    def unexplained(self) -> bool:
        """Some change is not one of kube-proxy's documented mode differences."""
        return bool(self.result.unexplained)


@dataclass
class ModeComparison:
    """Every node's comparison, from ``own`` mode to ``other``; ``notes`` on what was assumed."""
    own: str
    other: str
    nodes: list[NodeComparison]
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every node's region compared whole and exactly."""
        return all(n.result.complete and n.result.exact for n in self.nodes)

    @property
    def all_deliberate(self) -> bool:
        """Compared whole, and every change on every node a documented mode difference."""
        return self.complete and not any(n.unexplained for n in self.nodes)


# Cells per service port a node's diff is allowed beyond MAX_CELLS (cut destination first, a ClusterIP
# port takes ~190 cells of kube-proxy's rules on a synthetic cluster: 14 sources x protocols, ports x 3
# in-interfaces); the work bound grows with it.
CELLS_PER_PORT = 500


def cell_bound(cluster: ClusterSpec) -> int:
    """The default bound of each node's diff: :data:`MAX_CELLS`, or :data:`CELLS_PER_PORT` per service
    port when that is more (the cells grow with the services' destinations, not with their product)."""
    return max(MAX_CELLS, CELLS_PER_PORT * sum(len(s.ports) for s in cluster.services))


def compare_modes(cluster: ClusterSpec, *, lenient: bool = False, max_cells: int | None = None,
                  nodes: Iterable[str] | None = None, local_cuts: bool = True) -> ModeComparison:
    """Diff each node's rules in the cluster's kube-proxy mode against those of the other mode
    (iptables <-> nftables), labelling the documented differences; see the module docstring.
    ``nodes``: only these nodes (default: every node); ``max_cells``: the bound of each node's diff
    (default :func:`cell_bound`; the work bound scales with it);
    ``local_cuts``: cut each destination's packets by the rules they can meet only (see
    :func:`.diff.diff_rulesets`; False: as ``pktverify diff`` cuts, the same classes in more cells)."""
    if cluster.proxy_mode not in ("iptables", "nftables"):
        raise InvalidArgument(f"--compare-mode compares kube-proxy's iptables and nftables modes; this cluster "
                              f"runs kube-proxy in {cluster.proxy_mode} mode")
    other = "nftables" if cluster.proxy_mode == "iptables" else "iptables"
    other_cluster = replace(cluster, proxy_mode=other)
    states = cluster_nodes(cluster, lenient=lenient)
    max_cells = cell_bound(cluster) if max_cells is None else max_cells
    max_work = MAX_WORK * max(1, max_cells // MAX_CELLS)
    out = ModeComparison(cluster.proxy_mode, other, [])
    done: dict[tuple, str] = {}
    wanted = set(nodes) if nodes is not None else None
    for spec in cluster.nodes:
        if wanted is not None and spec.name not in wanted:
            continue
        own = states[spec.name]
        switched = _other_mode(own, other_cluster, spec)
        key = (tuple(sorted(own.interfaces.items())), own.routes, own.local_routes, own.route_localnet, _fingerprint(own),
               _fingerprint(switched))
        if key in done:
            first = next(c for c in out.nodes if c.node == done[key])
            out.nodes.append(NodeComparison(spec.name, first.result, done[key]))
            continue
        facts = mode_facts(own, switched, spec.ip)
        result = diff_rulesets(own, switched, max_cells=max_cells, max_work=max_work,
                               label=facts.label if facts else None, local_cuts=local_cuts)
        if facts is not None:
            result.modes = f"{cluster.proxy_mode} → {other}"
        done[key] = spec.name
        out.nodes.append(NodeComparison(spec.name, result))
    return out


def _other_mode(own: NodeState, other_cluster: ClusterSpec, spec) -> NodeState:
    """``own`` with kube-proxy's rules replaced by what it writes in ``other_cluster``'s mode."""
    # docker's MASQUERADE is in the node's own rules already: only kube-proxy's are generated
    generated = generate_node(other_cluster, replace(spec, docker=False))
    rest = _without_proxy_chains(own.ruleset)
    if other_cluster.proxy_mode == "nftables":
        table, _notes = load_node_nft(generated.nft, source=f"<generated nft of {spec.name} (nftables mode)>",
                                      iptables_given=True)
        kept = tuple(t for t in own.nft.tables if (t.family, t.name) != ("ip", "kube-proxy")) if own.nft else ()
        nft = NftRuleset(table.source, table.form, kept + table.tables)
        return replace(own, ruleset=rest, nft=nft)
    proxy = parse_iptables_save(generated.iptables, source=f"<generated iptables of {spec.name} (iptables mode)>")
    kept = tuple(t for t in own.nft.tables if (t.family, t.name) != ("ip", "kube-proxy")) if own.nft else ()
    nft = replace(own.nft, tables=kept) if own.nft is not None and kept else None
    return replace(own, ruleset=_merged(proxy, rest), nft=nft)


def _proxy_chain(name: str) -> bool:
    return name in _PROXY_CHAINS or name.startswith(_PROXY_PREFIXES)


def _without_proxy_chains(ruleset: m.Ruleset) -> m.Ruleset:
    """The rule set without kube-proxy's iptables-mode chains and the rules that jump to them (what
    kube-proxy's cleanup leaves when it starts in the other mode)."""
    tables = {}
    for name, table in ruleset.tables.items():
        chains = {}
        for cname, chain in table.chains.items():
            if _proxy_chain(cname):
                continue
            kept = [r for r in chain.rules if not (isinstance(r.target, m.Jump) and _proxy_chain(r.target.chain))]
            chains[cname] = replace(chain, rules=tuple(replace(r, index=i) for i, r in enumerate(kept, 1)))
        tables[name] = m.Table(name, chains)
    return m.Ruleset(ruleset.source, tables, ruleset.warnings)


def _merged(proxy: m.Ruleset, rest: m.Ruleset) -> m.Ruleset:
    """kube-proxy's iptables-mode rules with the node's other rules: its jumps first in each
    built-in chain (kube-proxy inserts them at the top), its chains beside the node's."""
    tables = {}
    for name in dict.fromkeys([*proxy.tables, *rest.tables]):
        a, b = proxy.tables.get(name), rest.tables.get(name)
        chains = dict(b.chains) if b else {}
        for cname, chain in (a.chains.items() if a else ()):
            mine = chains.get(cname)
            rules = chain.rules + (mine.rules if mine else ())
            chains[cname] = replace(mine or chain, rules=tuple(replace(r, index=i) for i, r in enumerate(rules, 1)))
        tables[name] = m.Table(name, chains)
    return m.Ruleset(rest.source, tables, rest.warnings)


def _fingerprint(node: NodeState) -> tuple:
    """What the rules of a node are, as comparable values (the iptables rules' matches and targets
    by chain, the nft tables)."""
    rules = tuple((t, c, chain.policy, tuple((r.matches, r.target) for r in chain.rules))
                  for t, table in sorted(node.ruleset.tables.items()) for c, chain in sorted(table.chains.items()))
    return rules, node.nft.tables if node.nft is not None else ()
