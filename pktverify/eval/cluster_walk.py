"""A packet's path across a cluster, hop by hop, and its reply back.

Pod network namespace (its own route lookup: on-link, ARP on the bridge, or
via the gateway, see :mod:`pktverify.eval.pod_stack`) → veth → the node's
bridge → the node tracer (netfilter and FIB) → the node network → the next
node → ... → a pod (whose kernel checks the source first), a node, or a
failure (drop, reject, blackhole, a loop, leaving the cluster). The reply is
walked back from where the packet arrived, starting in the receiver's own
stack, each node un-NATing it with the conntrack entries the forward path
created on that node.

The walker is here; the pod's side (its namespace, the bridge, receiving) is
:mod:`.walk_pods`, userspace kube-proxy :mod:`.walk_proxy`, a path in progress
:mod:`.walk_cursor`, what the hops say :mod:`.walk_notes`; the records a walk
returns (:class:`~pktverify.model.path.PathEnd`, ...) are :mod:`pktverify.model.path`.
"""

from __future__ import annotations

import dataclasses

from ..errors import LimitExceeded
from ..limits import MAX_BRANCHES, MAX_NODE_HOPS, MAX_PATHS
from ..model.addresses import format_ip, format_network, in_network, prefix_mask
from ..model.cluster import ClusterSpec, NodeSpec, PodSpec
from ..model.node import NodeState
from ..model.packet import Packet
from ..model.path import Endpoint, Hop, PathEnd, PathEndKind
from ..model.trace import Connection, NodeVerdict
from .conntrack import ConntrackTable
from .facts import UNKNOWN_PORT
from .node_trace import NodeTracer
from .pod_stack import PodStack
from .walk_cursor import Cursor, conntrack_tables, merge_cursors, path_end
from .walk_notes import Summary
from .walk_pods import PodHops
from .walk_proxy import UserspaceProxy

__all__ = ["ClusterWalker", "off_cluster_address"]

# A node's drop or reject, as the path's end.
_FAILED = {NodeVerdict.DROP: PathEndKind.DROP, NodeVerdict.REJECT: PathEndKind.REJECT}


class ClusterWalker(PodHops, UserspaceProxy):
    """Walks flows across the cluster's nodes (each node's compiled tracer is built once)."""

    def __init__(self, cluster: ClusterSpec, nodes: dict[str, NodeState], *, max_branches: int = MAX_BRANCHES,
                 max_paths: int = MAX_PATHS, at: int | None = None) -> None:
        """``max_branches`` bounds the branches of one packet on one node, ``max_paths`` the paths of
        one flow across the cluster (LimitExceeded, naming the option that raises it, past either);
        ``at`` is the time the flows are sent (UTC epoch seconds) for ``-m time`` rules."""
        self.cluster = cluster
        self.at = at
        self.states = nodes
        self.max_paths = max_paths
        shared: dict = {}      # nodes that share a parsed rule set share its compiled chains
        # Each rule set is compiled whole once, by its first node, before any fork (so workers share
        # it); its other nodes take the compiled chains from ``shared`` when a walk first enters one,
        # recompiling only the rules that read the node.  Compiling every chain for every node grew
        # with nodes x services: 1,000 nodes x 50,000 chains.
        first: set[int] = set()
        self.tracers = {}
        for name, state in nodes.items():
            whole = id(state.ruleset) not in first
            first.add(id(state.ruleset))
            self.tracers[name] = NodeTracer(state, shared_chains=shared, max_branches=max_branches, compile_all=whole)
        self.specs = {n.name: n for n in cluster.nodes}
        self.node_by_ip: dict[int, str] = {}
        for state in nodes.values():
            for iface in state.interfaces.values():
                if iface.name != "lo":
                    for a in iface.addresses:
                        self.node_by_ip.setdefault(a.ip, state.name)
        self.pods_by_key = cluster.pods_by_key
        self.external_ip = off_cluster_address(cluster)
        self._uplinks = {name: next((i.name for i in state.interfaces.values()
                                     if any(a.ip == self.specs[name].ip for a in i.addresses)), "eth0")
                         for name, state in nodes.items()}
        self._stacks: dict[str, PodStack] = {}
        self.pods_by_ip: dict[int, list[PodSpec]] = {}
        for p in cluster.pods:
            self.pods_by_ip.setdefault(p.ip, []).append(p)
        self._init_proxies(cluster)

    # ------------------------------------------------------------ entry points
    def pod_endpoint(self, pod: PodSpec) -> Endpoint:
        return Endpoint("pod", pod.key, pod.node)

    def node_endpoint(self, node: NodeSpec) -> Endpoint:
        return Endpoint("node", node.name, node.name)

    def external_endpoint(self, node: NodeSpec) -> Endpoint:
        """The off-cluster client, its packets arriving at ``node`` (by a router or load balancer)."""
        return Endpoint("external", format_ip(self.external_ip), node.name)

    def uplink(self, node: str) -> str:
        """The interface holding the node's own address (where the node network comes in)."""
        return self._uplinks[node]

    def source_address(self, client: Endpoint, dst: int) -> int:
        """The source address the client's stack picks to reach ``dst``."""
        if client.kind == "pod":
            return self.pods_by_key[client.name].ip
        if client.kind == "external":
            return self.external_ip
        fib = self.tracers[client.node].fib
        route = fib.lookup(dst)
        if route.route is not None and route.route.prefsrc is not None:
            return route.route.prefsrc
        if route.kind == "local":
            return dst
        dev = route.route.dev if route.route is not None else "eth0"
        return fib.masquerade_source(dev or "eth0", route.next_hop or dst) or self.specs[client.node].ip

    def walk(self, client: Endpoint, packet: Packet, *, recent: frozenset = frozenset()) -> list[PathEnd]:
        """Every way ``packet`` sent by ``client`` ends (the first packet of a new connection).
        ``recent``: what an earlier connection left, as (node, -m recent list, address) entries
        and (node, userspace proxy port, endpoint address) affinities (see :func:`.walk_notes.remembered`)."""
        start = self._start(client, packet)
        if isinstance(start, PathEnd):
            return [start]
        if isinstance(start, list):
            return start
        return self._run(start, client, tables=None, recent=recent)

    def reply(self, end: PathEnd, client: Endpoint) -> list[PathEnd]:
        """Walk the reply of an arrived flow back to ``client``; un-NAT with the path's conntrack."""
        if end.proxied:
            return self._proxied_reply(end, client)
        return self.follow(end.at, end.packet.reversed(), end.conns)

    def follow(self, sender: Endpoint, packet: Packet, conns: tuple[tuple[str, Connection], ...]) -> list[PathEnd]:
        """A packet of an established connection, sent by ``sender``; each node applies the
        conntrack entries ``conns`` (node, connection) that the connection's first packet made."""
        tables = conntrack_tables(conns)
        start = self._start(sender, packet)
        if isinstance(start, PathEnd):
            return [start]
        if isinstance(start, list):
            return start
        return self._run(start, sender, tables=tables)

    # ------------------------------------------------------------ the walk
    def _start(self, sender: Endpoint, packet: Packet):
        if sender.kind == "pod":
            pod = self.pods_by_key[sender.name]
            hop = Hop(f"pod:{pod.key}:eth0", packet, f"sent by pod {pod.key}")
            if packet.dst == pod.ip or (packet.dst >> 24) == 127:
                # Inside the pod's own network namespace: never leaves it.
                return PathEnd(PathEndKind.ARRIVED, 1.0, packet, (hop,), sender,
                               "delivered inside the pod's network namespace")
            return self._pod_first_hop(pod, packet, hop)
        if sender.kind == "external":
            hop = Hop(f"external:{sender.name}", packet, f"sent by off-cluster client {sender.name} to {sender.node}")
            return Cursor(sender.node, self.uplink(sender.node), packet, 1.0, [hop])
        return Cursor(sender.node, None, packet, 1.0,
                      [Hop(f"{sender.node}:local", packet, f"sent by node {sender.node}")])

    def _run(self, start: Cursor, client: Endpoint, tables: dict[str, ConntrackTable] | None,
             recent: frozenset = frozenset()) -> list[PathEnd]:
        """Walk hop by hop, all paths one node visit at a time: cursors with equal identity
        (same place, packet, connections and history of places) are merged, so paths that
        fork and meet again cost no more than one; a path that comes back to a place it
        has been (same node, interface and packet, TTL aside) is a routing loop and ends
        there — the kernel would match the conntrack entry of the first pass and go round
        the same way until the TTL runs out."""
        ends: list[PathEnd] = []
        level = [start]
        made = 1
        while level:
            work: list[Cursor] = []
            for cur in level:
                self._step(cur, client, tables, ends, work, recent)
            made += len(work)
            if made > self.max_paths:
                raise LimitExceeded(f"a flow from {client.label()} has more than {self.max_paths:,} paths across the "
                                    "cluster (probabilistic NAT on several nodes); raise the limit with --max-paths N")
            level = merge_cursors(work)
        return ends

    def _step(self, cur: Cursor, client: Endpoint, tables, ends: list[PathEnd], work: list[Cursor],
              recent: frozenset = frozenset()) -> None:
        """One node visit of ``cur``: trace it there; ends go to ``ends``, next hops to ``work``."""
        cur.visits += 1
        here = cur.here()
        if here in cur.seen or cur.visits > MAX_NODE_HOPS:
            again = f"came back to {cur.node}:{cur.in_iface or 'local'} as {cur.packet.describe()}" \
                if here in cur.seen else f"more than {MAX_NODE_HOPS} node hops"
            ends.append(path_end(cur, PathEndKind.LOOP, cur.packet, f"routing loop: the packet {again}"))
            return
        cur.seen = cur.seen | {here}
        tracer = self.tracers[cur.node]
        ct = tables.get(cur.node) if tables is not None else None
        arrive_point = f"{cur.node}:{cur.in_iface}" if cur.in_iface else f"{cur.node}:local"
        # With br_netfilter (kube's bridge-nf-call-iptables=1) a pod's packet enters through a bridge
        # port (physdev-in), and one for a pod behind the same bridge is bridged to its port
        # (physdev-out, --physdev-is-bridged). The ports' names are in no input.
        spec = self.specs[cur.node]
        physin = physout = ""
        if cur.in_iface is not None and cur.in_iface in (spec.bridge, "docker0") \
                and self.states[cur.node].sysctls.bridge_nf_call_iptables:
            physin = UNKNOWN_PORT
            physout = cur.physout       # the pod sent it on-link to a pod's port (else to the gateway)
        mine = frozenset((name, addr) for node, name, addr in recent if node == cur.node) if recent else frozenset()
        trace = tracer.trace(cur.packet, in_iface=cur.in_iface, conntrack=ct, physdev_in=physin, physdev_out=physout,
                             at=self.at, recent=mine)
        for o in trace.outcomes:
            prob = cur.probability * o.probability
            hops = list(cur.hops)
            if cur.in_iface:
                hops.append(Hop(arrive_point, cur.packet, f"in {cur.in_iface}"))
            conns = list(cur.conns)
            if o.connection is not None and tables is None:
                conns.append((cur.node, o.connection))
            nxt = Cursor(cur.node, None, o.packet, prob, hops, conns, cur.visits, cur.exact and o.exact, cur.seen)
            summary = Summary(o)
            if o.verdict in _FAILED:
                hops.append(Hop(arrive_point, o.packet, lambda o=o, s=summary: f"{o.verdict}: {o.reason}; {s}", o))
                end = path_end(nxt, _FAILED[o.verdict], o.packet, f"{o.verdict} on {cur.node}: {o.reason}")
                if o.verdict == NodeVerdict.REJECT and o.answer is not None and tables is None:
                    ends.extend(self._answered(end, cur, o, client))
                else:
                    ends.append(end)
            elif o.verdict == NodeVerdict.LOCAL:
                hops.append(Hop(f"{cur.node}:local", o.packet, lambda s=summary: f"delivered locally; {s}", o))
                ends.extend(self._local(nxt, o.packet, client, tables, recent))
            else:
                hops.append(Hop(f"{cur.node}:{o.out_iface}", o.packet,
                                lambda o=o, s=summary: f"out {o.out_iface}; {s}", o))
                self._forward(nxt, o, ends, work)

    def _answered(self, end: PathEnd, cur: Cursor, o, client: Endpoint) -> list[PathEnd]:
        """A REJECT on ``cur.node`` refuses the flow only if its answer (the ICMP error or RST
        the node sends, ``o.answer``) gets back to ``client``: it is walked from that node like
        any packet, each node applying the connection's conntrack entries (the RST belongs to the
        connection; the ICMP error is RELATED to it and un-NATed by it, see
        :meth:`ConntrackTable.related`), the rejecting node's own entry included (made, never
        confirmed, when the packet arrived there). Where the answer ends elsewhere (a drop on the
        way back, a route away from the client), the client hears nothing: that part of the flow
        ends as a drop, named where the answer died."""
        conns = (*end.conns, (cur.node, Connection(cur.packet, o.packet.reversed())))
        me = Endpoint("node", cur.node, cur.node)
        start = Cursor(cur.node, None, o.answer, 1.0, [Hop(f"{cur.node}:local", o.answer,
                                                            f"{cur.node} answers: {o.answer.describe()}")])
        out: list[PathEnd] = []
        for back in self._run(start, me, conntrack_tables(conns)):
            p = end.probability * back.probability
            exact = end.exact and back.exact
            if back.kind == PathEndKind.ARRIVED and client.same_client(back.at):
                out.append(dataclasses.replace(end, probability=p, exact=exact))
                continue
            where = f"arrived at {back.at.label()}" if back.kind == PathEndKind.ARRIVED and back.at is not None else \
                f"{back.kind}: {back.reason}"
            reason = (f"{end.reason}; its answer ({o.answer.describe()}) never reaches {client.label()} ({where}):"
                      " the client hears nothing")
            out.append(PathEnd(PathEndKind.DROP, p, end.packet, (*end.hops, *back.hops), None, reason, exact,
                               end.conns))
        return out

    def _forward(self, cur: Cursor, o, ends: list[PathEnd], work: list[Cursor]) -> None:
        """``o`` leaves ``cur.node``: to a pod behind its bridge, to the off-cluster client, to the
        next node (a cursor in ``work``), or out of the cluster network (an end)."""
        spec = self.specs[cur.node]
        pkt = o.packet
        if o.out_iface in (spec.bridge, "docker0"):
            pods = [p for p in self.pods_by_ip.get(pkt.dst, []) if p.node == cur.node]
            if not pods:
                ends.append(path_end(cur, PathEndKind.BLACKHOLE, pkt, f"no pod with IP {format_ip(pkt.dst)} behind "
                                                                      f"{cur.node}:{o.out_iface}"))
                return
            ends.extend(self._received_any(cur, pkt, pods))
            return
        nh = o.next_hop if o.next_hop is not None else pkt.dst
        peer = self.node_by_ip.get(nh)
        if (peer is None or peer == cur.node) and pkt.dst == self.external_ip:
            cur.hops.append(Hop(f"external:{format_ip(pkt.dst)}", pkt, f"received by off-cluster client "
                                                                       f"{format_ip(pkt.dst)} (via {cur.node}:{o.out_iface})"))
            ends.append(path_end(cur, PathEndKind.ARRIVED, pkt, f"received by off-cluster client {format_ip(pkt.dst)}",
                                 Endpoint("external", format_ip(pkt.dst), cur.node)))
            return
        if peer is None or peer == cur.node:
            what = f"next hop {format_ip(nh)} is not a node"
            owner = next((n for n in self.cluster.nodes if in_network(pkt.dst, *n.pod_cidr)), None)
            if owner is not None and owner.name != cur.node:
                what = f"no route to node {owner.name}'s pod CIDR {format_network(*owner.pod_cidr)}: {what}"
            if in_network(pkt.dst, *self.cluster.service_cidr):
                what += f"; a ClusterIP ({format_ip(pkt.dst)}) left {cur.node} un-DNATed"
            ends.append(path_end(cur, PathEndKind.LEFT, pkt,
                                 f"left the cluster network from {cur.node}:{o.out_iface} ({what})"))
            return
        cur.hops.append(Hop("wire", pkt, f"{cur.node} → {peer}"))
        work.append(Cursor(peer, self.uplink(peer), pkt, cur.probability, cur.hops, cur.conns, cur.visits, cur.exact, cur.seen))


_OFF_CLUSTER_CANDIDATES = (0xCB00710A, 0xC633640A, 0xC000020A, 0x0808080A)   # 203.0.113.10, 198.51.100.10, ...


def off_cluster_address(cluster: ClusterSpec) -> int:
    """An address for the off-cluster client: a documentation address (RFC 5737) that is no
    node's, pod's or service's and lies in none of the cluster's networks."""
    nets = [cluster.cidr, cluster.service_cidr] + [n.pod_cidr for n in cluster.nodes]
    nets += [(n.ip & prefix_mask(n.prefixlen), prefix_mask(n.prefixlen)) for n in cluster.nodes if n.prefixlen]
    used = {ip for s in cluster.services for ip in (s.cluster_ip, *s.external_ips, *s.lb_ips)}
    for ip in _OFF_CLUSTER_CANDIDATES:
        if ip not in used and not any(in_network(ip, *net) for net in nets):
            return ip
    return 0x0A0A0A0A if not any(in_network(0x0A0A0A0A, *net) for net in nets) else 0xC0A8FE0A
