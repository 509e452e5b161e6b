"""kube-proxy userspace-mode rules as it wrote them (iptables-restore input).

Per service port, kube-proxy listens on a proxy port of its own and installs
``KUBE-PORTALS-CONTAINER`` (PREROUTING: traffic from pods, REDIRECT to the
proxy port) and ``KUBE-PORTALS-HOST`` (OUTPUT: traffic from the node, DNAT to
``node-ip:proxy-port``), plus the NodePort chains, as in the seed notes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .kube_proxy_iptables import service_port_name
from .rule_text import quote

__all__ = ["PortalPort", "kube_proxy_userspace_rules"]


@dataclass(frozen=True)
class PortalPort:
    """One service port on one node: ``name`` is ``namespace/service:port`` (``namespace/service:``
    or ``namespace/service`` when the port has no name; its rules' comments say ``namespace/service``)."""
    name: str
    cluster_ip: str
    port: int
    protocol: str          # "tcp" | "udp"
    proxy_port: int
    node_port: int = 0                     # 0: none
    external_ips: tuple[str, ...] = ()     # spec.externalIPs
    lb_ips: tuple[str, ...] = ()           # LoadBalancer ingress IPs


def kube_proxy_userspace_rules(portals: list[PortalPort], *, node_ip: str) -> str:
    """Return iptables-save text (nat table) for kube-proxy in userspace mode on ``node_ip``."""
    rules = [
        '-A PREROUTING -m comment --comment "handle ClusterIPs; NOTE: this must be before the NodePort rules"'
        " -j KUBE-PORTALS-CONTAINER",
        '-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment "handle service NodePorts; NOTE: this must'
        ' be the last rule in the chain" -j KUBE-NODEPORT-CONTAINER',
        '-A OUTPUT -m comment --comment "handle ClusterIPs; NOTE: this must be before the NodePort rules"'
        " -j KUBE-PORTALS-HOST",
        '-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment "handle service NodePorts; NOTE: this must be'
        ' the last rule in the chain" -j KUBE-NODEPORT-HOST',
    ]
    filter_rules: list[str] = []
    for p in portals:
        # the comment is the ServicePortName's String() (iptablesCommonPortalArgs, pkg/proxy/userspace/proxier.go)
        head = f"-p {p.protocol} -m comment --comment {quote(service_port_name(p.name))} -m {p.protocol} --dport"
        redirect, dnat = f"-j REDIRECT --to-ports {p.proxy_port}", f"-j DNAT --to-destination {node_ip}:{p.proxy_port}"
        # The ClusterIP and each LoadBalancer ingress IP: from containers and from the host.
        for ip in (p.cluster_ip, *p.lb_ips):
            rules.append(f"-A KUBE-PORTALS-CONTAINER -d {ip}/32 {head} {p.port} {redirect}")
            rules.append(f"-A KUBE-PORTALS-HOST -d {ip}/32 {head} {p.port} {dnat}")
        # External IPs: traffic that did not come from a bridge port (the physical interface),
        # traffic for a local address, and the host's own.
        for ip in p.external_ips:
            rules.append(f"-A KUBE-PORTALS-CONTAINER -d {ip}/32 {head} {p.port} -m physdev ! --physdev-is-in {redirect}")
            rules.append(f"-A KUBE-PORTALS-CONTAINER -d {ip}/32 {head} {p.port} -m addrtype --dst-type LOCAL {redirect}")
            rules.append(f"-A KUBE-PORTALS-HOST -d {ip}/32 {head} {p.port} -m addrtype --dst-type LOCAL {dnat}")
        if p.node_port:
            rules.append(f"-A KUBE-NODEPORT-CONTAINER {head} {p.node_port} {redirect}")
            rules.append(f"-A KUBE-NODEPORT-HOST {head} {p.node_port} {dnat}")
            filter_rules.append(f"-A KUBE-NODEPORT-NON-LOCAL {head} {p.proxy_port} -m state --state NEW -j ACCEPT")
    chains = ["KUBE-PORTALS-CONTAINER", "KUBE-PORTALS-HOST", "KUBE-NODEPORT-CONTAINER", "KUBE-NODEPORT-HOST"]
    out = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
           ":POSTROUTING ACCEPT [0:0]", *[f":{c} - [0:0]" for c in chains], *rules, "COMMIT", ""]
    if filter_rules:       # the proxy's own port, let in past a default-deny INPUT
        out[:0] = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
                   ":KUBE-NODEPORT-NON-LOCAL - [0:0]", '-A INPUT -m comment --comment "Ensure that non-local NodePort '
                   'traffic can flow" -j KUBE-NODEPORT-NON-LOCAL', *filter_rules, "COMMIT"]
    return "\n".join(out)
