"""One cluster, two spellings: the YAML description and kubectl JSON give the same verdicts.

Random clusters (sizes, not-ready pods, duplicate pod addresses, pods without ports) are
written both ways — the YAML with its nodes' dumps, kubectl's List with the same dumps in
``<node>/`` folders — and ``pktverify verify --format json`` must print the same invariants
for both. Also: the verdict never depends on output options (``--pcap-dir --all`` checks
every flow one by one, the default groups them in classes).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pktverify.check.invariants import check_all
from pktverify.cli import main
from pktverify.eval.cluster_walk import ClusterWalker
from pktverify.generate.synthetic_cluster import synthetic_cluster
from pktverify.load.cluster_nodes import cluster_nodes
from pktverify.model.addresses import format_ip, format_network
from pktverify.model.kube_proxy import NFT_SCRIPT_FILE

from ..hostile import write_node_dumps


@st.composite
def clusters(draw):
    cluster = synthetic_cluster(draw(st.integers(1, 3)), draw(st.integers(0, 3)), draw(st.integers(1, 7)))
    pods = list(cluster.pods)
    for i in draw(st.lists(st.integers(0, len(pods) - 1), max_size=2, unique=True)):
        pods[i] = dataclasses.replace(pods[i], ready=False)
    if len(pods) > 1 and draw(st.booleans()):      # docker's lesson: two pods, one address
        i, j = draw(st.lists(st.integers(0, len(pods) - 1), min_size=2, max_size=2, unique=True))
        pods[j] = dataclasses.replace(pods[j], ip=pods[i].ip)
    if draw(st.booleans()):
        pods[0] = dataclasses.replace(pods[0], ports=())
    return dataclasses.replace(cluster, pods=tuple(pods))


def _yaml(cluster, folder: Path) -> Path:
    lines = [f"cluster: {{cidr: {format_network(*cluster.cidr)}, service_cidr: {format_network(*cluster.service_cidr)},"
             f" proxy_mode: {cluster.proxy_mode}}}", "nodes:"]
    for n in cluster.nodes:
        # the node's nft script too where generate wrote one (nftables mode): the same dumps as kubectl's
        nft = f", nft: {n.name}/{NFT_SCRIPT_FILE}" if (folder / n.name / NFT_SCRIPT_FILE).is_file() else ""
        lines.append(f"  - {{name: {n.name}, ip: {format_ip(n.ip)}/{n.prefixlen}, pod_cidr: {format_network(*n.pod_cidr)},"
                     f" iptables: {n.name}/iptables-save.txt, addrs: {n.name}/ip-addr.json,"
                     f" routes: {n.name}/ip-route.json{nft}}}")
    lines.append("pods:" if cluster.pods else "pods: []")
    for p in cluster.pods:
        labels = ", ".join(f"{k}: {v}" for k, v in p.labels)
        ports = ", ".join(str(x) for x in p.ports)
        lines.append(f"  - {{name: {p.name}, node: {p.node}, ip: {format_ip(p.ip)}, labels: {{{labels}}},"
                     f" ready: {str(p.ready).lower()}, containers: [{{name: c, ports: [{ports}]}}]}}")
    lines.append("services:" if cluster.services else "services: []")
    for s in cluster.services:
        ports = ", ".join(f"{{name: {sp.name}, port: {sp.port}, target_port: {sp.target_port}}}" for sp in s.ports)
        selector = ", ".join(f"{k}: {v}" for k, v in s.selector or ())
        lines.append(f"  - {{name: {s.name}, cluster_ip: {format_ip(s.cluster_ip)}, ports: [{ports}],"
                     f" selector: {{{selector}}}}}")
    path = folder / "cluster.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _kubectl(cluster, folder: Path) -> Path:
    items = []
    for n in cluster.nodes:
        items.append({"kind": "Node", "metadata": {"name": n.name}, "spec": {"podCIDR": format_network(*n.pod_cidr)},
                      "status": {"addresses": [{"type": "InternalIP", "address": format_ip(n.ip)}]}})
    for p in cluster.pods:
        items.append({"kind": "Pod", "metadata": {"name": p.name, "namespace": p.namespace, "labels": dict(p.labels)},
                      "spec": {"nodeName": p.node, "containers": [
                          {"name": "c", "ports": [{"containerPort": x} for x in p.ports]}]},
                      "status": {"podIP": format_ip(p.ip),
                                 "conditions": [{"type": "Ready", "status": "True" if p.ready else "False"}]}})
    for s in cluster.services:
        items.append({"kind": "Service", "metadata": {"name": s.name, "namespace": s.namespace},
                      "spec": {"clusterIP": format_ip(s.cluster_ip), "selector": dict(s.selector or ()),
                               "ports": [{"name": sp.name, "port": sp.port, "targetPort": sp.target_port,
                                          "protocol": sp.protocol.upper()} for sp in s.ports]}})
    path = folder / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=1))
    return path


def _verify_json(capsys, *argv) -> dict:
    status = main(["verify", *argv, "--format", "json", "--jobs", "1"])
    captured = capsys.readouterr()
    assert status in (0, 1), captured.err
    return json.loads(captured.out)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(clusters())
def test_yaml_and_kubectl_give_the_same_answer(tmp_path_factory, capsys, cluster):
    folder = tmp_path_factory.mktemp("parity")
    write_node_dumps(cluster, folder)
    from_yaml = _verify_json(capsys, str(_yaml(cluster, folder)))
    from_kubectl = _verify_json(capsys, str(_kubectl(cluster, folder)), "--cluster-cidr",
                                format_network(*cluster.cidr), "--service-cidr", format_network(*cluster.service_cidr))
    assert from_yaml == from_kubectl


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(), st.sampled_from(["iptables", "userspace"]))
def test_verdict_does_not_depend_on_output_options(cluster, mode):
    cluster = dataclasses.replace(cluster, proxy_mode=mode)
    nodes = cluster_nodes(cluster)
    grouped = check_all(cluster, ClusterWalker(cluster, nodes))
    one_by_one = check_all(cluster, ClusterWalker(cluster, nodes), keep_flows=True)
    assert [(r.name, r.holds, r.checked, len(r.violations)) for r in grouped] == \
        [(r.name, r.holds, r.checked, len(r.violations)) for r in one_by_one]
