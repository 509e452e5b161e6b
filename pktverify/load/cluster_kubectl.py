"""A real cluster: ``kubectl get nodes,pods,services,endpointslices -A -o json`` plus per-node dumps.

Nodes come from ``Node`` objects (InternalIP, ``spec.podCIDR``) and their dumps in
``DUMPS/<node>/`` (the layout ``scripts/collect-node`` writes); :mod:`.kubectl_nodes` matches the
folders, finds a missing pod CIDR and decides kube-proxy's mode from what the dumps show
(:mod:`.dataplane`), refusing what is not modelled. Pods with a pod IP of their own (not
host-network, not Succeeded or Failed: those released their IPs) come from ``Pod`` objects
(ready = the Ready condition); services from ``Service`` objects (headless ones have no
ClusterIP and are skipped); endpoints from ``EndpointSlice`` objects when a service has them
(ready endpoints, pods by ``targetRef``, others by address), else from the selector; namespaces and
network policies from ``Namespace`` and ``NetworkPolicy`` objects (:mod:`.kubectl_policies`). kubectl's
output does not say the cluster and service CIDRs, so they are given on the command line.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from ..errors import InvalidArgument, one_line
from ..model.addresses import AddressError, format_network, parse_ip, parse_network
from ..model.cluster import SERVICE_TYPES, ClusterSpec, PodSpec, ServicePortSpec, ServiceSpec
from ..parse.dataplane import detect_dataplane
from ..parse.json_input import JsonNode, load_json
from ..parse.k8s_names import KINDS, dns1123_label, dns1123_subdomain, iana_svc_name
from ..parse.k8s_values import (
    AFFINITY_TYPES,
    DEFAULT_AFFINITY_TIMEOUT,
    affinity_timeout_reason,
    ip_text,
    ipv6_reason,
    is_ip_sloppy,
    note_shared_addresses,
)
from ..parse.network_policy import POLICIES_NOTE
from ..parse.source import read_text
from .kubectl_nodes import (
    NodeInput,
    check_userspace_ports,
    cidr_option,
    dumps_folder,
    match_folders,
    node_specs,
    parse_pod_cidr_options,
    pod_cidr_from_dumps,
    proxy_mode,
    read_dumps,
)
from .kubectl_policies import container_ports, kubectl_namespaces, kubectl_policies
from .kubectl_policies import object_labels as _labels

__all__ = ["load_kubectl_cluster", "looks_like_kubectl"]

_KUBECTL_KEY = re.compile(r'"(items|apiVersion|kind)"\s*:')

def looks_like_kubectl(text: str) -> bool:
    """True for kubectl JSON (an object with ``items``, ``apiVersion`` or ``kind``, as every
    kubectl -o json output has), False for the YAML cluster description, in any YAML style
    (flow style and JSON included: ``{"cluster": ...}``). ``text``: the file's beginning."""
    return text.lstrip().startswith("{") and _KUBECTL_KEY.search(text) is not None


def load_kubectl_cluster(path: str | Path, *, dumps: str | Path | None = None, cluster_cidr: str,
                         service_cidr: str, require_dumps: bool = False,
                         pod_cidrs: Mapping[str, str] | None = None) -> ClusterSpec:
    """Read kubectl JSON and the per-node dumps under ``dumps`` (default: the JSON's directory).

    ``require_dumps``: a node without its iptables, addrs and routes dumps is an error (else
    they are generated, and said so in the notes). ``pod_cidrs``: node name -> CIDR for nodes
    whose Node object has no ``spec.podCIDR`` (``--pod-cidr NODE=CIDR``)."""
    text = read_text(path)
    doc = load_json(text, str(path), expect="kubectl get ... -o json")
    if not isinstance(doc.value, dict) or not isinstance(doc.value.get("items"), list):
        raise doc.error("expected kubectl's List output (an object with items): kubectl get nodes,pods,services,"
                        "endpointslices -A -o json")
    cidr = cidr_option(f"--cluster-cidr {cluster_cidr}", cluster_cidr)
    svc_cidr = cidr_option(f"--service-cidr {service_cidr}", service_cidr)
    base = dumps_folder(path, dumps)
    by_kind: dict[str, list[JsonNode]] = {}
    for item in doc.list("items"):
        by_kind.setdefault(item.str("kind", default=""), []).append(item)
    nodes = _unique([_node(n) for n in by_kind.get("Node", [])], "Node")
    if not nodes:
        raise doc.error("no Node objects: run kubectl get nodes,pods,services,endpointslices -A -o json")
    notes: list[str] = []          # what the input holds that is not modelled
    warnings: list[str] = []       # what the user must hear about now (also in the notes)
    inputs = [n for n, _item in nodes]
    match_folders(inputs, base, require=require_dumps, notes=notes, warnings=warnings)
    _pod_cidrs(nodes, parse_pod_cidr_options(pod_cidrs, {n.name for n in inputs}), cidr, notes)
    node_ips = {n.ip for n in inputs}
    _detect_dataplanes(inputs, node_ips)
    node_names = {n.name for n in inputs}
    pod_items = by_kind.get("Pod", [])
    pods = _unique([p for p in (_pod(item, node_ips, node_names, notes) for item in pod_items if _live(item))
                    if p], "Pod")
    done = len(pod_items) - sum(1 for item in pod_items if _live(item))
    if done:
        notes.append(f"{done} completed pod(s) (Succeeded/Failed) skipped: their IPs are released")
    slices = _slices_by_service(by_kind.get("EndpointSlice", []))
    pod_keys = {p.key for p, _item in pods}
    services = _unique([s for s in (_service(item, slices, pod_keys, notes) for item in by_kind.get("Service", []))
                        if s], "Service")
    note_shared_addresses([s for s, _item in services], {n.ip: n.name for n in inputs}, notes)
    mode = proxy_mode(inputs, str(path), has_services=bool(services), notes=notes)
    specs = node_specs(inputs, notes, source=str(path), with_pods={p.node for p, _item in pods})
    notes = list(dict.fromkeys(notes))
    policies = kubectl_policies(by_kind.get("NetworkPolicy", []))
    if policies:
        notes.append(POLICIES_NOTE.format(len(policies)))
    for kind in sorted(set(by_kind) - {"Node", "Pod", "Service", "EndpointSlice", "Endpoints", "Namespace",
                                       "NetworkPolicy", ""}):
        notes.append(f"{len(by_kind[kind])} {one_line(kind[:60])} object(s) not modelled (NetworkPolicy, Ingress, "
                     "... are not checked)")      # the kind is the input's: escaped to one line
    cluster = ClusterSpec(str(path), cidr, svc_cidr, mode, "direct", specs, tuple(p for p, _ in pods),
                          tuple(s for s, _ in services), {"notes": notes, "warnings": list(dict.fromkeys(warnings))},
                          namespaces=kubectl_namespaces(by_kind.get("Namespace", [])),
                          network_policies=policies)
    check_userspace_ports(cluster)
    return cluster


def _detect_dataplanes(inputs: list[NodeInput], node_ips: set[int]) -> None:
    """Each node with dumps: what its dumps say it runs (kube-proxy's mode, an overlay, ...)."""
    for node in inputs:
        if node.paths:
            others = [n.pod_cidr for n in inputs if n is not node and n.pod_cidr]
            read = ("iptables", "ipsets", "nft")         # the dumps' texts detect_dataplane reads
            texts = {k: read_text(p, allow_empty=True) for k, p in node.paths.items() if k in read}
            node.dataplane = detect_dataplane(interfaces=node.interfaces, routes=node.routes, node_ips=node_ips,
                                              pod_cidrs=others, **texts)


def _slices_by_service(items: list[JsonNode]) -> dict[tuple[str, str], list[JsonNode]]:
    """EndpointSlices by the (namespace, name) of the service their label names."""
    slices: dict[tuple[str, str], list[JsonNode]] = {}
    for s in items:
        meta = s.obj("metadata")
        svc = meta.obj("labels").str("kubernetes.io/service-name")
        if svc:
            slices.setdefault((meta.str("namespace", default="default"), svc), []).append(s)
    return slices


def _live(item: JsonNode) -> bool:
    """A pod that holds its address: not Succeeded or Failed (kubelet released their IPs, which
    new pods may hold now)."""
    return item.obj("status").str("phase", default="") not in ("Succeeded", "Failed")


def _pod_cidrs(nodes: list[tuple[NodeInput, JsonNode]], given: dict[str, tuple[int, int]],
               cluster_cidr: tuple[int, int], notes: list[str]) -> None:
    """Each node's pod CIDR: spec.podCIDR, else --pod-cidr, else what its dumps show; else an error
    that says both ways out."""
    for node, item in nodes:
        read_dumps(node)
        if node.pod_cidr is not None:
            if node.name in given and given[node.name] != node.pod_cidr:
                raise InvalidArgument(f"--pod-cidr {node.name}={format_network(*given[node.name])}: the Node object "
                                      f"says spec.podCIDR {format_network(*node.pod_cidr)}")
            continue
        if node.name in given:
            node.pod_cidr = given[node.name]
            notes.append(f"node {node.name}: no spec.podCIDR; pod CIDR {format_network(*node.pod_cidr)} from "
                         "--pod-cidr")
            continue
        found = pod_cidr_from_dumps(node, cluster_cidr)
        if found is None:
            raise item.error(f"node {node.name} has no spec.podCIDR (Calico or Cilium IPAM?) and its dumps show none "
                             f"(no bridge route or address in {format_network(*cluster_cidr)}): collect its "
                             f"ip-addr.json and ip-route.json, or give --pod-cidr {node.name}=CIDR")
        node.pod_cidr = found[0]
        notes.append(f"node {node.name}: no spec.podCIDR; pod CIDR {format_network(*found[0])} taken from its dumps "
                     f"({found[1]})")


def _unique(objects: list, kind: str) -> list:
    """Refuse two objects of one kind with the same namespace/name, as the API server would."""
    seen: dict[str, JsonNode] = {}
    for obj, item in objects:
        key = obj.key if hasattr(obj, "key") else obj.name
        if key in seen:
            raise item.error(f"{kind} {key} appears twice (also on line {seen[key].line()})")
        seen[key] = item
    return objects


def _checked_name(node: JsonNode, key: str, kind: str, *, default: str | None = None) -> str:
    """``node[key]`` as a Kubernetes name of ``kind`` (see :mod:`.k8s_names`)."""
    value = node.str(key, required=default is None, default=default, what=node.where())
    why = KINDS[kind](value)
    if why:
        raise node.child(key).error(f"{kind} {value!r} {why}") if node.has(key) else node.error(f"{kind} {why}")
    return value


def _meta(item: JsonNode, name_kind: str) -> tuple[JsonNode, str, str]:
    meta = item.obj("metadata", required=True)
    return meta, _checked_name(meta, "name", name_kind), _checked_name(meta, "namespace", "namespace",
                                                                       default="default")


def _node(item: JsonNode) -> tuple[NodeInput, JsonNode]:
    meta = item.obj("metadata", required=True)
    name = _checked_name(meta, "name", "node name")       # a folder name under --dumps: validated first
    addresses = item.obj("status").list("addresses")
    internal = [a for a in addresses if a.str("type") == "InternalIP"]
    if not internal:
        raise item.error(f"node {name} has no InternalIP address in status.addresses")
    try:
        ip = parse_ip(internal[0].str("address", required=True))
    except AddressError as exc:
        raise internal[0].error(f"node {name}: {exc}") from None
    spec = item.obj("spec")
    if not spec.str("podCIDR"):
        return NodeInput(name, ip, None), item          # taken from --pod-cidr or the dumps
    cidr_text = spec.str("podCIDR")
    try:
        net = parse_network(cidr_text)
    except AddressError as exc:
        raise spec.child("podCIDR").error(f"node {name}: {exc}") from None
    if "/" not in cidr_text or parse_ip(cidr_text.split("/")[0]) != net[0]:
        raise spec.child("podCIDR").error(f"node {name}: podCIDR {cidr_text} has host bits set or no prefix "
                                          f"length (did you mean {format_network(*net)}?)")
    return NodeInput(name, ip, net), item


def _pod(item: JsonNode, node_ips: set[int], node_names: set[str], notes: list[str]) -> tuple[PodSpec, JsonNode] | None:
    meta, name, ns = _meta(item, "pod name")
    spec, status = item.obj("spec"), item.obj("status")
    if not status.has("podIP") or spec.bool("hostNetwork", default=False):
        return None                   # not running yet, or the node's own network namespace
    where = status.child("podIP")
    text = status.str("podIP")
    if ":" in text:                   # dual stack lists the IPv4 address in podIPs; IPv6-only: skipped
        why = ipv6_reason(text)
        if why:
            raise where.error(f"pod {ns}/{name}: podIP {why}")
        v4 = [(a.child("ip"), a.str("ip")) for a in status.list("podIPs") if a.has("ip") and ":" not in a.str("ip")]
        if not v4:
            notes.append(f"pod {ns}/{name} has only IPv6 addresses ({text}): skipped (pktverify models IPv4)")
            return None
        where, text = v4[0]
    try:
        ip = parse_ip(text)
    except AddressError as exc:
        raise where.error(f"pod {ns}/{name}: {exc}") from None
    if ip in node_ips:
        return None
    node = spec.str("nodeName")
    if not node:
        raise spec.error(f"pod {ns}/{name} has a pod IP but no spec.nodeName: kubectl's output is inconsistent "
                         "(re-run kubectl get), or remove the pod from the file")
    if node not in node_names:
        raise spec.child("nodeName").error(
            f"pod {ns}/{name} runs on node {node!r}, which has no Node object in this file: include the nodes "
            "(kubectl get nodes,pods,services,endpointslices -A -o json) or remove the pod")
    ports, named = container_ports(spec)
    ready = any(c.str("type") == "Ready" and c.str("status") == "True" for c in status.list("conditions"))
    return PodSpec(name, ns, node, ip, _labels(meta, "labels"), ports, ready, named_ports=named), item


def _service(item: JsonNode, slices: dict, pod_keys: set[str], notes: list[str]) -> tuple[ServiceSpec, JsonNode] | None:
    meta, name, ns = _meta(item, "service name")
    spec = item.obj("spec")
    kind = spec.str("type", default="ClusterIP")
    if kind == "ExternalName":
        notes.append(f"service {ns}/{name} is of type ExternalName (a DNS alias, no address): not checked")
        return None
    if kind not in SERVICE_TYPES:
        raise spec.child("type").error(f"service {ns}/{name}: type must be {', '.join(SERVICE_TYPES)} or "
                                       f"ExternalName, not {kind!r}")
    cip = spec.str("clusterIP")
    if not cip or cip == "None":
        notes.append(f"service {ns}/{name} is headless (no ClusterIP): not checked")
        return None
    where = spec.child("clusterIP")
    if ":" in cip:                    # IPv6 primary family: use an IPv4 ClusterIP when there is one
        why = ipv6_reason(cip)
        if why:
            raise where.error(f"service {ns}/{name}: clusterIP {why}")
        v4 = [(c, c.value) for c in spec.list("clusterIPs") if isinstance(c.value, str) and ":" not in c.value]
        if not v4:
            notes.append(f"service {ns}/{name} has only IPv6 ClusterIPs ({cip}): skipped (pktverify models IPv4)")
            return None
        where, cip = v4[0]
    try:
        cluster_ip = parse_ip(cip)
    except AddressError as exc:
        raise where.error(f"service {ns}/{name}: {exc}") from None
    own = slices.get((ns, name), [])
    ports = _ports(spec, kind, f"{ns}/{name}", own)
    line = 0       # found only when an error needs it (line_of reads the whole text)
    exposure = _exposure(spec, item.obj("status"), kind, f"service {ns}/{name}", notes)
    if not own:
        selector = _labels(spec, "selector") if spec.has("selector") else None
        return ServiceSpec(name, ns, cluster_ip, tuple(ports), selector or None, None, (), line, **exposure), item
    endpoints, ips = _slice_endpoints(own, ns, name, pod_keys, notes)
    return ServiceSpec(name, ns, cluster_ip, tuple(ports), None, tuple(endpoints), tuple(ips), line, **exposure), item


def _ports(spec: JsonNode, kind: str, key: str, own: list[JsonNode]) -> list[ServicePortSpec]:
    """A Service's ports as the API server accepts them; a named target port is resolved by the
    number its EndpointSlices give it (the first slice naming the port)."""
    slice_ports: dict[str, int] = {}     # port name -> number, as the first slice naming it says (one pass)
    for s in own:
        for sp in s.list("ports"):
            slice_ports.setdefault(sp.str("name", default=""), sp.int("port"))
    ports = []
    for p in spec.list("ports"):
        port_name = p.str("name", default="")
        if port_name and dns1123_label(port_name):
            raise p.child("name").error(f"service port name {port_name!r} {dns1123_label(port_name)}")
        port = p.int("port", required=True, what=f"a port of service {key}")
        target = p.get("targetPort", (int, str), default=port)
        protocol = p.str("protocol", default="TCP")
        if protocol not in ("TCP", "UDP", "SCTP"):
            raise p.child("protocol").error(f"protocol must be TCP, UDP or SCTP, not {protocol!r}")
        if isinstance(target, str):     # a named port: the slices say the number
            why = iana_svc_name(target)
            if why:
                raise p.child("targetPort").error(f"target port name {target!r} {why}")
            if port_name not in slice_ports:
                raise p.error(f"service {key} port {port_name!r} has a named target port ({target}) and no "
                              "EndpointSlice that resolves it")
            target = slice_ports[port_name]
        for what, value, node in (("port", port, p.child("port")), ("target port", target, p)):
            if not isinstance(value, int) or not 0 < value < 65536:
                raise node.error(f"service {key}: {what} {value} is not a port number 1-65535")
        if protocol == "SCTP":
            raise p.child("protocol").error(f"service {key}: SCTP services are not modelled")
        node_port = p.int("nodePort") if kind != "ClusterIP" else None
        if node_port is not None and not 0 < node_port < 65536:
            raise p.child("nodePort").error(f"service {key}: nodePort {node_port} is not a port number 1-65535")
        ports.append(ServicePortSpec(port_name, port, target, protocol.lower(), node_port or None))
    return ports


def _slice_endpoints(own: list[JsonNode], ns: str, name: str, pod_keys: set[str],
                     notes: list[str]) -> tuple[dict[str, None], dict[int, None]]:
    """The ready endpoints of a Service's slices: the pods among them (as namespace/name) and the
    other addresses, each once, in order."""
    endpoints: dict[str, None] = {}      # ordered sets: one pass over any number of endpoints
    ips: dict[int, None] = {}
    for s in own:
        for ep in s.list("endpoints"):
            if ep.obj("conditions").bool("ready") is False:
                continue
            ref = ep.obj("targetRef")
            key = f"{ref.str('namespace', default=ns)}/{ref.str('name', default='')}"
            if ref.str("kind") == "Pod" and key in pod_keys:
                endpoints[key] = None
                continue
            for addr in ep.list("addresses"):
                ip = _address(addr, f"service {ns}/{name}: endpoint address", notes, non_special=True)
                if ip is not None:
                    ips[ip] = None
    return endpoints, ips


def _exposure(spec: JsonNode, status: JsonNode, kind: str, what: str, notes: list[str]) -> dict:
    """How a Service is reached and its policies, as ServiceSpec fields: type, externalIPs,
    status.loadBalancer.ingress IPs, loadBalancerSourceRanges, the two traffic policies and
    ClientIP session affinity, each checked as the API server checks it (:mod:`.k8s_values`);
    IPv6 addresses and hostname-only ingresses are noted, not used."""
    def addresses(nodes: list[JsonNode], label: str, non_special: bool) -> tuple[int, ...]:
        out: dict[int, None] = {}         # ordered and O(1) per address: 200,000 external IPs in one pass
        for node in nodes:
            ip = _address(node, f"{what}: {label}", notes, non_special=non_special)
            if ip is not None:
                out[ip] = None
        return tuple(out)

    ingress = []
    for entry in status.obj("loadBalancer").list("ingress"):
        hostname = entry.str("hostname", default="")
        if hostname:
            why = dns1123_subdomain(hostname) or ("must be a DNS name, not an IP address"
                                                  if is_ip_sloppy(hostname) else None)
            if why:
                raise entry.child("hostname").error(f"{what}: load balancer hostname {hostname[:80]!r} {why}")
        if entry.has("ip"):
            ingress.append(entry.child("ip"))
        elif hostname:
            notes.append(f"{what}: load balancer ingress {hostname} has a hostname only: not checked")
    ranges = []
    for node in spec.list("loadBalancerSourceRanges"):
        try:
            ranges.append(parse_network(node.value if isinstance(node.value, str) else ""))
        except AddressError as exc:
            raise node.error(f"{what}: loadBalancerSourceRanges: {exc}") from None
    policies = {}
    for key, field_name in (("externalTrafficPolicy", "external_policy"), ("internalTrafficPolicy", "internal_policy")):
        value = spec.str(key, default="Cluster")
        if value not in ("Cluster", "Local"):
            raise spec.child(key).error(f"{what}: {key} must be Cluster or Local, not {value!r}")
        policies[field_name] = value
    return {"type": kind, "external_ips": addresses(spec.list("externalIPs"), "externalIPs", True),
            "lb_ips": addresses(ingress, "load balancer IP", False), "lb_source_ranges": tuple(ranges),
            "affinity_timeout": _affinity(spec, what), **policies}


def _affinity(spec: JsonNode, what: str) -> int:
    """ClientIP affinity's timeout in seconds (0: None), as the API server defaults and validates
    it: sessionAffinity None or ClientIP; with ClientIP, timeoutSeconds 1-86400 (absent: 10800);
    with None, no sessionAffinityConfig."""
    affinity = spec.str("sessionAffinity", default="") or "None"
    if affinity not in AFFINITY_TYPES:
        raise spec.child("sessionAffinity").error(f"{what}: sessionAffinity must be None or ClientIP (the API "
                                                  f"server supports no other), not {affinity[:60]!r}")
    config = spec.obj("sessionAffinityConfig")
    if affinity == "None":
        if spec.has("sessionAffinityConfig"):
            raise spec.child("sessionAffinityConfig").error(f"{what}: sessionAffinityConfig must not be set when "
                                                            "sessionAffinity is None")
        return 0
    client = config.obj("clientIP")
    timeout = client.int("timeoutSeconds")
    if timeout is None:
        return DEFAULT_AFFINITY_TIMEOUT
    why = affinity_timeout_reason(timeout)
    if why:
        raise client.child("timeoutSeconds").error(f"{what}: sessionAffinityConfig.clientIP.{why}")
    return timeout


def _address(node: JsonNode, what: str, notes: list[str], *, non_special: bool = False) -> int | None:
    """An address the API server holds as a string: IPv4 as an int, IPv6 None (noted: not modelled),
    anything it would refuse an error at the value's line (``non_special``: external IPs and
    endpoint addresses, :func:`.k8s_values.special_ip_reason`)."""
    text = node.value
    if not isinstance(text, str):
        raise node.error(f"{what}: an address must be a string")
    ip, why = ip_text(text, non_special=non_special)
    if why:
        raise node.error(f"{what}: {why}")
    if ip is None:
        notes.append(f"{what}: IPv6 address {text} skipped (pktverify models IPv4)")
    return ip

