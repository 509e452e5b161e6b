"""Cluster description (YAML) → :class:`~pktverify.model.cluster.ClusterSpec`.

The schema is a contract (issue #4): ``cluster`` (cidr, service_cidr,
proxy_mode, routing), ``nodes`` (name, ip with prefix, pod_cidr, bridge,
optional iptables/addrs/routes dumps relative to the file), ``pods`` (name,
namespace, node, ip, labels, containers with ports) and ``services`` (name,
namespace, cluster_ip, ports, selector or endpoints). Extensions: a node may
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

import yaml

from ..errors import InputError
from ..limits import MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_VALUES
from ..model.addresses import AddressError, format_ip, format_network, in_network, parse_ip, parse_network
from ..model.cluster import (DUMP_KINDS, NODE_PORT_RANGE, SERVICE_TYPES, ClusterSpec, NodeSpec, PodSpec, ServicePortSpec,
                             ServiceSpec)
from .dataplane import detect_dataplane, routes_worth_reading
from .ipaddr import parse_ip_addr
from .iproute import parse_routes
from .k8s_names import KINDS, iana_svc_name, label_key, label_value
from .k8s_values import AFFINITY_TYPES, DEFAULT_AFFINITY_TIMEOUT, affinity_timeout_reason, ascii_number, ip_text, \
    note_shared_addresses
from .source import read_text

__all__ = ["load_cluster", "parse_cluster", "allocate_node_ports", "cluster_file"]


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

_MAX_INT_CHARS = 40         # no port or timeout is longer; int() of 5,000 digits fails with Python's own message


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    """YAML's integers (decimal, 0x, 0o, 0b, 1:30), bounded in length before they are converted."""
    if len(node.value) > _MAX_INT_CHARS:
        raise _Problem(node.start_mark.line + 1, f"a number of {len(node.value):,} characters (at most "
                                                 f"{_MAX_INT_CHARS} are read)")
    return yaml.SafeLoader.construct_yaml_int(loader, node)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _check_graph(root: yaml.Node) -> None:
    """Refuse recursive aliases, nesting deeper than MAX_YAML_DEPTH and more than MAX_YAML_VALUES
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
            if depth[key] > MAX_YAML_DEPTH:
                raise _Problem(line, f"nesting deeper than {MAX_YAML_DEPTH} levels")
            if size[key] > MAX_YAML_VALUES:
                raise _Problem(line, f"more than {MAX_YAML_VALUES:,} values once aliases are expanded "
                                     "(an alias bomb?)")
            continue
        if key in size:
            continue
        if key in on_path:
            raise _Problem(node.start_mark.line + 1, "a recursive alias (an anchor used inside itself)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
        if len(stack) > MAX_YAML_VALUES:
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
    ctx.only(c, {"cidr", "service_cidr", "proxy_mode", "routing", "node_port_range", "pod_prefix"}, "cluster")
    mode = ctx.field(c, "proxy_mode", str, required=False, default="iptables")
    if mode not in ("userspace", "iptables"):
        raise ctx.error(c.key_lines["proxy_mode"], f"proxy_mode must be userspace or iptables, not {mode!r}")
    routing = ctx.field(c, "routing", str, required=False, default="direct")
    if routing != "direct":
        raise ctx.error(c.key_lines["routing"], f"routing {routing!r} is not supported (only direct)")
    base = base or Path(".")
    nodes = tuple(_node(ctx, n, base, _pod_prefix(ctx, c, None)) for n in _list(ctx, doc, "nodes"))
    all_pods = tuple(_pod(ctx, p) for p in _list(ctx, doc, "pods", required=False))
    notes: list[str] = []
    services = tuple(svc for svc in (_service(ctx, s, notes) for s in _list(ctx, doc, "services", required=False))
                     if svc is not None)
    _check_references(ctx, nodes, all_pods, services)
    note_shared_addresses(services, {n.ip: n.name for n in nodes}, notes)
    port_range = _node_port_range(ctx, c)
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
    return ClusterSpec(source, cidr, service_cidr, mode, routing, nodes, pods, services,
                       {"notes": notes} if notes else {}, host_pods=tuple(host_pods), node_port_range=port_range)


def _check_dumps(ctx: _Ctx, nodes: tuple[NodeSpec, ...], mode: str) -> None:
    """Refuse a node whose dumps show what the description does not say (another kube-proxy mode,
    no interface of the bridge's name) or what pktverify does not model (IPVS, an overlay):
    verifying it as described would report false violations or fail later without a line. A dump
    that does not parse is left to the node's own parse, which names the line."""
    node_ips = [n.ip for n in nodes]
    for node in nodes:
        texts = {}
        for kind in ("iptables", "addrs", "routes", "ipsets"):
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
                                ipsets=texts["ipsets"], node_ips=node_ips,
                                pod_cidrs=[n.pod_cidr for n in nodes if n is not node])
        why = seen.unmodelled()
        if not why and seen.proxy_mode and seen.proxy_mode != mode:
            why = (f"runs kube-proxy in {seen.proxy_mode} mode ({', '.join(seen.proxy_evidence)}), but the cluster "
                   f"says proxy_mode: {mode}")
        if why:
            raise ctx.error(node.line, f"node {node.name} {why}")


def _node_port_range(ctx: _Ctx, c: _Map) -> tuple[int, int]:
    """``node_port_range: 30000-32767`` (kube-apiserver's --service-node-port-range)."""
    text = ctx.field(c, "node_port_range", str, required=False, default=None)
    if text is None:
        return NODE_PORT_RANGE
    low_text, sep, high_text = text.partition("-")
    low, high = ascii_number(low_text), ascii_number(high_text)     # ASCII digits only: '³' and '٣' are no ports
    if not (sep and low is not None and high is not None and 0 < low <= high < 65536):
        raise ctx.error(c.key_lines["node_port_range"], f"node_port_range must be LOW-HIGH within 1-65535 in ASCII "
                                                        f"digits (like 30000-32767), not {_short(text)}")
    return low, high


def allocate_node_ports(services: tuple[ServiceSpec, ...], port_range: tuple[int, int], *,
                        source: str = "<cluster>") -> tuple[ServiceSpec, ...]:
    """Give each port of a NodePort or LoadBalancer service without a ``node_port`` the lowest free
    one in ``port_range`` for its protocol, as the API server allocates one (it picks at random).
    A range with no free port left is an :class:`InputError` at the service's line, as the API
    server refuses the service then ("range is full"). Linear: the lowest free port only grows,
    so one cursor per protocol walks the range once."""
    taken = {(p.protocol, p.node_port) for s in services for p in s.ports if p.node_port}
    cursor: dict[str, int] = {}
    low, high = port_range
    out = []
    for svc in services:
        if svc.has_node_ports and any(p.node_port is None for p in svc.ports):
            ports = []
            for p in svc.ports:
                if p.node_port is None:
                    number = cursor.get(p.protocol, low)
                    while number <= high and (p.protocol, number) in taken:
                        number += 1
                    if number > high:
                        raise InputError(source, svc.line, f"service {svc.key} port {p.name or p.port}/"
                                         f"{p.protocol.upper()}: no node port left in node_port_range {low}-{high} "
                                         f"(every one is taken: the API server refuses the service, 'range is "
                                         f"full'): widen node_port_range or give node_port")
                    taken.add((p.protocol, number))
                    cursor[p.protocol] = number + 1
                    p = replace(p, node_port=number)
                ports.append(p)
            svc = replace(svc, ports=tuple(ports))
        out.append(svc)
    return tuple(out)


def _list(ctx: _Ctx, doc: _Map, key: str, *, required: bool = True) -> list[_Map]:
    items = ctx.field(doc, key, list, required=required, default=[])
    for item in items:
        if not isinstance(item, _Map):
            raise ctx.error(doc.key_lines[key], f"each entry of {key} must be a mapping")
    return items




def _pod_prefix(ctx: _Ctx, m: _Map, default: int | None) -> int | None:
    """``pod_prefix`` (the prefix length on each pod's eth0) of the cluster or a node, 0-32."""
    value = ctx.field(m, "pod_prefix", int, required=False, default=default)
    if value is not None and "pod_prefix" in m and not 0 <= value <= 32:
        raise ctx.error(m.key_lines["pod_prefix"], f"pod_prefix must be a prefix length from 0 to 32, not {value}")
    return value


def _node(ctx: _Ctx, n: _Map, base: Path, pod_prefix: int | None = None) -> NodeSpec:
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
                    dumps.get("rules"), tuple(inline), tuple(inline_lines), _pod_prefix(ctx, n, pod_prefix))


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
    ctx.only(p, {"name", "namespace", "node", "ip", "labels", "containers", "ready", "host_network"}, "a pod")
    ports: list[int] = []
    named: dict[tuple[str, str], tuple[int, int]] = {}
    names_used: set[str] = set()
    for c in ctx.field(p, "containers", list, required=False, default=[]):
        if not isinstance(c, _Map):
            raise ctx.error(p.key_lines["containers"], "each container must be a mapping")
        ctx.only(c, {"name", "ports"}, "a container")
        ctx.name(c, "name", "container name", required=False)
        for port in ctx.field(c, "ports", list, required=False, default=[]):
            line = c.key_lines["ports"]
            if isinstance(port, _Map):         # {name: http, port: 8080, protocol: TCP}
                ctx.only(port, {"name", "port", "protocol"}, "a container port")
                number = _port_number(ctx, ctx.field(port, "port", int), port.line, "container port")
                proto = _protocol(ctx, port)
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
                number = _port_number(ctx, port, line, "container port")
            ports.append(number)
    host_network = ctx.field(p, "host_network", bool, required=False, default=False)
    name = ctx.name(p, "name", "pod name")
    if host_network and "ip" not in p:
        ip = 0                 # the node's address (set once nodes are known)
    else:
        ip = ctx.ip(p, "ip")
    return PodSpec(name, ctx.name(p, "namespace", "namespace", required=False, default="default"),
                   ctx.name(p, "node", "node name"), ip, _labels(ctx, p, "labels") or (),
                   tuple(ports), ctx.field(p, "ready", bool, required=False, default=True), p.line,
                   tuple((n, proto, number) for (n, proto), (number, _line) in named.items()), host_network)


def _protocol(ctx: _Ctx, m: _Map) -> str:
    proto = ctx.field(m, "protocol", str, required=False, default="TCP")
    if proto.upper() not in ("TCP", "UDP"):
        raise ctx.error(m.key_lines["protocol"], f"protocol must be TCP or UDP, not {proto!r}")
    return proto.lower()


_SERVICE_KEYS = {"name", "namespace", "cluster_ip", "ports", "selector", "endpoints", "endpoint_ips", "type",
                 "external_ips", "load_balancer_ips", "load_balancer_source_ranges", "external_traffic_policy",
                 "internal_traffic_policy", "session_affinity", "session_affinity_timeout"}


def _service(ctx: _Ctx, s: _Map, notes: list[str]) -> ServiceSpec | None:
    ctx.only(s, _SERVICE_KEYS, "a service")
    kind = ctx.field(s, "type", str, required=False, default="ClusterIP")
    svc_name = ctx.name(s, "name", "service name")         # checked first: notes below name the service
    svc_ns = ctx.name(s, "namespace", "namespace", required=False, default="default")
    where = f"service {svc_ns}/{svc_name}"
    if kind == "ExternalName":
        notes.append(f"{where} is of type ExternalName (a DNS alias, no address): not checked")
        return None
    if kind not in SERVICE_TYPES:
        raise ctx.error(s.key_lines["type"], f"type must be {', '.join(SERVICE_TYPES)} or ExternalName, not {kind!r}")
    if s.get("cluster_ip") in ("None", None) and "cluster_ip" in s:
        notes.append(f"{where} is headless (cluster_ip: None): not checked")
        return None
    ports = []
    names: dict[str, int] = {}
    for p in ctx.field(s, "ports", list):
        if not isinstance(p, _Map):
            raise ctx.error(s.key_lines["ports"], "each service port must be a mapping")
        ctx.only(p, {"name", "port", "target_port", "protocol", "node_port"}, "a service port")
        port = _port_number(ctx, ctx.field(p, "port", int), p.key_lines.get("port", p.line), "port")
        target = ctx.field(p, "target_port", (int, str), required=False, default=port)
        if isinstance(target, str):         # a container port's name, resolved per endpoint pod
            why = iana_svc_name(target)
            if why:
                raise ctx.error(p.key_lines["target_port"], f"target_port name {target!r} {why}")
        else:
            _port_number(ctx, target, p.key_lines.get("target_port", p.line), "target_port")
        proto = _protocol(ctx, p)
        name = ctx.name(p, "name", "service port name", required=False, default="", allow_empty=True)
        if name in names:
            raise ctx.error(p.line, f"service port name {name!r} is used twice (also on line {names[name]})"
                            if name else "a service with several ports must name each of them")
        names[name] = p.line
        node_port = ctx.field(p, "node_port", int, required=False, default=None)
        if node_port is not None:
            if kind == "ClusterIP":
                raise ctx.error(p.key_lines["node_port"], "node_port may not be used when type is ClusterIP")
            _port_number(ctx, node_port, p.key_lines["node_port"], "node_port")
        ports.append(ServicePortSpec(name, port, target, proto, node_port))
    endpoints = ctx.field(s, "endpoints", list, required=False)
    keys: dict[str, None] = {}         # an ordered set: one pass
    for key in endpoints or ():
        line = s.key_lines["endpoints"]
        if not isinstance(key, str) or key.count("/") != 1:
            raise ctx.error(line, f"an endpoint is a pod as namespace/name, not {_short(key)}")
        ns, _, pod = key.partition("/")
        ctx.check_name(ns, "namespace", line)
        ctx.check_name(pod, "pod name", line)
        if key in keys:
            raise ctx.error(line, f"endpoint {key} is listed twice")
        keys[key] = None
    ips = _ip_list(ctx, s, "endpoint_ips", where, notes, non_special=True)
    named = [sp.target_port for sp in ports if isinstance(sp.target_port, str)]
    if named and ips:
        raise ctx.error(s.key_lines["endpoint_ips"], f"target port {named[0]!r} is a name, which endpoint IPs cannot "
                                                     "resolve (they are no pods): give the port number")
    external_ips = _ip_list(ctx, s, "external_ips", where, notes, non_special=True)
    lb_ips = _ip_list(ctx, s, "load_balancer_ips", where, notes)
    if lb_ips and kind != "LoadBalancer":
        raise ctx.error(s.key_lines["load_balancer_ips"], f"load_balancer_ips (status.loadBalancer.ingress) need "
                                                          f"type LoadBalancer, not {kind}")
    ranges = []
    for text in ctx.field(s, "load_balancer_source_ranges", list, required=False, default=[]):
        line = s.key_lines["load_balancer_source_ranges"]
        try:
            ranges.append(parse_network(text if isinstance(text, str) else ""))
        except AddressError as exc:
            raise ctx.error(line, f"a source range is a CIDR like 203.0.113.0/24, not {_short(text)}: {exc}") from None
    etp = ctx.field(s, "external_traffic_policy", str, required=False, default="Cluster")
    itp = ctx.field(s, "internal_traffic_policy", str, required=False, default="Cluster")
    for key, value in (("external_traffic_policy", etp), ("internal_traffic_policy", itp)):
        if value not in ("Cluster", "Local"):
            raise ctx.error(s.key_lines[key], f"{key} must be Cluster or Local, not {value!r}")
    if "external_traffic_policy" in s and kind == "ClusterIP" and not external_ips:
        raise ctx.error(s.key_lines["external_traffic_policy"], "external_traffic_policy may only be set for a service "
                                                                "reachable from outside (NodePort, LoadBalancer or "
                                                                "external_ips)")
    affinity = ctx.field(s, "session_affinity", str, required=False, default="None")
    if affinity not in AFFINITY_TYPES:
        raise ctx.error(s.key_lines["session_affinity"], f"session_affinity must be None or ClientIP (the API server "
                                                         f"supports no other), not {_short(affinity)}")
    timeout = ctx.field(s, "session_affinity_timeout", int, required=False, default=DEFAULT_AFFINITY_TIMEOUT)
    if "session_affinity_timeout" in s and (affinity != "ClientIP" or affinity_timeout_reason(timeout)):
        raise ctx.error(s.key_lines["session_affinity_timeout"], "session_affinity_timeout is 1-86400 seconds, and "
                                                                 "only with session_affinity: ClientIP")
    return ServiceSpec(svc_name, svc_ns,
                       ctx.ip(s, "cluster_ip"), tuple(ports), _labels(ctx, s, "selector"),
                       tuple(keys) if endpoints is not None else None, tuple(ips), s.line, kind,
                       external_ips, lb_ips, tuple(ranges), etp, itp, timeout if affinity == "ClientIP" else 0)


def _ip_list(ctx: _Ctx, s: _Map, key: str, where: str, notes: list[str], *,
             non_special: bool = False) -> tuple[int, ...]:
    """A list of distinct addresses (``external_ips``, ``load_balancer_ips``, ``endpoint_ips``) as
    the API server accepts them (``non_special``: external IPs and endpoint addresses may not be
    unspecified, loopback or link-local, see :mod:`.k8s_values`); IPv6 ones are noted and skipped.
    One pass with a set: 100,000 addresses are read in linear time."""
    out: dict[int, None] = {}
    seen_v6: set[str] = set()
    line = s.key_lines.get(key, s.line)
    for text in ctx.field(s, key, list, required=False, default=[]):
        if not isinstance(text, str):
            raise ctx.error(line, f"an address in {key} is a string like 192.0.2.10, not {_short(text)}")
        ip, why = ip_text(text, non_special=non_special)
        if why:
            raise ctx.error(line, f"{key}: {why}")
        if ip in out or text in seen_v6:
            raise ctx.error(line, f"{key}: {text} is listed twice")
        if ip is None:
            seen_v6.add(text)
            notes.append(f"{where}: IPv6 address {text} in {key} skipped (pktverify models IPv4)")
        else:
            out[ip] = None
    return tuple(out)


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
