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

import json
from pathlib import Path

from ..errors import InputError
from ..model.addresses import AddressError, in_network, parse_ip, parse_network
from ..model.cluster import ClusterSpec, NodeSpec, PodSpec, ServicePortSpec, ServiceSpec
from .ipaddr import parse_ip_addr
from .source import read_text

__all__ = ["load_kubectl_cluster", "looks_like_kubectl"]

_DUMP_FILES = {"iptables": "iptables-save.txt", "addrs": "ip-addr.json", "routes": "ip-route.txt"}


def looks_like_kubectl(text: str) -> bool:
    """True for kubectl JSON (an object), False for the YAML cluster description."""
    return text.lstrip().startswith("{")


class _Src:
    def __init__(self, source: str, text: str) -> None:
        self.source, self.text = source, text

    def error(self, needle: str, message: str) -> InputError:
        """An error at the first line mentioning ``needle`` (kubectl JSON has one key per line)."""
        at = self.text.find(needle) if needle else -1
        line = self.text.count("\n", 0, at) + 1 if at >= 0 else 1
        text = self.text.split("\n")[line - 1].strip()
        return InputError(self.source, line, message, text)


def load_kubectl_cluster(path: str | Path, *, dumps: str | Path | None = None, cluster_cidr: str,
                         service_cidr: str) -> ClusterSpec:
    """Read kubectl JSON and the per-node dumps under ``dumps`` (default: the JSON's directory)."""
    text = read_text(path)
    src = _Src(str(path), text)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(str(path), exc.lineno, f"invalid JSON: {exc.msg}",
                         text.split("\n")[exc.lineno - 1].strip()) from None
    items = doc.get("items") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise src.error('"kind"', "expected kubectl's List output (an object with items)")
    base = Path(dumps) if dumps else Path(path).parent
    try:
        cidr, svc_cidr = parse_network(cluster_cidr), parse_network(service_cidr)
    except AddressError as exc:
        raise InputError("<command line>", 0, f"bad --cluster-cidr/--service-cidr: {exc}", "") from None
    by_kind: dict[str, list[dict]] = {}
    for item in items:
        if isinstance(item, dict):
            by_kind.setdefault(item.get("kind", ""), []).append(item)
    nodes = tuple(_node(src, n, base) for n in by_kind.get("Node", []))
    if not nodes:
        raise src.error('"items"', "no Node objects: run kubectl get nodes,pods,services,endpointslices -A -o json")
    node_ips = {n.ip for n in nodes}
    pods = tuple(p for p in (_pod(src, p, node_ips) for p in by_kind.get("Pod", [])) if p is not None)
    slices: dict[tuple[str, str], list[dict]] = {}
    for s in by_kind.get("EndpointSlice", []):
        meta = s.get("metadata", {})
        svc = meta.get("labels", {}).get("kubernetes.io/service-name")
        if svc:
            slices.setdefault((meta.get("namespace", "default"), svc), []).append(s)
    pod_keys = {p.key for p in pods}
    services = tuple(s for s in (_service(src, s, slices, pod_keys) for s in by_kind.get("Service", []))
                     if s is not None)
    return ClusterSpec(str(path), cidr, svc_cidr, "iptables", "direct", nodes, pods, services)


def _node(src: _Src, item: dict, base: Path) -> NodeSpec:
    name = item.get("metadata", {}).get("name", "")
    internal = [a.get("address") for a in item.get("status", {}).get("addresses", []) if a.get("type") == "InternalIP"]
    if not internal:
        raise src.error(f'"{name}"', f"node {name} has no InternalIP address")
    pod_cidr = item.get("spec", {}).get("podCIDR")
    if not pod_cidr:
        raise src.error(f'"{name}"', f"node {name} has no spec.podCIDR (pktverify needs each node's pod CIDR)")
    try:
        ip = parse_ip(internal[0])
        net = parse_network(pod_cidr)
    except AddressError as exc:
        raise src.error(f'"{name}"', f"node {name}: {exc}") from None
    paths = {key: base / name / fname for key, fname in _DUMP_FILES.items()}
    for key, p in paths.items():
        if not p.is_file():
            raise src.error(f'"{name}"', f"node {name} has no {key} dump: {p} does not exist")
    interfaces = parse_ip_addr(read_text(paths["addrs"]), source=str(paths["addrs"]))
    prefixlen, bridge = 32, "cbr0"
    for iface in interfaces.values():
        for a in iface.addresses:
            if a.ip == ip:
                prefixlen = a.prefixlen
            if a.ip == net[0] + 1 or (in_network(a.ip, *net) and iface.name != "lo"):
                bridge = iface.name
    return NodeSpec(name, ip, prefixlen, net, bridge, str(paths["iptables"]), str(paths["addrs"]),
                    str(paths["routes"]))


def _pod(src: _Src, item: dict, node_ips: set[int]) -> PodSpec | None:
    meta, spec, status = item.get("metadata", {}), item.get("spec", {}), item.get("status", {})
    ip_text = status.get("podIP")
    if not ip_text or spec.get("hostNetwork"):
        return None                   # not scheduled yet, or the node's own network namespace
    try:
        ip = parse_ip(ip_text)
    except AddressError as exc:
        raise src.error(f'"{ip_text}"', f"pod {meta.get('name')}: {exc}") from None
    if ip in node_ips:
        return None
    ports = tuple(p["containerPort"] for c in spec.get("containers", []) for p in c.get("ports", [])
                  if isinstance(p.get("containerPort"), int))
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
    return PodSpec(meta.get("name", ""), meta.get("namespace", "default"), spec.get("nodeName", ""), ip,
                   tuple(sorted((meta.get("labels") or {}).items())), ports, ready)


def _service(src: _Src, item: dict, slices: dict, pod_keys: set[str]) -> ServiceSpec | None:
    meta, spec = item.get("metadata", {}), item.get("spec", {})
    cip = spec.get("clusterIP")
    if not cip or cip == "None":
        return None                   # headless: no ClusterIP to check
    name, ns = meta.get("name", ""), meta.get("namespace", "default")
    try:
        cluster_ip = parse_ip(cip)
    except AddressError as exc:
        raise src.error(f'"{cip}"', f"service {ns}/{name}: {exc}") from None
    own = slices.get((ns, name), [])
    ports = []
    for p in spec.get("ports", []):
        target = p.get("targetPort", p.get("port"))
        if not isinstance(target, int):     # a named port: the slices say the number
            numbers = [sp.get("port") for s in own for sp in s.get("ports", []) if sp.get("name") == p.get("name", "")]
            if not numbers:
                raise src.error(f'"{name}"', f"service {ns}/{name} port {p.get('name')!r} has a named target port"
                                             " and no EndpointSlice that resolves it")
            target = numbers[0]
        ports.append(ServicePortSpec(p.get("name", ""), p.get("port"), target, p.get("protocol", "TCP").lower()))
    if not own:
        selector = spec.get("selector")
        return ServiceSpec(name, ns, cluster_ip, tuple(ports),
                           tuple(sorted(selector.items())) if selector else None, None, (), 0)
    endpoints, ips = [], []
    for s in own:
        for ep in s.get("endpoints", []):
            if ep.get("conditions", {}).get("ready") is False:
                continue
            ref = ep.get("targetRef") or {}
            key = f"{ref.get('namespace', ns)}/{ref.get('name')}"
            if ref.get("kind") == "Pod" and key in pod_keys:
                endpoints.append(key)
            else:
                for addr in ep.get("addresses", []):
                    ips.append(parse_ip(addr))
    return ServiceSpec(name, ns, cluster_ip, tuple(ports), None, tuple(endpoints), tuple(ips), 0)
