"""kube-proxy nftables-mode rules as kube-proxy (v1.33 and later) writes them: knftables transaction text.

One ``table ip kube-proxy`` (``ip6`` for IPv6): base chains on the filter and nat hooks, the
``service-ips`` / ``service-nodeports`` verdict maps that dispatch to one ``service-`` (or
``local-``) chain per service port, which marks off-cluster clients for masquerade and picks an
``endpoint-`` chain with ``numgen random mod N vmap``; ``external-`` chains for NodePorts,
external and LoadBalancer IPs; ``firewall-`` chains for loadBalancerSourceRanges; the
``no-endpoint-*`` maps that drop or reject; the ``cluster-ips`` check. Chain names carry
kube-proxy's hash (base32 of the SHA-256 of ``ns/svc/proto/port``, 8 characters).

Followed: ``pkg/proxy/nftables/proxier.go`` (``setupNFTables``, ``syncProxyRules``,
``writeServiceToEndpointRules``; danwinship/kubernetes 07c76c3a) with the base chains, jumps and
masquerade rule of kubernetes/kubernetes 81810de6's ``proxier_test.go`` expectations (the
version ``../shared/corpus/kube-proxy-nft`` was taken from). The commands come out in the order
knftables' ``Fake.Dump()`` prints them (chains, sets, maps by name; rules by chain; elements by
set), which ``nft -f`` loads: every chain and set is declared before a rule or element names it.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from dataclasses import dataclass, field, replace
from functools import lru_cache

from .kube_proxy_iptables import ServicePort

__all__ = ["kube_proxy_nft_rules", "nft_chain_base", "nft_endpoint_chain_base"]

TABLE = "kube-proxy"
# knftables.NameLengthMax (256) minus kube-proxy's chainNamePrefixLengthMax (16).
_NAME_BASE_MAX = 240

# (name, type, hook, priority): the base chains as the 81810de expectations declare them.
_BASE_CHAINS = (
    ("filter-prerouting-pre-dnat", "filter", "prerouting", -110),
    ("filter-output-pre-dnat", "filter", "output", -110),
    ("filter-forward", "filter", "forward", 0),
    ("filter-input", "filter", "input", 0),
    ("filter-output", "filter", "output", 0),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
    ("nat-prerouting", "nat", "prerouting", -100),
)
# (from, rule) in each base chain's own order.
_JUMPS = (
    ("filter-prerouting-pre-dnat", "ct state new jump firewall-check"),
    ("filter-output-pre-dnat", "ct state new jump firewall-check"),
    ("filter-forward", "ct state new jump service-endpoints-check"),
    ("filter-forward", "ct state new jump cluster-ips-check"),
    ("filter-input", "ct state new jump nodeport-endpoints-check"),
    ("filter-input", "ct state new jump service-endpoints-check"),
    ("filter-output", "ct state new jump service-endpoints-check"),
    ("filter-output", "ct state new jump cluster-ips-check"),
    ("nat-output", "jump services"),
    ("nat-postrouting", "jump masquerading"),
    ("nat-prerouting", "jump services"),
)
_MAPS = (
    ("firewall-ips", True, "destinations that are subject to LoadBalancerSourceRanges"),
    ("no-endpoint-nodeports", False, "vmap to drop or reject packets to service nodeports with no endpoints"),
    ("no-endpoint-services", True, "vmap to drop or reject packets to services with no endpoints"),
    ("service-ips", True, "ClusterIP, ExternalIP and LoadBalancer IP traffic"),
    ("service-nodeports", False, "NodePort traffic"),
)


@lru_cache(maxsize=1 << 16)
def _hash_and_truncate(name: str) -> str:
    """kube-proxy's hashAndTruncate: 8 base32 characters of SHA-256 (its first 5 bytes), a dash,
    the name; cut to 240 characters with ``...`` when longer."""
    out = base64.b32encode(hashlib.sha256(name.encode()).digest()[:5]).decode() + "-" + name
    return out[:_NAME_BASE_MAX - 3] + "..." if len(out) > _NAME_BASE_MAX else out


def _port_name_parts(name: str) -> tuple[str, str]:
    """``ns/svc:port`` -> (``ns/svc``, ``port``); no port name -> (``ns/svc``, "")."""
    svc, sep, port = name.rpartition(":")
    return (svc, port) if sep and "/" in svc else (name, "")


def nft_chain_base(name: str, protocol: str) -> str:
    """servicePortChainNameBase: ``HASH-ns/svc/proto/port`` for service port ``ns/svc:port``."""
    svc, port = _port_name_parts(name)
    return _hash_and_truncate(f"{svc}/{protocol.lower()}/{port}")


def _split_endpoint(endpoint: str) -> tuple[str, str]:
    """``ip:port`` or ``[ipv6]:port`` -> (ip, port)."""
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), port


def nft_endpoint_chain_base(name: str, protocol: str, endpoint: str) -> str:
    """servicePortEndpointChainNameBase: ``HASH-ns/svc/proto/port__ip/port`` (an IPv6 address's
    colons become dots)."""
    svc, port = _port_name_parts(name)
    ip, ep_port = _split_endpoint(endpoint)
    return _hash_and_truncate(f"{svc}/{protocol.lower()}/{port}__{ip.replace(':', '.')}/{ep_port}")


def _join_endpoint(ip: str, port: str) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass
class _Tx:
    """The objects of one transaction: chain name -> spec, set/map name -> spec, chain name ->
    rules, set/map name -> elements (deduplicated on the key, as the kernel keeps one)."""
    family: str
    chains: dict[str, str] = field(default_factory=dict)
    sets: dict[str, str] = field(default_factory=dict)
    maps: dict[str, str] = field(default_factory=dict)
    rules: dict[str, list[str]] = field(default_factory=dict)
    elements: dict[str, dict[str, str]] = field(default_factory=dict)

    def chain(self, name: str, spec: str = "") -> None:
        self.chains.setdefault(name, spec)

    def rule(self, chain: str, text: str, comment: str | None = None) -> None:
        self.rules.setdefault(chain, []).append(text + (f' comment "{comment}"' if comment is not None else ""))

    def element(self, container: str, key: str, value: str | None = None, comment: str | None = None) -> None:
        body = key + (f' comment "{comment}"' if comment is not None else "") + (f" : {value}" if value else "")
        self.elements.setdefault(container, {}).setdefault(key, body)

    def text(self) -> str:
        return "".join(self.text_around(""))

    def text_around(self, container: str) -> tuple[str, str]:
        """The transaction's text in two parts: up to where ``container``'s elements go (elements
        are written by container name), and after; ``container`` itself must have none here."""
        head = f"{self.family} {TABLE}"
        out = [f'add table {head} {{ comment "rules for kube-proxy" ; }}']
        out += [f"add chain {head} {n}{' { ' + s + ' }' if s else ''}" for n, s in sorted(self.chains.items())]
        out += [f"add set {head} {n} {{ {s} }}" for n, s in sorted(self.sets.items())]
        out += [f"add map {head} {n} {{ {s} }}" for n, s in sorted(self.maps.items())]
        out += [f"add rule {head} {c} {r}" for c in sorted(self.rules) for r in self.rules[c]]
        names = sorted(self.elements)
        before = [f"add element {head} {s} {{ {e} }}" for s in names if s < container for e in self.elements[s].values()]
        after = [f"add element {head} {s} {{ {e} }}" for s in names if s > container for e in self.elements[s].values()]
        return "\n".join(out + before) + "\n", "".join(line + "\n" for line in after)


@dataclass(frozen=True)
class _Options:
    """The proxier's settings as its rules use them."""
    ip: str                      # "ip" or "ip6"
    addr_type: str               # "ipv4_addr" or "ipv6_addr"
    version: int
    node_ip: str | None          # kube-proxy's nodeIP (the LoadBalancer source-range exception)
    if_local: str | None         # the LocalTrafficDetector: "ip saddr CIDR"; None: no detector
    masquerade_all: bool

    def of_family(self, address: str) -> bool:
        return _version(address) == self.version


@lru_cache(maxsize=1 << 16)
def _version(address: str) -> int:
    """4 or 6 (0: not an address, e.g. a headless service's "None")."""
    try:
        return ipaddress.ip_address(address.strip("[]")).version
    except ValueError:
        return 0


def kube_proxy_nft_rules(services: list[ServicePort], *, node_ips: list[str] | tuple[str, ...],
                         pod_cidr: str | list[str] | tuple[str, ...] | None,
                         service_cidrs: list[str] | tuple[str, ...] = (),
                         nodeport_addresses: list[str] | tuple[str, ...] | None = None,
                         masquerade_all: bool = False, masquerade_mark: int = 0x4000, family: str = "ip") -> str:
    """Return the ``nft -f`` transaction kube-proxy's nftables proxier writes on one node.

    ``services`` are the node's service ports (``endpoints``: the usable ones, ready or, when
    none is ready, serving and terminating, as kube-proxy's CategorizeEndpoints picks them;
    ``local_endpoints``: the usable ones on this node). ``node_ips`` are the node's addresses
    (the first of the family is kube-proxy's ``nodeIP``); ``pod_cidr`` the LocalTrafficDetector's
    CIDR, or one per family (None, or none of the family: no detector); ``service_cidrs`` the
    ranges whose unallocated addresses are dropped; ``nodeport_addresses`` kube-proxy's
    ``--nodeport-addresses`` (None or empty: every local address but loopback). ``family`` is
    ``ip`` or ``ip6``: only that family's addresses are used."""
    if family not in ("ip", "ip6"):
        raise ValueError(f"family must be ip or ip6, not {family!r}")
    version = 4 if family == "ip" else 6
    same = [a for a in node_ips if ipaddress.ip_address(a).version == version]
    pod_cidrs = [pod_cidr] if isinstance(pod_cidr, str) else list(pod_cidr or ())
    detector = next((c for c in pod_cidrs if ipaddress.ip_network(c, strict=False).version == version), None)
    opts = _Options(family, f"ipv{version}_addr", version, same[0] if same else None,
                    f"{family} saddr {detector}" if detector else None, masquerade_all)
    cidrs = tuple(c for c in service_cidrs if ipaddress.ip_network(c, strict=False).version == version)
    nodeport_ips = _nodeport_ips(same, nodeport_addresses, version)
    # The node's own addresses enter the ruleset only as nodeport-ips elements (and, through
    # nodeIP, a LoadBalancer's source-range exception): the rest is made once for every node.
    if not any(s.lb_source_ranges for s in services):
        opts = replace(opts, node_ip=None)
    before, after = _skeleton(tuple(services), opts, f"{masquerade_mark:#x}", cidrs, nodeport_ips is not None)
    own = "".join(f"add element {family} {TABLE} nodeport-ips {{ {a} }}\n" for a in nodeport_ips or ())
    return before + own + after


@lru_cache(maxsize=4)
def _skeleton(services: tuple[ServicePort, ...], opts: _Options, mark: str, cidrs: tuple[str, ...],
              nodeport_set: bool) -> tuple[str, str]:
    """The ruleset's text around the nodeport-ips elements (see :meth:`_Tx.text_around`)."""
    tx = _Tx(opts.ip)
    _setup(tx, opts, mark, list(cidrs), [] if nodeport_set else None)
    for svc in services:
        if opts.of_family(svc.cluster_ip):
            _service_port(tx, opts, svc)
    return tx.text_around("nodeport-ips")


def _nodeport_ips(node_ips: list[str], nodeport_addresses: list[str] | tuple[str, ...] | None,
                  version: int) -> list[str] | None:
    """The ``nodeport-ips`` elements: the node's addresses inside ``--nodeport-addresses`` of the
    family, loopback left out (kube-proxy logs it); None when no CIDR of the family is given
    (match all)."""
    nets = [ipaddress.ip_network(c, strict=False) for c in nodeport_addresses or ()]
    nets = [n for n in nets if n.version == version]
    if not nets:
        return None
    inside = [a for a in node_ips if any(ipaddress.ip_address(a) in n for n in nets)]
    return [a for a in dict.fromkeys(inside) if not ipaddress.ip_address(a).is_loopback]


def _setup(tx: _Tx, opts: _Options, mark: str, cidrs: list[str], nodeport_ips: list[str] | None) -> None:
    """setupNFTables: base chains and their jumps, masquerading, the sets and maps, the checks."""
    ip, addr = opts.ip, opts.addr_type
    for name, typ, hook, prio in _BASE_CHAINS:
        tx.chain(name, f"type {typ} hook {hook} priority {prio} ;")
    for chain, rule in _JUMPS:
        tx.rule(chain, rule)
    for name in ("cluster-ips-check", "firewall-check", "mark-for-masquerade", "masquerading",
                 "nodeport-endpoints-check", "service-endpoints-check", "services"):
        tx.chain(name)
    tx.chain("reject-chain", 'comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ;')
    tx.rule("mark-for-masquerade", f"mark set mark or {mark}")
    tx.rule("masquerading", f"mark and {mark} == 0 return")
    tx.rule("masquerading", f"mark set mark xor {mark}")
    tx.rule("masquerading", "masquerade fully-random")
    tx.sets["cluster-ips"] = f'type {addr} ; comment "Active ClusterIPs" ;'
    tx.rule("cluster-ips-check", f"{ip} daddr @cluster-ips reject", "Reject traffic to invalid ports of ClusterIPs")
    if cidrs:
        tx.rule("cluster-ips-check", f"{ip} daddr {{ {','.join(cidrs)} }} drop",
                "Drop traffic to unallocated ClusterIPs")
    for name, with_addr, comment in _MAPS:
        tx.maps[name] = (f"type {addr + ' . ' if with_addr else ''}inet_proto . inet_service : verdict ; "
                         f'comment "{comment}" ;')
    tx.rule("reject-chain", "reject")
    tx.rule("service-endpoints-check", f"{ip} daddr . meta l4proto . th dport vmap @no-endpoint-services")
    tx.rule("firewall-check", f"{ip} daddr . meta l4proto . th dport vmap @firewall-ips")
    tx.rule("services", f"{ip} daddr . meta l4proto . th dport vmap @service-ips")
    if nodeport_ips is None:
        no_localhost = "ip daddr != 127.0.0.0/8" if ip == "ip" else "ip6 daddr != ::1"
        tx.rule("nodeport-endpoints-check", f"{no_localhost} meta l4proto . th dport vmap @no-endpoint-nodeports")
        tx.rule("services", f"fib daddr type local {no_localhost} meta l4proto . th dport vmap @service-nodeports")
        return
    tx.sets["nodeport-ips"] = f'type {addr} ; comment "IPs that accept NodePort traffic" ;'
    for address in nodeport_ips:
        tx.element("nodeport-ips", address)
    tx.rule("nodeport-endpoints-check", f"{ip} daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports")
    tx.rule("services", f"{ip} daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports")


@dataclass(frozen=True)
class _Port:
    """One service port as syncProxyRules sees it: its endpoints by policy and its chains."""
    svc: ServicePort
    proto: str
    comment: str                 # ServicePortName.String(): ``ns/svc:port`` (``ns/svc`` without a port name)
    cluster_eps: tuple[str, ...]
    local_eps: tuple[str, ...]
    reachable: tuple[str, ...]   # allLocallyReachableEndpoints
    has_eps: bool                # hasEndpoints: usable endpoints on any node
    external: bool               # ExternallyAccessible: a NodePort, or external or LoadBalancer IPs of the family
    external_ips: tuple[str, ...]
    lb_ips: tuple[str, ...]
    source_ranges: tuple[str, ...]

    @classmethod
    def of(cls, svc: ServicePort, opts: _Options) -> _Port:
        # kube-proxy keeps a service port's endpoints sorted by their "ip:port" text (byEndpoint).
        eps = tuple(sorted({e for e in svc.endpoints if opts.of_family(_split_endpoint(e)[0])}))
        local = tuple(sorted({e for e in svc.local_endpoints if opts.of_family(_split_endpoint(e)[0])}))
        external_ips = tuple(a for a in svc.external_ips if opts.of_family(a))
        lb_ips = tuple(a for a in svc.lb_ips if opts.of_family(a))
        external = bool(svc.node_port or external_ips or lb_ips)
        uses_cluster = not svc.internal_local or external
        uses_local = svc.internal_local or (external and svc.external_local)
        cluster_eps = eps if uses_cluster else ()
        local_eps = local if uses_local else ()
        reachable = tuple(dict.fromkeys(cluster_eps + local_eps))
        ranges = tuple(str(ipaddress.ip_network(r.strip(), strict=False)) for r in svc.lb_source_ranges)
        svc_name, port_name = _port_name_parts(svc.name)
        return cls(svc, svc.protocol.lower(), f"{svc_name}:{port_name}" if port_name else svc_name,
                   cluster_eps, local_eps, reachable, bool(eps or local), external, external_ips, lb_ips,
                   tuple(r for r in ranges if ipaddress.ip_network(r).version == opts.version))

    def chain(self, prefix: str) -> str:
        return prefix + nft_chain_base(self.svc.name, self.proto)

    def endpoint(self, prefix: str, ep: str) -> str:
        return prefix + nft_endpoint_chain_base(self.svc.name, self.proto, ep)

    def key(self, address: str, port: int) -> str:
        return f"{address} . {self.proto} . {port}"


def _service_port(tx: _Tx, opts: _Options, svc: ServicePort) -> None:
    """syncProxyRules for one service port: its map elements, then its chains."""
    port = _Port.of(svc, opts)
    external = port.external
    external_local = svc.external_local and external
    has_eps = port.has_eps
    has_internal = has_eps and (not svc.internal_local or bool(port.local_eps))
    has_external = has_eps and (not external_local or bool(port.local_eps))
    internal_chain = port.chain("local-" if svc.internal_local else "service-")
    external_chain = port.chain("external-")
    uses_fw = bool(port.lb_ips and port.source_ranges)
    # No endpoints anywhere: reject; none here for a Local policy: drop.
    verdict = "goto reject-chain" if not has_eps else "drop"
    _elements(tx, port, (has_internal, has_external), internal_chain, verdict, uses_fw)
    if has_internal:
        tx.chain(internal_chain)
        if opts.masquerade_all:
            tx.rule(internal_chain, f"{opts.ip} daddr {svc.cluster_ip} jump mark-for-masquerade")
        elif opts.if_local:
            tx.rule(internal_chain,
                    f"{opts.ip} daddr {svc.cluster_ip} {_negate(opts.if_local)} jump mark-for-masquerade")
    if has_eps and external:
        _external_chain(tx, opts, port, external_chain, external_local, has_external)
    if uses_fw:
        _firewall_chain(tx, opts, port)
    if svc.affinity_timeout:
        for ep in port.reachable:
            tx.sets[port.endpoint("affinity-", ep)] = (f"type {opts.addr_type} ; flags dynamic,timeout ; "
                                                       f"timeout {svc.affinity_timeout}s ;")
    for prefix, eps in (("service-", port.cluster_eps), ("local-", port.local_eps)):
        if eps:
            _balancing_rules(tx, opts, port, port.chain(prefix), eps)
    for ep in port.reachable:
        _endpoint_chain(tx, opts, port, ep)


def _negate(match: str) -> str:
    """``ip saddr CIDR`` -> ``ip saddr != CIDR`` (the detector's IfNotLocalNFT)."""
    head, _, cidr = match.rpartition(" ")
    return f"{head} != {cidr}"


def _elements(tx: _Tx, port: _Port, has: tuple[bool, bool], internal_chain: str, verdict: str,
              uses_fw: bool) -> None:
    """The service port's set and map elements: its cluster IP, the dispatch of each way in, the
    no-endpoint verdicts (reject when it has none at all, drop when a Local policy finds none
    here), and the LoadBalancer firewall."""
    svc, has_eps, (has_internal, has_external) = port.svc, port.has_eps, has
    external_target = f"goto {port.chain('external-')}"
    tx.element("cluster-ips", svc.cluster_ip)
    if has_internal:
        tx.element("service-ips", port.key(svc.cluster_ip, svc.port), f"goto {internal_chain}")
    else:
        tx.element("no-endpoint-services", port.key(svc.cluster_ip, svc.port), verdict, port.comment)
    for address in port.external_ips:
        if has_eps:
            tx.element("service-ips", port.key(address, svc.port), external_target)
        if not has_external:
            tx.element("no-endpoint-services", port.key(address, svc.port), verdict, port.comment)
    for address in port.lb_ips:
        if has_eps:
            tx.element("service-ips", port.key(address, svc.port), external_target)
        if uses_fw:
            tx.element("firewall-ips", port.key(address, svc.port), f"goto {port.chain('firewall-')}")
    if not has_external:
        for address in port.lb_ips:
            tx.element("no-endpoint-services", port.key(address, svc.port), verdict, port.comment)
    if svc.node_port:
        if has_eps:
            tx.element("service-nodeports", f"{port.proto} . {svc.node_port}", external_target)
        if not has_external:
            tx.element("no-endpoint-nodeports", f"{port.proto} . {svc.node_port}", verdict, port.comment)


def _external_chain(tx: _Tx, opts: _Options, port: _Port, chain: str, external_local: bool,
                    has_external: bool) -> None:
    """``external-``: masquerade and go on to the service (Cluster policy), or short-circuit pods
    and the node itself to the service and send the rest to the local endpoints (Local)."""
    tx.chain(chain)
    cluster_chain = port.chain("service-")
    if not external_local:
        tx.rule(chain, "jump mark-for-masquerade")
    else:
        if opts.if_local:
            tx.rule(chain, f"{opts.if_local} goto {cluster_chain}", "short-circuit pod traffic")
        tx.rule(chain, "fib saddr type local jump mark-for-masquerade", "masquerade local traffic")
        tx.rule(chain, f"fib saddr type local goto {cluster_chain}", "short-circuit local traffic")
    if has_external:
        tx.rule(chain, f"goto {port.chain('local-' if external_local else 'service-')}")


def _firewall_chain(tx: _Tx, opts: _Options, port: _Port) -> None:
    """``firewall-``: drop LoadBalancer traffic from outside the source ranges (and let the
    node reach its own LoadBalancer IPs when a range holds the node's IP)."""
    sources = list(port.source_ranges)
    if opts.node_ip and any(ipaddress.ip_address(opts.node_ip) in ipaddress.ip_network(r) for r in sources):
        sources += port.lb_ips
    chain = port.chain("firewall-")
    tx.chain(chain)
    tx.rule(chain, f"{opts.ip} saddr != {{ {' , '.join(sources)} }} drop")


def _balancing_rules(tx: _Tx, opts: _Options, port: _Port, chain: str, eps: tuple[str, ...]) -> None:
    """writeServiceToEndpointRules: affinity lookups, then ``numgen random mod N vmap``."""
    tx.chain(chain)
    if port.svc.affinity_timeout:
        for ep in eps:
            tx.rule(chain, f"{opts.ip} saddr @{port.endpoint('affinity-', ep)} goto {port.endpoint('endpoint-', ep)}")
    arms = " , ".join(f"{i} : goto {port.endpoint('endpoint-', ep)}" for i, ep in enumerate(eps))
    tx.rule(chain, f"numgen random mod {len(eps)} vmap {{ {arms} }}")


def _endpoint_chain(tx: _Tx, opts: _Options, port: _Port, ep: str) -> None:
    """``endpoint-``: hairpin masquerade, affinity update, DNAT."""
    chain = port.endpoint("endpoint-", ep)
    ip, ep_port = _split_endpoint(ep)
    tx.chain(chain)
    tx.rule(chain, f"{opts.ip} saddr {ip} jump mark-for-masquerade")
    if port.svc.affinity_timeout:
        tx.rule(chain, f"update @{port.endpoint('affinity-', ep)} {{ {opts.ip} saddr }}")
    tx.rule(chain, f"meta l4proto {port.proto} dnat to {_join_endpoint(ip, ep_port)}")
