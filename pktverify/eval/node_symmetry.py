"""Nodes an address renaming can swap: one flow checked stands for the same flow from every one.

The argument extends the one of :mod:`pktverify.eval.address_classes` from addresses to nodes.
Take two nodes A and B and the renaming σ that swaps their addresses (node IPs, bridge
addresses, and each address of A's pod CIDR with the one at the same offset in B's) and leaves
every other address alone. When σ maps the whole cluster state onto itself — every node's
interfaces, routes and rules, the pods that matter to a flow — then a flow from a pod on A ends
exactly as σ of it ends from the pod at σ's address on B: the same verdicts, probabilities,
NAT (up to σ), replies; and every invariant compares a flow's addresses with its own or with
fixed ones (endpoints, ClusterIPs), so it holds for one exactly when it holds for the other.

σ maps the state onto itself when:

* every node's state has the same shape up to its own addresses: its interfaces and routes,
  with its own addresses, its pod CIDR and each peer's pod CIDR routed via that peer written as
  placeholders, are the same on every node (what pktverify generates, and what real nodes with
  ``route add -net <peer cidr> gw <peer>`` routes have); every node has the same rule set (the
  same rules, structurally); no ipsets, policy rules or route_localnet; no docker bridge;
* every pod CIDR has one size, lies inside the cluster CIDR and outside the service CIDR, and
  every pod lies inside its node's CIDR (pod addresses are unique: the classes are sound);
* no rule sets A or B apart: no address or range a rule names — a test or a NAT target the
  flows can meet (``AddressClasses.rule_intervals``, plus the chains of the destination being
  checked) — meets A's or B's pod CIDR or address, unless it covers every node's alike (the
  cluster CIDR, the node network).

Nodes that a rule sets apart (for a service: the nodes of its endpoints, whose addresses its
KUBE-SEP chains name) stay on their own; the rest are *free* and interchangeable. Any failed
condition leaves every node on its own (``reason`` says which), and the flows are grouped as
before. ``tests/test_node_symmetry.py`` checks, on drawn clusters, that this gives the same
verdicts and counts as checking every flow.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from ..model.addresses import format_network, in_network, network_within, networks_overlap
from ..model.cluster import ClusterSpec
from ..model.node import NodeState

__all__ = ["NodeSymmetry"]


class NodeSymmetry:
    """Which nodes are interchangeable for flows whose rule tests are known (see the module)."""

    def __init__(self, cluster: ClusterSpec, states: dict[str, NodeState], classes) -> None:
        self.cluster = cluster
        self.reason = _why_not(cluster, states, classes)
        self._base = classes.rule_intervals if classes is not None else []
        nodes = sorted(cluster.nodes, key=lambda n: n.pod_cidr[0])
        self._lows = [n.pod_cidr[0] for n in nodes]
        self._by_low = nodes
        ips = sorted((n.ip, n.name) for n in cluster.nodes)
        self._ips = [ip for ip, _name in ips]
        self._ip_names = [name for _ip, name in ips]
        self._base_fixed = self._fixed(self._base) if not self.reason else set()

    @property
    def usable(self) -> bool:
        return not self.reason and len(self.cluster.nodes) > 1

    @property
    def all_free(self) -> bool:
        """Every node is interchangeable with every other (no rule sets one apart)."""
        return self.usable and not self._base_fixed

    def free(self, extra=()) -> set[str]:
        """The nodes no rule sets apart (the base rules, plus ``extra`` intervals): interchangeable."""
        if not self.usable:
            return set()
        fixed = self._base_fixed | self._fixed(extra) if extra else self._base_fixed
        return {n.name for n in self.cluster.nodes} - fixed

    def _fixed(self, intervals) -> set[str]:
        """Nodes whose pod CIDR or address an interval meets without covering every node's alike."""
        if not self._by_low:
            return set()
        first_low = self._lows[0]
        last = self._by_low[-1].pod_cidr
        last_high = last[0] | (~last[1] & 0xFFFFFFFF)
        out: set[str] = set()
        for low, high in set(intervals):
            if not (low <= first_low and high >= last_high):
                # pod CIDRs meeting [low, high]: those starting at or before high whose end is >= low
                i = bisect_right(self._lows, high)
                for node in self._by_low[max(0, bisect_left(self._lows, low) - 1):i]:
                    start, mask = node.pod_cidr
                    if start <= high and (start | (~mask & 0xFFFFFFFF)) >= low:
                        out.add(node.name)
            if not (low <= self._ips[0] and high >= self._ips[-1]):
                for j in range(bisect_left(self._ips, low), bisect_right(self._ips, high)):
                    out.add(self._ip_names[j])
        return out


def _why_not(cluster: ClusterSpec, states: dict[str, NodeState], classes) -> str:
    """Why the nodes cannot be swapped ('' when they can)."""
    if classes is None or not classes.sound:
        return "the address classes are not sound"
    if cluster.proxy_mode != "iptables":
        return "userspace mode: each node's proxy ports are its own"
    if any(s.internal_policy == "Local" or s.external_policy == "Local" or s.affinity_timeout
           for s in cluster.services):
        return "a traffic policy or session affinity makes rules per node"
    nodes = cluster.nodes
    if not nodes:
        return "no nodes"
    first = nodes[0]
    for node in nodes:
        if node.docker or node.bridge != first.bridge or node.prefixlen != first.prefixlen \
                or node.pod_cidr[1] != first.pod_cidr[1]:
            return f"node {node.name} differs in bridge, docker mode, node-network prefix or pod-CIDR size"
        if not network_within(node.pod_cidr, cluster.cidr) or networks_overlap(node.pod_cidr, cluster.service_cidr):
            return f"node {node.name}'s pod CIDR {format_network(*node.pod_cidr)} is not inside the cluster CIDR alone"
    for pod in cluster.pods:
        if not in_network(pod.ip, *cluster.node(pod.node).pod_cidr):
            return f"pod {pod.key} is outside its node's pod CIDR"
    by_cidr = {n.pod_cidr: n for n in nodes}
    rules_key = None
    shape = None
    seen_rulesets: dict[int, tuple] = {}
    for node in nodes:
        state = states[node.name]
        if state.ipsets is not None or state.rules is not None or state.route_localnet:
            return f"node {node.name} has ipsets, policy rules or route_localnet"
        key = seen_rulesets.get(id(state.ruleset))
        if key is None:
            key = seen_rulesets[id(state.ruleset)] = _ruleset_key(state.ruleset)
        if rules_key is None:
            rules_key = key
        elif key != rules_key:
            return f"node {node.name}'s rules differ from {first.name}'s"
        mine = _shape(node, state, by_cidr)
        if mine is None:
            return f"node {node.name}'s addresses or routes are not the same shape as the others'"
        if shape is None:
            shape = mine
        elif mine != shape:
            return f"node {node.name}'s addresses or routes differ from {first.name}'s"
    return ""


def _ruleset_key(ruleset) -> tuple:
    return tuple((t.name, c.name, c.policy, tuple((r.matches, r.target) for r in c.rules))
                 for t in ruleset.tables.values() for c in t.chains.values())


def _shape(node, state: NodeState, by_cidr: dict) -> tuple | None:
    """The node's interfaces and routes with its own addresses, its pod CIDR and its peers' pod
    CIDRs (each routed via its peer) as placeholders; None when some other address of a node
    appears (then it is not the same shape as the others')."""
    bridge_ip = node.pod_cidr[0] + 1
    cidr_end = node.pod_cidr[0] | (~node.pod_cidr[1] & 0xFFFFFFFF)
    node_ips = {n.ip for n in by_cidr.values()}

    def addr(ip: int | None):
        if ip is None:
            return None
        if ip == node.ip:
            return "own-ip"
        if ip == bridge_ip:
            return "own-bridge"
        if ip == cidr_end:
            return "own-broadcast"
        if ip == node.pod_cidr[0]:
            return "own-network"
        if ip in node_ips or any(in_network(ip, *c) for c in by_cidr):
            raise _Asymmetric
        return ip

    try:
        ifaces = tuple(sorted((i.name, tuple(sorted((addr(a.ip), a.prefixlen, a.scope, a.secondary, addr(a.broadcast))
                                                   for a in i.addresses)), i.loopback, i.up)
                              for i in state.interfaces.values()))
        routes = []
        for r in (*state.routes, *state.local_routes):
            net = (r.network, r.mask)
            gateway = r.gateway
            if net == node.pod_cidr:
                dst = "own-cidr"
            elif net in by_cidr and by_cidr[net].name != node.name:
                peer = by_cidr[net]
                if gateway != peer.ip:
                    return None
                dst, gateway = "peer-cidr", "peer-ip"
            elif r.mask == 0xFFFFFFFF:
                dst = addr(r.network)
            else:
                dst = net
                # a route over pod CIDRs must cover every node's alike, or it sets some apart
                if any(networks_overlap(net, c) for c in by_cidr) and not all(network_within(c, net) for c in by_cidr):
                    return None
            gw = gateway if gateway == "peer-ip" else addr(gateway)
            nexthops = tuple((addr(g), d, w) for g, d, w in r.nexthops)
            routes.append((r.kind, dst, gw, r.dev, addr(r.prefsrc), r.metric, r.scope, r.table, r.onlink, nexthops))
    except _Asymmetric:
        return None
    return ifaces, tuple(sorted(routes, key=repr))


class _Asymmetric(Exception):
    """Another node's address in this node's interfaces or routes."""
