"""A pod's own IP stack: its eth0 address and prefix, its two routes, and what its kernel does.

The bridge CNI (host-local IPAM), kubenet and docker all give a pod the same stack: eth0 with
the pod's address and the prefix of its node's pod range (``10.1.10.5/24`` on a node whose pod
CIDR is ``10.1.10.0/24``; a cluster YAML may state another with ``pod_prefix``), the connected
route of that subnet and ``default via`` the bridge's address. So the pod's own route lookup
decides where a packet goes, before the node sees it:

* a destination inside the pod's subnet is *on-link*: the pod ARPs for it on the bridge. The
  pod that owns it answers (the frame is bridged to its port), or the node for any address of
  its own (``arp_ignore=0``, Linux's default: the node answers for an address on any of its
  interfaces); nobody else does (``proxy_arp=0``), and the packet is dropped in the pod ("no ARP
  answer"). So a ClusterIP inside the pod subnet is unreachable from that subnet's pods, and
  with overlapping node CIDRs the other node's pods inside the subnet are too.
* anything else goes to the gateway, the bridge's address: into the node's IP stack, routed
  there (also for a pod on the same bridge outside the subnet: ``FORWARD -i cbr0 -o cbr0``).

A pod whose address lies outside its node's pod CIDR keeps the prefix of that CIDR; its
gateway, the bridge's address, is then outside its subnet and its default route is
``onlink`` (the kernel refuses it otherwise: "Nexthop has invalid gateway").

On receipt the pod's kernel checks the source (``fib_validate_source``): a packet whose source
is the pod's own address arriving on eth0 is a martian and dropped before any socket sees it,
whatever rp_filter says (a hairpin DNAT without masquerade; kernel-checked: the SYN passes the
pod's raw PREROUTING, never its INPUT, and ``in_martian_src`` counts it). Loopback, multicast,
broadcast and 0/8 sources are martians too (``route_localnet=0`` in the pod). rp_filter in the
pod cannot drop anything else: every source is routed back through eth0 (its one interface),
by the default route.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model.addresses import (LIMITED_BROADCAST, format_ip, format_network, in_network, is_loopback, is_multicast,
                               is_zeronet, prefix_mask)
from ..model.cluster import NodeSpec, PodSpec
from ..model.node import NodeState
from ..model.packet import Packet

__all__ = ["PodStack", "pod_stack", "martian_at_pod"]


@dataclass(frozen=True)
class PodStack:
    """One pod's eth0 and routes. ``gateway`` is the bridge address its default route uses
    (None: the bridge has no address, so the pod has no default route)."""
    key: str
    node: str
    bridge: str
    address: int
    prefixlen: int
    gateway: int | None

    @property
    def mask(self) -> int:
        return prefix_mask(self.prefixlen)

    @property
    def network(self) -> int:
        return self.address & self.mask

    def on_link(self, ip: int) -> bool:
        """``ip`` is inside the pod's subnet: the pod ARPs for it on the bridge."""
        return in_network(ip, self.network, self.mask)

    def route_lines(self) -> tuple[str, ...]:
        """The pod's routes as ``ip route`` prints them (what a lab builds in the pod)."""
        lines = [f"{format_network(self.network, self.mask)} dev eth0 proto kernel scope link "
                 f"src {format_ip(self.address)}"]
        if self.gateway is not None:
            onlink = "" if self.on_link(self.gateway) else " onlink"
            lines.insert(0, f"default via {format_ip(self.gateway)} dev eth0{onlink}")
        return tuple(lines)


def pod_stack(spec: NodeSpec, state: NodeState, pod: PodSpec) -> PodStack:
    """The stack of ``pod`` (not host-network) on node ``spec`` whose addresses ``state`` holds."""
    plen = spec.pod_prefixlen
    return PodStack(pod.key, spec.name, spec.bridge, pod.ip, plen,
                    bridge_gateway(state, spec.bridge, pod.ip & prefix_mask(plen), prefix_mask(plen), spec.pod_cidr))


def bridge_gateway(state: NodeState, bridge: str, network: int, mask: int, pod_cidr: tuple[int, int]) -> int | None:
    """The bridge address a pod of subnet network/mask uses as its gateway: the one inside that
    subnet, else the one inside the node's pod CIDR (what IPAM hands out as the gateway), else the
    bridge's first; None when the bridge has no address."""
    iface = state.interfaces.get(bridge)
    addresses = [a.ip for a in iface.addresses] if iface is not None else []
    for net in ((network, mask), pod_cidr):
        inside = next((ip for ip in addresses if in_network(ip, *net)), None)
        if inside is not None:
            return inside
    return addresses[0] if addresses else None


def martian_at_pod(stack: PodStack, pkt: Packet) -> str:
    """Why the pod's kernel drops ``pkt`` arriving on eth0 before any socket (empty: it does not)."""
    src = pkt.src
    if src == stack.address:
        return (f"martian source at pod {stack.key}: {format_ip(src)} is its own address, arriving on eth0 (a "
                "hairpin without masquerade): its kernel drops it before any socket")
    if is_multicast(src) or src == LIMITED_BROADCAST or is_zeronet(src):
        return f"martian source at pod {stack.key}: {format_ip(src)}"
    if is_loopback(src) or is_loopback(pkt.dst):
        return f"martian address at pod {stack.key}: {pkt.describe()} arrived on eth0 (route_localnet=0)"
    return ""
