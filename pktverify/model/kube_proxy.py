"""What kube-proxy and the node set-up assign, as data every stage shares.

The generator writes rules from these facts, the loader checks real userspace dumps
against them, and the cluster walk and the invariants follow the same choices: the
service port plans (every service port with its ready endpoints), the proxy port
kube-proxy's userspace mode listens on for each, the source ports pktverify's probes
and proxies use, the pod bridge's address, docker's default network and the node
folder layout. Kept in ``model`` so that ``generate``, ``load``, ``eval`` and ``check``
take them from one place without importing each other.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import NamedTuple

from .addresses import format_ip
from .cluster import ClusterSpec, NodeSpec, ServicePortSpec, ServiceSpec

__all__ = ["DOCKER_NET", "NODE_FILES", "PROBE_CLIENT_SPORT", "PROXY_SPORT", "ServicePortPlan", "NFT_SCRIPT_FILE",
           "bridge_address",
           "proxy_ports", "service_ports", "userspace_proxy_ports"]

DOCKER_NET = (0xAC110000, 0xFFFF0000)       # 172.17.0.0/16, docker0's default on every host

# The node folder layout: dump kind -> file name (the command that writes each is in docs/cli.md;
# ``scripts/collect-node`` writes them, ``generate --out`` and kubectl input share the layout).
NODE_FILES = {"iptables": "iptables-save.txt", "addrs": "ip-addr.json", "routes": "ip-route.json",
              "rules": "ip-rule.json", "ipsets": "ipset-save.txt", "nft": "nft-ruleset.json"}
# The nft ruleset as an ``nft -f`` script (what ``generate --out`` writes in nftables mode: kube-proxy's
# own transaction text, which only ``nft`` itself could turn into ``nft -j`` JSON); a node folder
# holds it or nft-ruleset.json, never both. The readers tell the form by content either way.
NFT_SCRIPT_FILE = "nft-ruleset.nft"

# Linux's default ephemeral range (net.ipv4.ip_local_port_range = 32768 60999): kube-proxy's
# proxier listens on port 0 and gets one from it, so a proxy port is never a NodePort (30000-32767).
_PORT_LOW, _PORT_COUNT = 32768, 60999 - 32768 + 1
# Ports in use on every node in pktverify's model, which a listening socket could not take: the
# source port of the checks' probe clients and the one each userspace proxy connects from.
PROBE_CLIENT_SPORT = 40000
PROXY_SPORT = 45000
_IN_USE = frozenset({PROBE_CLIENT_SPORT, PROXY_SPORT})


def proxy_ports(node: str, service_ports: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The local port kube-proxy listens on for each (service port name, protocol) on ``node``.

    kube-proxy picks a free random port per service port, so two never share
    one on a node. Here: a stable hash of (node, name, protocol) in the ephemeral range
    32768-60999, moved to the next free port on a collision or a port in use.
    """
    taken: set[int] = set(_IN_USE)
    out: dict[tuple[str, str], int] = {}
    for name, proto in sorted(set(service_ports)):
        digest = hashlib.sha256(f"{node}|{name}|{proto}".encode()).digest()
        offset = int.from_bytes(digest[:4], "big") % _PORT_COUNT
        while _PORT_LOW + offset in taken:
            offset = (offset + 1) % _PORT_COUNT
        taken.add(_PORT_LOW + offset)
        out[(name, proto)] = _PORT_LOW + offset
    return out


def bridge_address(node: NodeSpec) -> int:
    """The bridge's address: the first host of the node's pod CIDR."""
    return node.pod_cidr[0] + 1


class ServicePortPlan(NamedTuple):
    """One service port as every node's generator and the cluster walk see it."""
    name: str                                      # namespace/service:port
    cluster_ip: str
    port: int
    proto: str                                     # tcp | udp
    endpoints: tuple[tuple[str, int, int], ...]    # (label, ip, target port)
    service: ServiceSpec
    spec: ServicePortSpec


@lru_cache(maxsize=4)
def service_ports(cluster: ClusterSpec) -> tuple[ServicePortPlan, ...]:
    """Every service port with its ready endpoints. The same for every node of the cluster, so
    made once per cluster."""
    out = []
    for svc in cluster.services:
        for p in svc.ports:
            eps = tuple(cluster.port_endpoints(svc, p))
            out.append(ServicePortPlan(f"{svc.key}:{p.name}", format_ip(svc.cluster_ip), p.port, p.protocol, eps, svc, p))
    return tuple(out)


def userspace_proxy_ports(node: NodeSpec, ports: tuple[ServicePortPlan, ...]) -> dict[tuple[str, str], int]:
    """The proxy port of each (service port name, protocol) on ``node``: the one mapping both the
    generated KUBE-PORTALS rules and the cluster walk's proxy use."""
    return proxy_ports(node.name, [(p.name, p.proto) for p in ports])
