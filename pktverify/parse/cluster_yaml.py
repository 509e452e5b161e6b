"""Cluster description (YAML) → :class:`~pktverify.model.cluster.ClusterSpec`.

The schema is a contract (issue #4): ``cluster`` (cidr, service_cidr,
proxy_mode, routing), ``nodes`` (name, ip with prefix, pod_cidr, bridge,
optional iptables/addrs/routes dumps relative to the file), ``pods`` (name,
namespace, node, ip, labels, containers with ports) and ``services`` (name,
namespace, cluster_ip, ports, selector or endpoints). Extensions: a node may
say ``docker: true`` (docker's default bridge mode), a pod ``ready: false``,
and a service ``endpoint_ips`` (endpoints by address, e.g. stale ones).

Every error names ``file:line`` and the offending text; unknown keys are
errors too (a typo must not silently drop a node's dump).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import InputError
from ..model.addresses import AddressError, format_network, parse_ip, parse_network
from ..model.cluster import ClusterSpec, NodeSpec, PodSpec, ServicePortSpec, ServiceSpec
from .source import read_text

__all__ = ["load_cluster", "parse_cluster"]


class _Map(dict):
    """A YAML mapping that remembers its line, and each key's line."""
    line: int = 0
    key_lines: dict


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    out = _Map()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


def load_cluster(path: str | Path) -> ClusterSpec:
    """Read a cluster YAML file; dump paths in it are relative to the file."""
    return parse_cluster(read_text(path), source=str(path), base=Path(path).parent)


class _Ctx:
    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = text.split("\n")

    def error(self, line: int, message: str) -> InputError:
        text = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
        return InputError(self.source, line, message, text)

    def field(self, m: _Map, key: str, kind: type | tuple, *, required: bool = True, default=None):
        if key not in m:
            if required:
                raise self.error(m.line, f"missing required key {key!r}")
            return default
        value = m[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.error(m.key_lines[key], f"{key} must be a {names}, not {type(value).__name__}")
        return value

    def only(self, m: _Map, allowed: set[str], what: str) -> None:
        for key in m:
            if key not in allowed:
                raise self.error(m.key_lines[key], f"unknown key {key!r} in {what} (valid: {', '.join(sorted(allowed))})")

    def ip(self, m: _Map, key: str) -> int:
        try:
            return parse_ip(str(self.field(m, key, str)))
        except AddressError as exc:
            raise self.error(m.key_lines[key], str(exc)) from None

    def net(self, m: _Map, key: str, *, exact: bool = True) -> tuple[int, int]:
        text = self.field(m, key, str)
        if "/" not in text:
            raise self.error(m.key_lines[key], f"{key} must be a CIDR like 10.1.0.0/16")
        try:
            net = parse_network(text)
        except AddressError as exc:
            raise self.error(m.key_lines[key], str(exc)) from None
        if exact and parse_ip(text.split("/")[0]) != net[0]:
            raise self.error(m.key_lines[key], f"{key} {text} has host bits set (did you mean {format_network(*net)}?)")
        return net


def parse_cluster(text: str, *, source: str = "<cluster>", base: Path | None = None) -> ClusterSpec:
    """Parse the cluster YAML ``text``; raise InputError naming file:line on anything wrong."""
    ctx = _Ctx(source, text)
    try:
        doc = yaml.load(text, Loader=_Loader)   # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        line = (exc.problem_mark.line + 1) if exc.problem_mark else 1
        raise ctx.error(line, f"invalid YAML: {exc.problem}") from None
    if not isinstance(doc, _Map):
        raise ctx.error(1, "a cluster description is a mapping with cluster, nodes, pods, services")
    ctx.only(doc, {"cluster", "nodes", "pods", "services"}, "the document")
    c = ctx.field(doc, "cluster", dict)
    ctx.only(c, {"cidr", "service_cidr", "proxy_mode", "routing"}, "cluster")
    mode = ctx.field(c, "proxy_mode", str, required=False, default="iptables")
    if mode not in ("userspace", "iptables"):
        raise ctx.error(c.key_lines["proxy_mode"], f"proxy_mode must be userspace or iptables, not {mode!r}")
    routing = ctx.field(c, "routing", str, required=False, default="direct")
    if routing != "direct":
        raise ctx.error(c.key_lines["routing"], f"routing {routing!r} is not supported (only direct)")
    base = base or Path(".")
    nodes = tuple(_node(ctx, n, base) for n in _list(ctx, doc, "nodes"))
    pods = tuple(_pod(ctx, p) for p in _list(ctx, doc, "pods", required=False))
    services = tuple(_service(ctx, s) for s in _list(ctx, doc, "services", required=False))
    _check_references(ctx, nodes, pods, services)
    return ClusterSpec(source, ctx.net(c, "cidr"), ctx.net(c, "service_cidr"), mode, routing, nodes, pods, services)


def _list(ctx: _Ctx, doc: _Map, key: str, *, required: bool = True) -> list[_Map]:
    items = ctx.field(doc, key, list, required=required, default=[])
    for item in items:
        if not isinstance(item, _Map):
            raise ctx.error(doc.key_lines[key], f"each entry of {key} must be a mapping")
    return items


def _node(ctx: _Ctx, n: _Map, base: Path) -> NodeSpec:
    ctx.only(n, {"name", "ip", "pod_cidr", "bridge", "iptables", "addrs", "routes", "docker"}, "a node")
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
    for key in ("iptables", "addrs", "routes"):
        rel = ctx.field(n, key, str, required=False)
        if rel is not None:
            path = (base / rel).resolve()
            if not path.is_file():
                raise ctx.error(n.key_lines[key], f"{key} file {path} does not exist")
            dumps[key] = str(path)
    if dumps and len(dumps) != 3:
        raise ctx.error(n.line, "give all three dumps (iptables, addrs, routes) or none")
    return NodeSpec(ctx.field(n, "name", str), ip, prefixlen, ctx.net(n, "pod_cidr"),
                    ctx.field(n, "bridge", str, required=False, default="cbr0"),
                    dumps.get("iptables"), dumps.get("addrs"), dumps.get("routes"),
                    ctx.field(n, "docker", bool, required=False, default=False), n.line)


def _labels(ctx: _Ctx, m: _Map, key: str) -> tuple[tuple[str, str], ...] | None:
    value = ctx.field(m, key, dict, required=False)
    if value is None:
        return None
    return tuple(sorted((str(k), str(v)) for k, v in value.items()))


def _pod(ctx: _Ctx, p: _Map) -> PodSpec:
    ctx.only(p, {"name", "namespace", "node", "ip", "labels", "containers", "ready"}, "a pod")
    ports: list[int] = []
    for c in ctx.field(p, "containers", list, required=False, default=[]):
        if not isinstance(c, _Map):
            raise ctx.error(p.key_lines["containers"], "each container must be a mapping")
        ctx.only(c, {"name", "ports"}, "a container")
        for port in ctx.field(c, "ports", list, required=False, default=[]):
            if not isinstance(port, int) or not 0 < port < 65536:
                raise ctx.error(c.key_lines["ports"], f"container port {port!r} is not a port number")
            ports.append(port)
    return PodSpec(ctx.field(p, "name", str), ctx.field(p, "namespace", str, required=False, default="default"),
                   ctx.field(p, "node", str), ctx.ip(p, "ip"), _labels(ctx, p, "labels") or (),
                   tuple(ports), ctx.field(p, "ready", bool, required=False, default=True), p.line)


def _service(ctx: _Ctx, s: _Map) -> ServiceSpec:
    ctx.only(s, {"name", "namespace", "cluster_ip", "ports", "selector", "endpoints", "endpoint_ips"}, "a service")
    ports = []
    for p in ctx.field(s, "ports", list):
        if not isinstance(p, _Map):
            raise ctx.error(s.key_lines["ports"], "each service port must be a mapping")
        ctx.only(p, {"name", "port", "target_port", "protocol"}, "a service port")
        port = ctx.field(p, "port", int)
        target = ctx.field(p, "target_port", int, required=False, default=port)
        proto = ctx.field(p, "protocol", str, required=False, default="TCP")
        if proto.upper() not in ("TCP", "UDP"):
            raise ctx.error(p.key_lines["protocol"], f"protocol must be TCP or UDP, not {proto!r}")
        for key, value in (("port", port), ("target_port", target)):
            if not 0 < value < 65536:
                raise ctx.error(p.key_lines.get(key, p.line), f"{key} {value} is not a port number")
        ports.append(ServicePortSpec(ctx.field(p, "name", str, required=False, default=""), port, target,
                                     proto.lower()))
    endpoints = ctx.field(s, "endpoints", list, required=False)
    ips = []
    for text in ctx.field(s, "endpoint_ips", list, required=False, default=[]):
        try:
            ips.append(parse_ip(str(text)))
        except AddressError as exc:
            raise ctx.error(s.key_lines["endpoint_ips"], str(exc)) from None
    return ServiceSpec(ctx.field(s, "name", str), ctx.field(s, "namespace", str, required=False, default="default"),
                       ctx.ip(s, "cluster_ip"), tuple(ports), _labels(ctx, s, "selector"),
                       tuple(str(e) for e in endpoints) if endpoints is not None else None, tuple(ips), s.line)


def _check_references(ctx: _Ctx, nodes, pods, services) -> None:
    names = set()
    for n in nodes:
        if n.name in names:
            raise ctx.error(n.line, f"node {n.name} is described twice")
        names.add(n.name)
    keys = {p.key for p in pods}
    for p in pods:
        if p.node not in names:
            raise ctx.error(p.line, f"pod {p.key} is on node {p.node!r}, which is not described")
    for s in services:
        for e in s.endpoints or ():
            if e not in keys:
                raise ctx.error(s.line, f"service {s.key} lists endpoint {e!r}, which is not a described pod"
                                        " (write endpoint_ips for endpoints that are not pods)")
