"""What the NetworkPolicies of a cluster allow: the verdict for one connection, and why.

:func:`policy_verdict` decides whether a connection may be *initiated* from a source (a pod, or an
address outside the pods) to a destination pod on a protocol and port (the port the pod receives
on: a connection to a Service is judged at the endpoint pod, after kube-proxy's DNAT). Replies of an
allowed connection are allowed (NetworkPolicy is stateful); they are not asked about here.

The meaning follows the API's documentation and upstream's e2e tests (``test/e2e/network/netpol``):

- Each direction is isolated on its own: a pod is isolated for ingress when a policy of its
  namespace selects it and has ``Ingress`` in its (effective) ``policyTypes``; likewise for egress.
  A direction no policy isolates allows everything.
- An isolated direction allows what the union of the isolating policies' rules of that direction
  allow: a rule matches when one of its peers and one of its ports match; an empty or absent
  ``from``/``to`` matches every peer, an empty or absent ``ports`` every port.
- A peer: ``podSelector`` alone selects pods of the policy's namespace; ``namespaceSelector`` alone
  every pod of the selected namespaces; both in one peer the pods matching the pod selector in the
  selected namespaces; ``ipBlock`` the addresses in ``cidr`` but in no ``except``, pod addresses
  included. An address outside the pods matches only ``ipBlock`` peers (and empty peer lists).
- A port: its protocol (TCP by default), then a number, a number range up to ``endPort``, a name
  (the destination pod's container port of that name and protocol, for ingress and egress alike: a
  pod without it does not match), or no port (every port of the protocol).
- A connection needs both the source's egress and the destination's ingress to allow it.
- Traffic from or to a ``hostNetwork`` pod, and from another node's address, is left undefined by
  Kubernetes (CNIs differ): the verdict says so (``allowed`` is None) instead of guessing. From the
  destination's own node it is allowed: the API documentation says an ingress-isolated pod still
  accepts connections from its node.
"""

from __future__ import annotations

from dataclasses import dataclass
from weakref import WeakKeyDictionary

from ..model.addresses import format_ip
from ..model.cluster import ClusterSpec, PodSpec
from ..model.network_policy import NetworkPolicy, PolicyPeer, PolicyPort, PolicyRule

__all__ = ["DirectionVerdict", "PolicyVerdict", "policy_verdict", "port_matches", "peer_matches"]


@dataclass(frozen=True)
class DirectionVerdict:
    """One direction's answer. ``isolated_by``: the policies (namespace/name) that isolate the pod
    for this direction (empty: none, so allowed); ``allowed_by``: (policy, rule index) of each rule
    that allows the connection."""
    direction: str                                  # "ingress" | "egress"
    isolated_by: tuple[str, ...] = ()
    allowed_by: tuple[tuple[str, int], ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.isolated_by or bool(self.allowed_by)

    def why(self) -> str:
        """One phrase: which policy allows, which isolate, or that none selects."""
        if not self.isolated_by:
            return f"no policy selects it for {self.direction}"
        if self.allowed_by:
            return "allowed by " + ", ".join(f"{p} {self.direction}[{i}]" for p, i in self.allowed_by)
        return f"isolated for {self.direction} by {', '.join(self.isolated_by)} and no rule allows it"


@dataclass(frozen=True)
class PolicyVerdict:
    """The policies' answer for one connection. ``apart``: why the answer is not the policies' (then
    ``ingress`` and ``egress`` are None): ``allowed`` None for what Kubernetes leaves undefined (a
    hostNetwork pod at either end, another node's address), True from the destination's own node.
    ``egress`` is None for a source that is no pod (only the destination's ingress applies)."""
    allowed: bool | None
    ingress: DirectionVerdict | None
    egress: DirectionVerdict | None
    apart: str = ""

    def why(self) -> str:
        """A sentence: the egress side (if any), then the ingress side."""
        if self.apart:
            return self.apart
        parts = ([f"egress: {self.egress.why()}"] if self.egress is not None else []) + \
            [f"ingress: {self.ingress.why()}"]
        return "; ".join(parts)


def policy_verdict(cluster: ClusterSpec, source: PodSpec | int, dest: PodSpec, protocol: str,
                   port: int) -> PolicyVerdict:
    """Whether ``cluster``'s policies allow ``source`` (a pod, or an IPv4 address as an int: an
    address of a pod is that pod) to open a connection to ``dest`` on ``protocol`` (TCP, UDP, SCTP,
    any case) and ``port`` (the destination pod's port), and why."""
    protocol = protocol.upper()
    if isinstance(source, int):
        source = _pods_by_ip(cluster).get(source, source)
    apart = _apart(cluster, source, dest)
    if apart is not None:
        return apart
    source_ip = source.ip if isinstance(source, PodSpec) else source
    ingress = _direction(cluster, "ingress", dest,
                         lambda policy, peer: peer_matches(cluster, policy, peer, source, source_ip),
                         dest, protocol, port)
    if not isinstance(source, PodSpec):
        return PolicyVerdict(ingress.allowed, ingress, None)
    egress = _direction(cluster, "egress", source,
                        lambda policy, peer: peer_matches(cluster, policy, peer, dest, dest.ip),
                        dest, protocol, port)
    return PolicyVerdict(ingress.allowed and egress.allowed, ingress, egress)


def _apart(cluster: ClusterSpec, source: PodSpec | int, dest: PodSpec) -> PolicyVerdict | None:
    """The verdict for what the policies do not decide: a hostNetwork pod at either end, a node's address."""
    for end, pod in (("destination", dest), ("source", source)):
        if isinstance(pod, PodSpec) and pod.host_network:
            return PolicyVerdict(None, None, None, f"{end} {pod.key} is a hostNetwork pod: NetworkPolicy leaves "
                                                   "its traffic undefined")
    if isinstance(source, int) and source in {n.ip for n in cluster.nodes}:
        if source == cluster.node(dest.node).ip:
            return PolicyVerdict(True, None, None, f"from {dest.key}'s own node ({format_ip(source)}): always "
                                                   "allowed (NetworkPolicy documentation)")
        return PolicyVerdict(None, None, None, f"from node address {format_ip(source)}: traffic from another "
                                               "node to pods is left undefined by NetworkPolicy")
    return None


def _direction(cluster: ClusterSpec, direction: str, subject: PodSpec, peer_ok, dest: PodSpec,
               protocol: str, port: int) -> DirectionVerdict:
    """The verdict of the policies that select ``subject`` for ``direction``; ``peer_ok(policy,
    peer)`` says whether a peer of a rule names the other end."""
    kind = "Ingress" if direction == "ingress" else "Egress"
    labels = dict(subject.labels)
    isolated, allowed = [], []
    for policy in cluster.network_policies:
        if policy.namespace != subject.namespace or kind not in policy.policy_types \
                or not policy.pod_selector.matches(labels):
            continue
        isolated.append(policy.key)
        rules: tuple[PolicyRule, ...] = policy.ingress if direction == "ingress" else policy.egress
        for i, rule in enumerate(rules):
            if (not rule.peers or any(peer_ok(policy, peer) for peer in rule.peers)) \
                    and (not rule.ports or any(port_matches(p, dest, protocol, port) for p in rule.ports)):
                allowed.append((policy.key, i))
    return DirectionVerdict(direction, tuple(isolated), tuple(allowed))


def peer_matches(cluster: ClusterSpec, policy: NetworkPolicy, peer: PolicyPeer, other: PodSpec | int,
                 ip: int) -> bool:
    """Whether ``peer`` (of a rule of ``policy``) names ``other``: a pod, or an address (``ip``)
    outside the pods, which only an ipBlock names."""
    if peer.ip_block is not None:
        return peer.ip_block.contains(ip)
    if not isinstance(other, PodSpec):
        return False
    if peer.namespace_selector is None:
        in_namespace = other.namespace == policy.namespace
    else:
        in_namespace = peer.namespace_selector.matches(cluster.namespace_labels(other.namespace))
    return in_namespace and (peer.pod_selector is None or peer.pod_selector.matches(dict(other.labels)))


def port_matches(rule_port: PolicyPort, dest: PodSpec, protocol: str, port: int) -> bool:
    """Whether one ``ports`` entry matches ``protocol``/``port`` to ``dest`` (named ports are
    looked up in ``dest``'s container ports by name and protocol)."""
    if rule_port.protocol != protocol.upper():
        return False
    if rule_port.port is None:
        return True
    if isinstance(rule_port.port, str):
        return any(name == rule_port.port and proto == protocol.lower() and number == port
                   for name, proto, number in dest.named_ports)
    return rule_port.port <= port <= (rule_port.end_port or rule_port.port)


_BY_IP: WeakKeyDictionary = WeakKeyDictionary()


def _pods_by_ip(cluster: ClusterSpec) -> dict[int, PodSpec]:
    """The pods by address (hostNetwork ones are their node's address: not listed), built once per cluster."""
    cached = _BY_IP.get(cluster)
    if cached is None:
        cached = _BY_IP[cluster] = {p.ip: p for p in cluster.pods}
    return cached
