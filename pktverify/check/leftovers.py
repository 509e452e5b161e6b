"""Nodes in the middle of a migration: which leftover iptables rules of kube-proxy's old mode still act.

A node whose dumps hold kube-proxy's nftables table beside iptables mode's rules (nat ``KUBE-SERVICES``
and its ``KUBE-SVC-*``/``KUBE-SEP-*`` chains: a cleanup that failed, or rules restored after it) is
verified as the kernel runs it, both rule sets in the kernel's hook order (:mod:`..eval.nft_hooks`:
nat chains of equal priority newest first, and the first that translates ends NAT on that hook). What
the verify report adds, one warning per such node, is which leftover rules a verified flow's path
crosses and that decide its fate there: a DNAT, SNAT or MASQUERADE, a mark (kube-proxy's masquerade
bit, which the nft table's own masquerading chain honours too), a REJECT or a DROP, each with its
place in the node's iptables-save and a flow it acted on. The flows are each service port's doors
(ClusterIP from a pod on the node and from the node itself; NodePort on the node from an off-cluster
client) walked through the cluster, and the violations' own paths. A leftover that no flow reaches
is not named: it does not act on what was verified.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import PurePath

from ..eval.cluster_walk import ClusterWalker
from ..model.addresses import format_ip
from ..model.cluster import ClusterSpec
from ..model.node import NodeState
from ..model.packet import PROTO_NUMBERS, Packet
from ..model.path import PathEnd
from ..model.trace import Step
from .invariants.flows import CLIENT_SPORT
from .invariants.results import InvariantResult

__all__ = ["mixed_node", "leftover_warning", "add_leftover_warnings", "leftover_dnat"]

# What changes a packet's fate (the first word of a step's action, as the evaluator writes it).
_FATEFUL = ("DNAT", "SNAT", "MASQUERADE", "MARK", "REJECT", "DROP")
# KUBE- chains that are kubelet's, not kube-proxy's iptables mode's.
_NOT_KUBE_PROXY = ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY")
_FINAL = ("DNAT", "REJECT", "DROP")      # listed first: they decide where a packet goes, or whether it does
_SHOWN = 6


def mixed_node(state: NodeState) -> bool:
    """Whether ``state`` holds kube-proxy's nftables table beside iptables mode's rules (a nat KUBE-SERVICES
    chain: what :func:`..parse.dataplane.detect_dataplane` calls leftovers)."""
    if state.nft is None or not any(t.name == "kube-proxy" and t.family in ("ip", "inet") for t in state.nft.tables):
        return False
    nat = state.ruleset.tables.get("nat")
    return nat is not None and "KUBE-SERVICES" in nat.chains


def _acting(step: Step, source: str) -> bool:
    return (step.source == source and step.rule_index is not None and (step.chain or "").startswith("KUBE-")
            and step.chain not in _NOT_KUBE_PROXY and step.action.split(" ", 1)[0] in _FATEFUL)


def _probes(cluster: ClusterSpec, walker: ClusterWalker, node: str):
    """(client, packet, label) of each service door's flows through ``node``."""
    spec = cluster.node(node)
    on_node = next((p for p in cluster.pods if p.node == node), None)
    for svc in cluster.services:
        for sp in svc.ports:
            proto = PROTO_NUMBERS[sp.protocol]
            name = f"{svc.key}:{sp.name or sp.port}"
            clients = [walker.pod_endpoint(on_node)] if on_node is not None else []
            clients.append(walker.node_endpoint(spec))
            for client in clients:
                pkt = Packet(proto, walker.source_address(client, svc.cluster_ip), svc.cluster_ip, CLIENT_SPORT,
                             sp.port)
                yield client, pkt, f"{client.label()} to {name} via ClusterIP"
            if sp.node_port:
                client = walker.external_endpoint(spec)
                pkt = Packet(proto, walker.external_ip, spec.ip, CLIENT_SPORT, sp.node_port)
                yield client, pkt, f"{client.label()} to {name} via NodePort {format_ip(spec.ip)}:{sp.node_port}"


def _collect(ends: list[PathEnd], source: str, label: str, acting: dict, *, broken: bool = False) -> None:
    for end in ends:
        for hop in end.hops:
            for step in getattr(hop.outcome, "steps", ()):
                if _acting(step, source):
                    key = (step.table, step.chain, step.rule_index)
                    if key not in acting or (broken and not acting[key][2]):
                        acting[key] = (step, label, broken)


def leftover_warning(cluster: ClusterSpec, walker: ClusterWalker, node: str,
                     results: list[InvariantResult] = ()) -> str:
    """The warning for mixed node ``node``: that it is mixed, how it was verified, and the leftover
    rules that act on the verified flows (or that none does): those on a violation's path first, then
    DNATs, REJECTs and DROPs, then the rest, each in file order."""
    state = walker.states[node]
    source = state.ruleset.source
    acting: dict = {}
    for res in results:
        for v in res.violations:
            if v.end is not None:
                _collect([v.end, *v.replies], source, f"on a violation: {v.flow or v.message}", acting, broken=True)
    for client, pkt, label in _probes(cluster, walker, node):
        _collect(walker.walk(client, pkt), source, label, acting)
    name = PurePath(source).name
    order = ("iptables-nft's table ip nat is listed after kube-proxy's table in the nft dump (made later): its nat "
             "chains run first" if _nat_after(state) else
             "kube-proxy's nft nat chains run first (its table made later), so the leftovers' nat rules act only "
             "where they do not translate")
    head = (f"in the middle of a migration: kube-proxy's nftables table beside its iptables mode's rules (nat "
            f"KUBE-SERVICES in {name}), taken as nftables mode, the cluster's, and verified as the kernel runs both; "
            f"{order}")
    if not acting:
        return f"{head}; no leftover rule acts on the verified flows"
    steps = sorted(acting.values(), key=lambda e: (not e[2], e[0].action.split(" ", 1)[0] not in _FINAL,
                                                   e[0].line or 0))
    shown = "; ".join(f"{s.table} {s.chain} rule #{s.rule_index} ({name}:{s.line}) {s.action} ({label})"
                      for s, label, _broken in steps[:_SHOWN])
    more = f"; and {len(steps) - _SHOWN} more" if len(steps) > _SHOWN else ""
    return f"{head}. {len(steps)} leftover iptables rule(s) of kube-proxy's iptables mode still act: {shown}{more}"


def _nat_after(state: NodeState) -> bool:
    order = [e for e in state.nft.iptables_nft if e.startswith("iptables nat") or e.endswith(" kube-proxy")]
    return bool(order) and order[-1] == "iptables nat" and len(order) > 1


def add_leftover_warnings(cluster: ClusterSpec, walker: ClusterWalker, results: list[InvariantResult]) -> None:
    """Put each mixed node's :func:`leftover_warning` among its warnings (``walker.states``), where the
    verify report's node warnings come from."""
    for spec in cluster.nodes:
        state = walker.states.get(spec.name)
        if state is not None and mixed_node(state):
            text = leftover_warning(cluster, walker, spec.name, results)
            walker.states[spec.name] = replace(state, warnings=(*state.warnings, text))


def leftover_dnat(end: PathEnd) -> Step | None:
    """The last destination rewrite on ``end``'s path when it is a leftover's: a DNAT of an iptables
    ``KUBE-SEP-*`` chain on a node whose same pass also crossed kube-proxy's nftables table (a node in
    the middle of a migration); None otherwise. A stale one (its endpoint gone) is the cause of the
    path's end, not the bridge it ended behind."""
    last = None
    for hop in end.hops:
        steps = getattr(hop.outcome, "steps", ())
        nft = any((s.table or "").endswith(" kube-proxy") for s in steps)
        for s in steps:
            if s.action.split(" ", 1)[0] in ("DNAT", "REDIRECT", "dnat", "redirect"):
                last = s if nft and s.rule_index is not None and (s.chain or "").startswith("KUBE-SEP-") \
                    and not (s.table or "").endswith(" kube-proxy") else None
    return last
