"""The documented, deliberate differences between kube-proxy's iptables and nftables modes, as labels
on the cells of a ``diff`` between one mode's rules and the other's.

Sources: Kubernetes' "Virtual IPs and Service Proxies", section "Migrating from iptables mode to
nftables" (kubernetes/website content/en/docs/reference/networking/virtual-ips.md), and KEP-3866
"Add an nftables-based kube-proxy backend", section "Changes from the iptables kube-proxy backend"
(Localhost NodePorts, NodePort Addresses, Behavior of service IPs), as kube-proxy's nftables proxier
writes them (its ``cluster-ips-check`` chain: "Reject traffic to invalid ports of ClusterIPs",
"Drop traffic to unallocated ClusterIPs"; ``nodeport-ips``: ``--nodeport-addresses``, default
``primary``).

A cell is labelled only when the whole cell lies inside one such region AND the two fates are
exactly the ones the difference gives (the nftables side does not DNAT, drops or rejects as
designed; the iptables side does what a service does there): a missing endpoint, a missing service
or a NodePort on the node's primary address is never labelled. The two documented differences a
first packet cannot show (the conntrack INVALID drop, the NodePort accept rules for other
firewalls) are not labelled: when they show through another firewall they stay plain differences.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...model import nft as n
from ...model.node import NodeState
from ...model.trace import Outcome
from ..headerspace import DPORT, DST, PROTO

__all__ = ["LOCALHOST_NODEPORT", "NODEPORT_ADDRESSES", "UNALLOCATED_CLUSTER_IP", "UNUSED_CLUSTER_IP_PORT",
           "ModeFacts", "mode_facts", "kube_proxy_mode"]

LOCALHOST_NODEPORT = ("NodePort not answered on 127.0.0.0/8: nftables mode does not set route_localnet "
                      "(iptables mode answers there)")
NODEPORT_ADDRESSES = ("NodePort answered only on --nodeport-addresses (nftables default: the node's primary IP; "
                      "iptables mode answers on every local address)")
UNALLOCATED_CLUSTER_IP = "traffic to an unallocated address of the service CIDR is dropped in nftables mode"
UNUSED_CLUSTER_IP_PORT = "traffic to a ClusterIP on a port (or protocol) it does not serve is rejected in nftables mode"

_LOOPBACK = (127 << 24, (127 << 24) | 0xFFFFFF)


def kube_proxy_mode(node: NodeState) -> str | None:
    """"iptables" (nat ``KUBE-SERVICES``, no ``table ip kube-proxy``), "nftables" (the reverse), or
    None (neither, or both: a node in the middle of a migration is not labelled)."""
    nat = node.ruleset.tables.get("nat")
    ipt = nat is not None and "KUBE-SERVICES" in nat.chains
    nft = node.nft is not None and node.nft.table("ip", "kube-proxy") is not None
    return "iptables" if ipt and not nft else "nftables" if nft and not ipt else None


@dataclass(frozen=True)
class ModeFacts:
    """What the nftables side's ``table ip kube-proxy`` serves, read from its sets and maps:
    ``nft_new`` (the nftables side is NEW), the NodePort (proto, port) keys, the addresses that
    take NodePorts, the node's local addresses and primary address (never labelled), the service
    CIDRs it drops, the ClusterIPs with the (proto, port) keys each serves, every address any of
    its maps serves (ranges) -- never part of the unallocated region --, and the nftables-mode
    node's route_localnet (with it, a loopback destination arriving from outside is no martian).
    Without a known primary address no NodePort outside loopback is labelled."""
    nft_new: bool
    nodeport_keys: frozenset
    nodeport_ips: frozenset
    local: frozenset
    primary: int | None
    service_cidrs: tuple
    cluster_ips: dict
    served: tuple
    localnet: bool = False

    def label(self, atoms: tuple, in_iface: str | None, before: tuple[Outcome, ...], after: tuple[Outcome, ...],
              fate_old: tuple, fate_new: tuple) -> str:
        """The deliberate difference this whole cell is, with exactly its fates; "" for none."""
        fi, fn = (fate_old, fate_new) if self.nft_new else (fate_new, fate_old)
        dst, protos, dports = atoms[DST], atoms[PROTO], atoms[DPORT]
        dnat_i, dnat_n = any("DNAT" in f for f in fi), any("DNAT" in f for f in fn)
        single = len(protos) == 1 and protos[0][0] == protos[0][1]
        if single and self._nodeport(dst, protos[0][0], dports) and not dnat_n and (dnat_i or fi in (("drop",), ("reject",))):
            if _inside(dst, [_LOOPBACK]):
                martian = fn == ("drop",) and in_iface is not None and not self.localnet
                return LOCALHOST_NODEPORT if fn == ("local",) or martian else ""
            return NODEPORT_ADDRESSES if fn == ("local",) and self.primary is not None else ""
        if dnat_i:
            return ""
        if fn == ("drop",) and _inside(dst, self.service_cidrs) and not _overlaps(dst, self.served):
            return UNALLOCATED_CLUSTER_IP
        if fn == ("reject",) and self._unused_port(dst, protos, dports):
            return UNUSED_CLUSTER_IP_PORT
        return ""

    def _nodeport(self, dst: tuple, proto: int, dports: tuple) -> bool:
        """Every destination a local address (or loopback) that takes no NodePort in nftables mode,
        never the primary address; every port a NodePort of ``proto``."""
        if not dports or not all(_count(self.nodeport_keys, proto, lo, hi) == hi - lo + 1 for lo, hi in dports):
            return False
        for lo, hi in dst:
            if _inside(((lo, hi),), [_LOOPBACK]):
                continue
            if hi - lo > 255 or any(a not in self.local or a in self.nodeport_ips or a == self.primary
                                    for a in range(lo, hi + 1)):
                return False
        return True

    def _unused_port(self, dst: tuple, protos: tuple, dports: tuple) -> bool:
        """Every destination an active ClusterIP, none serving any of ``protos`` on any of the ports."""
        addrs = [a for lo, hi in dst if hi - lo <= 65535 for a in range(lo, hi + 1)]
        if len(addrs) != sum(hi - lo + 1 for lo, hi in dst) or not all(a in self.cluster_ips for a in addrs):
            return False
        ports = dports if dports else ((0, 0),)
        return not any(plo <= p <= phi and lo <= port <= hi for a in addrs for p, port in self.cluster_ips[a]
                       for plo, phi in protos for lo, hi in ports)


def mode_facts(old: NodeState, new: NodeState, primary: int | None = None) -> ModeFacts | None:
    """The facts to label a diff between kube-proxy's two modes on one node, or None when the two
    sides are not one mode each (then nothing is labelled). ``primary``: the node's primary
    address (default: the address of the interface holding the default route)."""
    modes = (kube_proxy_mode(old), kube_proxy_mode(new))
    if set(modes) != {"iptables", "nftables"}:
        return None
    nft_node = new if modes[1] == "nftables" else old
    table = nft_node.nft.table("ip", "kube-proxy")
    keys = {name: [e.key for e in (table.set(name).elements if table.set(name) else ())]
            for name in ("cluster-ips", "nodeport-ips", "service-ips", "no-endpoint-services", "firewall-ips",
                         "service-nodeports", "no-endpoint-nodeports")}
    served = [_span(k[0] if isinstance(k, tuple) else k) for name in ("cluster-ips", "service-ips",
              "no-endpoint-services", "firewall-ips") for k in keys[name]]
    cluster = {k: set() for k in keys["cluster-ips"] if isinstance(k, int)}
    for k in keys["service-ips"] + keys["no-endpoint-services"]:
        if isinstance(k, tuple) and len(k) == 3 and k[0] in cluster:
            cluster[k[0]].add((k[1], k[2]))
    nodeports = frozenset(k for name in ("service-nodeports", "no-endpoint-nodeports") for k in keys[name]
                          if isinstance(k, tuple) and len(k) == 2 and all(isinstance(x, int) for x in k))
    return ModeFacts(modes[1] == "nftables", nodeports, frozenset(k for k in keys["nodeport-ips"] if isinstance(k, int)),
                     frozenset(nft_node.local_addresses()), primary if primary is not None else _primary(nft_node),
                     _service_cidrs(table), cluster, tuple(s for s in served if s is not None) + tuple(
                         (lo, hi) for k in keys["nodeport-ips"] for lo, hi in [_span(k) or (0, 0xFFFFFFFF)]),
                     nft_node.route_localnet)


def _primary(node: NodeState) -> int | None:
    """The first address of the interface that holds the default route (None: no default route)."""
    for route in node.routes:
        if route.mask == 0 and route.kind == "unicast" and route.table == "main" and route.dev in node.interfaces:
            addrs = node.interfaces[route.dev].addresses
            return addrs[0].ip if addrs else None
    return None


def _service_cidrs(table: n.NftTable) -> tuple:
    """The ranges ``cluster-ips-check`` drops (``ip daddr { CIDR } drop``)."""
    chain = table.chain("cluster-ips-check")
    out = []
    for rule in chain.rules if chain else ():
        if len(rule.exprs) != 2 or rule.exprs[1] != n.NftVerdict("drop"):
            continue
        match = rule.exprs[0]
        if not (isinstance(match, n.Match) and match.left == n.Payload("ip", "daddr") and match.op == "=="):
            continue
        right = match.right
        values = [e.key for e in right.elements] if isinstance(right, n.AnonSet) else [right]
        out += [s for s in map(_span, values) if s is not None]
    return tuple(out)


def _span(value) -> tuple[int, int] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, n.Prefix):
        size = 1 << (32 - value.length)
        return (value.addr, value.addr + size - 1)
    if isinstance(value, n.Range):
        return (value.low, value.high)
    return None


def _inside(atom: tuple, spans) -> bool:
    """Every interval of ``atom`` inside one of ``spans``."""
    return all(any(a <= lo and hi <= b for a, b in spans) for lo, hi in atom)


def _overlaps(atom: tuple, spans) -> bool:
    return any(lo <= b and a <= hi for lo, hi in atom for a, b in spans)


def _count(keys: frozenset, proto: int, lo: int, hi: int) -> int:
    if hi - lo > 65535:
        return 0
    return sum(1 for p, port in keys if p == proto and lo <= port <= hi)

