"""``lint --cluster``: a proposed rule set judged in its cluster.

The cluster is verified with the proposed rules in place of the node's (PV401-PV404, one id per
invariant), and every violation becomes a finding at the rule responsible in the proposed file:
the last DNAT, SNAT, MASQUERADE, REDIRECT, DROP or REJECT of that file the violating path went
through on that node, else the chain policy that decided it, else the node's line in the cluster
file (the cause is elsewhere). Rule-level checks against the cluster's facts (PV303-PV306) need
no packet at all.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import InvalidArgument
from ..model import rules as m
from ..model.addresses import format_ip, in_network
from ..model.cluster import ClusterSpec
from .headerspace import DPORT, DST, MARK, PROTO, SRC, Universe, _intersect, intersects, jumps_into, meet, rule_box, subtract
from .invariants import INVARIANTS
from .registry import Check, Finding, register

_INVARIANT_IDS = {"pod-ip-uniqueness": "PV401", "no-nat": "PV402", "service-reachability": "PV403", "routing": "PV404"}
_INVARIANT_DOCS = {
    "pod-ip-uniqueness": ("pod IPs unique and inside their node's pod CIDR, pod CIDRs disjoint, the service "
                          "address plan sound", "Two pods with one address, or a ClusterIP inside a pod CIDR, "
                          "make traffic go to the wrong place for some clients and not others."),
    "no-nat": ("pod-to-pod, node-to-pod and pod-to-node traffic arrives with its own addresses, and so does "
               "the reply", "The Kubernetes network model: the address a pod sees for itself is the address "
               "others see; NAT breaks network policies, logs and protocols that carry addresses."),
    "service-reachability": ("every service port reaches every ready endpoint from every client, evenly, with "
                             "the reply from the ClusterIP", "A service that drops, favours or misroutes "
                             "some clients' connections is an outage for them."),
    "routing": ("every node reaches every node's pod CIDR, without loops or blackholes",
                "Without a route a node's pods are unreachable from the others."),
}
for _name, _cid in _INVARIANT_IDS.items():
    register(Check(_cid, _name, "error", _INVARIANT_DOCS[_name][0], _INVARIANT_DOCS[_name][1],
                   "pktverify lint proposed.rules --cluster cluster.yaml --node node1   # a rule that breaks it",
                   "pktverify verify cluster.yaml   # the same invariant on the whole cluster", "invariants"))
assert set(_INVARIANT_IDS) == set(INVARIANTS)

register(Check(
    "PV303", "dnat-to-non-endpoint", "error", "a DNAT to an address that is no ready endpoint of any service",
    "Connections sent there reach a pod that is gone, not ready, or never was an endpoint (stale rules).",
    "-A KUBE-SEP-X -p tcp -j DNAT --to-destination 10.1.10.99:8080   # no ready pod has 10.1.10.99",
    "-A KUBE-SEP-X -p tcp -j DNAT --to-destination 10.1.10.5:8080    # web-1, ready, selected", "kubernetes"))
register(Check(
    "PV304", "clusterip-outside-service-cidr", "error",
    "a service rule for an address outside the cluster's service CIDR",
    "ClusterIPs come from --service-cluster-ip-range; a rule for another address is stale or catches "
    "traffic for something else (a pod or node address).",
    "-A KUBE-SERVICES -d 10.1.10.7/32 -p tcp --dport 80 -j KUBE-SVC-X   # inside a pod CIDR",
    "-A KUBE-SERVICES -d 10.152.183.7/32 -p tcp --dport 80 -j KUBE-SVC-X", "kubernetes"))
register(Check(
    "PV305", "masquerade-pod-traffic", "error",
    "a MASQUERADE or SNAT rule that matches pod-to-pod or pod-to-node traffic",
    "The Kubernetes network model forbids NAT between pods and nodes: the receiver would see the node's "
    "address instead of the pod's.",
    "-A POSTROUTING -s 10.1.0.0/16 -j MASQUERADE",
    "-A POSTROUTING -s 10.1.0.0/16 ! -d 10.1.0.0/16 -o eth0 -j MASQUERADE   # with no node in 10.1.0.0/16",
    "kubernetes"))
register(Check(
    "PV306", "empty-service-not-rejected", "error",
    "a service port without endpoints that no filter rule rejects (iptables mode)",
    "kube-proxy rejects connections to a service without endpoints; without the REJECT the packet leaves the "
    "node with the ClusterIP as destination, which no network routes, and the client waits for a timeout.",
    "(no rule) — service default/db has no ready endpoints",
    "-A KUBE-SERVICES -d 10.152.183.9/32 -p tcp --dport 5432 -j REJECT --reject-with icmp-port-unreachable",
    "kubernetes"))

_CAUSES = ("DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP", "DROP", "REJECT")
_SERVICE_CHAINS = ("KUBE-SERVICES", "KUBE-PORTALS-CONTAINER", "KUBE-PORTALS-HOST")


def proposed_cluster(cluster: ClusterSpec, node_name: str | None, path: str) -> tuple[ClusterSpec, str]:
    """``cluster`` with ``path`` as the iptables-save of ``node_name`` (the only node when None)."""
    names = [n.name for n in cluster.nodes]
    if node_name is None:
        if len(names) != 1:
            raise InvalidArgument(f"--node is needed: which node is {path} for? ({', '.join(names)})")
        node_name = names[0]
    if node_name not in names:
        raise InvalidArgument(f"--node {node_name!r} is not a node of the cluster ({', '.join(names)})")
    nodes = tuple(replace(n, iptables=str(Path(path).resolve()), inline=tuple(kv for kv in n.inline if kv[0] != "iptables"))
                  if n.name == node_name else n for n in cluster.nodes)
    return replace(cluster, nodes=nodes), node_name


def invariant_findings(cluster: ClusterSpec, node_name: str, path: str, report) -> list[Finding]:
    """PV401-PV404: each violation at the rule of the proposed file that caused it."""
    node = cluster.node(node_name)
    out = []
    for v in report.violations:
        where = _responsible(v, node_name)
        flow = f" (flow: {v.flow})" if v.flow else ""
        if where is None:
            out.append(Finding(_INVARIANT_IDS[v.invariant], f"{v.message}{flow}", cluster.source, node.line))
        else:
            line, what = where
            out.append(Finding(_INVARIANT_IDS[v.invariant], f"{v.message}{flow}; {what}", path, line))
    return out


def _responsible(v, node_name: str) -> tuple[int, str] | None:
    """(line, what) of the proposed file's step that decided the violating path on the node: for an
    uneven endpoint choice the statistic rule that made it, else the last NAT or drop, else a DROP
    policy. (Every table step on the node comes from the proposed file: it replaced the node's rules.)"""
    uneven = "not the uniform" in v.message
    best = None
    for hop in v.hops:
        if hop.outcome is None or not hop.point.startswith(f"{node_name}:"):
            continue
        for step in hop.outcome.steps:
            if step.table is None:
                continue
            if uneven:
                # The branch taken: the statistic rule that matched, or the (unconditional) last branch —
                # the jump into the chain whose DNAT picked the endpoint.
                if step.probability is not None:
                    best = (step.line or 1, f"{step.table}/{step.chain} #{step.rule_index} (p={step.probability:.4g})")
                elif best is None and step.action.startswith("jump ") and step.table == "nat" and any(
                        s.chain == step.action[5:] and s.action.startswith("DNAT") for s in hop.outcome.steps):
                    best = (step.line or 1, f"{step.table}/{step.chain} #{step.rule_index}: the last branch")
            elif step.rule_index is not None and step.action.split(" ")[0] in _CAUSES:
                best = (step.line or 1, f"{step.table}/{step.chain} #{step.rule_index}: {step.action}")
            elif step.rule_index is None and step.action == "policy DROP":
                best = best or (step.line or 1, f"{step.table}/{step.chain} {step.action}")
    return best


def rule_findings(ruleset: m.Ruleset, cluster: ClusterSpec) -> list[Finding]:
    """PV303-PV306 for the proposed rules of one node, against the cluster's facts."""
    universe = Universe.of(ruleset)
    endpoints = {ip for s in cluster.services for p in s.ports for _l, ip, _n in cluster.port_endpoints(s, p)}
    node_ips = {n.ip for n in cluster.nodes}
    out: list[Finding] = []
    nat = ruleset.tables.get("nat")
    reach = Reaching(nat, universe) if nat else None
    for chain in (nat.chains.values() if nat else ()):
        for rule in chain.rules:
            target = rule.target
            if type(target) is m.Dnat and target.addr_low is not None and target.addr_low == target.addr_high \
                    and target.addr_low not in endpoints | node_ips:
                out.append(Finding("PV303", f"rule #{rule.index} of {chain.name} DNATs to {format_ip(target.addr_low)}, "
                                            "which is no ready endpoint of any service", rule.source, rule.line))
            box, _exact = rule_box(rule, universe)
            dst = box[DST]
            if chain.name in _SERVICE_CHAINS and len(dst) == 1 and dst[0][0] == dst[0][1] and dst[0][0] not in node_ips \
                    and not in_network(dst[0][0], *cluster.service_cidr):
                out.append(Finding("PV304", f"rule #{rule.index} of {chain.name} is for {format_ip(dst[0][0])}, outside "
                                            f"the service CIDR", rule.source, rule.line))
            if isinstance(target, (m.Masquerade, m.Snat)) and any(
                    _matches_pod_traffic(piece, universe, cluster) for piece in reach.reaching(chain.name, rule) or ()):
                out.append(Finding("PV305", f"rule #{rule.index} of {chain.name} ({rule.text}) masquerades traffic from "
                                            "pods to pods or nodes (unmarked)", rule.source, rule.line))
    if cluster.proxy_mode == "iptables":
        out += _unrejected(ruleset, universe, cluster)
    return out


class Reaching:
    """The packets that reach a rule with its match true, as boxes — only where that is known
    exactly: the rule's chain is built-in or entered only by exact jumps, and no rule before it
    (or before those jumps) changes the packet. Elsewhere: nothing (so no finding is made)."""

    def __init__(self, table: m.Table, universe: Universe) -> None:
        from .lint_reachability import _CHANGING, _ENDING, _changing_chains
        self.table, self.universe, self.tops = table, universe, universe.tops
        self._ending, self._changing, self._changers = _ENDING, _CHANGING, _changing_chains(table)
        self._entry: dict[str, list] = {}
        self._jumps = jumps_into(table)

    def entry(self, chain_name: str) -> list:
        """Boxes of the packets that enter ``chain_name`` (built-in: all of them)."""
        if chain_name in self._entry:
            return self._entry[chain_name]
        self._entry[chain_name] = []          # a loop or unknown entry: nothing known
        chain = self.table.chains[chain_name]
        if chain.builtin:
            pieces = [self.universe.everything()]
        else:
            pieces = []
            for caller, rule in self._jumps.get(chain_name, ()):
                got = self.reaching(caller, rule)
                if got is None:
                    return []
                pieces += got
        self._entry[chain_name] = pieces
        return pieces

    def reaching(self, chain_name: str, rule: m.Rule):
        """Boxes of the packets reaching ``rule`` that it matches, or None when not known exactly."""
        box, exact = rule_box(rule, self.universe)
        if not exact and type(rule.target) is m.Jump:
            return None
        pieces = [p for p in (meet(e, box) for e in self.entry(chain_name)) if p is not None]
        for earlier in self.table.chains[chain_name].rules:
            if earlier is rule:
                return pieces
            target = earlier.target
            if isinstance(target, self._changing) or (type(target) is m.Jump and target.chain in self._changers):
                return None
            ebox, eexact = rule_box(earlier, self.universe)
            if eexact and (isinstance(target, self._ending) or (type(target) is m.Jump and target.goto)):
                pieces = [q for p in pieces for q in (subtract(p, ebox, self.tops) if intersects(p, ebox) else [p])]
        return pieces


def _matches_pod_traffic(box, universe: Universe, cluster: ClusterSpec) -> bool:
    cidr_low = cluster.cidr[0]
    pods = ((cidr_low, cidr_low | (~cluster.cidr[1] & 0xFFFFFFFF)),)
    peers = pods + tuple((n.ip, n.ip) for n in cluster.nodes)
    unmarked = ((0, 0),)                      # pod traffic carries no mark unless a rule set one
    return bool(_intersect(box[SRC], pods) and _intersect(box[DST], tuple(sorted(peers)))
                and _intersect(box[MARK], unmarked))


def _unrejected(ruleset: m.Ruleset, universe: Universe, cluster: ClusterSpec) -> list[Finding]:
    from ..model.packet import PROTO_NUMBERS
    filt = ruleset.tables.get("filter")
    rejects = [rule_box(r, universe)[0] for c in (filt.chains.values() if filt else ()) for r in c.rules
               if type(r.target) is m.Reject]
    anchor = filt.chains.get("KUBE-SERVICES") if filt else None
    line = anchor.line if anchor is not None and anchor.line else 1
    out = []
    for svc in cluster.services:
        for port in svc.ports:
            if cluster.port_endpoints(svc, port):
                continue
            point = list(universe.everything())
            point[DST] = ((svc.cluster_ip, svc.cluster_ip),)
            point[PROTO] = ((PROTO_NUMBERS[port.protocol],) * 2,)
            point[DPORT] = ((port.port, port.port),)
            if not any(intersects(tuple(point), r) for r in rejects):
                out.append(Finding("PV306", f"service {svc.key}:{port.name or port.port} has no ready endpoints and "
                                            f"no filter rule rejects {format_ip(svc.cluster_ip)}:{port.port}/"
                                            f"{port.protocol}", ruleset.source, line))
    return out
