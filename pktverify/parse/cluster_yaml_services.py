"""The services of a cluster YAML: ports, endpoints, exposure (NodePort, LoadBalancer, external IPs),
traffic policies and session affinity, checked as the API server checks them; node ports allocated
as the API server allocates them."""

from __future__ import annotations

from dataclasses import replace

from ..errors import InputError
from ..model.addresses import AddressError, parse_network
from ..model.cluster import NODE_PORT_RANGE, SERVICE_TYPES, ServicePortSpec, ServiceSpec
from .k8s_names import iana_svc_name
from .k8s_values import AFFINITY_TYPES, DEFAULT_AFFINITY_TIMEOUT, affinity_timeout_reason, ascii_number, ip_text
from .yaml_doc import YamlContext, YamlMap, labels, port_number, short

__all__ = ["service", "protocol", "node_port_range", "allocate_node_ports"]


def node_port_range(ctx: YamlContext, c: YamlMap) -> tuple[int, int]:
    """``node_port_range: 30000-32767`` (kube-apiserver's --service-node-port-range)."""
    text = ctx.field(c, "node_port_range", str, required=False, default=None)
    if text is None:
        return NODE_PORT_RANGE
    low_text, sep, high_text = text.partition("-")
    low, high = ascii_number(low_text), ascii_number(high_text)     # ASCII digits only: '³' and '٣' are no ports
    if not (sep and low is not None and high is not None and 0 < low <= high < 65536):
        raise ctx.error(c.key_lines["node_port_range"], f"node_port_range must be LOW-HIGH within 1-65535 in ASCII "
                                                        f"digits (like 30000-32767), not {short(text)}")
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


def protocol(ctx: YamlContext, m: YamlMap, *, sctp: bool = False) -> str:
    """A port's protocol, lower case. SCTP only where ``sctp`` (container ports: policies name them);
    a service's SCTP port is refused: kube-proxy's SCTP rules are not modelled end to end."""
    proto = ctx.field(m, "protocol", str, required=False, default="TCP")
    if proto.upper() == "SCTP" and not sctp:
        raise ctx.error(m.key_lines["protocol"], "SCTP service ports are not modelled (pktverify checks TCP and UDP "
                                                 "services; SCTP container ports are accepted)")
    if proto.upper() not in ("TCP", "UDP", "SCTP"):
        raise ctx.error(m.key_lines["protocol"], f"protocol must be TCP, UDP or SCTP, not {proto!r}")
    return proto.lower()


_SERVICE_KEYS = {"name", "namespace", "cluster_ip", "ports", "selector", "endpoints", "endpoint_ips", "type",
                 "external_ips", "load_balancer_ips", "load_balancer_source_ranges", "external_traffic_policy",
                 "internal_traffic_policy", "session_affinity", "session_affinity_timeout"}


def service(ctx: YamlContext, s: YamlMap, notes: list[str]) -> ServiceSpec | None:
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
    ports = _ports(ctx, s, kind)
    endpoints = _endpoints(ctx, s)
    ips = _ip_list(ctx, s, "endpoint_ips", where, notes, non_special=True)
    named = [sp.target_port for sp in ports if isinstance(sp.target_port, str)]
    if named and ips:
        raise ctx.error(s.key_lines["endpoint_ips"], f"target port {named[0]!r} is a name, which endpoint IPs cannot "
                                                     "resolve (they are no pods): give the port number")
    external_ips, lb_ips, ranges = _exposure(ctx, s, kind, where, notes)
    etp, itp, timeout, affinity = _policies(ctx, s, kind, external_ips)
    return ServiceSpec(svc_name, svc_ns,
                       ctx.ip(s, "cluster_ip"), tuple(ports), labels(ctx, s, "selector"),
                       endpoints, tuple(ips), s.line, kind,
                       external_ips, lb_ips, tuple(ranges), etp, itp, timeout if affinity == "ClientIP" else 0)


def _ports(ctx: YamlContext, s: YamlMap, kind: str) -> list[ServicePortSpec]:
    """The service's ports: numbers, target ports (a number or a container port's name), protocols,
    names (required and unique when there are several) and node ports."""
    ports = []
    names: dict[str, int] = {}
    for p in ctx.field(s, "ports", list):
        if not isinstance(p, YamlMap):
            raise ctx.error(s.key_lines["ports"], "each service port must be a mapping")
        ctx.only(p, {"name", "port", "target_port", "protocol", "node_port"}, "a service port")
        port = port_number(ctx, ctx.field(p, "port", int), p.key_lines.get("port", p.line), "port")
        target = ctx.field(p, "target_port", (int, str), required=False, default=port)
        if isinstance(target, str):         # a container port's name, resolved per endpoint pod
            why = iana_svc_name(target)
            if why:
                raise ctx.error(p.key_lines["target_port"], f"target_port name {target!r} {why}")
        else:
            port_number(ctx, target, p.key_lines.get("target_port", p.line), "target_port")
        proto = protocol(ctx, p)
        name = ctx.name(p, "name", "service port name", required=False, default="", allow_empty=True)
        if name in names:
            raise ctx.error(p.line, f"service port name {name!r} is used twice (also on line {names[name]})"
                            if name else "a service with several ports must name each of them")
        names[name] = p.line
        node_port = ctx.field(p, "node_port", int, required=False, default=None)
        if node_port is not None:
            if kind == "ClusterIP":
                raise ctx.error(p.key_lines["node_port"], "node_port may not be used when type is ClusterIP")
            port_number(ctx, node_port, p.key_lines["node_port"], "node_port")
        ports.append(ServicePortSpec(name, port, target, proto, node_port))
    return ports



def _endpoints(ctx: YamlContext, s: YamlMap) -> tuple[str, ...] | None:
    """``endpoints``: pods as namespace/name, each once (None without the key: the selector decides)."""
    endpoints = ctx.field(s, "endpoints", list, required=False)
    keys: dict[str, None] = {}         # an ordered set: one pass
    for key in endpoints or ():
        line = s.key_lines["endpoints"]
        if not isinstance(key, str) or key.count("/") != 1:
            raise ctx.error(line, f"an endpoint is a pod as namespace/name, not {short(key)}")
        ns, _, pod = key.partition("/")
        ctx.check_name(ns, "namespace", line)
        ctx.check_name(pod, "pod name", line)
        if key in keys:
            raise ctx.error(line, f"endpoint {key} is listed twice")
        keys[key] = None
    return tuple(keys) if endpoints is not None else None



def _exposure(ctx: YamlContext, s: YamlMap, kind: str, where: str,
              notes: list[str]) -> tuple[tuple[int, ...], tuple[int, ...], list[tuple[int, int]]]:
    """How the service is reached from outside: external IPs, load-balancer ingress IPs (LoadBalancer
    only) and the load balancer's source ranges."""
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
            raise ctx.error(line, f"a source range is a CIDR like 203.0.113.0/24, not {short(text)}: {exc}") from None
    return external_ips, lb_ips, ranges



def _policies(ctx: YamlContext, s: YamlMap, kind: str,
              external_ips: tuple[int, ...]) -> tuple[str, str, int, str]:
    """External and internal traffic policies, session affinity and its timeout, as the API server
    accepts them."""
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
                                                         f"supports no other), not {short(affinity)}")
    timeout = ctx.field(s, "session_affinity_timeout", int, required=False, default=DEFAULT_AFFINITY_TIMEOUT)
    if "session_affinity_timeout" in s and (affinity != "ClientIP" or affinity_timeout_reason(timeout)):
        raise ctx.error(s.key_lines["session_affinity_timeout"], "session_affinity_timeout is 1-86400 seconds, and "
                                                                 "only with session_affinity: ClientIP")
    return etp, itp, timeout, affinity


def _ip_list(ctx: YamlContext, s: YamlMap, key: str, where: str, notes: list[str], *,
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
            raise ctx.error(line, f"an address in {key} is a string like 192.0.2.10, not {short(text)}")
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
