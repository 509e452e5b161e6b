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
from dataclasses import dataclass

from .rule_text import quote

__all__ = ["ServicePort", "kube_proxy_iptables_rules", "chain_suffix"]


@dataclass(frozen=True)
class ServicePort:
    """One service port: ``name`` is ``namespace/service:port``; endpoints are ``ip:port``."""
    name: str
    cluster_ip: str
    port: int
    protocol: str
    endpoints: tuple[str, ...]


def chain_suffix(*parts: str) -> str:
    """kube-proxy's 16-character chain suffix (base32 of a SHA-256, as servicePortChainName does)."""
    digest = hashlib.sha256("".join(parts).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def kube_proxy_iptables_rules(services: list[ServicePort], *, cluster_cidr: str) -> str:
    """Return iptables-save text for ``services`` (nat and filter tables)."""
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
    filter_rules = [
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    ]
    dispatch: list[str] = []
    bodies: list[str] = []
    for svc in services:
        proto = svc.protocol.lower()
        if not svc.endpoints:
            filter_rules.append(f'-A KUBE-SERVICES -d {svc.cluster_ip}/32 -p {proto} -m comment --comment '
                                f'{quote(svc.name + " has no endpoints")} -m {proto} --dport {svc.port} '
                                "-j REJECT --reject-with icmp-port-unreachable")
            continue
        svc_chain = "KUBE-SVC-" + chain_suffix(svc.name, proto)
        nat_chains.append(svc_chain)
        dispatch.append(f'-A KUBE-SERVICES -d {svc.cluster_ip}/32 -p {proto} -m comment --comment '
                        f'{quote(svc.name + " cluster IP")} -m {proto} --dport {svc.port} -j {svc_chain}')
        bodies.append(f'-A {svc_chain} ! -s {cluster_cidr} -d {svc.cluster_ip}/32 -p {proto} -m comment '
                      f'--comment {quote(svc.name + " cluster IP")} -m {proto} --dport {svc.port} -j KUBE-MARK-MASQ')
        # kube-proxy writes one KUBE-SEP chain per distinct endpoint address: two pods sharing an
        # address (docker's default 172.17.0.0/16 on every node) are one endpoint to it, and the
        # invariants, not the generator, report the shared address.
        endpoints = tuple(dict.fromkeys(svc.endpoints))
        n = len(endpoints)
        for i, ep in enumerate(endpoints):
            sep = "KUBE-SEP-" + chain_suffix(svc.name, proto, ep)
            nat_chains.append(sep)
            stat = f" -m statistic --mode random --probability {1.0 / (n - i):.11f}" if i < n - 1 else ""
            bodies.append(f'-A {svc_chain} -m comment --comment {quote(f"{svc.name} -> {ep}")}{stat} -j {sep}')
            ip = ep.rsplit(":", 1)[0]
            bodies.append(f'-A {sep} -s {ip}/32 -m comment --comment {quote(svc.name)} -j KUBE-MARK-MASQ')
            bodies.append(f'-A {sep} -p {proto} -m comment --comment {quote(svc.name)} -m {proto} '
                          f'-j DNAT --to-destination {ep}')
    dispatch.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be '
                    'the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    out = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
           ":KUBE-SERVICES - [0:0]", *filter_rules, "COMMIT", "*nat", ":PREROUTING ACCEPT [0:0]",
           ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"]
    out += [f":{c} - [0:0]" for c in nat_chains]
    out += nat_rules + dispatch + bodies + ["COMMIT", ""]
    return "\n".join(out)
