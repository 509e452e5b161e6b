"""The Kubernetes network model's promises, checked for every pod, node and service.

* ``pod-ip-uniqueness``: pod IPs unique and inside their node's pod CIDR; pod
  CIDRs pairwise disjoint, inside the cluster CIDR, clear of the service CIDR,
  of node addresses and of other nodes' bridges (the docker0 problem).
* ``no-nat``: pod→pod, node→pod and pod→node arrive with the original source
  and destination, and the reply comes back unchanged.
* ``service-reachability``: every client reaches every ready endpoint of every
  service port with non-zero probability, never drops while endpoints exist,
  spreads uniformly (within 1e-6) in iptables mode, the reply comes from
  ClusterIP:port, and no ClusterIP packet leaves a node un-DNATed.
* ``routing``: every node reaches every pod CIDR (its bridge address); no
  loops, no blackholes.

Every violation carries a concrete flow and its hop-by-hop path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..eval.cluster_walk import ClusterWalker, Endpoint, PathEnd
from ..generate.node_state import bridge_address
from ..model.addresses import format_ip, format_network, in_network, network_within, networks_overlap
from ..model.cluster import ClusterSpec
from ..model.packet import PROTO_NUMBERS, Packet

__all__ = ["Violation", "InvariantResult", "check_all", "INVARIANTS", "UNIFORMITY_TOLERANCE"]

INVARIANTS = ("pod-ip-uniqueness", "no-nat", "service-reachability", "routing")
UNIFORMITY_TOLERANCE = 1e-6
_CLIENT_SPORT = 40000
_PROBE_PORT = 8080          # destination port for no-nat and routing probes when a pod declares none


@dataclass(frozen=True)
class Violation:
    """A broken promise with its counterexample: the flow, its hops as text, and (for
    captures) the structured path: the client, the forward PathEnd and its replies."""
    message: str
    flow: str = ""
    path: tuple[str, ...] = ()
    client: Endpoint | None = field(default=None, compare=False)
    end: PathEnd | None = field(default=None, compare=False)
    replies: tuple[PathEnd, ...] = field(default=(), compare=False)

    def to_json(self) -> dict:
        return {"message": self.message, "flow": self.flow, "path": list(self.path)}


@dataclass(frozen=True)
class CheckedFlow:
    """One flow an invariant checked, with every way it ended (kept for ``--all`` captures)."""
    label: str
    client: Endpoint
    ends: tuple[tuple[PathEnd, tuple[PathEnd, ...]], ...]     # (forward end, its replies)


@dataclass
class InvariantResult:
    name: str
    checked: int = 0
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    flows: list[CheckedFlow] | None = None       # filled when check_all(keep_flows=True)

    def keep(self, label: str, client: Endpoint, ends: list[tuple[PathEnd, tuple[PathEnd, ...]]]) -> None:
        if self.flows is not None:
            self.flows.append(CheckedFlow(label, client, tuple(ends)))

    @property
    def holds(self) -> bool:
        return not self.violations

    def to_json(self) -> dict:
        return {"name": self.name, "holds": self.holds, "checked": self.checked,
                "violations": [v.to_json() for v in self.violations], "notes": self.notes}


def check_all(cluster: ClusterSpec, walker: ClusterWalker, *, keep_flows: bool = False) -> list[InvariantResult]:
    """Run the four invariants; each result lists its violations with flows and paths.

    ``keep_flows`` also keeps every checked flow's paths (for ``--all`` captures).
    """
    results = [InvariantResult(name, flows=[] if keep_flows else None) for name in INVARIANTS]
    pod_ip_uniqueness(cluster, results[0])
    no_nat(cluster, walker, results[1])
    service_reachability(cluster, walker, results[2])
    routing(cluster, walker, results[3])
    return results


# ------------------------------------------------------------------ helpers
def _path(ends: list[PathEnd] | PathEnd) -> tuple[str, ...]:
    end = ends if isinstance(ends, PathEnd) else ends[0]
    return tuple(f"{h.point}: {h.packet.describe()} — {h.note}" for h in end.hops)


def _flow(client: Endpoint, pkt: Packet) -> str:
    return f"{client.label()}: {pkt.describe()}"


def _net(n: tuple[int, int]) -> str:
    return format_network(*n)


# ------------------------------------------------------------------ pod-ip-uniqueness
def pod_ip_uniqueness(cluster: ClusterSpec, res: InvariantResult) -> InvariantResult:
    seen: dict[int, str] = {}
    nodes = {n.name: n for n in cluster.nodes}
    for pod in cluster.pods:
        res.checked += 1
        if pod.ip in seen:
            res.violations.append(Violation(f"pod {pod.key} has IP {format_ip(pod.ip)}, already used by {seen[pod.ip]}"))
        seen.setdefault(pod.ip, pod.key)
        node = nodes[pod.node]
        if not in_network(pod.ip, *node.pod_cidr):
            res.violations.append(Violation(f"pod {pod.key} IP {format_ip(pod.ip)} is outside node {node.name}'s"
                                            f" pod CIDR {_net(node.pod_cidr)}"))
    node_ips = {n.ip: n.name for n in cluster.nodes}
    for i, a in enumerate(cluster.nodes):
        res.checked += 1
        if not network_within(a.pod_cidr, cluster.cidr):
            res.violations.append(Violation(f"node {a.name} pod CIDR {_net(a.pod_cidr)} is not inside the cluster"
                                            f" CIDR {_net(cluster.cidr)}"))
        if networks_overlap(a.pod_cidr, cluster.service_cidr):
            res.violations.append(Violation(f"node {a.name} pod CIDR {_net(a.pod_cidr)} overlaps the service CIDR"
                                            f" {_net(cluster.service_cidr)}"))
        for ip, name in node_ips.items():
            if in_network(ip, *a.pod_cidr):
                res.violations.append(Violation(f"node {a.name} pod CIDR {_net(a.pod_cidr)} contains node {name}'s"
                                                f" address {format_ip(ip)}"))
        for b in cluster.nodes[i + 1:]:
            if networks_overlap(a.pod_cidr, b.pod_cidr):
                res.violations.append(Violation(f"nodes {a.name} and {b.name} have overlapping pod CIDRs"
                                                f" {_net(a.pod_cidr)} and {_net(b.pod_cidr)}"))
            for x, y in ((a, b), (b, a)):
                if x.docker and (y.docker or networks_overlap((0xAC110000, 0xFFFF0000), y.pod_cidr)):
                    res.violations.append(Violation(
                        f"node {x.name}'s docker0 (172.17.0.0/16) collides with node {y.name}'s "
                        f"{'docker0' if y.docker else 'pod CIDR'}: docker's default bridge is the same subnet on"
                        " every host"))
                    break
    return res


# ------------------------------------------------------------------ no-nat
def _pod_port(pod) -> int:
    return pod.ports[0] if pod.ports else _PROBE_PORT


def _walk(walker: ClusterWalker, res: InvariantResult, client: Endpoint,
          pkt: Packet) -> list[tuple[PathEnd, tuple[PathEnd, ...]]]:
    """Every end of the flow, each with its replies (arrived ends only), kept for captures."""
    res.checked += 1
    out = [(end, tuple(walker.reply(end, client)) if end.kind == "arrived" else ())
           for end in walker.walk(client, pkt)]
    res.keep(_flow(client, pkt), client, out)
    return out


def _violation(message: str, client: Endpoint, pkt: Packet, end: PathEnd,
               back: PathEnd | None = None) -> Violation:
    path = _path(end) + (_path(back) if back is not None else ())
    return Violation(message, _flow(client, pkt), path, client, end, (back,) if back is not None else ())


def _no_nat_flow(walker: ClusterWalker, res: InvariantResult, client: Endpoint, pkt: Packet,
                 target: Endpoint) -> None:
    for end, backs in _walk(walker, res, client, pkt):
        if end.kind != "arrived" or end.at != target:
            where = end.at.label() if end.at else end.kind
            res.violations.append(_violation(f"{_flow(client, pkt)} does not reach {target.label()}: {end.reason}"
                                             f" (ends: {where})", client, pkt, end))
            continue
        if (end.packet.src, end.packet.dst) != (pkt.src, pkt.dst):
            res.violations.append(_violation(
                f"NAT between {client.label()} and {target.label()}: sent {pkt.describe()}, arrived "
                f"{end.packet.describe()}", client, pkt, end, backs[0] if backs else None))
            continue
        for back in backs:
            expected = (pkt.dst, pkt.dport, pkt.src, pkt.sport)
            got = (back.packet.src, back.packet.sport, back.packet.dst, back.packet.dport)
            if back.kind != "arrived" or back.at != client or got != expected:
                res.violations.append(_violation(
                    f"reply from {target.label()} to {client.label()} {back.kind}: "
                    f"{back.packet.describe()} ({back.reason})", client, pkt, end, back))


def no_nat(cluster: ClusterSpec, walker: ClusterWalker, res: InvariantResult) -> InvariantResult:
    pods = [p for p in cluster.pods]
    for src in pods:
        for dst in pods:
            if src is dst:
                continue
            pkt = Packet(6, src.ip, dst.ip, _CLIENT_SPORT, _pod_port(dst))
            _no_nat_flow(walker, res, walker.pod_endpoint(src), pkt, walker.pod_endpoint(dst))
    for node in cluster.nodes:
        me = walker.node_endpoint(node)
        for pod in pods:
            pkt = Packet(6, walker.source_address(me, pod.ip), pod.ip, _CLIENT_SPORT, _pod_port(pod))
            _no_nat_flow(walker, res, me, pkt, walker.pod_endpoint(pod))
            pkt = Packet(6, pod.ip, node.ip, _CLIENT_SPORT, 10250)      # pod → node (the kubelet port)
            _no_nat_flow(walker, res, walker.pod_endpoint(pod), pkt, me)
    return res


# ------------------------------------------------------------------ service-reachability
def service_reachability(cluster: ClusterSpec, walker: ClusterWalker, res: InvariantResult) -> InvariantResult:
    clients = [walker.pod_endpoint(p) for p in cluster.pods] + [walker.node_endpoint(n) for n in cluster.nodes]
    for svc in cluster.services:
        eps = cluster.endpoints_of(svc)
        for sp in svc.ports:
            name = f"{svc.key}:{sp.name or sp.port}"
            if not eps:
                res.notes.append(f"service {name} has no ready endpoints")
            expected = {ip for _label, ip in eps}
            for client in clients:
                src = walker.source_address(client, svc.cluster_ip)
                pkt = Packet(PROTO_NUMBERS[sp.protocol], src, svc.cluster_ip, _CLIENT_SPORT, sp.port)
                _service_flow(cluster, walker, res, client, pkt, name, sp.target_port, expected, eps)
    return res


def _service_flow(cluster, walker, res, client, pkt, name, target_port, expected, eps) -> None:
    walked = _walk(walker, res, client, pkt)
    reached: dict[int, float] = {}
    for end, backs in walked:
        if end.kind != "arrived":
            if expected or end.kind == "left":
                res.violations.append(_violation(f"{name} from {client.label()}: {end.kind} ({end.reason})"
                                                 f" with probability {end.probability:.6g}", client, pkt, end))
            continue
        if end.packet.dst not in expected or end.packet.dport != target_port:
            res.violations.append(_violation(f"{name} from {client.label()} reached {end.at.label()} at "
                                             f"{format_ip(end.packet.dst)}:{end.packet.dport}, which is not a ready "
                                             f"endpoint:{target_port}", client, pkt, end))
            continue
        reached[end.packet.dst] = reached.get(end.packet.dst, 0.0) + end.probability
        for back in backs:
            want = (pkt.dst, pkt.dport, pkt.src, pkt.sport)
            got = (back.packet.src, back.packet.sport, back.packet.dst, back.packet.dport)
            if back.kind != "arrived" or back.at != client or got != want:
                res.violations.append(_violation(
                    f"{name} from {client.label()}: the reply from {end.at.label()} arrives as "
                    f"{back.packet.describe()} ({back.kind}: {back.reason}); the client expects it from "
                    f"{format_ip(pkt.dst)}:{pkt.dport}", client, pkt, end, back))
    first = walked[0][0] if walked else None
    for ip in expected - set(reached):
        label = next(lbl for lbl, e in eps if e == ip)
        message = f"{name} from {client.label()} never reaches endpoint {label} ({format_ip(ip)})"
        res.violations.append(_violation(message, client, pkt, first) if first else Violation(message, _flow(client, pkt)))
    if cluster.proxy_mode == "iptables" and reached and len(reached) == len(expected):
        share = 1.0 / len(expected)
        for end, backs in walked:
            p = reached.get(end.packet.dst)
            if end.kind == "arrived" and p is not None and abs(p - share) > UNIFORMITY_TOLERANCE:
                res.violations.append(_violation(
                    f"{name} from {client.label()}: endpoint {format_ip(end.packet.dst)} gets p={p:.9f}, not the"
                    f" uniform {share:.9f}", client, pkt, end, backs[0] if backs else None))
                reached.pop(end.packet.dst)


# ------------------------------------------------------------------ routing
def routing(cluster: ClusterSpec, walker: ClusterWalker, res: InvariantResult) -> InvariantResult:
    for node in cluster.nodes:
        me = walker.node_endpoint(node)
        for other in cluster.nodes:
            dst = bridge_address(other)
            pkt = Packet(6, walker.source_address(me, dst), dst, _CLIENT_SPORT, _PROBE_PORT)
            target = walker.node_endpoint(other)
            for end, _backs in _walk(walker, res, me, pkt):
                if end.kind != "arrived" or end.at != target:
                    res.violations.append(_violation(
                        f"node {node.name} cannot reach node {other.name}'s pod CIDR {_net(other.pod_cidr)}"
                        f" ({end.kind}: {end.reason})", me, pkt, end))
    return res
