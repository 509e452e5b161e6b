"""Cluster description (YAML) → :class:`~pktverify.model.cluster.ClusterSpec`.

The schema is a contract (issue #4): ``cluster`` (cidr, service_cidr,
proxy_mode, routing), ``nodes`` (name, ip with prefix, pod_cidr, bridge,
optional iptables/addrs/routes/nft dumps relative to the file), ``pods`` (name,
namespace, node, ip, labels, containers with ports) and ``services`` (name,
namespace, cluster_ip, ports, selector or endpoints), ``namespaces`` (with labels) and
``network_policies`` (NetworkPolicy objects; :mod:`.cluster_yaml_policies`). Extensions: a node may
say ``docker: true`` (docker's default bridge mode), a pod ``ready: false``,
and a service ``endpoint_ips`` (endpoints by address, e.g. stale ones);
``pod_prefix`` (on the cluster, or a node to override it) is the prefix length
each pod carries on eth0 (default: its node's pod CIDR's; see
:mod:`pktverify.eval.pod_stack`).

Every error names ``file:line`` and the offending text; unknown keys are
errors too (a typo must not silently drop a node's dump).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import InputError
from ..limits import MAX_YAML_BYTES
from ..model.addresses import AddressError, format_ip, format_network, in_network, parse_ip, parse_network
from ..model.cluster import (
    DUMP_KINDS,
    ClusterSpec,
    NodeSpec,
    PodSpec,
    ServiceSpec,
)
from .cluster_yaml_policies import namespaces, network_policies
from .cluster_yaml_services import allocate_node_ports, node_port_range, protocol, service
from .dataplane import detect_dataplane, routes_worth_reading
from .ipaddr import parse_ip_addr
from .iproute import parse_routes
from .k8s_names import iana_svc_name
from .k8s_values import (
    note_shared_addresses,
)
from .network_policy import POLICIES_NOTE
from .source import read_text
from .yaml_doc import YamlContext, YamlMap, labels, load_yaml, mapping_list, port_number

__all__ = ["load_cluster", "parse_cluster", "allocate_node_ports", "cluster_file"]


def load_cluster(path: str | Path) -> ClusterSpec:
    """Read a cluster YAML file (or a folder's ``cluster.yaml``); dump paths in it are relative to the file."""
    path = cluster_file(path)
    return parse_cluster(read_text(path, limit=MAX_YAML_BYTES), source=str(path), base=Path(path).parent)


def cluster_file(path: str | Path) -> str | Path:
    """``path``, or the cluster file in it when ``path`` is a folder: ``cluster.yaml`` (what the
    examples hold), else ``cluster.json`` (kubectl's List beside the node folders); a folder with
    neither is an error naming the folder."""
    try:
        folder = Path(path).is_dir()
    except (OSError, ValueError):     # too long, a NUL: reading it says so
        return path
    if not folder:
        return path
    for name in ("cluster.yaml", "cluster.json"):
        inside = Path(path) / name
        if inside.is_file():
            return inside
    raise InputError(str(path), 0, "a folder without cluster.yaml or cluster.json, and not a regular file: give the "
                                   "cluster file (YAML, or kubectl get nodes,pods,services,endpointslices -A -o json "
                                   "output)")


def parse_cluster(text: str, *, source: str = "<cluster>", base: Path | None = None) -> ClusterSpec:
    """Parse the cluster YAML ``text``; raise InputError naming file:line on anything wrong."""
    ctx = YamlContext(source, text)
    doc = load_yaml(text, ctx)
    if not isinstance(doc, YamlMap):
        raise ctx.error(1, "a cluster description is a mapping with cluster, nodes, pods, services")
    ctx.only(doc, {"cluster", "nodes", "pods", "services", "namespaces", "network_policies"}, "the document")
    c = ctx.field(doc, "cluster", dict)
    ctx.only(c, {"cidr", "service_cidr", "proxy_mode", "routing", "node_port_range", "pod_prefix"}, "cluster")
    mode = ctx.field(c, "proxy_mode", str, required=False, default="iptables")
    if mode not in ("userspace", "iptables", "nftables"):
        raise ctx.error(c.key_lines["proxy_mode"], f"proxy_mode must be userspace, iptables or nftables, not {mode!r}")
    routing = ctx.field(c, "routing", str, required=False, default="direct")
    if routing != "direct":
        raise ctx.error(c.key_lines["routing"], f"routing {routing!r} is not supported (only direct)")
    base = base or Path(".")
    nodes = tuple(_node(ctx, n, base, _pod_prefix(ctx, c, None)) for n in mapping_list(ctx, doc, "nodes"))
    all_pods = tuple(_pod(ctx, p) for p in mapping_list(ctx, doc, "pods", required=False))
    notes: list[str] = []
    services = tuple(svc for svc in (service(ctx, s, notes) for s in mapping_list(ctx, doc, "services", required=False))
                     if svc is not None)
    _check_references(ctx, nodes, all_pods, services)
    note_shared_addresses(services, {n.ip: n.name for n in nodes}, notes)
    port_range = node_port_range(ctx, c)
    services = allocate_node_ports(services, port_range, source=source)
    by_name = {n.name: n for n in nodes}
    host_pods = []
    for p in all_pods:
        if p.host_network:
            node_ip = by_name[p.node].ip
            if p.ip not in (0, node_ip):
                raise ctx.error(p.line, f"host-network pod {p.key} has IP {format_ip(p.ip)}, but it runs in node "
                                        f"{p.node}'s network namespace: its IP is the node's ({format_ip(node_ip)})")
            host_pods.append(replace(p, ip=node_ip))
    pods = tuple(p for p in all_pods if not p.host_network)
    cidr, service_cidr = ctx.net(c, "cidr"), ctx.net(c, "service_cidr")
    if not nodes:
        raise ctx.error(doc.key_lines["nodes"], "nodes is empty: a cluster has at least one node")
    _check_dumps(ctx, nodes, mode)
    policies = network_policies(ctx, doc)
    if policies:
        notes.append(POLICIES_NOTE.format(len(policies)))
    return ClusterSpec(source, cidr, service_cidr, mode, routing, nodes, pods, services,
                       {"notes": notes} if notes else {}, host_pods=tuple(host_pods), node_port_range=port_range,
                       namespaces=namespaces(ctx, doc), network_policies=policies)


def _check_dumps(ctx: YamlContext, nodes: tuple[NodeSpec, ...], mode: str) -> None:
    """Refuse a node whose dumps show what the description does not say (another kube-proxy mode,
    no interface of the bridge's name) or what pktverify does not model (IPVS, an overlay):
    verifying it as described would report false violations or fail later without a line. A dump
    that does not parse is left to the node's own parse, which names the line."""
    node_ips = [n.ip for n in nodes]
    for node in nodes:
        texts = {}
        for kind in ("iptables", "addrs", "routes", "ipsets", "nft"):
            path = getattr(node, kind)
            try:
                texts[kind] = read_text(path, allow_empty=True) if path else node.dump_text(kind)
            except InputError:
                texts[kind] = None
        if not any(texts.values()):
            continue
        try:
            interfaces = parse_ip_addr(texts["addrs"]) if texts["addrs"] else None
            routes = parse_routes(texts["routes"]).routes \
                if texts["routes"] and routes_worth_reading(texts["routes"]) else None
        except InputError:
            continue
        if interfaces is not None and node.bridge not in interfaces:
            holder = next((i.name for i in interfaces.values() for a in i.addresses
                           if in_network(a.ip, *node.pod_cidr) and not i.loopback), None)
            raise ctx.error(node.line, f"node {node.name}: bridge {node.bridge} is not in its address dump (it has "
                                       f"{', '.join(list(interfaces)[:8])}): pods hang on it"
                                       + (f"; set bridge: {holder}" if holder else ""))
        seen = detect_dataplane(iptables=texts["iptables"], interfaces=interfaces, routes=routes,
                                ipsets=texts["ipsets"], nft=texts["nft"], node_ips=node_ips,
                                pod_cidrs=[n.pod_cidr for n in nodes if n is not node])
        why = seen.unmodelled()
        if not why and seen.proxy_mode and seen.proxy_mode != mode:
            why = (f"runs kube-proxy in {seen.proxy_mode} mode ({', '.join(seen.proxy_evidence)}), but the cluster "
                   f"says proxy_mode: {mode}")
        if why:
            raise ctx.error(node.line, f"node {node.name} {why}")


def _pod_prefix(ctx: YamlContext, m: YamlMap, default: int | None) -> int | None:
    """``pod_prefix`` (the prefix length on each pod's eth0) of the cluster or a node, 0-32."""
    value = ctx.field(m, "pod_prefix", int, required=False, default=default)
    if value is not None and "pod_prefix" in m and not 0 <= value <= 32:
        raise ctx.error(m.key_lines["pod_prefix"], f"pod_prefix must be a prefix length from 0 to 32, not {value}")
    return value


def _node(ctx: YamlContext, n: YamlMap, base: Path, pod_prefix: int | None = None) -> NodeSpec:
    ctx.only(n, {"name", "ip", "pod_cidr", "bridge", "docker", "dumps", "pod_prefix", *DUMP_KINDS}, "a node")
    name = ctx.name(n, "name", "node name")
    ip_text = ctx.field(n, "ip", str)
    if "/" not in ip_text:
        raise ctx.error(n.key_lines["ip"], "node ip needs its prefix length (e.g. 192.168.1.10/24)")
    try:
        ip = parse_ip(ip_text.split("/")[0])
        _, mask = parse_network(ip_text)
    except AddressError as exc:
        raise ctx.error(n.key_lines["ip"], str(exc)) from None
    prefixlen = bin(mask).count("1")
    dumps = {}
    for key in DUMP_KINDS:
        rel = ctx.field(n, key, str, required=False)
        if rel is not None:
            if not rel or "\0" in rel:
                raise ctx.error(n.key_lines[key], f"{key} must be a file path")
            try:
                path = (base / rel).resolve()
                is_file = path.is_file()
            except OSError as exc:       # e.g. a name too long: a read that failed, not a write
                raise ctx.error(n.key_lines[key], f"{key} file cannot be read ({exc.strerror or exc})") from None
            if not is_file:
                raise ctx.error(n.key_lines[key], f"{key} file {path} does not exist or is not a regular file")
            dumps[key] = str(path)
    inline, inline_lines = [], []
    texts = ctx.field(n, "dumps", dict, required=False, default={})
    if texts:
        ctx.only(texts, set(DUMP_KINDS), "a node's dumps")
    for key in DUMP_KINDS:
        if key not in texts:
            continue
        text = ctx.field(texts, key, str)
        if key in dumps:
            raise ctx.error(texts.key_lines[key], f"the {key} dump is given twice: as a file ({key}:) and as text "
                                                  "(dumps:); keep one")
        inline.append((key, text))
        # A block scalar (key: |) starts on the line after its key.
        inline_lines.append((key, texts.key_lines[key] + 1))
    given = set(dumps) | {k for k, _t in inline}
    for extra in ("ipsets", "rules"):
        if extra in given and "iptables" not in given:
            where = n.key_lines.get(extra) or texts.key_lines[extra]
            raise ctx.error(where, f"{extra} go with the node's real rules (iptables)")
    return NodeSpec(name, ip, prefixlen, ctx.net(n, "pod_cidr"),
                    ctx.name(n, "bridge", "bridge", required=False, default="cbr0"),
                    dumps.get("iptables"), dumps.get("addrs"), dumps.get("routes"),
                    ctx.field(n, "docker", bool, required=False, default=False), n.line, dumps.get("ipsets"),
                    dumps.get("rules"), tuple(inline), tuple(inline_lines), _pod_prefix(ctx, n, pod_prefix),
                    dumps.get("nft"))


def _pod(ctx: YamlContext, p: YamlMap) -> PodSpec:
    ctx.only(p, {"name", "namespace", "node", "ip", "labels", "containers", "ready", "host_network"}, "a pod")
    ports: list[int] = []
    named: dict[tuple[str, str], tuple[int, int]] = {}
    names_used: set[str] = set()
    for c in ctx.field(p, "containers", list, required=False, default=[]):
        if not isinstance(c, YamlMap):
            raise ctx.error(p.key_lines["containers"], "each container must be a mapping")
        ctx.only(c, {"name", "ports"}, "a container")
        ctx.name(c, "name", "container name", required=False)
        for port in ctx.field(c, "ports", list, required=False, default=[]):
            line = c.key_lines["ports"]
            if isinstance(port, YamlMap):         # {name: http, port: 8080, protocol: TCP}
                ctx.only(port, {"name", "port", "protocol"}, "a container port")
                number = port_number(ctx, ctx.field(port, "port", int), port.line, "container port")
                proto = protocol(ctx, port, sctp=True)
                port_name = ctx.field(port, "name", str, required=False)
                if port_name is not None:
                    why = iana_svc_name(port_name)
                    if why:
                        raise ctx.error(port.key_lines["name"], f"container port name {port_name!r} {why}")
                    if port_name in names_used:
                        raise ctx.error(port.key_lines["name"], f"container port name {port_name!r} is used twice "
                                                                f"in pod {p.get('name')!r}")
                    named[(port_name, proto)] = (number, port.line)
                    names_used.add(port_name)
            else:
                number = port_number(ctx, port, line, "container port")
            ports.append(number)
    host_network = ctx.field(p, "host_network", bool, required=False, default=False)
    name = ctx.name(p, "name", "pod name")
    if host_network and "ip" not in p:
        ip = 0                 # the node's address (set once nodes are known)
    else:
        ip = ctx.ip(p, "ip")
    return PodSpec(name, ctx.name(p, "namespace", "namespace", required=False, default="default"),
                   ctx.name(p, "node", "node name"), ip, labels(ctx, p, "labels") or (),
                   tuple(ports), ctx.field(p, "ready", bool, required=False, default=True), p.line,
                   tuple((n, proto, number) for (n, proto), (number, _line) in named.items()), host_network)


def _check_references(ctx: YamlContext, nodes, pods, services) -> None:
    names: dict[str, NodeSpec] = {}
    for n in nodes:
        if n.name in names:
            raise ctx.error(n.line, f"node {n.name} is described twice (also on line {names[n.name].line})")
        names[n.name] = n
    first = nodes[0] if nodes else None
    for n in nodes[1:]:
        if (n.prefixlen, _network(n)) != (first.prefixlen, _network(first)):
            raise ctx.error(n.line, f"node {n.name} ({format_ip(n.ip)}/{n.prefixlen}) is not on the node network of "
                                    f"{first.name} ({format_network(_network(first), _mask(first))}): routing: direct"
                                    " (route add ... gw <peer>) needs every node on one network")
    keys: dict[str, PodSpec] = {}
    for p in pods:
        if p.key in keys:
            raise ctx.error(p.line, f"pod {p.key} is described twice (also on line {keys[p.key].line})")
        keys[p.key] = p
        if p.node not in names:
            raise ctx.error(p.line, f"pod {p.key} is on node {p.node!r}, which is not described")
    seen: dict[str, ServiceSpec] = {}
    for s in services:
        if s.key in seen:
            raise ctx.error(s.line, f"service {s.key} is described twice (also on line {seen[s.key].line})")
        seen[s.key] = s
        for e in s.endpoints or ():
            if e not in keys:
                raise ctx.error(s.line, f"service {s.key} lists endpoint {e!r}, which is not a described pod"
                                        " (write endpoint_ips for endpoints that are not pods)")


def _mask(node: NodeSpec) -> int:
    return (0xFFFFFFFF << (32 - node.prefixlen)) & 0xFFFFFFFF


def _network(node: NodeSpec) -> int:
    return node.ip & _mask(node)
