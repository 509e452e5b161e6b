"""A packet's path across a cluster, hop by hop, and its reply back.

Pod network namespace (its own route lookup: on-link, ARP on the bridge, or
via the gateway, see :mod:`pktverify.eval.pod_stack`) → veth → the node's
bridge → the node tracer (netfilter and FIB) → the node network → the next
node → ... → a pod (whose kernel checks the source first), a node, or a
failure (drop, reject, blackhole, a loop, leaving the cluster). The reply is
walked back from where the packet arrived, starting in the receiver's own
stack, each node un-NATing it with the conntrack entries the forward path
created on that node.

Userspace kube-proxy: a packet REDIRECTed/DNATed to a node's proxy port is
delivered to the proxy, which opens a new connection from the node to one of
the service's endpoints, chosen uniformly; the backend sees the node's
address, as it really does. The client's reply then comes from the proxy's
socket, un-NATed by conntrack to ClusterIP:port.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..limits import MAX_NODE_HOPS, MAX_PATHS
from ..model.addresses import format_ip, format_network, in_network, prefix_mask
from ..model.cluster import ClusterSpec, NodeSpec, PodSpec
from ..model.kube_proxy import PROXY_SPORT  # the port each userspace proxy connects from
from ..model.node import NodeState
from ..model.packet import Packet
from ..model.rules import RecentMatch
from ..model.trace import Connection
from .conntrack import ConntrackTable
from .facts import UNKNOWN_PORT
from .node_trace import NodeTracer
from .pod_stack import PodStack, martian_at_pod, pod_stack
from .state import MAX_BRANCHES, LimitExceeded, merge_equal

__all__ = ["Hop", "PathEnd", "Endpoint", "ClusterWalker", "MAX_NODE_HOPS", "MAX_PATHS", "rules_summary", "step_label",
           "off_cluster_address", "remembered"]


class Hop:
    """One observation point: ``point`` names it (``pod:default/web-1:eth0``, ``node1:cbr0``,
    ``wire``, ...); ``packet`` is the packet as it is there; ``note`` says what happened.

    ``note`` may be given as a function: most walks are checked and thrown away, and
    describing every rule that acted costs more than the walk, so the text is made
    (once) only when someone reads it.
    """
    __slots__ = ("point", "packet", "_note", "outcome")

    def __init__(self, point: str, packet: Packet, note, outcome=None) -> None:
        self.point = point
        self.packet = packet
        self._note = note
        self.outcome = outcome        # the node trace's Outcome at this hop (its steps: which rules acted)

    @property
    def note(self) -> str:
        note = self._note
        if not isinstance(note, str):
            note = self._note = note()
        return note

    def __repr__(self) -> str:
        return f"Hop({self.point!r}, {self.packet.describe()!r}, {self.note!r})"

    def __reduce__(self):
        return Hop, (self.point, self.packet, self.note, self.outcome)   # the text, not the function that makes it


@dataclass(frozen=True)
class Endpoint:
    """Where a flow starts or ends: a pod, a node (its own stack), or an off-cluster client
    (``external``: ``name`` is its address, ``node`` the node its packets arrive at)."""
    kind: str                    # "pod" | "node" | "external"
    name: str                    # pod key ns/name, node name, or the client's address
    node: str                    # the node it is on (or enters by)

    def label(self) -> str:
        if self.kind == "external":
            return f"off-cluster client {self.name} (arriving at {self.node})"
        return f"{self.kind} {self.name}"

    def same_client(self, other: "Endpoint | None") -> bool:
        """``other`` is this endpoint (an off-cluster client, by its address, whichever node it used)."""
        if other is None:
            return False
        if self.kind == "external":
            return other.kind == "external" and other.name == self.name
        return other == self


@dataclass(frozen=True)
class PathEnd:
    """One way a flow ends, with its probability.

    ``kind``: ``arrived`` (``at`` is the receiver, ``packet`` as received),
    or a failure: ``drop``, ``reject``, ``blackhole``, ``loop``, ``left``
    (left the cluster network). ``conns`` are the conntrack entries each node
    created, for the reply; ``proxied`` is non-empty when a userspace proxy relayed it.
    """
    kind: str
    probability: float
    packet: Packet
    hops: tuple[Hop, ...]
    at: Endpoint | None = None
    reason: str = ""
    exact: bool = True
    conns: tuple[tuple[str, Connection], ...] = ()
    proxied: tuple = ()   # ((node, client leg as delivered to the proxy, its conns, the proxy's SYN, its end), ...)

    def answers(self, client: Endpoint, sent: Packet) -> bool:
        """For a reply: it reached ``client`` exactly as the reverse of what the client ``sent``."""
        got = (self.packet.src, self.packet.sport, self.packet.dst, self.packet.dport)
        return self.kind == "arrived" and client.same_client(self.at) and got == (sent.dst, sent.dport, sent.src,
                                                                                 sent.sport)


@dataclass
class _Cursor:
    node: str
    in_iface: str | None
    packet: Packet
    probability: float
    hops: list[Hop] = field(default_factory=list)
    conns: list[tuple[str, Connection]] = field(default_factory=list)
    visits: int = 0
    exact: bool = True
    seen: frozenset = frozenset()     # (node, in_iface, packet with TTL 0) this path has been at
    physout: str = ""                 # a frame a pod sent on-link to a pod behind the same bridge (bridged)

    def here(self) -> tuple:
        """Where the packet is, as a loop check compares it (the TTL falls on every hop)."""
        return (self.node, self.in_iface, self.packet._replace(ttl=0))

    def identity(self) -> tuple:
        """Two cursors with equal identity have equal futures and equal histories but for hops."""
        return (self.node, self.in_iface, self.packet, self.exact, tuple(self.conns), self.seen, self.physout)


class ClusterWalker:
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
        # Userspace proxies' own connections (and their replies), shared by every client.
        self._proxy_legs: dict[tuple[str, Packet], list[PathEnd]] = {}
        self._leg_replies: dict[int, list[PathEnd]] = {}
        self._last_answer: tuple = (None, [])
        self._stacks: dict[str, PodStack] = {}
        self.pods_by_ip: dict[int, list[PodSpec]] = {}
        for p in cluster.pods:
            self.pods_by_ip.setdefault(p.ip, []).append(p)
        # proxy port -> (service key:port name, protocol, endpoints as (label, ip, port)), per node (userspace)
        self.proxy_ports: dict[tuple[str, int], tuple[str, str, tuple[tuple[str, int, int], ...]]] = {}
        if cluster.proxy_mode == "userspace":
            from ..model.kube_proxy import service_ports, userspace_proxy_ports
            ports = service_ports(cluster)
            for node in cluster.nodes:
                chosen = userspace_proxy_ports(node, ports)
                for p in ports:
                    self.proxy_ports[(node.name, chosen[(p.name, p.proto)])] = (p.name, p.proto, p.endpoints)

    def forget_proxy_legs(self) -> None:
        """Drop the userspace proxies' remembered connections (and their replies, keyed by them).
        They are a pure cache shared by the clients of one service's endpoints; a check that moves
        on to another service's endpoints calls this, so memory holds one service's legs, not all
        of them."""
        self._proxy_legs.clear()
        self._leg_replies.clear()
        self._last_answer = (None, [])

    # ------------------------------------------------------------ entry points
    def pod_endpoint(self, pod: PodSpec) -> Endpoint:
        return Endpoint("pod", pod.key, pod.node)

    def node_endpoint(self, node: NodeSpec) -> Endpoint:
        return Endpoint("node", node.name, node.name)

    def external_endpoint(self, node: NodeSpec) -> Endpoint:
        """The off-cluster client, its packets arriving at ``node`` (by a router or load balancer)."""
        return Endpoint("external", format_ip(self.external_ip), node.name)

    def pod_stack(self, pod: PodSpec) -> PodStack:
        """The pod's eth0 address, prefix and gateway (made once per pod)."""
        stack = self._stacks.get(pod.key)
        if stack is None:
            stack = self._stacks[pod.key] = pod_stack(self.specs[pod.node], self.states[pod.node], pod)
        return stack

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
        and (node, userspace proxy port, endpoint address) affinities (see :func:`remembered`)."""
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
        tables = _conntrack_tables(conns)
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
                return PathEnd("arrived", 1.0, packet, (hop,), sender, "delivered inside the pod's network namespace")
            return self._pod_first_hop(pod, packet, hop)
        if sender.kind == "external":
            hop = Hop(f"external:{sender.name}", packet, f"sent by off-cluster client {sender.name} to {sender.node}")
            return _Cursor(sender.node, self.uplink(sender.node), packet, 1.0, [hop])
        return _Cursor(sender.node, None, packet, 1.0,
                       [Hop(f"{sender.node}:local", packet, f"sent by node {sender.node}")])

    def _pod_first_hop(self, pod: PodSpec, packet: Packet, hop: Hop):
        """The pod's own route lookup: on-link (ARP on the bridge: a pod behind it, the node for an
        address of its own, or nobody: dropped in the pod) or via the gateway (the node's stack)."""
        stack = self.pod_stack(pod)
        bridge = stack.bridge
        dst = packet.dst
        if not stack.on_link(dst):
            if stack.gateway is None:
                reason = (f"network unreachable in pod {pod.key}: {format_ip(dst)} is outside its subnet "
                          f"{format_network(stack.network, stack.mask)} and it has no default route "
                          f"({pod.node}:{bridge} has no address)")
                hop._note = f"sent by pod {pod.key}; refused there: {reason}"
                return PathEnd("reject", 1.0, packet, (hop,), None, reason)
            hop._note = f"sent by pod {pod.key} via its gateway {format_ip(stack.gateway)} ({pod.node}:{bridge})"
            return _Cursor(pod.node, bridge, packet, 1.0, [hop])
        sysctls = self.states[pod.node].sysctls
        owner = next((p for p in self.pods_by_ip.get(dst, ()) if p.node == pod.node), None)
        if owner is not None:
            hop._note = f"sent by pod {pod.key} on-link to {format_ip(dst)} (a pod behind {pod.node}:{bridge})"
            if not sysctls.bridge_nf_call_iptables:
                # Without br_netfilter the bridge forwards the frame and no iptables rule sees it.
                cur = _Cursor(pod.node, bridge, packet, 1.0, [hop])
                cur.hops.append(Hop(f"{pod.node}:{bridge}", packet, f"bridged on {bridge} (bridge-nf-call-iptables=0"
                                                                   f" in {sysctls.source}: iptables does not see it)"))
                return self._received_any(cur, packet, [p for p in self.pods_by_ip[dst] if p.node == pod.node])
            return _Cursor(pod.node, bridge, packet, 1.0, [hop], physout=UNKNOWN_PORT)
        if self._node_answers_arp(pod, stack, dst):
            hop._note = f"sent by pod {pod.key} on-link to {format_ip(dst)} (an address of node {pod.node})"
            return _Cursor(pod.node, bridge, packet, 1.0, [hop])
        # The pod's name stays out of the reason: every pod of the subnet fails alike (one cause).
        reason = (f"no ARP answer for {format_ip(dst)} on {bridge} ({pod.node}): it is inside the pod subnet "
                  f"{format_network(stack.network, stack.mask)} (on-link) and nobody on the bridge owns it")
        hop._note = f"sent by pod {pod.key}; dropped there: {reason}"
        return PathEnd("drop", 1.0, packet, (hop,), None, reason)

    def _node_answers_arp(self, pod: PodSpec, stack: PodStack, dst: int) -> bool:
        """Whether the node answers the pod's ARP for ``dst`` on the bridge: an address of its own
        on any interface (arp_ignore=0), one on the bridge (1), one on the bridge whose subnet holds
        the pod's address (2); never (8)."""
        state = self.states[pod.node]
        mode = state.sysctls.arp_ignore(stack.bridge)
        if self.tracers[pod.node].fib.lookup(dst, None, pod.ip, 0, stack.bridge).kind != "local":
            return False
        if mode == 0:
            return True
        if mode >= 8:
            return False
        iface = state.interfaces.get(stack.bridge)
        mine = [a for a in (iface.addresses if iface is not None else ()) if a.ip == dst]
        return bool(mine) and (mode != 2 or any(in_network(pod.ip, a.ip & a.mask, a.mask) for a in mine))

    def _received_any(self, cur: _Cursor, pkt: Packet, pods: list[PodSpec]) -> list[PathEnd]:
        """``pkt`` delivered behind the bridge to the pod that owns its address. Two pods holding
        one address (the violation pod-ip-uniqueness reports) both answer the ARP request; the
        bridge delivers to whichever answer came first, which no input tells: each is possible,
        so each gets an equal share marked inexact (its probability is no promise), not the
        first listed."""
        if len(pods) == 1:
            return [self._received(cur, pkt, pods[0])]
        ends = []
        for pod in pods:
            fork = dataclasses.replace(cur, probability=cur.probability / len(pods), hops=list(cur.hops), exact=False)
            end = self._received(fork, pkt, pod)
            ends.append(dataclasses.replace(end, reason=f"{end.reason} (or another: {len(pods)} pods behind "
                                                        f"{cur.node}:{self.specs[cur.node].bridge} hold "
                                                        f"{format_ip(pkt.dst)}; the first ARP answer wins)"))
        return ends

    def _received(self, cur: _Cursor, pkt: Packet, pod: PodSpec) -> PathEnd:
        """``pkt`` at ``pod``'s eth0: its kernel drops a martian source, else a socket gets it."""
        martian = martian_at_pod(self.pod_stack(pod), pkt)
        if martian:
            cur.hops.append(Hop(f"pod:{pod.key}:eth0", pkt, martian))
            return self._end(cur, "drop", pkt, martian)
        cur.hops.append(Hop(f"pod:{pod.key}:eth0", pkt, f"received by pod {pod.key}"))
        return self._end(cur, "arrived", pkt, f"received by pod {pod.key}", Endpoint("pod", pod.key, pod.node))

    def _run(self, start: _Cursor, client: Endpoint, tables: dict[str, ConntrackTable] | None,
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
            work: list[_Cursor] = []
            for cur in level:
                self._step(cur, client, tables, ends, work, recent)
            made += len(work)
            if made > self.max_paths:
                raise LimitExceeded(f"a flow from {client.label()} has more than {self.max_paths:,} paths across the "
                                    "cluster (probabilistic NAT on several nodes); raise the limit with --max-paths N")
            level = _merge_cursors(work)
        return ends

    def _step(self, cur: _Cursor, client: Endpoint, tables, ends: list[PathEnd], work: list[_Cursor],
              recent: frozenset = frozenset()) -> None:
        """One node visit of ``cur``: trace it there; ends go to ``ends``, next hops to ``work``."""
        cur.visits += 1
        here = cur.here()
        if here in cur.seen or cur.visits > MAX_NODE_HOPS:
            again = f"came back to {cur.node}:{cur.in_iface or 'local'} as {cur.packet.describe()}" \
                if here in cur.seen else f"more than {MAX_NODE_HOPS} node hops"
            ends.append(self._end(cur, "loop", cur.packet, f"routing loop: the packet {again}"))
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
            nxt = _Cursor(cur.node, None, o.packet, prob, hops, conns, cur.visits, cur.exact and o.exact, cur.seen)
            summary = _Summary(o)
            if o.verdict in ("drop", "reject"):
                hops.append(Hop(arrive_point, o.packet, lambda o=o, s=summary: f"{o.verdict}: {o.reason}; {s}", o))
                end = self._end(nxt, o.verdict, o.packet, f"{o.verdict} on {cur.node}: {o.reason}")
                if o.verdict == "reject" and o.answer is not None and tables is None:
                    ends.extend(self._answered(end, cur, o, client))
                else:
                    ends.append(end)
            elif o.verdict == "local":
                hops.append(Hop(f"{cur.node}:local", o.packet, lambda s=summary: f"delivered locally; {s}", o))
                ends.extend(self._local(nxt, o.packet, client, tables, recent))
            else:
                hops.append(Hop(f"{cur.node}:{o.out_iface}", o.packet,
                                lambda o=o, s=summary: f"out {o.out_iface}; {s}", o))
                self._forward(nxt, o, ends, work)

    def _answered(self, end: PathEnd, cur: _Cursor, o, client: Endpoint) -> list[PathEnd]:
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
        start = _Cursor(cur.node, None, o.answer, 1.0, [Hop(f"{cur.node}:local", o.answer,
                                                             f"{cur.node} answers: {o.answer.describe()}")])
        out: list[PathEnd] = []
        for back in self._run(start, me, _conntrack_tables(conns)):
            p = end.probability * back.probability
            exact = end.exact and back.exact
            if back.kind == "arrived" and client.same_client(back.at):
                out.append(dataclasses.replace(end, probability=p, exact=exact))
                continue
            where = f"arrived at {back.at.label()}" if back.kind == "arrived" and back.at is not None else \
                f"{back.kind}: {back.reason}"
            reason = (f"{end.reason}; its answer ({o.answer.describe()}) never reaches {client.label()} ({where}):"
                      " the client hears nothing")
            out.append(PathEnd("drop", p, end.packet, (*end.hops, *back.hops), None, reason, exact, end.conns))
        return out

    def _forward(self, cur: _Cursor, o, ends: list[PathEnd], work: list[_Cursor]) -> None:
        spec = self.specs[cur.node]
        pkt = o.packet
        if o.out_iface in (spec.bridge, "docker0"):
            pods = [p for p in self.pods_by_ip.get(pkt.dst, []) if p.node == cur.node]
            if not pods:
                ends.append(self._end(cur, "blackhole", pkt, f"no pod with IP {format_ip(pkt.dst)} behind "
                                                             f"{cur.node}:{o.out_iface}"))
                return
            ends.extend(self._received_any(cur, pkt, pods))
            return
        nh = o.next_hop if o.next_hop is not None else pkt.dst
        peer = self.node_by_ip.get(nh)
        if (peer is None or peer == cur.node) and pkt.dst == self.external_ip:
            cur.hops.append(Hop(f"external:{format_ip(pkt.dst)}", pkt, f"received by off-cluster client "
                                                                       f"{format_ip(pkt.dst)} (via {cur.node}:{o.out_iface})"))
            ends.append(self._end(cur, "arrived", pkt, f"received by off-cluster client {format_ip(pkt.dst)}",
                                  Endpoint("external", format_ip(pkt.dst), cur.node)))
            return
        if peer is None or peer == cur.node:
            what = f"next hop {format_ip(nh)} is not a node"
            owner = next((n for n in self.cluster.nodes if in_network(pkt.dst, *n.pod_cidr)), None)
            if owner is not None and owner.name != cur.node:
                what = f"no route to node {owner.name}'s pod CIDR {format_network(*owner.pod_cidr)}: {what}"
            if in_network(pkt.dst, *self.cluster.service_cidr):
                what += f"; a ClusterIP ({format_ip(pkt.dst)}) left {cur.node} un-DNATed"
            ends.append(self._end(cur, "left", pkt, f"left the cluster network from {cur.node}:{o.out_iface} ({what})"))
            return
        cur.hops.append(Hop("wire", pkt, f"{cur.node} → {peer}"))
        work.append(_Cursor(peer, self.uplink(peer), pkt, cur.probability, cur.hops, cur.conns, cur.visits, cur.exact, cur.seen))

    def _local(self, cur: _Cursor, pkt: Packet, client: Endpoint, tables, recent: frozenset = frozenset()) -> list[PathEnd]:
        proxy = self.proxy_ports.get((cur.node, pkt.dport)) if tables is None else None
        if proxy is None:
            return [self._end(cur, "arrived", pkt, f"received by node {cur.node}",
                              Endpoint("node", cur.node, cur.node))]
        name, proto, eps = proxy
        if not eps:
            # kube-proxy's proxysocket.go: the TCP proxy accepts the connection, fails to connect to
            # any endpoint and closes it (the client sees it accepted, then closed: refused); the UDP
            # proxy reads the datagram and drops it, its socket open, so no ICMP error: silence.
            if proto == "udp":
                return [self._end(cur, "drop", pkt, f"the {cur.node} proxy for {name} has no endpoint: it reads the"
                                                    " datagram and drops it (its socket is open: no ICMP error)")]
            return [self._end(cur, "reject", pkt, f"the {cur.node} proxy for {name} has no endpoint: it accepts the"
                                                  " connection and closes it")]
        ends: list[PathEnd] = []
        me = Endpoint("node", cur.node, cur.node)
        # sessionAffinity: ClientIP — the proxy sends a client it has seen to the endpoint it chose
        # before (the userspace proxy's own table, keyed by the client's address).
        sticky = [e for e in eps if (cur.node, f"proxy:{pkt.dport}", (pkt.src, e[1])) in recent] if recent else []
        if sticky:
            eps = sticky[:1]
        for _label, ip, target in eps:
            leg = Packet(pkt.proto, self.source_address(me, ip), ip, PROXY_SPORT, target)
            legs = self._proxy_legs.get((cur.node, leg))
            if legs is None:    # the proxy's own connection does not depend on the client: walk it once
                legs = self._proxy_legs[(cur.node, leg)] = self.walk(me, leg)
            for end in legs:
                hops = (*cur.hops, Hop(f"{cur.node}:proxy", leg, f"userspace proxy for {name} connects to "
                                                                  f"{format_ip(ip)}:{target}"), *end.hops)
                ends.append(PathEnd(end.kind, cur.probability * end.probability / len(eps), end.packet, hops, end.at,
                                    end.reason, cur.exact and end.exact, end.conns,
                                    ((cur.node, pkt, tuple(cur.conns), leg, end),) + end.proxied))
        return ends

    def _proxied_reply(self, end: PathEnd, client: Endpoint) -> list[PathEnd]:
        """Backend → proxy (leg 2 reply), then proxy socket → client (leg 1 reply)."""
        node, delivered, conns, _leg, leg_end = end.proxied[0]
        me = Endpoint("node", node, node)
        backs = self._leg_replies.get(id(leg_end))
        if backs is None:
            backs = self._leg_replies[id(leg_end)] = self.reply(leg_end, me)
        out: list[PathEnd] = []
        for back in backs:
            if back.kind != "arrived":
                out.append(back)
                continue
            for a in self._proxy_answer(node, delivered, conns, client):
                out.append(PathEnd(a.kind, back.probability * a.probability, a.packet, (*back.hops, *a.hops), a.at,
                                   a.reason, back.exact and a.exact, a.conns, a.proxied))
        return out

    def _proxy_answer(self, node: str, delivered: Packet, conns: tuple, client: Endpoint) -> list[PathEnd]:
        """The proxy's answer to the client, from its socket back through the node. It is the same
        whichever backend replied, so the last one is kept (a flow's ends are replied in a row)."""
        key = (node, delivered, conns, client)
        if self._last_answer[0] != key:
            tables = _conntrack_tables(conns)
            answer = delivered.reversed()
            start = _Cursor(node, None, answer, 1.0, [Hop(f"{node}:proxy", answer, "the proxy answers the client")])
            self._last_answer = (key, self._run(start, client, tables))
        return self._last_answer[1]

    @staticmethod
    def _end(cur: _Cursor, kind: str, pkt: Packet, reason: str, at: Endpoint | None = None) -> PathEnd:
        return PathEnd(kind, cur.probability, pkt, tuple(cur.hops), at, reason, cur.exact, tuple(cur.conns))


class _Summary:
    """``rules_summary(o)`` made when printed."""
    __slots__ = ("outcome",)

    def __init__(self, outcome) -> None:
        self.outcome = outcome

    def __str__(self) -> str:
        return rules_summary(self.outcome)


def _merge_cursors(cursors: list[_Cursor]) -> list[_Cursor]:
    """Cursors with equal identity merged: probabilities add, the hops of the most probable kept."""
    return merge_equal(cursors, _Cursor.identity, lambda c: c.probability,
                       lambda c, p, _first: dataclasses.replace(c, probability=p))


def _conntrack_tables(conns) -> dict[str, ConntrackTable]:
    """Each node's conntrack table holding the entries ``conns`` (node, connection)."""
    tables: dict[str, ConntrackTable] = {}
    for node, conn in conns:
        tables.setdefault(node, ConntrackTable()).add(conn)
    return tables


def rules_summary(o) -> str:
    """What acted on the packet on this node: rules (``nat/KUBE-SEP-Y #2 (line 41): DNAT ...``),
    policies, routes and conntrack, compactly; jumps are left out."""
    acted = [s.action if s.table is None else step_label(s) for s in o.steps
             if s.table is None or not s.action.startswith(("jump", "goto"))]
    return "; ".join(acted) if acted else "no rule acted"


def step_label(s) -> str:
    """A table step as people read it: ``nat/KUBE-SEP-Y #2 (line 41): DNAT ...``, or
    ``filter/FORWARD policy DROP`` for a chain's policy."""
    if s.rule_index is None:
        return f"{s.table}/{s.chain} {s.action}"
    line = f" (line {s.line})" if s.line else ""
    return f"{s.table}/{s.chain} #{s.rule_index}{line}: {s.action}"


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


def remembered(end: PathEnd, walker: "ClusterWalker") -> frozenset:
    """What a connection that ended as ``end`` leaves behind for the client's next one: the
    ``-m recent --set/--update`` entries of the rules that acted on each node (the address as the
    packet entered that node, masked), and the endpoint each userspace proxy chose."""
    out = set()
    entry = None
    for hop in end.hops:
        o = hop.outcome
        if o is None:
            entry = hop.packet
            continue
        pkt = entry if entry is not None else hop.packet
        node = hop.point.split(":", 1)[0]
        state = walker.states.get(node)
        for step in o.steps:
            if step.table is None or step.rule_index is None or state is None:
                continue
            chain = state.ruleset.tables[step.table].chains.get(step.chain)
            if chain is None or not 0 < step.rule_index <= len(chain.rules):
                continue
            for mt in chain.rules[step.rule_index - 1].matches:
                if isinstance(mt, RecentMatch) and mt.mode in ("set", "update") and not mt.invert:
                    out.add((node, mt.name, (pkt.dst if mt.dest else pkt.src) & mt.mask))
        entry = None
    for node, delivered, _conns, leg, _leg_end in end.proxied:
        out.add((node, f"proxy:{delivered.dport}", (delivered.src, leg.dst)))
    return frozenset(out)
