"""Any cluster (loaded, generated or drawn by a strategy) as the YAML ``pktverify verify`` reads.

The YAML reads back to an equal :class:`~pktverify.model.cluster.ClusterSpec` (where it was read
from and line numbers aside): dump files stay paths, dumps held as text are written inline as
block scalars (``dumps: {iptables: |...}``), so a counterexample is one self-contained file.
"""

from __future__ import annotations

import yaml

from ..model.addresses import format_ip, format_network
from ..model.cluster import DUMP_KINDS, NODE_PORT_RANGE, ClusterSpec, NodeSpec, PodSpec, ServiceSpec

__all__ = ["cluster_to_yaml"]


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):     # libyaml's emitter when there is one: ~10x
    """Multi-line strings as literal blocks (dumps stay readable and keep their line numbers)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def cluster_to_yaml(cluster: ClusterSpec, *, inline_files: bool = False) -> str:
    """``cluster`` as cluster YAML text (see :mod:`pktverify.parse.cluster_yaml` for the format).
    ``inline_files``: dumps given as files are read and written inline too, so the YAML stands
    alone (a counterexample that still reproduces when the files have moved or changed)."""
    if inline_files:
        cluster = _inlined(cluster)
    doc = {
        "cluster": {"cidr": format_network(*cluster.cidr), "service_cidr": format_network(*cluster.service_cidr),
                    "proxy_mode": cluster.proxy_mode, "routing": cluster.routing,
                    **({"node_port_range": "%d-%d" % cluster.node_port_range}
                       if cluster.node_port_range != NODE_PORT_RANGE else {})},
        "nodes": [_node(n) for n in cluster.nodes],
        "pods": [_pod(p) for p in cluster.pods + cluster.host_pods],
        "services": [_service(s) for s in cluster.services],
    }
    return "# a cluster written by pktverify: check it with `pktverify verify FILE`\n" + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=120,
                            allow_unicode=False)


def _inlined(cluster: ClusterSpec) -> ClusterSpec:
    """``cluster`` with every dump file's text held inline."""
    from dataclasses import replace

    from ..parse.source import read_text

    nodes = []
    for n in cluster.nodes:
        files = {kind: getattr(n, kind) for kind in DUMP_KINDS
                 if getattr(n, kind) is not None}
        if files:
            texts = {kind: read_text(path, allow_empty=True) for kind, path in files.items()}
            n = replace(n, inline=n.inline + tuple(texts.items()), **{kind: None for kind in files})
        nodes.append(n)
    return replace(cluster, nodes=tuple(nodes))


def _node(n: NodeSpec) -> dict:
    out: dict = {"name": n.name, "ip": f"{format_ip(n.ip)}/{n.prefixlen}", "pod_cidr": format_network(*n.pod_cidr),
                 "bridge": n.bridge}
    if n.docker:
        out["docker"] = True
    if n.pod_prefix is not None:
        out["pod_prefix"] = n.pod_prefix
    for kind in DUMP_KINDS:
        path = getattr(n, kind)
        if path is not None:
            out[kind] = path
    if n.inline:
        out["dumps"] = dict(n.inline)
    return out


def _pod(p: PodSpec) -> dict:
    out: dict = {"name": p.name, "namespace": p.namespace, "node": p.node}
    if p.host_network:
        out["host_network"] = True
    else:
        out["ip"] = format_ip(p.ip)
    if p.labels:
        out["labels"] = dict(p.labels)
    if not p.ready:
        out["ready"] = False
    if p.ports:
        named = list(p.named_ports)
        ports: list = []
        for number in p.ports:
            match = next((entry for entry in named if entry[2] == number), None)
            if match is None:
                ports.append(number)
            else:
                named.remove(match)
                ports.append({"name": match[0], "port": number, "protocol": match[1].upper()})
        out["containers"] = [{"name": "main", "ports": ports}]
    return out


def _service(s: ServiceSpec) -> dict:
    out: dict = {"name": s.name, "namespace": s.namespace, "cluster_ip": format_ip(s.cluster_ip),
                 "ports": [{"name": p.name, "port": p.port, "target_port": p.target_port,
                            "protocol": p.protocol.upper(), **({"node_port": p.node_port} if p.node_port else {})}
                           for p in s.ports]}
    if s.type != "ClusterIP":
        out["type"] = s.type
    if s.external_ips:
        out["external_ips"] = [format_ip(ip) for ip in s.external_ips]
    if s.lb_ips:
        out["load_balancer_ips"] = [format_ip(ip) for ip in s.lb_ips]
    if s.lb_source_ranges:
        out["load_balancer_source_ranges"] = [format_network(*n) for n in s.lb_source_ranges]
    if s.external_policy != "Cluster":
        out["external_traffic_policy"] = s.external_policy
    if s.internal_policy != "Cluster":
        out["internal_traffic_policy"] = s.internal_policy
    if s.affinity_timeout:
        out["session_affinity"] = "ClientIP"
        out["session_affinity_timeout"] = s.affinity_timeout
    if s.selector is not None:
        out["selector"] = dict(s.selector)
    if s.endpoints is not None:
        out["endpoints"] = list(s.endpoints)
    if s.endpoint_ips:
        out["endpoint_ips"] = [format_ip(ip) for ip in s.endpoint_ips]
    return out
