"""``pktverify diff`` end to end: read both rule sets onto one node (its dumps, a cluster's node, or a
stand-in node with one interface per name the rules use) and, with a cluster, compare invariants."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ...load.node import build_node
from ...model.node import NodeState
from ...parse.ipaddr import parse_ip_addr
from ...parse.iproute import parse_routes
from ...parse.iptables_save import parse_iptables_save
from ...parse.source import read_text
from ..headerspace import Universe
from .compare import MAX_CELLS, diff_rulesets
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
    def verdict(self) -> str:
        """``different`` (a class of packets or an invariant changed), ``same`` (every cell compared,
        nothing changed) or ``inexact`` (a bound was reached before any difference was found)."""
        if self.result.classes or self.invariants:
            return "different"
        return "same" if self.result.complete else "inexact"


def _stand_in(old_rules, new_rules) -> tuple[str, str]:
    """Addresses and routes of a node with eth0 (default route) and one interface per exact name the
    rules use, each on its own /24: enough to tell every interface the rules name apart."""
    names: set[str] = set()
    for ruleset in (old_rules, new_rules):
        universe = Universe.of(ruleset)
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


def run_diff(old: str | Path, new: str | Path, *, addrs=None, routes=None, cluster=None, node=None,
             lenient: bool = False, max_cells: int = MAX_CELLS) -> DiffRun:
    old_text, new_text = read_text(old, allow_empty=True), read_text(new, allow_empty=True)
    old_rules = parse_iptables_save(old_text, source=str(old), lenient=lenient)
    new_rules = parse_iptables_save(new_text, source=str(new), lenient=lenient)
    invariants = []
    if cluster is not None:
        from ...load.cluster import load_cluster
        from ..lint.cluster import proposed_cluster
        from ..verify_run import verify
        spec = load_cluster(cluster)
        before, name = proposed_cluster(spec, node, str(old))
        after, _ = proposed_cluster(spec, node, str(new))
        report_before = verify(before, lenient=lenient)
        base = report_before.walker.states[name]       # the node as verify read it (its addresses and routes)
        for inv_before, inv_after in zip(report_before.results, verify(after, lenient=lenient).results):
            a = tuple(v.message for v in inv_before.violations)
            b = tuple(v.message for v in inv_after.violations)
            if a != b:
                invariants.append((inv_before.name, a, b))
    elif addrs is not None:
        dump = parse_routes(read_text(routes), source=str(routes))
        base = build_node("node", parse_ip_addr(read_text(addrs), source=str(addrs)), dump.routes, old_rules,
                          legacy_routes=dump.legacy)
        name = "node"
    else:
        a_text, r_text = _stand_in(old_rules, new_rules)
        dump = parse_routes(r_text, source="<stand-in routes>")
        base = build_node("node", parse_ip_addr(a_text, source="<stand-in addrs>"), dump.routes, old_rules)
        name = "node"
    old_node: NodeState = replace(base, ruleset=old_rules)
    new_node: NodeState = replace(base, ruleset=new_rules)
    return DiffRun(str(old), str(new), diff_rulesets(old_node, new_node, max_cells=max_cells), name, invariants)
