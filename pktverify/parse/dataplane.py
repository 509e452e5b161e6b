"""What a node's dumps say it runs: kube-proxy's mode and any overlay network.

pktverify models kube-proxy's userspace and iptables modes and pod traffic routed directly between
nodes (``10.1.20.0/24 via <node>``). A real node may run something else — kube-proxy in IPVS mode,
a VXLAN or IP-in-IP overlay (flannel, Calico), Cilium's eBPF dataplane — and verifying it as if it
ran the modelled one would report a page of false violations. This module reads the evidence from
the dumps, so that the loaders can verify by what the node runs and refuse, in one line naming
the node and what was seen, what is not modelled.

Evidence, strongest first:

* IPVS: interface ``kube-ipvs0``; ipsets ``KUBE-CLUSTER-IP``/``KUBE-LOAD-BALANCER``; rules that
  match those sets (``-m set --match-set KUBE-CLUSTER-IP``).
* userspace: chains ``KUBE-PORTALS-CONTAINER``/``KUBE-PORTALS-HOST``.
* iptables: ``KUBE-SERVICES`` in the nat table (with ``KUBE-SVC-*``/``KUBE-SEP-*`` chains once a
  service has endpoints) and no IPVS evidence.
* nftables: table ``ip kube-proxy`` or ``inet kube-proxy`` in the node's nft dump (any of its three
  forms, found by pattern without parsing it). nftables mode writes no iptables rules at all: without
  the nft dump, "no kube-proxy rules found" is all the iptables-save can say.
* mid-migration (``Dataplane.leftovers``): nftables mode's table beside iptables mode's rules. kube-proxy
  in either mode deletes the other mode's rules when it starts (``platformCleanup``: iptables'
  ``CleanupLeftovers`` in nftables mode, nftables' in iptables mode), and only nftables mode writes the
  table, so the table is taken as the running kube-proxy's and the iptables rules as leftovers of its
  old mode, which the kernel still runs (both are verified, in the kernel's order: chains of equal
  priority newest first, so iptables-nft's ``table ip nat`` listed after kube-proxy's table, re-created
  by an ``iptables-restore`` without ``--noflush``, translates before it).
* overlays: interfaces ``flannel.*``, ``vxlan*`` (``vxlan.calico``), ``tunl0`` with an address,
  ``cilium_*``, ``wireguard.cali``, ``wg*``, ``genev_sys_*``; ``onlink`` routes via gateways that are
  no node's address; routes to another node's pod CIDR through such a device.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..model.addresses import format_ip, format_network, in_network
from ..model.node import Interface, Route

__all__ = ["Dataplane", "detect_dataplane", "routes_worth_reading", "MODELLED_MODES", "nft_tables"]

MODELLED_MODES = ("userspace", "iptables", "nftables")
_IPVS_SETS = ("KUBE-CLUSTER-IP", "KUBE-LOAD-BALANCER")
_USERSPACE_CHAINS = ("KUBE-PORTALS-CONTAINER", "KUBE-PORTALS-HOST")
# Interface names overlays and eBPF dataplanes create (tunl0 is special: see _overlay_interfaces).
_HEADER = re.compile(r"^([*:])(\S+)", re.M)         # *table and :chain lines
_MATCH_SET = re.compile(r"--match-set\s+(\S+)")
_NFT_TABLE = re.compile(r"^[ \t]*(?:(?:add|create)[ \t]+)?table[ \t]+(\w+)[ \t]+\"?kube-proxy\"?(?=[\s{;]|$)", re.M)
_NFT_JSON_TABLE = re.compile(r'"table"\s*:\s*\{([^{}]*)\}')
_JSON_FAMILY = re.compile(r'"family"\s*:\s*"(\w+)"')
_JSON_NAME = re.compile(r'"name"\s*:\s*"([^"]*)"')
_OVERLAY_WORDS = ("onlink", "flannel", "vxlan", "cilium_", "tunl0", "wireguard", "wg", "genev", "weave", "ovn-k8s",
                  "antrea-tun")
_OVERLAY_NAME = re.compile(r"^(flannel[.-]|vxlan|cilium_|wireguard\.cali$|wg|genev_sys_|geneve|weave$|"
                           r"ovn-k8s-mp|antrea-tun)")


@dataclass(frozen=True)
class Dataplane:
    """What one node's dumps show. ``proxy_mode``: "userspace", "iptables", "ipvs", "nftables", or None when
    the dumps hold no kube-proxy rules (or no rules were given); ``proxy_evidence``: what showed
    it (e.g. ``interface kube-ipvs0``); ``overlay``: what shows an overlay or eBPF dataplane;
    ``conflict``: two modes' rules on one node that pktverify does not verify together; ``leftovers``:
    what shows iptables mode's rules beside nftables mode's table (a node in the middle of a migration:
    ``proxy_mode`` is "nftables", the rules are its old mode's leftovers)."""
    proxy_mode: str | None = None
    proxy_evidence: tuple[str, ...] = ()
    overlay: tuple[str, ...] = ()
    conflict: str = ""
    leftovers: tuple[str, ...] = ()

    @property
    def mixed(self) -> bool:
        """A node in the middle of a migration: nftables mode's table beside iptables mode's rules."""
        return bool(self.leftovers)

    def unmodelled(self) -> str:
        """Why this node cannot be verified (empty when it can), as the end of a sentence
        that starts with the node: ``runs kube-proxy in IPVS mode (...): not modelled yet; ...``."""
        if self.conflict:
            return f"has rules of two kube-proxy modes ({self.conflict}): a mode change left behind? pktverify " \
                   "verifies one mode per cluster"
        if self.proxy_mode == "ipvs":
            return f"runs kube-proxy in IPVS mode ({', '.join(self.proxy_evidence)}): not modelled yet; pktverify " \
                   "models the userspace, iptables and nftables modes"
        if self.overlay:
            what = "Cilium's eBPF dataplane" if any("cilium_" in e for e in self.overlay) else "an overlay network"
            return f"runs {what} ({', '.join(self.overlay[:3])}{', ...' if len(self.overlay) > 3 else ''}): not " \
                   "modelled yet; pktverify models pod traffic routed directly between nodes"
        return ""


def detect_dataplane(*, iptables: str | None = None, interfaces: Mapping[str, Interface] | None = None,
                     routes: Iterable[Route] | None = None, ipsets: str | None = None,
                     node_ips: Iterable[int] = (), pod_cidrs: Iterable[tuple[int, int]] = (),
                     nft: str | None = None) -> Dataplane:
    """The dataplane the given dumps show (each may be None: not collected).

    ``iptables``/``ipsets``/``nft``: the ``iptables-save``/``ipset save``/nft dump text; ``interfaces``/``routes``:
    the parsed ``ip addr``/``ip route``; ``node_ips``: every node's address (an ``onlink`` route via
    one of them is direct routing); ``pod_cidrs``: the other nodes' pod CIDRs.

    >>> detect_dataplane(iptables="*nat\\n:KUBE-PORTALS-HOST - [0:0]\\nCOMMIT\\n").proxy_mode
    'userspace'
    """
    ipvs: list[str] = []
    if interfaces is not None and "kube-ipvs0" in interfaces:
        ipvs.append("interface kube-ipvs0")
    chains, set_matches = _chains_and_sets(iptables or "")
    sets = _ipset_names(ipsets or "")
    ipvs += [f"ipset {name}" for name in _IPVS_SETS if name in sets]
    ipvs += [f"rules matching set {name}" for name in _IPVS_SETS if name in set_matches and name not in sets]
    userspace = [c for c in _USERSPACE_CHAINS if c in chains]
    # iptables mode always has nat KUBE-SERVICES (IPVS mode too, told apart above); KUBE-SVC-*/KUBE-SEP-*
    # chains only once a service has endpoints.
    services = sorted({c[:9] + "*" for c in chains if c.startswith(("KUBE-SVC-", "KUBE-SEP-"))})
    iptables_mode = ["chain nat/KUBE-SERVICES"] + [f"chains {c}" for c in services] \
        if "nat" in chains.get("KUBE-SERVICES", set()) and not ipvs else []
    found = [(mode, evidence) for mode, evidence in (("ipvs", ipvs), ("userspace", userspace),
                                                     ("iptables", iptables_mode), ("nftables", nft_tables(nft or "")))
             if evidence]
    conflict, leftovers = "", ()
    if [m for m, _ev in found] == ["iptables", "nftables"]:        # mid-migration: see the module's docstring
        leftovers = tuple(found[0][1])
        found = [("nftables", found[1][1] + [f"beside iptables mode's rules ({', '.join(leftovers)}): leftovers "
                                             "of a migration"])]
    elif len(found) > 1 and found[0][0] != "ipvs":
        conflict = "; ".join(f"{mode}: {', '.join(ev)}" for mode, ev in found)
    mode, evidence = found[0] if found else (None, [])
    overlay = _overlay_interfaces(interfaces or {}) + _overlay_routes(routes or (), set(node_ips), list(pod_cidrs))
    return Dataplane(mode, tuple(evidence), tuple(dict.fromkeys(overlay)), conflict, leftovers)


def nft_tables(text: str) -> list[str]:
    """kube-proxy's own nftables tables (IPv4: ``ip``/``inet kube-proxy``) an nft dump holds, as
    evidence (``table ip kube-proxy``), found by pattern in JSON, listings and scripts alike."""
    if "kube-proxy" not in text:
        return []
    found = set(_NFT_TABLE.findall(text))
    for body in _NFT_JSON_TABLE.findall(text):
        family, name = _JSON_FAMILY.search(body), _JSON_NAME.search(body)
        if family and name and name.group(1) == "kube-proxy":
            found.add(family.group(1))
    return [f"nft table {family} kube-proxy" for family in sorted(found) if family in ("ip", "inet")]


def _chains_and_sets(text: str) -> tuple[dict[str, set[str]], set[str]]:
    """Chain name -> the tables that declare it (iptables-save declares every chain it lists), and
    the set names rules match; read by regular expressions, a 100,000-rule dump in milliseconds."""
    chains: dict[str, set[str]] = {}
    table = ""
    for kind, name in _HEADER.findall(text):
        if kind == "*":
            table = name
        else:
            chains.setdefault(name, set()).add(table)
    return chains, set(_MATCH_SET.findall(text)) if "--match-set" in text else set()


def routes_worth_reading(text: str) -> bool:
    """Whether a route dump's text may show an overlay (an ``onlink`` route, a device an overlay
    makes): parsing thousands of routes only to find none is the cost of a large cluster's load."""
    return any(word in text for word in _OVERLAY_WORDS)


def _ipset_names(text: str) -> set[str]:
    return {line.split()[1] for line in text.splitlines() if line.startswith("create ") and len(line.split()) > 1}


def _overlay_interfaces(interfaces: Mapping[str, Interface]) -> list[str]:
    out = []
    for name, iface in interfaces.items():
        # The kernel makes tunl0 whenever the ipip module is loaded; Calico's IP-in-IP gives it an address.
        if _OVERLAY_NAME.match(name) or (name == "tunl0" and iface.addresses):
            out.append(f"interface {name}")
    return out


def _overlay_routes(routes: Iterable[Route], node_ips: set[int], pod_cidrs: list[tuple[int, int]]) -> list[str]:
    out = []
    for r in routes:
        if r.table not in ("main", "") or r.kind != "unicast":
            continue
        if r.onlink and r.gateway is not None and r.gateway not in node_ips:
            out.append(f"route {format_network(r.network, r.mask)} via {format_ip(r.gateway)} dev {r.dev} onlink")
        elif (r.dev and (_OVERLAY_NAME.match(r.dev) or r.dev == "tunl0")      # the cheap test first: nodes x routes
              and any(in_network(r.network, *cidr) for cidr in pod_cidrs)):
            out.append(f"route {format_network(r.network, r.mask)} dev {r.dev}")
    return out
