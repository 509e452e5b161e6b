"""A real cluster: ``kubectl get nodes,pods,services,endpointslices -A -o json`` plus per-node dumps.

Nodes come from ``Node`` objects (InternalIP, ``spec.podCIDR``) and their dumps
in ``DUMPS/<node>/`` (``iptables-save.txt``, ``ip-addr.json``, ``ip-route.txt``);
the node's prefix length and bridge are read from its address dump. Pods with
a pod IP of their own (not host-network) come from ``Pod`` objects (ready =
the Ready condition); services from ``Service`` objects (headless ones have no
ClusterIP and are skipped); endpoints from ``EndpointSlice`` objects when a
service has them (ready endpoints, pods by ``targetRef``, others by address),
else from the selector. kubectl's output does not say the cluster and service
CIDRs, so they are given on the command line.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import InvalidArgument
from ..generate.ip_json import NODE_FILES
from ..model.addresses import AddressError, format_network, in_network, parse_ip, parse_network
from ..model.cluster import SERVICE_TYPES, ClusterSpec, NodeSpec, PodSpec, ServicePortSpec, ServiceSpec
from .ipaddr import parse_ip_addr
from .json_input import JsonNode, load_json
from .k8s_names import KINDS, dns1123_label, iana_svc_name, label_key, label_value
from .source import read_text

__all__ = ["load_kubectl_cluster", "looks_like_kubectl"]

# The node folder layout (NODE_FILES); earlier releases read ip-route.txt, still accepted.
_FALLBACK = {"routes": "ip-route.txt", "addrs": "ip-addr.txt"}


def looks_like_kubectl(text: str) -> bool:
    """True for kubectl JSON (an object), False for the YAML cluster description."""
    return text.lstrip().startswith("{")


def load_kubectl_cluster(path: str | Path, *, dumps: str | Path | None = None, cluster_cidr: str,
                         service_cidr: str) -> ClusterSpec:
    """Read kubectl JSON and the per-node dumps under ``dumps`` (default: the JSON's directory)."""
    text = read_text(path)
    doc = load_json(text, str(path), expect="kubectl get ... -o json")
    if not isinstance(doc.value, dict) or not isinstance(doc.value.get("items"), list):
        raise doc.error("expected kubectl's List output (an object with items): kubectl get nodes,pods,services,"
                        "endpointslices -A -o json")
    base = Path(dumps) if dumps else Path(path).parent
    cidr = _cidr_argument("--cluster-cidr", cluster_cidr)
    svc_cidr = _cidr_argument("--service-cidr", service_cidr)
    by_kind: dict[str, list[JsonNode]] = {}
    for item in doc.list("items"):
        by_kind.setdefault(item.str("kind", default=""), []).append(item)
    nodes = _unique([_node(n, base) for n in by_kind.get("Node", [])], "Node")
    if not nodes:
        raise doc.error("no Node objects: run kubectl get nodes,pods,services,endpointslices -A -o json")
    notes: list[str] = []          # what the input holds that is not modelled
    nodes = _node_networks(nodes, base, notes)
    node_ips = {n.ip for n, _item in nodes}
    node_names = {n.name for n, _item in nodes}
    pods = _unique([p for p in (_pod(item, node_ips, node_names, notes) for item in by_kind.get("Pod", [])) if p],
                   "Pod")
    slices: dict[tuple[str, str], list[JsonNode]] = {}
    for s in by_kind.get("EndpointSlice", []):
        meta = s.obj("metadata")
        svc = meta.obj("labels").str("kubernetes.io/service-name")
        if svc:
            slices.setdefault((meta.str("namespace", default="default"), svc), []).append(s)
    pod_keys = {p.key for p, _item in pods}
    services = _unique([s for s in (_service(item, slices, pod_keys, notes) for item in by_kind.get("Service", []))
                        if s], "Service")
    notes = list(dict.fromkeys(notes))
    for kind in sorted(set(by_kind) - {"Node", "Pod", "Service", "EndpointSlice", "Endpoints", ""}):
        notes.append(f"{len(by_kind[kind])} {kind} object(s) not modelled (NetworkPolicy, Ingress, ... are not "
                     "checked)")
    return ClusterSpec(str(path), cidr, svc_cidr, "iptables", "direct", tuple(n for n, _ in nodes),
                       tuple(p for p, _ in pods), tuple(s for s, _ in services), {"notes": notes})


def _cidr_argument(option: str, text: str) -> tuple[int, int]:
    try:
        net = parse_network(text)
    except AddressError as exc:
        raise InvalidArgument(f"{option} {text}: {exc}") from None
    if "/" not in text or parse_ip(text.split("/")[0]) != net[0]:
        raise InvalidArgument(f"{option} {text} must be a network in CIDR form without host bits "
                              f"(did you mean {format_network(*net)}?)")
    return net


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


def _node(item: JsonNode, base: Path) -> tuple[NodeSpec, JsonNode]:
    meta = item.obj("metadata", required=True)
    name = _checked_name(meta, "name", "node name")       # a folder name under --dumps: validated first
    addresses = item.obj("status").list("addresses")
    internal = [a for a in addresses if a.str("type") == "InternalIP"]
    if not internal:
        raise item.error(f"node {name} has no InternalIP address in status.addresses")
    spec = item.obj("spec")
    if not spec.has("podCIDR"):
        raise item.error(f"node {name} has no spec.podCIDR (pktverify needs each node's pod CIDR: is the "
                         "controller manager's --allocate-node-cidrs on?)")
    try:
        ip = parse_ip(internal[0].str("address", required=True))
    except AddressError as exc:
        raise internal[0].error(f"node {name}: {exc}") from None
    cidr_text = spec.str("podCIDR")
    try:
        net = parse_network(cidr_text)
    except AddressError as exc:
        raise spec.child("podCIDR").error(f"node {name}: {exc}") from None
    if "/" not in cidr_text or parse_ip(cidr_text.split("/")[0]) != net[0]:
        raise spec.child("podCIDR").error(f"node {name}: podCIDR {cidr_text} has host bits set or no prefix "
                                          f"length (did you mean {format_network(*net)}?)")
    folder = base / name
    paths: dict[str, Path | None] = {}
    for key in ("iptables", "addrs", "routes", "ipsets", "rules"):
        p = folder / NODE_FILES[key]
        if not p.is_file() and key in _FALLBACK and (folder / _FALLBACK[key]).is_file():
            p = folder / _FALLBACK[key]
        paths[key] = p if p.is_file() else None
    prefixlen, bridge = 0, "cbr0"         # 0: no address dump, worked out from every node's address
    if paths["addrs"] is not None:
        prefixlen = 32
        interfaces = parse_ip_addr(read_text(paths["addrs"]), source=str(paths["addrs"]))
        for iface in interfaces.values():
            for a in iface.addresses:
                if a.ip == ip:
                    prefixlen = a.prefixlen
                if a.ip == net[0] + 1 or (in_network(a.ip, *net) and iface.name != "lo"):
                    bridge = iface.name
    text = {k: (str(v) if v is not None else None) for k, v in paths.items()}
    return NodeSpec(name, ip, prefixlen, net, bridge, text["iptables"], text["addrs"], text["routes"],
                    ipsets=text["ipsets"], rules=text["rules"]), item


def _node_networks(nodes: list[tuple[NodeSpec, JsonNode]], base: Path, notes: list[str]) -> list:
    """Nodes without an address dump get the node network every node's address shares (at most a
    /24); each node's missing dumps are noted: they are generated."""
    ips = [n.ip for n, _item in nodes]
    common = 24
    while common > 0 and len({ip >> (32 - common) for ip in ips}) > 1:
        common -= 1
    out = []
    for node, item in nodes:
        missing = [k for k in ("iptables", "addrs", "routes") if getattr(node, k) is None]
        if missing:
            notes.append(f"node {node.name}: no {', '.join(missing)} dump in {base / node.name}: generated "
                         "(what kube-proxy and the CNI would write)"
                         + (f"; node network taken as /{common}" if "addrs" in missing else ""))
        if node.prefixlen == 0:
            node = replace(node, prefixlen=common)
        out.append((node, item))
    return out


def _pod(item: JsonNode, node_ips: set[int], node_names: set[str], notes: list[str]) -> tuple[PodSpec, JsonNode] | None:
    meta, name, ns = _meta(item, "pod name")
    spec, status = item.obj("spec"), item.obj("status")
    if not status.has("podIP") or spec.bool("hostNetwork", default=False):
        return None                   # not running yet, or the node's own network namespace
    text = status.str("podIP")
    if ":" in text:                   # dual stack lists the IPv4 address in podIPs; IPv6-only: skipped
        v4 = [a.str("ip") for a in status.list("podIPs") if a.has("ip") and ":" not in a.str("ip")]
        if not v4:
            notes.append(f"pod {ns}/{name} has only IPv6 addresses ({text}): skipped (pktverify models IPv4)")
            return None
        text = v4[0]
    try:
        ip = parse_ip(text)
    except AddressError as exc:
        raise status.child("podIP").error(f"pod {ns}/{name}: {exc}") from None
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
    ports = []
    for c in spec.list("containers"):
        if c.has("name"):
            _checked_name(c, "name", "container name")
        for p in c.list("ports"):
            number = p.int("containerPort", required=True, what="a container port")
            if not 0 < number < 65536:
                raise p.child("containerPort").error(f"container port {number} is not a port number 1-65535")
            ports.append(number)
    ready = any(c.str("type") == "Ready" and c.str("status") == "True" for c in status.list("conditions"))
    labels = _labels(meta, "labels")
    return PodSpec(name, ns, node, ip, labels, tuple(ports), ready), item


def _labels(meta: JsonNode, key: str) -> tuple[tuple[str, str], ...]:
    labels = meta.obj(key)
    out = []
    for k in labels.value:
        v = labels.str(k, default="")
        why = label_key(k) or label_value(v)
        if why:
            raise labels.child(k).error(f"label {k}={v!r}: {why}")
        out.append((k, v))
    return tuple(sorted(out))


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
    if ":" in cip:                    # IPv6 primary family: use an IPv4 ClusterIP when there is one
        v4 = [c.value for c in spec.list("clusterIPs") if isinstance(c.value, str) and ":" not in c.value]
        if not v4:
            notes.append(f"service {ns}/{name} has only IPv6 ClusterIPs ({cip}): skipped (pktverify models IPv4)")
            return None
        cip = v4[0]
    try:
        cluster_ip = parse_ip(cip)
    except AddressError as exc:
        raise spec.child("clusterIP").error(f"service {ns}/{name}: {exc}") from None
    own = slices.get((ns, name), [])
    ports = []
    for p in spec.list("ports"):
        port_name = p.str("name", default="")
        if port_name and dns1123_label(port_name):
            raise p.child("name").error(f"service port name {port_name!r} {dns1123_label(port_name)}")
        port = p.int("port", required=True, what=f"a port of service {ns}/{name}")
        target = p.get("targetPort", (int, str), default=port)
        protocol = p.str("protocol", default="TCP")
        if protocol not in ("TCP", "UDP", "SCTP"):
            raise p.child("protocol").error(f"protocol must be TCP, UDP or SCTP, not {protocol!r}")
        if isinstance(target, str):     # a named port: the slices say the number
            why = iana_svc_name(target)
            if why:
                raise p.child("targetPort").error(f"target port name {target!r} {why}")
            numbers = [sp.int("port") for s in own for sp in s.list("ports") if sp.str("name", default="") == port_name]
            if not numbers:
                raise p.error(f"service {ns}/{name} port {port_name!r} has a named target port ({target}) and no "
                              "EndpointSlice that resolves it")
            target = numbers[0]
        for what, value, node in (("port", port, p.child("port")), ("target port", target, p)):
            if not isinstance(value, int) or not 0 < value < 65536:
                raise node.error(f"service {ns}/{name}: {what} {value} is not a port number 1-65535")
        if protocol == "SCTP":
            raise p.child("protocol").error(f"service {ns}/{name}: SCTP services are not modelled")
        node_port = p.int("nodePort") if kind != "ClusterIP" else None
        if node_port is not None and not 0 < node_port < 65536:
            raise p.child("nodePort").error(f"service {ns}/{name}: nodePort {node_port} is not a port number 1-65535")
        ports.append(ServicePortSpec(port_name, port, target, protocol.lower(), node_port or None))
    line = 0       # found only when an error needs it (line_of reads the whole text)
    exposure = _exposure(spec, item.obj("status"), kind, f"service {ns}/{name}", notes)
    if not own:
        selector = _labels(spec, "selector") if spec.has("selector") else None
        return ServiceSpec(name, ns, cluster_ip, tuple(ports), selector or None, None, (), line, **exposure), item
    endpoints, ips = [], []
    for s in own:
        for ep in s.list("endpoints"):
            if ep.obj("conditions").bool("ready") is False:
                continue
            ref = ep.obj("targetRef")
            key = f"{ref.str('namespace', default=ns)}/{ref.str('name', default='')}"
            if ref.str("kind") == "Pod" and key in pod_keys:
                if key not in endpoints:
                    endpoints.append(key)
                continue
            for addr in ep.list("addresses"):
                text = addr.value
                if not isinstance(text, str):
                    raise addr.error("an endpoint address must be a string")
                try:
                    ip = parse_ip(text)
                except AddressError as exc:
                    if ":" in text:     # IPv6 (dual-stack): not modelled, skipped
                        notes.append(f"service {ns}/{name}: IPv6 endpoint {text} skipped (pktverify models IPv4)")
                        continue
                    raise addr.error(f"service {ns}/{name}: {exc}") from None
                if ip not in ips:
                    ips.append(ip)
    return ServiceSpec(name, ns, cluster_ip, tuple(ports), None, tuple(endpoints), tuple(ips), line, **exposure), item


def _exposure(spec: JsonNode, status: JsonNode, kind: str, what: str, notes: list[str]) -> dict:
    """How a Service is reached and its policies, as ServiceSpec fields: type, externalIPs,
    status.loadBalancer.ingress IPs, loadBalancerSourceRanges, the two traffic policies and
    ClientIP session affinity (IPv6 addresses and hostname-only ingresses are noted, not used)."""
    def addresses(nodes: list[JsonNode], label: str) -> tuple[int, ...]:
        out: list[int] = []
        for node in nodes:
            text = node.value
            if not isinstance(text, str):
                raise node.error(f"{what}: an address in {label} must be a string")
            if ":" in text:
                notes.append(f"{what}: IPv6 {label} {text} skipped (pktverify models IPv4)")
                continue
            try:
                ip = parse_ip(text)
            except AddressError as exc:
                raise node.error(f"{what}: {exc}") from None
            if ip not in out:
                out.append(ip)
        return tuple(out)

    ingress = []
    for entry in status.obj("loadBalancer").list("ingress"):
        if entry.has("ip"):
            ingress.append(entry.child("ip"))
        elif entry.str("hostname"):
            notes.append(f"{what}: load balancer ingress {entry.str('hostname')} has a hostname only: not checked")
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
    timeout = 0
    if spec.str("sessionAffinity", default="None") == "ClientIP":
        timeout = spec.obj("sessionAffinityConfig").obj("clientIP").int("timeoutSeconds") or 10800
    return {"type": kind, "external_ips": addresses(spec.list("externalIPs"), "external IP"),
            "lb_ips": addresses(ingress, "load balancer IP"), "lb_source_ranges": tuple(ranges),
            "affinity_timeout": timeout, **policies}
