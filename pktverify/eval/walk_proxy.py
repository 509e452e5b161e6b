"""Userspace kube-proxy in a walk: a packet REDIRECTed/DNATed to a node's proxy port is
delivered to the proxy, which opens a new connection from the node to one of the service's
endpoints, chosen uniformly; the backend sees the node's address, as it really does. The
client's reply then comes from the proxy's socket, un-NATed by conntrack to ClusterIP:port.

A mixin of :class:`.cluster_walk.ClusterWalker`: it walks the proxy's own legs with the
walker's ``walk``, ``reply`` and ``_run``.
"""

from __future__ import annotations

from ..model.addresses import format_ip
from ..model.cluster import ClusterSpec
from ..model.kube_proxy import PROXY_SPORT, service_ports, userspace_proxy_ports
from ..model.packet import Packet
from ..model.path import Endpoint, Hop, PathEnd, PathEndKind
from .walk_cursor import Cursor, conntrack_tables, path_end

__all__ = ["UserspaceProxy"]


class UserspaceProxy:
    """The userspace proxies of a cluster: their ports, and the connections they make and answer."""

    def _init_proxies(self, cluster: ClusterSpec) -> None:
        """Each node's proxy ports (none unless the cluster runs kube-proxy in userspace mode)."""
        # Userspace proxies' own connections (and their replies), shared by every client.
        self._proxy_legs: dict[tuple[str, Packet], list[PathEnd]] = {}
        self._leg_replies: dict[int, list[PathEnd]] = {}
        self._last_answer: tuple = (None, [])
        # proxy port -> (service key:port name, protocol, endpoints as (label, ip, port)), per node (userspace)
        self.proxy_ports: dict[tuple[str, int], tuple[str, str, tuple[tuple[str, int, int], ...]]] = {}
        if cluster.proxy_mode == "userspace":
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

    def _local(self, cur: Cursor, pkt: Packet, client: Endpoint, tables,
               recent: frozenset = frozenset()) -> list[PathEnd]:
        """``pkt`` delivered to ``cur.node``'s own stack: received by the node, or, on a userspace
        proxy's port, relayed by the proxy (from PROXY_SPORT) to each endpoint in turn."""
        proxy = self.proxy_ports.get((cur.node, pkt.dport)) if tables is None else None
        if proxy is None:
            return [path_end(cur, PathEndKind.ARRIVED, pkt, f"received by node {cur.node}",
                             Endpoint("node", cur.node, cur.node))]
        name, proto, eps = proxy
        if not eps:
            # kube-proxy's proxysocket.go: the TCP proxy accepts the connection, fails to connect to
            # any endpoint and closes it (the client sees it accepted, then closed: refused); the UDP
            # proxy reads the datagram and drops it, its socket open, so no ICMP error: silence.
            if proto == "udp":
                return [path_end(cur, PathEndKind.DROP, pkt,
                                 f"the {cur.node} proxy for {name} has no endpoint: it reads the"
                                 " datagram and drops it (its socket is open: no ICMP error)")]
            return [path_end(cur, PathEndKind.REJECT, pkt,
                             f"the {cur.node} proxy for {name} has no endpoint: it accepts the"
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
            if back.kind != PathEndKind.ARRIVED:
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
            tables = conntrack_tables(conns)
            answer = delivered.reversed()
            start = Cursor(node, None, answer, 1.0, [Hop(f"{node}:proxy", answer, "the proxy answers the client")])
            self._last_answer = (key, self._run(start, client, tables))
        return self._last_answer[1]
