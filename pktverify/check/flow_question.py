"""The operator's question: "can this pod (or node) reach that service (or pod, or address)?"

``pktverify trace --cluster CLUSTER --from NS/POD --to NS/SVC:PORT`` answers it for one flow:
the client and the packet it sends are worked out as ``verify`` works them out (the source
address the client's stack picks, the probe source port), the flow is walked across the
cluster with every outcome and its probability, each arrived outcome's reply is walked back,
and the flow is judged by the very checks ``verify`` runs on it:

* to a service port (by name, or an address and port that is one of its doors: ClusterIP,
  NodePort, external or load-balancer IP), the service-reachability check of that door and
  client: every ready endpoint it may reach (traffic policies applied), nothing else, the
  reply from the address the client sent to, uniform in iptables mode, affinity kept;
* to a pod or node from a pod or node, the no-NAT check: it arrives unchanged, and so does
  the reply;
* to any other address, no promise applies: the outcomes are shown and nothing is judged.

The names on the command line are resolved against the cluster with errors that list what
there is, since a typo should never read as "unreachable".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..errors import InvalidArgument, suggest
from ..eval.cluster_walk import ClusterWalker
from ..model.addresses import AddressError, format_ip, parse_ip
from ..model.cluster import ClusterSpec, ServicePortSpec, ServiceSpec
from ..model.packet import PROTO_NUMBERS, Packet
from ..model.path import Endpoint, PathEnd
from .invariants import InvariantResult, Violation
from .invariants.flows import CLIENT_SPORT
from .invariants.no_nat import no_nat_flow
from .invariants.service_reachability import service_doors, service_flow

__all__ = ["FlowAnswer", "answer_flow", "parse_source", "parse_target"]


@dataclass(frozen=True)
class Target:
    """What ``--to`` names: a service port, a pod, a node, or a bare address, with the address
    and port the client sends to."""
    kind: str                                   # "service" | "pod" | "node" | "address"
    label: str                                  # for people: "service default/web:80 (ClusterIP 10.152.183.10:80)"
    dst: int
    dport: int
    protocol: str                               # tcp | udp | sctp
    service: ServiceSpec | None = None
    port: ServicePortSpec | None = None
    endpoint: Endpoint | None = None            # the pod or node, for the no-NAT check


@dataclass
class FlowAnswer:
    """One flow's answer: the question as understood, the packet sent, every outcome (forward
    end and its replies, with probabilities) and the violations ``verify`` would report for it
    (empty: the flow keeps every promise that applies; ``judged`` False: none applies)."""
    question: str
    client: Endpoint
    packet: Packet
    target: Target
    ends: list[tuple[PathEnd, tuple[PathEnd, ...]]]
    violations: list[Violation] = field(default_factory=list)
    judged: bool = True
    promise: str = ""                           # what was checked, in one sentence
    notes: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return not self.violations


def parse_source(cluster: ClusterSpec, walker: ClusterWalker, text: str) -> Endpoint:
    """``--from``: ``NS/POD`` (a pod), ``NODE`` (the node's own stack) or ``outside@NODE`` (an
    off-cluster client whose packets arrive at NODE, as a router or load balancer sends them)."""
    if not text:
        raise InvalidArgument("--from is empty: give NS/POD, NODE or outside@NODE")
    if text.startswith("outside@"):
        name = text[len("outside@"):]
        node = walker.specs.get(name)
        if node is None:
            raise InvalidArgument(f"--from {text}: no node {name!r}{suggest(name, list(walker.specs))}")
        return walker.external_endpoint(node)
    if "/" in text:
        pod = cluster.pods_by_key.get(text)
        if pod is None:
            hosts = {p.key for p in getattr(cluster, "host_pods", ())}
            if text in hosts:
                raise InvalidArgument(f"--from {text}: a host-network pod is its node's network namespace: "
                                      f"use --from {next(p.node for p in cluster.host_pods if p.key == text)}")
            raise InvalidArgument(f"--from {text}: no pod {text}{suggest(text, list(cluster.pods_by_key))}")
        return walker.pod_endpoint(pod)
    node = walker.specs.get(text)
    if node is None:
        raise InvalidArgument(f"--from {text}: no node {text!r}{suggest(text, list(walker.specs))} "
                              "(a pod is NS/POD)")
    return walker.node_endpoint(node)


def _port_number(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or not 0 < int(text) < 65536:
        raise InvalidArgument(f"--to {what}: {text!r} is not a port number 1-65535")
    return int(text)


def parse_target(cluster: ClusterSpec, walker: ClusterWalker, text: str, *, proto: str | None = None) -> Target:
    """``--to``: ``NS/SVC:PORT`` (the port's number or name; ``NS/SVC`` alone for a one-port
    service), ``NS/POD:PORT``, ``IP:PORT`` (a ClusterIP, NodePort, external or load-balancer
    address is taken as that service's door; a pod or node address as that pod or node).
    ``service/NS/NAME`` and ``pod/NS/NAME`` say which when a service and a pod share a name."""
    if not text:
        raise InvalidArgument("--to is empty: give NS/SVC:PORT, NS/POD:PORT or IP:PORT")
    kind = None
    for prefix in ("service/", "svc/", "pod/"):
        if text.startswith(prefix) and text.count("/") == 2:
            kind, text = prefix.rstrip("/").replace("svc", "service"), text[len(prefix):]
    name, sep, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if "/" not in name:
        return _address_target(cluster, walker, text, name, port_text, proto)
    services = {s.key: s for s in cluster.services}
    svc = services.get(name) if kind != "pod" else None
    pod = cluster.pods_by_key.get(name) if kind != "service" else None
    if svc is not None and pod is not None:
        raise InvalidArgument(f"--to {text}: both a service and a pod are named {name}: write service/{text} or "
                              f"pod/{text}")
    if svc is not None:
        return _service_target(svc, port_text, text, proto)
    if pod is not None:
        if not sep:
            raise InvalidArgument(f"--to {text}: give the pod's port, {name}:PORT"
                                  + (f" (it declares {', '.join(map(str, pod.ports))})" if pod.ports else ""))
        return Target("pod", f"pod {pod.key} ({format_ip(pod.ip)}:{port_text})", pod.ip,
                      _port_number(port_text, text), proto or "tcp", endpoint=walker.pod_endpoint(pod))
    choices = ([] if kind == "pod" else list(services)) + ([] if kind == "service" else list(cluster.pods_by_key))
    raise InvalidArgument(f"--to {text}: no service or pod {name}{suggest(name, choices)}")


def _service_target(svc: ServiceSpec, port_text: str, text: str, proto: str | None) -> Target:
    if not port_text:
        if len(svc.ports) != 1:
            raise InvalidArgument(f"--to {text}: service {svc.key} has {len(svc.ports)} ports: say which, "
                                  f"{svc.key}:PORT ({', '.join(sorted({p.name or str(p.port) for p in svc.ports}))})")
        sp = svc.ports[0]
    else:
        ports = [p for p in svc.ports if (p.name and p.name == port_text) or str(p.port) == port_text]
        if proto is not None:
            ports = [p for p in ports if p.protocol == proto]
        if not ports:
            have = ", ".join(f"{p.port}/{p.protocol}" + (f" ({p.name})" if p.name else "") for p in svc.ports)
            raise InvalidArgument(f"--to {text}: service {svc.key} has no port {port_text}"
                                  + (f"/{proto}" if proto else "") + f" (it has {have})")
        if len(ports) > 1:
            raise InvalidArgument(f"--to {text}: service {svc.key} has port {port_text} for "
                                  f"{' and '.join(p.protocol for p in ports)}: say which with --proto")
        sp = ports[0]
    return Target("service", f"service {svc.key}:{sp.name or sp.port} (ClusterIP {format_ip(svc.cluster_ip)}:"
                  f"{sp.port}/{sp.protocol})", svc.cluster_ip, sp.port, sp.protocol, svc, sp)


def _address_target(cluster: ClusterSpec, walker: ClusterWalker, text: str, address: str, port_text: str,
                    proto: str | None) -> Target:
    try:
        ip = parse_ip(address)
    except AddressError:
        raise InvalidArgument(f"--to {text}: give NS/SVC:PORT, NS/POD:PORT or IP:PORT ({address!r} is neither a "
                              "namespace/name nor an IPv4 address)") from None
    if not port_text:
        raise InvalidArgument(f"--to {text}: give a port, {address}:PORT")
    port = _port_number(port_text, text)
    for svc in cluster.services:
        for sp in svc.ports:
            if proto is not None and sp.protocol != proto:
                continue
            doors = [(svc.cluster_ip, sp.port, "ClusterIP")]
            doors += [(ip_, sp.port, "external IP") for ip_ in svc.external_ips]
            doors += [(ip_, sp.port, "load-balancer IP") for ip_ in svc.lb_ips]
            if svc.has_node_ports and sp.node_port:
                doors += [(n.ip, sp.node_port, f"NodePort on {n.name}") for n in cluster.nodes]
            for door_ip, door_port, what in doors:
                if (door_ip, door_port) == (ip, port):
                    return Target("service", f"service {svc.key}:{sp.name or sp.port} ({what} {address}:{port}/"
                                  f"{sp.protocol})", ip, port, sp.protocol, svc, sp)
    pods = walker.pods_by_ip.get(ip, [])
    if len(pods) == 1:
        return Target("pod", f"pod {pods[0].key} ({address}:{port})", ip, port, proto or "tcp",
                      endpoint=walker.pod_endpoint(pods[0]))
    for node in cluster.nodes:
        if node.ip == ip:
            return Target("node", f"node {node.name} ({address}:{port})", ip, port, proto or "tcp",
                          endpoint=walker.node_endpoint(node))
    what = f"{len(pods)} pods hold it" if pods else "no pod, node or service door of this cluster has it"
    return Target("address", f"{address}:{port} ({what})", ip, port, proto or "tcp")


def answer_flow(cluster: ClusterSpec, walker: ClusterWalker, client: Endpoint, target: Target, *,
                sport: int | None = None) -> FlowAnswer:
    """Walk ``client``'s flow to ``target`` and its replies, and judge it as ``verify`` does."""
    src = walker.source_address(client, target.dst)
    proto = PROTO_NUMBERS[target.protocol]
    pkt = Packet(proto, src, target.dst, CLIENT_SPORT if sport is None else sport, target.dport)
    question = f"{client.label()} → {target.label}"
    res = InvariantResult("service-reachability" if target.kind == "service" else "no-nat", flows=[])
    answer = FlowAnswer(question, client, pkt, target, [])
    if target.kind == "service":
        door, wanted, keep = _service_door(cluster, walker, client, target)
        if door is None:
            answer.judged = False
            answer.notes.append(f"{client.label()} is not a client verify sends through this door (e.g. a pod to an "
                                "external IP): the outcomes are shown, not judged")
            _walk_only(walker, res, client, pkt)
        else:
            name = f"{target.service.key}:{target.port.name or target.port.port} via {door}"
            service_flow(cluster, walker, res, client, pkt, name, wanted, keep_source=keep,
                         affinity=bool(target.service.affinity_timeout))
            eps = sorted({label for label, _ip, _port in wanted})
            answer.promise = (f"reaches each of its {len(eps)} ready endpoint(s) it may reach ({', '.join(eps)}) and "
                              "no other, and the reply comes back from the address it sent to"
                              if eps else "no endpoint is ready: the flow must not be answered by anything else")
            if not cluster.port_endpoints(target.service, target.port):
                answer.notes.append(f"service {target.service.key} has no ready endpoints")
    elif target.endpoint is not None and client.kind in ("pod", "node") and target.endpoint != client and \
            "pod" in (client.kind, target.kind):
        no_nat_flow(walker, res, client, pkt, target.endpoint)
        answer.promise = (f"arrives at {target.endpoint.label()} with its source and destination unchanged "
                          "(no NAT), and so does the reply")
    else:
        answer.judged = False
        _walk_only(walker, res, client, pkt)
    answer.ends = list(res.flows[0].ends) if res.flows else []
    answer.violations = [replace(v, invariant=res.name) for v in res.violations]
    return answer


def _walk_only(walker: ClusterWalker, res: InvariantResult, client: Endpoint, pkt: Packet) -> None:
    ends = [(end, tuple(walker.reply(end, client)) if end.kind == "arrived" else ()) for end in walker.walk(client, pkt)]
    res.keep("", client, ends)


def _service_door(cluster: ClusterSpec, walker: ClusterWalker, client: Endpoint, target: Target):
    """The door of ``target``'s service port this client goes through, the endpoints it must
    reach there, and whether they must see its own address (as verify's checks say)."""
    svc, sp = target.service, target.port
    eps = cluster.port_endpoints(svc, sp)
    pods = [(client, (cluster.pods_by_key[client.name],))] if client.kind == "pod" else []
    pods_for_nodeports = pods
    every_node = [(walker.node_endpoint(n), (n,)) for n in cluster.nodes]
    for door in service_doors(cluster, walker, svc, sp, eps, pods, every_node, pods_for_nodeports, every_node):
        if (door.dst, door.dport) != (target.dst, target.dport):
            continue
        for door_client, _group, wanted, keep in door.clients:
            if door_client == client:
                return door.label, wanted, keep
    return None, [], False

