"""kube-proxy iptables-mode rules as kube-proxy writes them (iptables-restore input).

Per service port: a ``KUBE-SERVICES`` dispatch rule, a ``KUBE-SVC-*`` chain
that marks off-cluster clients for masquerade and picks an endpoint with
``-m statistic --mode random --probability 1/(n-i)``, and one ``KUBE-SEP-*``
chain per endpoint (hairpin mark, then DNAT). Services without endpoints get a
filter ``REJECT``.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from dataclasses import dataclass, replace

from .rule_text import quote

__all__ = ["ServicePort", "kube_proxy_iptables_rules", "chain_suffix", "service_port_name"]


@dataclass(frozen=True)
class ServicePort:
    """One service port: ``name`` is ``namespace/service:port`` (a port without a name:
    ``namespace/service:`` or ``namespace/service``, see :func:`service_port_name`); endpoints are ``ip:port``.

    The rest is how the service is exposed and its policies: ``local_endpoints`` are the
    endpoints on the node the rules are for (what ``*TrafficPolicy: Local`` keeps), ``node_port``
    (0: none), ``external_ips`` and ``lb_ips`` (LoadBalancer ingress), ``lb_source_ranges``
    (CIDR strings; a ``KUBE-FW-*`` chain when given), and ``affinity_timeout`` (seconds of
    ``sessionAffinity: ClientIP``; 0: none)."""
    name: str
    cluster_ip: str
    port: int
    protocol: str
    endpoints: tuple[str, ...]
    local_endpoints: tuple[str, ...] = ()
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    lb_ips: tuple[str, ...] = ()
    lb_source_ranges: tuple[str, ...] = ()
    external_local: bool = False
    internal_local: bool = False
    affinity_timeout: int = 0

    @property
    def external(self) -> bool:
        return bool(self.node_port or self.external_ips or self.lb_ips)


def service_port_name(name: str) -> str:
    """kube-proxy's ServicePortName.String() for our ``namespace/service:port``: the ``:`` only when
    the port has a name (fmtPortName, pkg/proxy/types.go), so an unnamed port is ``namespace/service``.
    It is what the iptables and userspace proxiers write in comments and hash into chain names
    (servicePortName.String(), portProtoHash). Namespace, service and port names hold no ``:``."""
    return name[:-1] if name.endswith(":") else name


def chain_suffix(*parts: str) -> str:
    """kube-proxy's 16-character chain suffix (base32 of a SHA-256, as servicePortChainName does)."""
    digest = hashlib.sha256("".join(parts).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def kube_proxy_iptables_rules(services: list[ServicePort], *, cluster_cidr: str, node_ip: str | None) -> str:
    """Return iptables-save text for ``services`` (nat and filter tables), as kube-proxy's
    iptables proxier (v1.27 and later) writes it on one node. ``node_ip`` is kube-proxy's
    ``nodeIP`` on that node: a LoadBalancer's own IPs get through its source ranges only when a
    range holds it (None: an address no range holds)."""
    nat_chains = ["KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-MARK-MASQ", "KUBE-NODEPORTS"]
    nat_rules = [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
    ]
    filter_chains = ["KUBE-SERVICES"]
    filter_rules = [
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    ]
    if any(svc.external for svc in services):
        filter_chains += ["KUBE-EXTERNAL-SERVICES", "KUBE-PROXY-FIREWALL"]
        for hook in ("INPUT", "FORWARD"):
            filter_rules.append(f'-A {hook} -m conntrack --ctstate NEW -m comment --comment "kubernetes '
                                'externally-visible service portals" -j KUBE-EXTERNAL-SERVICES')
        for hook in ("INPUT", "FORWARD", "OUTPUT"):
            filter_rules.append(f'-A {hook} -m conntrack --ctstate NEW -m comment --comment "kubernetes load '
                                'balancer firewall" -j KUBE-PROXY-FIREWALL')
    out = _Rules(nat_chains, filter_rules, node_ip)
    for svc in services:
        name = service_port_name(svc.name)
        _service_rules(svc if name == svc.name else replace(svc, name=name), cluster_cidr, out)
    out.dispatch.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be '
                        'the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    text = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
            *[f":{c} - [0:0]" for c in filter_chains], *filter_rules, "COMMIT", "*nat", ":PREROUTING ACCEPT [0:0]",
            ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"]
    text += [f":{c} - [0:0]" for c in nat_chains]
    text += nat_rules + out.nodeports + out.dispatch + out.bodies + ["COMMIT", ""]
    return "\n".join(text)


class _Rules:
    """The rule lists one dump is made of, filled service by service."""

    def __init__(self, nat_chains: list[str], filter_rules: list[str], node_ip: str | None) -> None:
        self.node_ip = ipaddress.ip_address(node_ip) if node_ip else None
        self.nat_chains = nat_chains
        self.filter = filter_rules
        self.nodeports: list[str] = []     # KUBE-NODEPORTS
        self.dispatch: list[str] = []      # KUBE-SERVICES (nat)
        self.bodies: list[str] = []        # the per-service chains


@dataclass(frozen=True)
class _Port:
    """One service port as its rules name it: the protocol, the ``-p -m comment -m --dport`` match
    (``{}`` for the comment and the port), its chains, its distinct and local endpoints, and the
    doors from outside (external and LoadBalancer IPs)."""
    svc: ServicePort
    proto: str
    match: str
    svc_chain: str
    svl_chain: str
    ext_chain: str
    fw_chain: str
    endpoints: tuple[str, ...]
    local: tuple[str, ...]
    doors: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, svc: ServicePort) -> _Port:
        proto = svc.protocol.lower()
        suffix = chain_suffix(svc.name, proto)
        # kube-proxy writes one KUBE-SEP chain per distinct endpoint address: two pods sharing an
        # address (docker's default 172.17.0.0/16 on every node) are one endpoint to it, and the
        # invariants, not the generator, report the shared address.
        endpoints = tuple(dict.fromkeys(svc.endpoints))
        local = tuple(ep for ep in endpoints if ep in set(svc.local_endpoints))
        doors = tuple([(ip, "external IP") for ip in svc.external_ips] + [(ip, "loadbalancer IP") for ip in svc.lb_ips])
        return cls(svc, proto, f"-p {proto} -m comment --comment {{}} -m {proto} --dport {{}}",
                   *(f"KUBE-{kind}-{suffix}" for kind in ("SVC", "SVL", "EXT", "FW")), endpoints, local, doors)

    def sep(self, ep: str) -> str:
        """The KUBE-SEP chain of endpoint ``ep``."""
        return "KUBE-SEP-" + chain_suffix(self.svc.name, self.proto, ep)

    def door_rules(self, out: _Rules, chain: str, comment: str, target: str) -> None:
        """``target`` for every way in from outside: external IPs, LB IPs, the NodePort."""
        svc, match = self.svc, self.match
        for ip, _what in self.doors:
            out.filter.append(f"-A {chain} -d {ip}/32 {match.format(quote(comment), svc.port)} -j {target}")
        if svc.node_port:
            out.filter.append(f"-A {chain} {match.format(quote(comment), svc.node_port)} -m addrtype --dst-type "
                              f"LOCAL -j {target}")


def _service_rules(svc: ServicePort, cluster_cidr: str, out: _Rules) -> None:
    """One service port's rules, following kube-proxy's syncProxyRules."""
    port = _Port.of(svc)
    if not port.endpoints:
        out.filter.append(f"-A KUBE-SERVICES -d {svc.cluster_ip}/32 {port.match.format(quote(svc.name + ' has no endpoints'), svc.port)} "
                          "-j REJECT --reject-with icmp-port-unreachable")
        port.door_rules(out, "KUBE-EXTERNAL-SERVICES", svc.name + " has no endpoints",
                        "REJECT --reject-with icmp-port-unreachable")
        return
    internal_chain = port.svl_chain if svc.internal_local else port.svc_chain
    uses_svc = not svc.internal_local or (svc.external and not svc.external_local)
    uses_svl = bool(port.local) and (svc.internal_local or (svc.external and svc.external_local))
    if svc.internal_local and not port.local:
        out.filter.append(f"-A KUBE-SERVICES -d {svc.cluster_ip}/32 "
                          f"{port.match.format(quote(svc.name + ' has no local endpoints'), svc.port)} -j DROP")
    else:
        out.dispatch.append(f"-A KUBE-SERVICES -d {svc.cluster_ip}/32 "
                            f"{port.match.format(quote(svc.name + ' cluster IP'), svc.port)} -j {internal_chain}")
    if svc.external:
        _external_rules(port, cluster_cidr, out)
        uses_svc = uses_svc or svc.external_local
    for chain, eps, used in ((port.svc_chain, port.endpoints, uses_svc), (port.svl_chain, port.local, uses_svl)):
        if used and eps:
            _balancing_chain(port, chain, eps, chain == internal_chain, cluster_cidr, out)
    _endpoint_chains(port, out)


def _external_rules(port: _Port, cluster_cidr: str, out: _Rules) -> None:
    """The ways in from outside: the doors' dispatch and NodePort rules into KUBE-EXT-*, its body
    (masquerade, then the service or its local endpoints), and the LoadBalancer firewall."""
    svc, ext_chain, svc_chain = port.svc, port.ext_chain, port.svc_chain
    external_chain = port.svl_chain if svc.external_local else svc_chain
    if svc.external_local and not port.local:
        port.door_rules(out, "KUBE-EXTERNAL-SERVICES", svc.name + " has no local endpoints", "DROP")
    out.nat_chains.append(ext_chain)
    for ip, what in port.doors:
        target = port.fw_chain if what == "loadbalancer IP" and svc.lb_source_ranges else ext_chain
        out.dispatch.append(f"-A KUBE-SERVICES -d {ip}/32 {port.match.format(quote(f'{svc.name} {what}'), svc.port)} "
                            f"-j {target}")
    if svc.node_port:
        out.nodeports.append(f"-A KUBE-NODEPORTS {port.match.format(quote(svc.name), svc.node_port)} -j {ext_chain}")
    if svc.external_local:
        out.bodies += [
            f"-A {ext_chain} -s {cluster_cidr} -m comment --comment "
            f"{quote(f'pod traffic for {svc.name} external destinations')} -j {svc_chain}",
            f"-A {ext_chain} -m comment --comment {quote(f'masquerade LOCAL traffic for {svc.name} external destinations')}"
            " -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
            f"-A {ext_chain} -m comment --comment {quote(f'route LOCAL traffic for {svc.name} external destinations')}"
            f" -m addrtype --src-type LOCAL -j {svc_chain}"]
    else:
        out.bodies.append(f"-A {ext_chain} -m comment --comment "
                          f"{quote(f'masquerade traffic for {svc.name} external destinations')} -j KUBE-MARK-MASQ")
    if external_chain == svc_chain or port.local:
        out.bodies.append(f"-A {ext_chain} -j {external_chain}")
    if svc.lb_source_ranges and svc.lb_ips:
        _firewall_rules(port, out)


def _firewall_rules(port: _Port, out: _Rules) -> None:
    """loadBalancerSourceRanges: KUBE-FW-* lets the ranges on to KUBE-EXT-* (and the LB IPs
    themselves when a range holds the node's IP: allowFromNode, for a VIP routed locally, whose
    requests from the node loop back from the VIP); KUBE-PROXY-FIREWALL drops the rest."""
    svc, fw_chain = port.svc, port.fw_chain
    out.nat_chains.append(fw_chain)
    lb_comment = quote(f"{svc.name} loadbalancer IP")
    node_ip = out.node_ip
    from_node = node_ip is not None and any(node_ip in ipaddress.ip_network(r, strict=False)
                                            for r in svc.lb_source_ranges)
    for source in (*svc.lb_source_ranges, *(f"{ip}/32" for ip in svc.lb_ips if from_node)):
        out.bodies.append(f"-A {fw_chain} -s {source} -m comment --comment {lb_comment} -j {port.ext_chain}")
    out.bodies.append(f"-A {fw_chain} -m comment --comment "
                      f"{quote(f'other traffic to {svc.name} will be dropped by KUBE-PROXY-FIREWALL')}")
    for ip in svc.lb_ips:
        out.filter.append(f"-A KUBE-PROXY-FIREWALL -d {ip}/32 "
                          f"{port.match.format(quote(f'{svc.name} traffic not accepted by {fw_chain}'), svc.port)} -j DROP")


def _balancing_chain(port: _Port, chain: str, eps: tuple[str, ...], internal: bool, cluster_cidr: str,
                     out: _Rules) -> None:
    """KUBE-SVC-* (every endpoint) or KUBE-SVL-* (the local ones): the masquerade mark of
    off-cluster clients (the chain the cluster IP dispatches to), session affinity, then one
    endpoint picked with ``--probability 1/(n-i)``."""
    svc = port.svc
    out.nat_chains.append(chain)
    if internal:
        out.bodies.append(f"-A {chain} ! -s {cluster_cidr} -d {svc.cluster_ip}/32 "
                          f"{port.match.format(quote(svc.name + ' cluster IP'), svc.port)} -j KUBE-MARK-MASQ")
    seps = [(ep, port.sep(ep)) for ep in eps]
    if svc.affinity_timeout:
        for ep, sep in seps:
            out.bodies.append(f"-A {chain} -m comment --comment {quote(f'{svc.name} -> {ep}')} -m recent --rcheck "
                              f"--seconds {svc.affinity_timeout} --reap --name {sep} --mask 255.255.255.255 "
                              f"--rsource -j {sep}")
    n = len(seps)
    for i, (ep, sep) in enumerate(seps):
        stat = f" -m statistic --mode random --probability {1.0 / (n - i):.11f}" if i < n - 1 else ""
        out.bodies.append(f"-A {chain} -m comment --comment {quote(f'{svc.name} -> {ep}')}{stat} -j {sep}")


def _endpoint_chains(port: _Port, out: _Rules) -> None:
    """One KUBE-SEP-* per endpoint: the hairpin mark, then DNAT (and affinity's --set)."""
    svc, proto = port.svc, port.proto
    for ep in port.endpoints:
        sep = port.sep(ep)
        out.nat_chains.append(sep)
        ip = ep.rsplit(":", 1)[0]
        recent = f" -m recent --set --name {sep} --mask 255.255.255.255 --rsource" if svc.affinity_timeout else ""
        out.bodies.append(f"-A {sep} -s {ip}/32 -m comment --comment {quote(svc.name)} -j KUBE-MARK-MASQ")
        out.bodies.append(f"-A {sep} -p {proto} -m comment --comment {quote(svc.name)}{recent} -m {proto} "
                          f"-j DNAT --to-destination {ep}")
