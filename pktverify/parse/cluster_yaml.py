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
from ..model.addresses import AddressError, format_ip, format_network, parse_ip, parse_network
from ..model.cluster import ClusterSpec, NodeSpec, PodSpec, ServicePortSpec, ServiceSpec
from .k8s_names import KINDS, label_key, label_value
from .source import MAX_YAML_BYTES, read_text

__all__ = ["load_cluster", "parse_cluster"]


class _Map(dict):
    """A YAML mapping that remembers its line, and each key's line."""
    line: int = 0
    key_lines: dict


class _Problem(Exception):
    """Raised inside the YAML constructor; turned into an InputError with the line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    out = _Map()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            raise _Problem(line, "a mapping key must be a plain word, not a list or mapping")
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise _Problem(line, f"duplicate key {key!r} (it is also on line {out.key_lines[key]})")
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)

# Bounds on what a description may make us build: a cluster description needs neither deep nesting
# nor many aliases, and an alias bomb ("billion laughs") is small as text but huge when expanded.
MAX_DEPTH = 64
MAX_EXPANDED_NODES = 2_000_000


def _check_graph(root: yaml.Node) -> None:
    """Refuse recursive aliases, nesting deeper than MAX_DEPTH and more than MAX_EXPANDED_NODES
    values once aliases are expanded, before anything is constructed (iterative: no recursion)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            line = node.start_mark.line + 1
            if depth[key] > MAX_DEPTH:
                raise _Problem(line, f"nesting deeper than {MAX_DEPTH} levels")
            if size[key] > MAX_EXPANDED_NODES:
                raise _Problem(line, f"more than {MAX_EXPANDED_NODES:,} values once aliases are expanded "
                                     "(an alias bomb?)")
            continue
        if key in size:
            continue
        if key in on_path:
            raise _Problem(node.start_mark.line + 1, "a recursive alias (an anchor used inside itself)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
        if len(stack) > MAX_EXPANDED_NODES:
            raise _Problem(node.start_mark.line + 1, "too many values")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _load_yaml(text: str, ctx: "_Ctx"):
    """The document, or InputError naming the line for anything YAML or our bounds refuse."""
    loader = None
    try:
        loader = _Loader(text)        # the reader checks every character here
        try:
            root = loader.get_single_node()
        except RecursionError:
            raise _Problem(loader.line + 1, "nesting too deep") from None
        if root is None:
            raise _Problem(1, "empty document")
        _check_graph(root)
        return loader.construct_document(root)
    except _Problem as exc:
        raise ctx.error(exc.line, exc.message) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ctx.error(mark.line + 1 if mark else 1, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        raise ctx.error(line, f"invalid YAML: character {exc.character!r} is not allowed in YAML "
                              f"(position {exc.position})") from None
    except yaml.YAMLError as exc:
        raise ctx.error(1, f"invalid YAML: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_cluster(path: str | Path) -> ClusterSpec:
    """Read a cluster YAML file; dump paths in it are relative to the file."""
    return parse_cluster(read_text(path, limit=MAX_YAML_BYTES), source=str(path), base=Path(path).parent)


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

    def name(self, m: _Map, key: str, kind: str, *, required: bool = True, default: str | None = None,
             allow_empty: bool = False):
        """A Kubernetes name, checked as the API server checks a ``kind`` (see :mod:`.k8s_names`)."""
        value = self.field(m, key, str, required=required, default=default)
        if value is not None and key in m and not (allow_empty and value == ""):
            self.check_name(value, kind, m.key_lines[key])
        return value

    def check_name(self, value: str, kind: str, line: int) -> None:
        why = KINDS[kind](value)
        if why:
            raise self.error(line, f"{kind} {value!r} {why}")

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
    doc = _load_yaml(text, ctx)
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
    ctx.only(n, {"name", "ip", "pod_cidr", "bridge", "iptables", "addrs", "routes", "ipsets", "rules", "docker"},
             "a node")
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
    for key in ("iptables", "addrs", "routes", "ipsets", "rules"):
        rel = ctx.field(n, key, str, required=False)
        if rel is not None:
            if not rel or "\0" in rel:
                raise ctx.error(n.key_lines[key], f"{key} must be a file path")
            path = (base / rel).resolve()
            if not path.is_file():
                raise ctx.error(n.key_lines[key], f"{key} file {path} does not exist or is not a regular file")
            dumps[key] = str(path)
    core = dumps.keys() - {"ipsets", "rules"}
    if core and len(core) != 3:
        raise ctx.error(n.line, "give all three dumps (iptables, addrs, routes) or none")
    for extra in ("ipsets", "rules"):
        if extra in dumps and "iptables" not in dumps:
            raise ctx.error(n.key_lines[extra], f"{extra} go with the node's real dumps (iptables, addrs, routes)")
    return NodeSpec(name, ip, prefixlen, ctx.net(n, "pod_cidr"),
                    ctx.name(n, "bridge", "bridge", required=False, default="cbr0"),
                    dumps.get("iptables"), dumps.get("addrs"), dumps.get("routes"),
                    ctx.field(n, "docker", bool, required=False, default=False), n.line, dumps.get("ipsets"),
                    dumps.get("rules"))


def _labels(ctx: _Ctx, m: _Map, key: str) -> tuple[tuple[str, str], ...] | None:
    value = ctx.field(m, key, dict, required=False)
    if value is None:
        return None
    line = m.key_lines[key]
    out = []
    for k, v in value.items():
        line = value.key_lines.get(k, line) if isinstance(value, _Map) else line
        if not isinstance(k, str) or not isinstance(v, str):
            raise ctx.error(line, f"{key}: keys and values must be strings (quote values such as "
                                  f"'true' or '1'), not {type(k).__name__}: {type(v).__name__}")
        why = label_key(k)
        if why:
            raise ctx.error(line, f"label key {k!r}: {why}")
        why = label_value(v)
        if why:
            raise ctx.error(line, f"label value {v!r} of {k}: {why}")
        out.append((k, v))
    return tuple(sorted(out))


def _port_number(ctx: _Ctx, value, line: int, what: str) -> int:
    if type(value) is not int or not 0 < value < 65536:
        raise ctx.error(line, f"{what} {_short(value)} is not a port number 1-65535")
    return value


def _short(value) -> str:
    """A value for a message: scalars as they are, structures by their type only."""
    return repr(value)[:60] if isinstance(value, (str, int, float, bool)) or value is None else type(value).__name__


def _pod(ctx: _Ctx, p: _Map) -> PodSpec:
    ctx.only(p, {"name", "namespace", "node", "ip", "labels", "containers", "ready"}, "a pod")
    ports: list[int] = []
    for c in ctx.field(p, "containers", list, required=False, default=[]):
        if not isinstance(c, _Map):
            raise ctx.error(p.key_lines["containers"], "each container must be a mapping")
        ctx.only(c, {"name", "ports"}, "a container")
        ctx.name(c, "name", "container name", required=False)
        for port in ctx.field(c, "ports", list, required=False, default=[]):
            ports.append(_port_number(ctx, port, c.key_lines["ports"], "container port"))
    return PodSpec(ctx.name(p, "name", "pod name"), ctx.name(p, "namespace", "namespace", required=False,
                                                            default="default"),
                   ctx.name(p, "node", "node name"), ctx.ip(p, "ip"), _labels(ctx, p, "labels") or (),
                   tuple(ports), ctx.field(p, "ready", bool, required=False, default=True), p.line)


def _service(ctx: _Ctx, s: _Map) -> ServiceSpec:
    ctx.only(s, {"name", "namespace", "cluster_ip", "ports", "selector", "endpoints", "endpoint_ips"}, "a service")
    ports = []
    names: dict[str, int] = {}
    for p in ctx.field(s, "ports", list):
        if not isinstance(p, _Map):
            raise ctx.error(s.key_lines["ports"], "each service port must be a mapping")
        ctx.only(p, {"name", "port", "target_port", "protocol"}, "a service port")
        port = _port_number(ctx, ctx.field(p, "port", int), p.key_lines.get("port", p.line), "port")
        target = ctx.field(p, "target_port", int, required=False, default=port)
        _port_number(ctx, target, p.key_lines.get("target_port", p.line), "target_port")
        proto = ctx.field(p, "protocol", str, required=False, default="TCP")
        if proto.upper() not in ("TCP", "UDP"):
            raise ctx.error(p.key_lines["protocol"], f"protocol must be TCP or UDP, not {proto!r}")
        name = ctx.name(p, "name", "service port name", required=False, default="", allow_empty=True)
        if name in names:
            raise ctx.error(p.line, f"service port name {name!r} is used twice (also on line {names[name]})"
                            if name else "a service with several ports must name each of them")
        names[name] = p.line
        ports.append(ServicePortSpec(name, port, target, proto.lower()))
    endpoints = ctx.field(s, "endpoints", list, required=False)
    keys: list[str] = []
    for key in endpoints or ():
        line = s.key_lines["endpoints"]
        if not isinstance(key, str) or key.count("/") != 1:
            raise ctx.error(line, f"an endpoint is a pod as namespace/name, not {_short(key)}")
        ns, _, pod = key.partition("/")
        ctx.check_name(ns, "namespace", line)
        ctx.check_name(pod, "pod name", line)
        if key in keys:
            raise ctx.error(line, f"endpoint {key} is listed twice")
        keys.append(key)
    ips = []
    for text in ctx.field(s, "endpoint_ips", list, required=False, default=[]):
        line = s.key_lines["endpoint_ips"]
        if not isinstance(text, str):
            raise ctx.error(line, f"an endpoint IP is a string like 10.1.10.5, not {_short(text)}")
        try:
            ip = parse_ip(text)
        except AddressError as exc:
            raise ctx.error(line, str(exc)) from None
        if ip in ips:
            raise ctx.error(line, f"endpoint IP {text} is listed twice")
        ips.append(ip)
    return ServiceSpec(ctx.name(s, "name", "service name"),
                       ctx.name(s, "namespace", "namespace", required=False, default="default"),
                       ctx.ip(s, "cluster_ip"), tuple(ports), _labels(ctx, s, "selector"),
                       tuple(keys) if endpoints is not None else None, tuple(ips), s.line)


def _check_references(ctx: _Ctx, nodes, pods, services) -> None:
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
