"""What each component installs on a node, as the three dumps pktverify reads.

For a node without real dumps in the cluster description: its addresses
(lo, eth0 on the node network, the pod bridge holding the first host of the
pod CIDR, and docker0 172.17.0.1/16 in docker's default mode), its routes
(connected routes, a default route towards the node network's gateway, and
direct routes to every peer's pod CIDR — the ``route add -net ... gw <peer>``
scheme), and its rule set (kube-proxy in the cluster's proxy mode, plus
docker's MASQUERADE in docker mode). Everything is text in the formats
``ip -o addr``, ``ip route`` and ``iptables-save`` print (and in kube-proxy's
nftables mode the ``nft -f`` text it loads), and goes through the same parsers
as real dumps.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..model.addresses import format_ip, format_network, mask_length
from ..model.cluster import ClusterSpec, NodeSpec
from ..model.kube_proxy import DOCKER_NET, bridge_address, service_ports, userspace_proxy_ports
from .kube_proxy_iptables import ServicePort, kube_proxy_iptables_rules
from .kube_proxy_nft import kube_proxy_nft_rules
from .kube_proxy_userspace import PortalPort, kube_proxy_userspace_rules

__all__ = ["GeneratedNode", "generate_node", "generate_nft"]


@dataclass(frozen=True)
class GeneratedNode:
    """A node's dumps as text: ``ip -o addr`` lines, ``ip route`` lines, ``iptables-save``, and in
    kube-proxy's nftables mode its ruleset as the ``nft -f`` text kube-proxy loads (None in the
    other modes). Written in the node folder layout by :func:`pktverify.load.node_files.node_files`."""
    addrs: str
    routes: str
    iptables: str
    nft: str | None = None


def generate_node(cluster: ClusterSpec, node: NodeSpec, *, nft: bool = True) -> GeneratedNode:
    """The addresses, routes, iptables-save text and (nftables mode) nft ruleset ``node`` would have
    (``nft=False``: without the ruleset, which a loader makes one node at a time with
    :func:`generate_nft`: kube-proxy's ruleset of 10,000 services is 16 MB of text per node)."""
    return GeneratedNode(_addrs(node), _routes(cluster, node), _iptables(cluster, node),
                         generate_nft(cluster, node) if nft else None)


def generate_nft(cluster: ClusterSpec, node: NodeSpec) -> str | None:
    """kube-proxy's nftables-mode ruleset on ``node`` as ``nft -f`` text (None in the other modes)."""
    return _nft(cluster, node) if cluster.proxy_mode == "nftables" else None


def _addrs(node: NodeSpec) -> str:
    net_mask = (0xFFFFFFFF << (32 - node.prefixlen)) & 0xFFFFFFFF
    plen = mask_length(node.pod_cidr[1])
    lines = ["1: lo    inet 127.0.0.1/8 scope host lo",
             f"2: eth0    inet {format_ip(node.ip)}/{node.prefixlen} brd "
             f"{format_ip((node.ip & net_mask) | (~net_mask & 0xFFFFFFFF))} scope global eth0"]
    if not _docker_is_the_bridge(node):
        lines.append(f"3: {node.bridge}    inet {format_ip(bridge_address(node))}/{plen} scope global {node.bridge}")
    if node.docker:
        lines.append("4: docker0    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0")
    return "\n".join(lines) + "\n"


def _docker_is_the_bridge(node: NodeSpec) -> bool:
    """The pod bridge is docker's own docker0 (docker mode, its default 172.17.0.0/16), which the
    docker lines make: the bridge is not written twice. Without ``docker: true`` a bridge named
    docker0 is made like any other bridge (it was left out, and its pods had no interface)."""
    return node.docker and node.bridge == "docker0" and node.pod_cidr == DOCKER_NET


def _routes(cluster: ClusterSpec, node: NodeSpec) -> str:
    net_mask = (0xFFFFFFFF << (32 - node.prefixlen)) & 0xFFFFFFFF
    network = node.ip & net_mask
    gateway = network + 1
    lines = []
    if all(n.ip != gateway for n in cluster.nodes):
        lines.append(f"default via {format_ip(gateway)} dev eth0")
    if not _docker_is_the_bridge(node):
        lines.append(f"{format_network(*node.pod_cidr)} dev {node.bridge} proto kernel scope link "
                     f"src {format_ip(bridge_address(node))}")
    if node.docker:
        lines.append("172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1")
    lines.append(f"{format_network(network, net_mask)} dev eth0 proto kernel scope link src {format_ip(node.ip)}")
    own = [node.pod_cidr] + ([DOCKER_NET] if node.docker else [])
    for peer in cluster.nodes:
        if peer.name == node.name:
            continue
        # The kernel refuses a route that duplicates a connected one ("File exists"): skip it,
        # as `route add` on that host would fail.
        if any(peer.pod_cidr == mine for mine in own):
            continue
        lines.append(f"{format_network(*peer.pod_cidr)} via {format_ip(peer.ip)} dev eth0")
    return "\n".join(lines) + "\n"


def _iptables(cluster: ClusterSpec, node: NodeSpec) -> str:
    if cluster.proxy_mode == "userspace":
        ports = service_ports(cluster)
        chosen = userspace_proxy_ports(node, ports)
        portals = [PortalPort(p.name, p.cluster_ip, p.port, p.proto, chosen[(p.name, p.proto)], p.spec.node_port or 0,
                              tuple(format_ip(ip) for ip in p.service.external_ips + p.service.lb_ips))
                   for p in ports]
        text = kube_proxy_userspace_rules(portals, node_ip=format_ip(node.ip))
    elif cluster.proxy_mode == "nftables":
        text = ""                   # kube-proxy's rules are in its nft table (_nft)
    else:
        # kube-proxy's iptables mode writes the same rules on every node unless a traffic policy
        # keeps traffic on the node (then each node's rules name its own endpoints) or a
        # LoadBalancer's source ranges hold some node's IP (allowFromNode: then the nodes whose IP
        # the same ranges hold share one text).
        local = any(p.service.internal_policy == "Local" or p.service.external_policy == "Local"
                    for p in service_ports(cluster))
        text = _iptables_mode_rules(cluster, node.name if local else None, _allow_from_node(cluster, node))
    if node.docker:
        text = _with_docker_masquerade(text)
    return text


@lru_cache(maxsize=4)
def _iptables_mode_rules(cluster: ClusterSpec, node: str | None, node_ip: str | None) -> str:
    """kube-proxy's iptables-mode rules for ``node`` (None: any node, when no policy is Local),
    whose nodeIP the same source ranges hold as ``node_ip``'s (None: no range holds it)."""
    return kube_proxy_iptables_rules(list(_service_port_records(cluster, node)),
                                     cluster_cidr=format_network(*cluster.cidr), node_ip=node_ip)


def _allow_from_node(cluster: ClusterSpec, node: NodeSpec) -> str | None:
    """``node``'s stand-in for its IP in the iptables generator (which uses kube-proxy's nodeIP only
    to ask which LoadBalancers' source ranges hold it): None when none does, else the IP of the
    first node whose IP the same ranges hold, so that such nodes share one text."""
    ranges, first = _firewalls(cluster)
    held = tuple(i for i, nets in ranges if any(node.ip & mask == net & mask for net, mask in nets))
    return (first.get(held) or format_ip(node.ip)) if held else None


@lru_cache(maxsize=4)
def _firewalls(cluster: ClusterSpec) -> tuple[list[tuple[int, tuple[tuple[int, int], ...]]],
                                              dict[tuple[int, ...], str]]:
    """The source ranges of each LoadBalancer that has them and an ingress IP (by its index), and
    for each set of those (indices) the IP of the first node whose IP they hold."""
    ranges = [(i, svc.lb_source_ranges) for i, svc in enumerate(cluster.services)
              if svc.lb_ips and svc.lb_source_ranges]
    first: dict[tuple[int, ...], str] = {}
    for node in cluster.nodes:
        held = tuple(i for i, nets in ranges if any(node.ip & mask == net & mask for net, mask in nets))
        first.setdefault(held, format_ip(node.ip))
    return ranges, first


def _nft(cluster: ClusterSpec, node: NodeSpec) -> str:
    """kube-proxy's nftables-mode ruleset on ``node``: its ``table ip kube-proxy``, with the
    cluster CIDR as the LocalTrafficDetector's (as the iptables mode's ``--cluster-cidr``), the
    service CIDR's unallocated addresses dropped, and NodePorts on the node's primary IP only:
    kube-proxy's nftables mode defaults ``--nodeport-addresses`` to ``primary``
    (cmd/kube-proxy/app/server.go), where the iptables mode accepts them on every local address."""
    local = any(p.service.internal_policy == "Local" or p.service.external_policy == "Local"
                for p in service_ports(cluster))
    ip = format_ip(node.ip)
    return kube_proxy_nft_rules(list(_service_port_records(cluster, node.name if local else None)), node_ips=[ip],
                                pod_cidr=format_network(*cluster.cidr),
                                service_cidrs=[format_network(*cluster.service_cidr)],
                                nodeport_addresses=[f"{ip}/32"])


@lru_cache(maxsize=4)
def _service_port_records(cluster: ClusterSpec, node: str | None) -> tuple[ServicePort, ...]:
    """Every service port as the kube-proxy generators take it, ``local_endpoints`` those on
    ``node`` (None: none is asked for, when no policy is Local)."""
    sps = []
    for p in service_ports(cluster):
        svc = p.service
        eps = tuple(f"{format_ip(ip)}:{target}" for _label, ip, target in p.endpoints)
        local = tuple(f"{format_ip(ip)}:{target}" for label, ip, target in p.endpoints
                      if node is not None and cluster.endpoint_node(label, ip) == node)
        sps.append(ServicePort(p.name, p.cluster_ip, p.port, p.proto.upper(), eps, local, p.spec.node_port or 0,
                               tuple(format_ip(ip) for ip in svc.external_ips), tuple(format_ip(ip) for ip in svc.lb_ips),
                               tuple(format_network(*n) for n in svc.lb_source_ranges),
                               svc.external_policy == "Local" and svc.external, svc.internal_policy == "Local",
                               svc.affinity_timeout))
    return tuple(sps)


def _with_docker_masquerade(text: str) -> str:
    """Docker's default bridge mode: masquerade whatever leaves docker0's subnet by another interface."""
    rule = "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"
    if "*nat\n" not in text:
        return text + ("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                       f":POSTROUTING ACCEPT [0:0]\n{rule}\nCOMMIT\n")
    head, sep, tail = text.partition("*nat\n")
    body, commit, rest = tail.partition("COMMIT\n")
    return head + sep + body + rule + "\n" + commit + rest
