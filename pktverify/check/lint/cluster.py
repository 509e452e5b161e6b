"""``lint --cluster``: a proposed rule set judged in its cluster.

:func:`proposed_cluster` puts the proposed rules in place of the node's (the cluster is then
verified with them, PV401-PV404: :mod:`.lint_invariants`); the rule-level checks against the
cluster's facts here (PV303-PV306) need no packet at all. PV303 and PV304 compare a rule with
:class:`ServiceFacts`, one predicate each, which an nft ruleset's header-space view goes through
too (:mod:`.nft_cluster`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ...errors import InvalidArgument
from ...model import rules as m
from ...model.addresses import format_ip, in_network
from ...model.cluster import ClusterSpec
from ..headerspace import DPORT, DST, MARK, PROTO, SRC, Universe, _intersect, intersects, rule_box
from .finding import Check, Finding, Subject
from .reaching import Reaching

# kube-proxy's masquerade chain and a CNI's rules after it (pods 10.1.0.0/16, nodes 192.168.1.0/24).
_KUBE_POSTROUTING = ("# pods 10.1.0.0/16, nodes 192.168.1.0/24\n*nat\n:POSTROUTING ACCEPT [0:0]\n"
                     ":KUBE-POSTROUTING - [0:0]\n-A POSTROUTING -j KUBE-POSTROUTING\n{}"
                     "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
                     "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n-A KUBE-POSTROUTING -j MASQUERADE\nCOMMIT")

PV303 = Check(
    "PV303", "dnat-to-non-endpoint", "error", "a DNAT to an address that is no ready endpoint of any service",
    "Connections sent there reach a pod that is gone, not ready, or never was an endpoint (stale rules). Checked "
    "in iptables and nftables rule sets: the DNAT targets of iptables' nat table; in an nft ruleset, every `dnat to` "
    "one address of an ip or inet table, each element of a DNAT map (`dnat to ip daddr map { ... }`), kube-proxy's "
    "endpoint- chains. A DNAT to a range or to an address an expression computes is not judged.",
    "-A KUBE-SEP-X -p tcp -j DNAT --to-destination 10.1.10.99:8080   # no ready pod has 10.1.10.99",
    "-A KUBE-SEP-X -p tcp -j DNAT --to-destination 10.1.10.5:8080    # web-1, ready, selected", "kubernetes")
PV304 = Check(
    "PV304", "clusterip-outside-service-cidr", "error",
    "a service rule for an address outside the cluster's service CIDR",
    "ClusterIPs come from --service-cluster-ip-range; a rule for another address is stale or catches "
    "traffic for something else (a pod or node address). Checked in iptables and nftables rule sets: the rules "
    "of KUBE-SERVICES (and the userspace portals) for one destination; in an nft ruleset, the rules of "
    "kube-proxy's services and service-endpoints-check chains for one destination: each element of the "
    "service-ips and no-endpoint-services maps (its key's address) and `ip daddr X ...` dispatch rules. Node "
    "addresses, external IPs and load-balancer IPs are service addresses too; the service-nodeports elements "
    "are for @nodeport-ips (the node's addresses), not a ClusterIP, and are not judged.",
    "-A KUBE-SERVICES -d 10.1.10.7/32 -p tcp --dport 80 -j KUBE-SVC-X   # inside a pod CIDR",
    "-A KUBE-SERVICES -d 10.152.183.7/32 -p tcp --dport 80 -j KUBE-SVC-X", "kubernetes")
PV305 = Check(
    "PV305", "masquerade-pod-traffic", "error",
    "a MASQUERADE or SNAT rule that matches pod-to-pod or pod-to-node traffic",
    "The Kubernetes network model forbids NAT between pods and nodes: the receiver would see the node's "
    "address instead of the pod's. CNIs append their MASQUERADE to POSTROUTING after kube-proxy's jump to "
    "KUBE-POSTROUTING, which hands back every packet kube-proxy did not mark: unmarked pod traffic reaches "
    "it there too. Reported only for packets that surely reach the rule (its chain's earlier rules and the "
    "chains they jump to, computed over header space), never for a packet that cannot.",
    _KUBE_POSTROUTING.format("-A POSTROUTING -s 10.1.0.0/16 -j MASQUERADE\n"),
    _KUBE_POSTROUTING.format("-A POSTROUTING -s 10.1.0.0/16 -d 10.1.0.0/16 -j RETURN\n"
                             "-A POSTROUTING -s 10.1.0.0/16 -d 192.168.1.0/24 -j RETURN\n"
                             "-A POSTROUTING -s 10.1.0.0/16 -j MASQUERADE\n"),
    "kubernetes")
PV306 = Check(
    "PV306", "empty-service-not-rejected", "error",
    "a service port without endpoints that no filter rule rejects (iptables mode)",
    "kube-proxy rejects connections to a service without endpoints; without the REJECT the packet leaves the "
    "node with the ClusterIP as destination, which no network routes, and the client waits for a timeout.",
    "(no rule) — service default/db has no ready endpoints",
    "-A KUBE-SERVICES -d 10.152.183.9/32 -p tcp --dport 5432 -j REJECT --reject-with icmp-port-unreachable",
    "kubernetes")

_SERVICE_CHAINS = ("KUBE-SERVICES", "KUBE-PORTALS-CONTAINER", "KUBE-PORTALS-HOST")


@dataclass(frozen=True)
class ServiceFacts:
    """What PV303 and PV304 compare a rule with: ``endpoints``, the addresses a DNAT may send to (every
    service port's ready endpoints, and the nodes' own addresses); ``front_doors``, the service
    addresses that are no ClusterIP (node addresses, external IPs, load-balancer ingress IPs);
    ``service_cidr`` as (network, mask)."""
    endpoints: frozenset[int]
    front_doors: frozenset[int]
    service_cidr: tuple[int, int]

    @classmethod
    def of(cls, cluster: ClusterSpec) -> ServiceFacts:
        """The facts of ``cluster``."""
        node_ips = frozenset(n.ip for n in cluster.nodes)
        endpoints = {ip for s in cluster.services for p in s.ports for _l, ip, _n in cluster.port_endpoints(s, p)}
        doors = {ip for s in cluster.services for ip in s.external_ips + s.lb_ips}
        return cls(node_ips | endpoints, node_ips | doors, cluster.service_cidr)

    def stale_dnat(self, target: object) -> int | None:
        """The one address a DNAT sends to when it is no endpoint (None: another target, a range, an endpoint)."""
        if type(target) is m.Dnat and target.addr_low is not None and target.addr_low == target.addr_high \
                and target.addr_low not in self.endpoints:
            return target.addr_low
        return None

    def outside_cidr(self, box: tuple) -> int | None:
        """The one destination of a service rule's ``box`` when it is outside the service CIDR and
        no front door (None: several destinations, or a service address)."""
        dst = box[DST]
        if len(dst) == 1 and dst[0][0] == dst[0][1] and dst[0][0] not in self.front_doors \
                and not in_network(dst[0][0], *self.service_cidr):
            return dst[0][0]
        return None


def proposed_cluster(cluster: ClusterSpec, node_name: str | None, path: str,
                     kind: str = "iptables") -> tuple[ClusterSpec, str]:
    """``cluster`` with ``path`` as the dump ``kind`` of ``node_name`` (the only node when None):
    its iptables-save, or (``kind`` "nft") its nft ruleset, the node's other dumps kept (a mixed
    node keeps its iptables-save beside the proposed nft ruleset)."""
    names = [n.name for n in cluster.nodes]
    if node_name is None:
        if len(names) != 1:
            raise InvalidArgument(f"--node is needed: which node is {path} for? ({', '.join(names)})")
        node_name = names[0]
    if node_name not in names:
        raise InvalidArgument(f"--node {node_name!r} is not a node of the cluster ({', '.join(names)})")
    nodes = tuple(replace(n, **{kind: str(Path(path).resolve())}, inline=tuple(kv for kv in n.inline if kv[0] != kind))
                  if n.name == node_name else n for n in cluster.nodes)
    return replace(cluster, nodes=nodes), node_name


def rule_findings(subject: Subject) -> list[Finding]:
    """PV303-PV306 for the proposed rules of one node, against the cluster's facts (none without a cluster)."""
    ruleset, cluster = subject.ruleset, subject.cluster
    if cluster is None:
        return []
    universe = Universe.of(ruleset)
    facts = ServiceFacts.of(cluster)
    out: list[Finding] = []
    nat = ruleset.tables.get("nat")
    reach = Reaching(nat, universe) if nat else None
    for chain in (nat.chains.values() if nat else ()):
        for rule in chain.rules:
            target = rule.target
            stale = facts.stale_dnat(target)
            if stale is not None:
                out.append(Finding("PV303", f"rule #{rule.index} of {chain.name} DNATs to {format_ip(stale)}, "
                                            "which is no ready endpoint of any service", rule.source, rule.line))
            outside = facts.outside_cidr(rule_box(rule, universe)[0]) if chain.name in _SERVICE_CHAINS else None
            if outside is not None:
                out.append(Finding("PV304", f"rule #{rule.index} of {chain.name} is for {format_ip(outside)}, outside "
                                            f"the service CIDR", rule.source, rule.line))
            if isinstance(target, (m.Masquerade, m.Snat)) and any(
                    _matches_pod_traffic(piece, universe, cluster) for piece in reach.reaching(chain.name, rule)):
                out.append(Finding("PV305", f"rule #{rule.index} of {chain.name} ({rule.text}) masquerades traffic from "
                                            "pods to pods or nodes (unmarked)", rule.source, rule.line))
    if cluster.proxy_mode == "iptables":
        out += _unrejected(ruleset, universe, cluster)
    return out


def _matches_pod_traffic(box, universe: Universe, cluster: ClusterSpec) -> bool:
    cidr_low = cluster.cidr[0]
    pods = ((cidr_low, cidr_low | (~cluster.cidr[1] & 0xFFFFFFFF)),)
    peers = pods + tuple((n.ip, n.ip) for n in cluster.nodes)
    unmarked = ((0, 0),)                      # pod traffic carries no mark unless a rule set one
    return bool(_intersect(box[SRC], pods) and _intersect(box[DST], tuple(sorted(peers)))
                and _intersect(box[MARK], unmarked))


def _unrejected(ruleset: m.Ruleset, universe: Universe, cluster: ClusterSpec) -> list[Finding]:
    from ...model.packet import PROTO_NUMBERS
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
