"""The faults :func:`pktverify.strategies.faulty_clusters` plants, and how each is planted.

:data:`FAULTS` names each fault with the invariants it must break; a planter takes a valid
cluster (drawn without given dumps) and returns it as a :class:`FaultyCluster` with the fault
recorded. Faults in a node's rules or routes are planted in that node's dumps, held inline, so
:func:`pktverify.cluster_to_yaml` writes one self-contained file: kube-proxy's rule faults in its
iptables-save in iptables mode and in its nft ruleset in nftables mode (the edits are
:mod:`.faults_nft`'s), where two faults of nft's own are planted too (:data:`NEEDS_NFTABLES`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from hypothesis import strategies as st

from ..check.invariants import INVARIANTS
from ..generate.node_state import generate_node
from ..model.addresses import format_ip, format_network
from ..model.cluster import ClusterSpec, NodeSpec, PodSpec, ServicePortSpec, ServiceSpec
from . import faults_nft

__all__ = ["Fault", "FaultyCluster", "FAULTS", "NEEDS_IPTABLES", "IN_NFT_TOO", "NEEDS_NFTABLES", "NEEDS_TWO_NODES",
           "fault_modes", "plant"]

# ------------------------------------------------------------------ faults
@dataclass(frozen=True)
class Fault:
    """A planted fault: ``name`` (one of :data:`FAULTS`), the invariants it must ``break``,
    and ``detail``, what exactly was changed where."""
    name: str
    breaks: frozenset[str]
    detail: str


# name -> (invariants it must break, what it is)
FAULTS: dict[str, tuple[frozenset[str], str]] = {
    "overlapping-pod-cidrs": (frozenset({"pod-ip-uniqueness"}), "two nodes own the same pod CIDR"),
    "duplicate-pod-ip": (frozenset({"pod-ip-uniqueness"}), "two pods have one IP"),
    "pod-outside-node-cidr": (frozenset({"pod-ip-uniqueness"}), "a pod's IP is outside its node's pod CIDR"),
    "docker-default": (frozenset({"pod-ip-uniqueness"}),
                       "docker's default 172.17.0.0/16 bridge, masqueraded, as every node's pod network"),
    "cluster-ip-outside-service-cidr": (frozenset({"pod-ip-uniqueness"}),
                                        "a ClusterIP outside the service CIDR, inside a node's pod CIDR"),
    "missing-peer-route": (frozenset({"routing"}), "a node has no route to another node's pod CIDR"),
    "blackhole-route": (frozenset({"routing"}), "a node blackholes another node's pod CIDR"),
    "pod-to-pod-masquerade": (frozenset({"no-nat"}), "a node masquerades pod-to-pod traffic"),
    "pod-to-node-masquerade": (frozenset({"no-nat"}), "a node masquerades its pods' traffic to other nodes"),
    "forward-drop": (frozenset({"no-nat"}), "a node's FORWARD chain drops traffic to one of its pods"),
    "stray-dnat": (frozenset({"no-nat"}), "a node DNATs traffic for one pod to another"),
    "hairpin-without-masquerade": (frozenset({"service-reachability"}),
                                   "kube-proxy's hairpin KUBE-MARK-MASQ (nft: jump mark-for-masquerade) rules are "
                                   "missing on a node"),
    "stale-endpoint": (frozenset({"service-reachability"}), "a service endpoint is an address no pod has"),
    "non-uniform-probabilities": (frozenset({"service-reachability"}),
                                  "a statistic rule of a service's endpoint choice has the wrong probability"),
    "empty-service-not-rejected": (frozenset({"service-reachability"}),
                                   "a service without endpoints is not rejected: its ClusterIP leaves the node"),
    "nodeport-collision": (frozenset({"pod-ip-uniqueness"}), "two services have the same NodePort"),
    "etp-local-pod-detour": (frozenset({"service-reachability"}),
                             "externalTrafficPolicy: Local; a pod calls another node's NodePort, whose endpoint "
                             "is on the pod's node: DNATed without masquerade, the reply takes a shortcut"),
    "session-affinity-lost": (frozenset({"service-reachability"}),
                              "sessionAffinity: ClientIP, but a node's rules lost the -m recent --rcheck rules "
                              "(nft: ip saddr @affinity-... goto endpoint-...)"),
    "stale-map-element": (frozenset({"service-reachability"}),
                          "a node's service-ips map sends a live ClusterIP:port to a deleted service's chain, "
                          "whose endpoint no pod has (nftables mode)"),
    "numgen-skips-endpoint": (frozenset({"service-reachability"}),
                              "a service's numgen random mod N has N below its endpoint count: an endpoint is never "
                              "chosen (nftables mode)"),
}


@dataclass(frozen=True, eq=False, repr=False)
class FaultyCluster(ClusterSpec):
    """A cluster drawn by :func:`faulty_clusters`: a valid cluster with ``fault`` planted."""
    fault: Fault | None = None


def _faulty(cluster: ClusterSpec, name: str, detail: str) -> FaultyCluster:
    values = {f.name: getattr(cluster, f.name) for f in fields(ClusterSpec)}
    return FaultyCluster(**values, fault=Fault(name, FAULTS[name][0], detail))

# The proxy modes a fault is drawn in (see fault_modes). Faults in kube-proxy's own rules (IN_NFT_TOO) are
# planted in its iptables-save in iptables mode and in its nft ruleset (faults_nft) in nftables mode; the
# userspace proxy writes neither, so they are never drawn in it. NEEDS_IPTABLES, the faults with no nft form
# at all, is empty: each kube-proxy rule fault has one (etp-local-pod-detour changes no rule: it is kube-proxy's
# own short-circuit of pod traffic, written in both modes). NEEDS_NFTABLES: faults of nft's maps and numgen,
# which iptables mode has not. The other faults are planted in the description, the routes or rules of the
# node's own iptables-save, and so in any mode (in nftables mode the node's iptables-save holds the planted
# rule beside kube-proxy's generated nft table). NEEDS_TWO_NODES: faults between two nodes.
IN_NFT_TOO = frozenset({"hairpin-without-masquerade", "non-uniform-probabilities", "empty-service-not-rejected",
                        "etp-local-pod-detour", "session-affinity-lost"})
NEEDS_IPTABLES: frozenset[str] = frozenset()
NEEDS_NFTABLES = frozenset({"stale-map-element", "numgen-skips-endpoint"})
NEEDS_TWO_NODES = frozenset({"overlapping-pod-cidrs", "docker-default", "missing-peer-route", "blackhole-route",
                             "pod-to-node-masquerade", "etp-local-pod-detour"})


def fault_modes(name: str, modes: tuple[str, ...]) -> tuple[str, ...]:
    """The proxy modes of ``modes`` fault ``name`` is drawn in; when none of them realises it, the
    first mode that does (iptables mode for kube-proxy's rule faults, nftables mode for nft's own)."""
    able = ("nftables",) if name in NEEDS_NFTABLES else ("iptables",) if name in NEEDS_IPTABLES else \
        ("iptables", "nftables") if name in IN_NFT_TOO else modes
    return tuple(m for m in modes if m in able) or able[:1]


# ------------------------------------------------------------------ planting faults
def _with_pods(cluster: ClusterSpec, node: NodeSpec, count: int) -> tuple[ClusterSpec, list[PodSpec]]:
    """``cluster`` with at least ``count`` (not host-network, ready) pods on ``node``; ``count`` of them."""
    here = [p for p in cluster.pods if p.node == node.name and p.ready]
    pods_ = list(cluster.pods)
    used = {p.ip for p in cluster.pods}
    ip = node.pod_cidr[0] + 2
    while len(here) < count:
        while ip in used:
            ip += 1
        pod = PodSpec(f"pod-f{len(pods_)}", "default", node.name, ip, (("app", "web"),), (8080,))
        used.add(ip)
        pods_.append(pod)
        here.append(pod)
    return replace(cluster, pods=tuple(pods_)), here[:count]


def _plant_rule(cluster: ClusterSpec, node: NodeSpec, table: str, rule: str, *, first: bool = True) -> ClusterSpec:
    """``cluster`` whose ``node`` has its generated iptables-save with ``rule`` added to ``table``."""
    return _edit_iptables(cluster, node, lambda text: _insert(text, table, rule, first=first))


def _edit_iptables(cluster: ClusterSpec, node: NodeSpec, edit) -> ClusterSpec:
    text = node.dump_text("iptables") or generate_node(cluster, node).iptables
    return _with_inline(cluster, node, "iptables", edit(text))


def _edit_nft(cluster: ClusterSpec, node: NodeSpec, edit) -> ClusterSpec:
    """``cluster`` whose ``node`` has its (generated) nft ruleset edited by ``edit``, held inline."""
    text = node.dump_text("nft") or generate_node(cluster, node).nft
    return _with_inline(cluster, node, "nft", edit(text))


def _with_inline(cluster: ClusterSpec, node: NodeSpec, kind: str, text: str) -> ClusterSpec:
    inline = tuple((k, t) for k, t in node.inline if k != kind) + ((kind, text),)
    new = replace(node, inline=inline)
    return replace(cluster, nodes=tuple(new if n.name == node.name else n for n in cluster.nodes))


def _insert(text: str, table: str, rule: str, *, first: bool) -> str:
    """``rule`` (``-A CHAIN ...``) first (or last) in its chain of ``table`` in iptables-save ``text``."""
    chain = rule.split()[1]
    head, sep, tail = text.partition(f"*{table}\n")
    if not sep:
        chains = {"nat": "PREROUTING INPUT OUTPUT POSTROUTING", "filter": "INPUT FORWARD OUTPUT"}[table].split()
        return text + f"*{table}\n" + "".join(f":{c} ACCEPT [0:0]\n" for c in chains) + f"{rule}\nCOMMIT\n"
    body, commit, rest = tail.partition("COMMIT\n")
    lines = body.split("\n")
    at = [i for i, line in enumerate(lines) if line.startswith(f"-A {chain} ")]
    if first:
        index = at[0] if at else next(i for i, line in enumerate(lines) if not line.startswith(":"))
    else:
        index = at[-1] + 1 if at else next(i for i, line in enumerate(lines) if not line.startswith(":"))
    lines.insert(index, rule)
    return head + sep + "\n".join(lines) + commit + rest


def _plant_overlapping(draw, c: ClusterSpec) -> FaultyCluster:
    a, b = c.nodes[0], c.nodes[1]
    nodes = tuple(replace(n, pod_cidr=a.pod_cidr) if n.name == b.name else n for n in c.nodes)
    return _faulty(replace(c, nodes=nodes), "overlapping-pod-cidrs",
                   f"{b.name} gets {a.name}'s pod CIDR {format_network(*a.pod_cidr)}")


def _plant_duplicate_ip(draw, c: ClusterSpec) -> FaultyCluster:
    node = draw(st.sampled_from(c.nodes))
    c, (a, b) = _with_pods(c, node, 2)
    c = replace(c, pods=tuple(replace(p, ip=a.ip) if p.key == b.key else p for p in c.pods))
    return _faulty(c, "duplicate-pod-ip", f"pod {b.key} gets pod {a.key}'s IP {format_ip(a.ip)}")


def _plant_outside(draw, c: ClusterSpec) -> FaultyCluster:
    node = draw(st.sampled_from(c.nodes))
    c, (a,) = _with_pods(c, node, 1)
    outside = c.cidr[0] + 0xFFFE                                 # the last host of the cluster CIDR: no node's
    c = replace(c, pods=tuple(replace(p, ip=outside) if p.key == a.key else p for p in c.pods))
    return _faulty(c, "pod-outside-node-cidr", f"pod {a.key} gets {format_ip(outside)}, outside "
                                               f"{node.name}'s pod CIDR {format_network(*node.pod_cidr)}")


def _plant_docker(draw, c: ClusterSpec) -> FaultyCluster:
    docker_net = (0xAC110000, 0xFFFF0000)
    nodes = tuple(replace(n, pod_cidr=docker_net, bridge="docker0", docker=True) for n in c.nodes)
    index: dict[str, int] = {}
    moved = []
    for p in c.pods:                                             # docker numbers each host's containers from .2
        index[p.node] = index.get(p.node, 0) + 1
        moved.append(replace(p, ip=0xAC110001 + index[p.node]))
    return _faulty(replace(c, nodes=nodes, pods=tuple(moved)), "docker-default",
                   "every node's pods on docker0 172.17.0.0/16, masqueraded off it")


def _plant_cluster_ip(draw, c: ClusterSpec) -> FaultyCluster:
    node = draw(st.sampled_from(c.nodes))
    inside = node.pod_cidr[0] + (~node.pod_cidr[1] & 0xFFFFFFFF) - 1      # the pod CIDR's last host
    if not c.services:
        c = replace(c, services=(ServiceSpec("svc-f", "default", c.service_cidr[0] + 1,
                                             (ServicePortSpec("", 80, 8080, "tcp"),), (("app", "web"),)),))
    svc = draw(st.sampled_from(c.services))
    c = replace(c, services=tuple(replace(s, cluster_ip=inside) if s.key == svc.key else s for s in c.services))
    return _faulty(c, "cluster-ip-outside-service-cidr",
                   f"service {svc.key} gets ClusterIP {format_ip(inside)}, inside {node.name}'s pod CIDR")


def _route_lines(c: ClusterSpec, node: NodeSpec) -> list[str]:
    return generate_node(c, node).routes.rstrip("\n").split("\n")


def _plant_missing_route(draw, c: ClusterSpec) -> FaultyCluster:
    node, peer = draw(st.permutations(c.nodes))[:2]
    lines = [line for line in _route_lines(c, node) if not line.startswith(format_network(*peer.pod_cidr) + " via")]
    c = _with_inline(c, node, "routes", "\n".join(lines) + "\n")
    return _faulty(c, "missing-peer-route", f"{node.name} loses its route to {peer.name}'s pod CIDR "
                                            f"{format_network(*peer.pod_cidr)}")


def _plant_blackhole(draw, c: ClusterSpec) -> FaultyCluster:
    node, peer = draw(st.permutations(c.nodes))[:2]
    net = format_network(*peer.pod_cidr)
    lines = [f"blackhole {net}" if line.startswith(net + " via") else line for line in _route_lines(c, node)]
    c = _with_inline(c, node, "routes", "\n".join(lines) + "\n")
    return _faulty(c, "blackhole-route", f"{node.name} has `blackhole {net}` ({peer.name}'s pod CIDR)")


def _plant_pod_masquerade(draw, c: ClusterSpec) -> FaultyCluster:
    node = draw(st.sampled_from(c.nodes))
    c, _ = _with_pods(c, node, 2)
    cidr = format_network(*c.cidr)
    rule = f"-A POSTROUTING -s {cidr} -d {cidr} -j MASQUERADE"
    return _faulty(_plant_rule(c, node, "nat", rule), "pod-to-pod-masquerade", f"{node.name}: {rule}")


def _plant_node_masquerade(draw, c: ClusterSpec) -> FaultyCluster:
    node = draw(st.sampled_from(c.nodes))
    c, _ = _with_pods(c, node, 1)
    rule = (f"-A POSTROUTING -s {format_network(*node.pod_cidr)} -d {format_network(node.ip & 0xFFFFFF00, 0xFFFFFF00)}"
            " -j MASQUERADE")
    return _faulty(_plant_rule(c, node, "nat", rule), "pod-to-node-masquerade", f"{node.name}: {rule}")


def _plant_forward_drop(draw, c: ClusterSpec) -> FaultyCluster:
    node = draw(st.sampled_from(c.nodes))
    c, (a, _b) = _with_pods(c, node, 2)
    rule = f"-A FORWARD -d {format_ip(a.ip)}/32 -j DROP"
    return _faulty(_plant_rule(c, node, "filter", rule), "forward-drop", f"{node.name}: {rule}")


def _plant_stray_dnat(draw, c: ClusterSpec) -> FaultyCluster:
    node = draw(st.sampled_from(c.nodes))
    c, (a, b) = _with_pods(c, node, 2)
    rule = f"-A PREROUTING -d {format_ip(a.ip)}/32 -j DNAT --to-destination {format_ip(b.ip)}"
    return _faulty(_plant_rule(c, node, "nat", rule), "stray-dnat", f"{node.name}: {rule}")


def _service_for(c: ClusterSpec, pods_: list[PodSpec], name: str) -> tuple[ClusterSpec, ServiceSpec]:
    """``c`` with a new service listing exactly ``pods_`` (port 80 → 8080/TCP)."""
    svc = ServiceSpec(name, "default", c.service_cidr[0] + 1 + len(c.services), (ServicePortSpec("", 80, 8080, "tcp"),),
                      None, tuple(p.key for p in pods_))
    return replace(c, services=c.services + (svc,)), svc


def _plant_hairpin(draw, c: ClusterSpec) -> FaultyCluster:
    node = draw(st.sampled_from(c.nodes))
    c, (a,) = _with_pods(c, node, 1)
    c, svc = _service_for(c, [a], "svc-hairpin")

    def edit(text: str) -> str:
        return "\n".join(line for line in text.split("\n") if not (
            f'"{svc.key}"' in line and "-j KUBE-MARK-MASQ" in line and " -s " in line))

    if c.proxy_mode == "nftables":
        return _faulty(_edit_nft(c, node, lambda text: faults_nft.without_hairpin_masquerade(text, svc.key)),
                       "hairpin-without-masquerade", f"{node.name}: no `ip saddr {format_ip(a.ip)} jump "
                                                     f"mark-for-masquerade` in service {svc.key}'s endpoint chain")
    return _faulty(_edit_iptables(c, node, edit), "hairpin-without-masquerade",
                   f"{node.name}: no `-s {format_ip(a.ip)}/32 -j KUBE-MARK-MASQ` for service {svc.key}")


def _plant_stale(draw, c: ClusterSpec) -> FaultyCluster:
    node = draw(st.sampled_from(c.nodes))
    stale = node.pod_cidr[0] + (~node.pod_cidr[1] & 0xFFFFFFFF) - 1      # no pod is drawn this high
    svc = ServiceSpec("svc-stale", "default", c.service_cidr[0] + 1 + len(c.services),
                      (ServicePortSpec("", 80, 8080, "tcp"),), None, None, (stale,))
    return _faulty(replace(c, services=c.services + (svc,)), "stale-endpoint",
                   f"service {svc.key} lists endpoint {format_ip(stale)}, which no pod has")


def _plant_skew(draw, c: ClusterSpec) -> FaultyCluster:
    node = draw(st.sampled_from(c.nodes))
    c, (a, b) = _with_pods(c, node, 2)
    c, svc = _service_for(c, [a, b], "svc-skewed")

    def edit(text: str) -> str:
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if f'"{svc.key} -> ' in line and "--probability" in line:
                words = line.split()
                at = words.index("--probability") + 1
                words[at] = "0.25000000000"
                lines[i] = " ".join(words)
                break
        return "\n".join(lines)

    if c.proxy_mode == "nftables":
        return _faulty(_edit_nft(c, node, lambda text: faults_nft.skew_numgen(text, svc.key)),
                       "non-uniform-probabilities",
                       f"{node.name}: service {svc.key}'s numgen picks its first endpoint with probability 0.25, not 0.5")
    return _faulty(_edit_iptables(c, node, edit), "non-uniform-probabilities",
                   f"{node.name}: service {svc.key} picks its first endpoint with probability 0.25, not 0.5")


def _plant_unrejected(draw, c: ClusterSpec) -> FaultyCluster:
    node = draw(st.sampled_from(c.nodes))
    svc = ServiceSpec("svc-empty", "default", c.service_cidr[0] + 1 + len(c.services),
                      (ServicePortSpec("", 80, 8080, "tcp"),), None, ())
    c = replace(c, services=c.services + (svc,))

    def edit(text: str) -> str:
        return "\n".join(line for line in text.split("\n")
                         if not (f'"{svc.key} has no endpoints"' in line and "-j REJECT" in line))

    if c.proxy_mode == "nftables":
        cip = format_ip(svc.cluster_ip)
        return _faulty(_edit_nft(c, node, lambda text: faults_nft.without_reject(text, svc.key, cip)),
                       "empty-service-not-rejected",
                       f"{node.name}: service {svc.key}, which has no endpoints, neither in no-endpoint-services "
                       f"(reject) nor in cluster-ips, and no drop of unallocated ClusterIPs")
    return _faulty(_edit_iptables(c, node, edit), "empty-service-not-rejected",
                   f"{node.name}: no REJECT for service {svc.key}, which has no endpoints")


def _plant_nodeport_collision(draw, c: ClusterSpec) -> FaultyCluster:
    number = draw(st.integers(*c.node_port_range))
    start = len(c.services)
    new = tuple(ServiceSpec(f"svc-np{i}", "default", c.service_cidr[0] + 1 + start + i,
                            (ServicePortSpec("", 80 + i, 8080, "tcp", number),), (("app", "web"),), type="NodePort")
                for i in range(2))
    # The other services lose their node ports (the two new ones alone share one): a ClusterIP
    # service has no node port, no load-balancer ingress and no source ranges either.
    c = replace(c, services=tuple(replace(s, type="ClusterIP", ports=tuple(replace(p, node_port=None) for p in s.ports),
                                          external_policy="Cluster", lb_ips=(), lb_source_ranges=())
                                  if s.has_node_ports else s for s in c.services) + new)
    return _faulty(c, "nodeport-collision", f"services {new[0].key} and {new[1].key} both have NodePort {number}/tcp")


def _plant_etp_detour(draw, c: ClusterSpec) -> FaultyCluster:
    home, other = draw(st.permutations(c.nodes))[:2]
    c, (client, server) = _with_pods(c, home, 2)
    c, svc = _service_for(c, [server], "svc-local")
    number = draw(st.integers(*c.node_port_range).filter(
        lambda n: all(p.node_port != n for s in c.services for p in s.ports)))
    svc2 = replace(svc, type="NodePort", external_policy="Local",
                   ports=tuple(replace(p, node_port=number) for p in svc.ports))
    c = replace(c, services=c.services[:-1] + (svc2,))
    # No rule is changed: kube-proxy itself sends pods' traffic for the NodePort to the service chain
    # unmasqueraded (iptables: -s CLUSTER-CIDR -j KUBE-SVC-...; nftables: the rule quoted).
    how = f", by `{faults_nft.short_circuit_rule(generate_node(c, other).nft, svc.key)}`" \
        if c.proxy_mode == "nftables" else ""
    return _faulty(c, "etp-local-pod-detour",
                   f"pod {client.key} on {home.name} → {other.name}:{number} (externalTrafficPolicy: Local), endpoint "
                   f"{server.key} on {home.name}{how}")


def _plant_affinity_lost(draw, c: ClusterSpec) -> FaultyCluster:
    node = draw(st.sampled_from(c.nodes))
    c, (a, b) = _with_pods(c, node, 2)
    c, svc = _service_for(c, [a, b], "svc-sticky")
    c = replace(c, services=c.services[:-1] + (replace(svc, affinity_timeout=10800),))

    def edit(text: str) -> str:
        return "\n".join(line for line in text.split("\n") if "--rcheck" not in line)

    if c.proxy_mode == "nftables":
        return _faulty(_edit_nft(c, node, lambda text: faults_nft.without_affinity_checks(text, svc.key)),
                       "session-affinity-lost", f"{node.name}: no `ip saddr @affinity-... goto endpoint-...` rules "
                                                f"for service {svc.key} (sessionAffinity: ClientIP)")
    return _faulty(_edit_iptables(c, node, edit), "session-affinity-lost",
                   f"{node.name}: no `-m recent --rcheck` rules for service {svc.key} (sessionAffinity: ClientIP)")


def _plant_stale_element(draw, c: ClusterSpec) -> FaultyCluster:
    """A stale ``service-ips`` element: of the forms one can take, the one a live service meets.
    A service was deleted and its ClusterIP given to a new one; the node's kube-proxy missed the
    change, so its map still sends the ClusterIP:port to the deleted service's chain (kept with
    its endpoint chain, from the old configuration), to an endpoint whose pod is gone. (A stale
    element for an address no service has any more is met by no service's traffic; a NodePort
    one is the same fault through service-nodeports.)"""
    node = draw(st.sampled_from(c.nodes))
    c, pods_ = _with_pods(c, node, draw(st.integers(1, 2)))
    c, svc = _service_for(c, pods_, "svc-live")
    gone = node.pod_cidr[0] + (~node.pod_cidr[1] & 0xFFFFFFFF) - 1        # no pod is drawn this high
    old_svc = ServiceSpec("svc-deleted", "default", svc.cluster_ip, svc.ports, None, None, (gone,))
    old = generate_node(replace(c, services=c.services[:-1] + (old_svc,)), node).nft
    key = f"{format_ip(svc.cluster_ip)} . tcp . 80"
    c = _edit_nft(c, node, lambda text: faults_nft.with_stale_element(text, old, svc.key, old_svc.key, key))
    return _faulty(c, "stale-map-element", f"{node.name}: service-ips element {{ {key} }} of service {svc.key} "
                                           f"goes to deleted service {old_svc.key}'s chain, endpoint {format_ip(gone)}")


def _plant_numgen_skip(draw, c: ClusterSpec) -> FaultyCluster:
    node = draw(st.sampled_from(c.nodes))
    count = draw(st.integers(2, 3))
    c, pods_ = _with_pods(c, node, count)
    c, svc = _service_for(c, pods_, "svc-numgen")
    modulus = draw(st.integers(1, count - 1))
    c = _edit_nft(c, node, lambda text: faults_nft.skip_endpoint(text, svc.key, modulus))
    return _faulty(c, "numgen-skips-endpoint", f"{node.name}: service {svc.key}'s `numgen random mod {modulus}` "
                                               f"over its {count} endpoints")


_PLANT = {
    "overlapping-pod-cidrs": _plant_overlapping, "duplicate-pod-ip": _plant_duplicate_ip,
    "pod-outside-node-cidr": _plant_outside, "docker-default": _plant_docker,
    "cluster-ip-outside-service-cidr": _plant_cluster_ip, "missing-peer-route": _plant_missing_route,
    "blackhole-route": _plant_blackhole, "pod-to-pod-masquerade": _plant_pod_masquerade,
    "pod-to-node-masquerade": _plant_node_masquerade, "forward-drop": _plant_forward_drop,
    "stray-dnat": _plant_stray_dnat, "hairpin-without-masquerade": _plant_hairpin,
    "stale-endpoint": _plant_stale, "non-uniform-probabilities": _plant_skew,
    "empty-service-not-rejected": _plant_unrejected, "nodeport-collision": _plant_nodeport_collision,
    "etp-local-pod-detour": _plant_etp_detour, "session-affinity-lost": _plant_affinity_lost,
    "stale-map-element": _plant_stale_element, "numgen-skips-endpoint": _plant_numgen_skip,
}
assert set(_PLANT) == set(FAULTS) and all(b <= set(INVARIANTS) for b, _ in FAULTS.values())


def plant(draw, name: str, cluster: ClusterSpec) -> FaultyCluster:
    """``cluster`` (valid, without given dumps) with the fault ``name`` planted; ``draw`` (of a
    Hypothesis composite strategy) picks where."""
    return _PLANT[name](draw, cluster)
