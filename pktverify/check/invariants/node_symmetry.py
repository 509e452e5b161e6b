"""Nodes an address renaming can swap: one flow checked stands for the same flow from every one.

The argument extends the one of :mod:`pktverify.check.invariants.address_classes` from addresses to nodes.
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
  same rules, structurally); no ipsets, policy rules or route_localnet, and no sysctl other
  than the ones pktverify assumes (:mod:`pktverify.model.sysctls`); no docker bridge;
* every pod CIDR has one size, lies inside the cluster CIDR and outside the service CIDR, and
  every pod lies inside its node's CIDR (pod addresses are unique: the classes are sound);
  every pod's eth0 subnet is its node's pod CIDR (no ``pod_prefix`` of another length: σ maps
  A's CIDR onto B's, and a pod's own route lookup, on-link or via the gateway, with it);
* no rule sets A or B apart: no address or range a rule names — a test or a NAT target the
  flows can meet (``AddressClasses.rule_intervals``, plus the chains of the destination being
  checked) — meets A's or B's pod CIDR or address, unless it covers every node's alike (the
  cluster CIDR, the node network), or it is the node's own address named by that node's own
  rules (σ maps A's rules naming A onto B's naming B).

In userspace mode σ also swaps A's proxy port of each service port with B's (kube-proxy picks
them at random per node), and the rule sets must be the same once each node's own address and
proxy ports are written as placeholders (``KUBE-PORTALS-HOST`` DNATs to ``<own address>:<its
port for the service>``).  This holds only when no rule tells proxy ports apart otherwise: every
port or port range a rule names contains no node's proxy port or every node's (``--dport
30000:32767`` with some proxy ports inside and some outside would set nodes apart), the rules
test ports only through the matches and targets this module knows, and no node listens on the
port the proxy's own connections leave from.

Nodes that a rule sets apart (for a service: the nodes of its endpoints, whose addresses its
KUBE-SEP chains name) stay on their own; the rest are *free* and interchangeable. Any failed
condition leaves every node on its own (``reason`` says which), and the flows are grouped as
before. ``tests/check/test_node_symmetry.py`` checks, on drawn clusters, that this gives the same
verdicts and counts as checking every flow.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import replace

from ...model import rules as m
from ...model.addresses import (
    format_network,
    in_network,
    mask_length,
    network_within,
    networks_overlap,
)
from ...model.cluster import ClusterSpec
from ...model.node import NodeState
from .nft_symmetry import NftKeys

__all__ = ["NodeSymmetry"]


class NodeSymmetry:
    """Which nodes are interchangeable for flows whose rule tests are known (see the module)."""

    def __init__(self, cluster: ClusterSpec, states: dict[str, NodeState], classes,
                 proxy_ports: dict[tuple[str, int], tuple] | None = None, flow_ports: frozenset[int] = frozenset()) -> None:
        """``proxy_ports``: userspace mode's (node, port) -> (service port name, protocol, ...), as
        the walker's proxies listen; ``flow_ports``: the ports the checked flows send from and to
        (a proxy port among them would meet those flows on its node only)."""
        self.cluster = cluster
        self.reason = _why_not(cluster, states, classes, proxy_ports or {}, flow_ports)
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


def _why_not(cluster: ClusterSpec, states: dict[str, NodeState], classes,
             proxy_ports: dict[tuple[str, int], tuple], flow_ports: frozenset[int]) -> str:
    """Why the nodes cannot be swapped ('' when they can)."""
    if classes is None or not classes.sound:
        return "the address classes are not sound"
    ports_of: dict[str, dict[int, tuple]] = {}
    for (node_name, port), (name, proto, *_rest) in proxy_ports.items():
        ports_of.setdefault(node_name, {})[port] = ("proxy-port", name, proto)
    return (_proxies_apart(cluster, proxy_ports, flow_ports, ports_of) or _plan_apart(cluster)
            or _states_apart(cluster, states, proxy_ports, ports_of))


def _proxies_apart(cluster: ClusterSpec, proxy_ports: dict[tuple[str, int], tuple], flow_ports: frozenset[int],
                   ports_of: dict[str, dict[int, tuple]]) -> str:
    """Why userspace mode's proxies set nodes apart ('' when they do not, or in another mode)."""
    if cluster.proxy_mode == "userspace":
        if not proxy_ports:
            return "userspace mode without the proxies' port table"
        used = flow_ports | {p for s in cluster.services for sp in s.ports
                             for p in (sp.port, sp.node_port, sp.target_port) if isinstance(p, int)} \
            | {port for pod in cluster.pods for port in pod.ports} \
            | {number for pod in cluster.pods for _n, _p, number in pod.named_ports}
        clash = sorted({port for _node, port in proxy_ports} & used)
        if clash:
            return f"a userspace proxy listens on port {clash[0]}, which the checked flows use too"
        if len({len(ports_of.get(n.name, {})) for n in cluster.nodes}) > 1:
            return "the nodes' userspace proxies listen on different numbers of ports"
    return ""


def _plan_apart(cluster: ClusterSpec) -> str:
    """Why the cluster's description sets nodes apart: per-node policies, nodes of different
    shapes, pod CIDRs or pods out of place ('' when nothing does)."""
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
    for node in nodes:
        if node.pod_prefixlen != mask_length(node.pod_cidr[1]):
            return (f"node {node.name}'s pods carry a /{node.pod_prefixlen} (pod_prefix), not their pod CIDR's "
                    f"/{mask_length(node.pod_cidr[1])}")
    for pod in cluster.pods:
        if not in_network(pod.ip, *cluster.node(pod.node).pod_cidr):
            return f"pod {pod.key} is outside its node's pod CIDR"
    return ""


def _states_apart(cluster: ClusterSpec, states: dict[str, NodeState], proxy_ports: dict[tuple[str, int], tuple],
                  ports_of: dict[str, dict[int, tuple]]) -> str:
    """Why the nodes' states set them apart: extra state, other sysctls, rules that differ beyond
    each node's own address and proxy ports, addresses or routes of another shape ('' when none)."""
    nodes = cluster.nodes
    first = nodes[0]
    by_cidr = {n.pod_cidr: n for n in nodes}
    all_ports = sorted(port for _node, port in proxy_ports)
    rules_key = None
    shape = None
    seen_rulesets: dict[int, tuple] = {}
    users: dict[int, int] = {}
    nft_users: dict[int, int] = {}
    for node in nodes:
        users[id(states[node.name].ruleset)] = users.get(id(states[node.name].ruleset), 0) + 1
        if states[node.name].nft is not None:
            nft_users[id(states[node.name].nft)] = nft_users.get(id(states[node.name].nft), 0) + 1
    nft_keys = NftKeys()
    for node in nodes:
        state = states[node.name]
        if state.ipsets is not None or state.rules is not None or state.route_localnet:
            return f"node {node.name} has ipsets, policy rules or route_localnet"
        if state.sysctls.differences():
            return f"node {node.name} has sysctls other than the assumed ones ({', '.join(state.sysctls.differences())})"
        key = seen_rulesets.get(id(state.ruleset))
        if key is None:
            why = _ports_apart(state.ruleset, all_ports, ports_of.get(node.name, {})) if all_ports else ""
            if why:
                return f"node {node.name}: {why}"
            if users[id(state.ruleset)] > 1:
                # Shared by several nodes: what it names, it names for all of them (no placeholders;
                # naming one node's address then sets that node apart, see AddressClasses).
                key = seen_rulesets[id(state.ruleset)] = _ruleset_key(state.ruleset, None, {})
            else:
                key = _ruleset_key(state.ruleset, node.ip, ports_of.get(node.name, {}))
        # nft tables too (kube-proxy's nftables mode), the node's own address a placeholder unless
        # its ruleset is shared.
        own = node.ip if nft_users.get(id(state.nft), 0) == 1 else None
        key = (key, nft_keys.key(state.nft, own))
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


def _ruleset_key(ruleset, own_ip: int | None, ports: dict[int, tuple]) -> tuple:
    """The rule set, structurally, with the node's own address and its proxy ports as placeholders."""
    if own_ip is None and not ports:
        return tuple((t.name, c.name, c.policy, tuple((r.matches, r.target) for r in c.rules))
                     for t in ruleset.tables.values() for c in t.chains.values())
    return tuple((t.name, c.name, c.policy, tuple((tuple(_placeholders(mt, own_ip, ports) for mt in r.matches),
                                                   _placeholders(r.target, own_ip, ports)) for r in c.rules))
                 for t in ruleset.tables.values() for c in t.chains.values())


def _placeholders(obj, own_ip: int | None, ports: dict[int, tuple]):
    """``obj`` with ``own_ip`` written "own-ip" and each proxy port as its service port's name."""
    kind = type(obj)
    if kind is m.AddrMatch and obj.mask == 0xFFFFFFFF and obj.network == own_ip:
        return replace(obj, network="own-ip")
    if kind is m.PortMatch:
        port = _proxy_port(obj.low, obj.high, ports)
        return replace(obj, low=port, high=port) if port is not None else obj
    if kind is m.Dnat and obj.addr_low == own_ip and obj.addr_high == own_ip:
        obj = replace(obj, addr_low="own-ip", addr_high="own-ip")
    if kind is m.Dnat or kind is m.Redirect:
        port = _proxy_port(obj.port_low, obj.port_high, ports)
        return replace(obj, port_low=port, port_high=port) if port is not None else obj
    return obj


def _proxy_port(low: int | None, high: int | None, ports: dict[int, tuple]) -> tuple | None:
    """The placeholder of a single port that is one of the node's proxy ports (else None): the
    one place PortMatch, DNAT and REDIRECT ports are renamed, and _ports_apart skips them."""
    return ports[low] if low is not None and low == high and low in ports else None


# What rules may hold when proxy ports are renamed: the matches and targets whose ports
# _port_intervals reads, and those that test no port at all.
_PORT_FREE = (m.AddrMatch, m.ProtoMatch, m.IfaceMatch, m.CommentMatch, m.AddrTypeMatch, m.MarkMatch,
              m.CtStateMatch, m.IpRangeMatch, m.PhysdevMatch, m.RandomMatch, m.NthMatch, m.FixedMatch,
              m.Verdict, m.Jump, m.Reject, m.SetMark, m.NoOp)


def _port_intervals(obj) -> list[tuple[int, int]] | None:
    """The port ranges ``obj`` tests or writes ([] none; None when it is not a kind known here)."""
    kind = type(obj)
    if kind is m.PortMatch:
        return [(obj.low, obj.high)]
    if kind is m.MultiportMatch:
        return list(obj.ranges)
    if kind in (m.Dnat, m.Snat, m.Masquerade, m.Redirect):
        return [(obj.port_low, obj.port_high)] if obj.port_low is not None else []
    if obj is None or isinstance(obj, _PORT_FREE):
        return []
    return None


def _ports_apart(ruleset, ports: list[int], own: dict[int, tuple]) -> str:
    """Why some rule tells proxy ports apart ('' when every port range it names, other than its
    node's own proxy ports written as placeholders, holds no node's proxy port or every one)."""
    for table in ruleset.tables.values():
        for chain in table.chains.values():
            for rule in chain.rules:
                for obj in (*rule.matches, rule.target):
                    intervals = _port_intervals(obj)
                    if intervals is None:
                        return f"{type(obj).__name__} in {rule.location()} may test ports (proxy ports not renamed)"
                    renamed = type(obj) in (m.PortMatch, m.Dnat, m.Redirect)
                    for low, high in intervals:
                        if renamed and _proxy_port(low, high, own) is not None:
                            continue        # a placeholder in the key: σ maps it to the other node's
                        inside = bisect_right(ports, high) - bisect_left(ports, low)
                        if 0 < inside < len(ports):
                            return f"{rule.location()} names ports {low}-{high}, holding some proxy ports only"
    return ""


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
