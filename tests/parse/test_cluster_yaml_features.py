"""Cluster YAML: named container and target ports, host-network pods, inline and partial node dumps,
and the service address plan under pod-ip-uniqueness."""

from __future__ import annotations

import pytest

from pktverify import cluster_to_yaml, load_cluster, verify
from pktverify.errors import InputError
from pktverify.generate.node_state import generate_node
from pktverify.model.addresses import parse_ip
from pktverify.parse.cluster_yaml import parse_cluster

HEAD = """cluster: {cidr: 10.1.0.0/16, service_cidr: 10.152.183.0/24, proxy_mode: MODE}
nodes:
  - {name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24}
  - {name: node2, ip: 192.168.1.20/24, pod_cidr: 10.1.20.0/24}
"""
NAMED = HEAD + """pods:
  - {name: a, node: node1, ip: 10.1.10.5, labels: {app: web}, containers: [{name: c, ports: [{name: http, port: 8080}]}]}
  - {name: b, node: node2, ip: 10.1.20.5, labels: {app: web}, containers: [{name: c, ports: [{name: http, port: 9090}, 53]}]}
  - {name: c, node: node2, ip: 10.1.20.6, labels: {app: web}, containers: [{name: c, ports: [7070]}]}
  - {name: h, node: node1, host_network: true, labels: {app: host}, containers: [{name: c, ports: [{name: metrics, port: 9100}]}]}
services:
  - {name: web, cluster_ip: 10.152.183.10, selector: {app: web}, ports: [{name: http, port: 80, target_port: http}]}
  - {name: metrics, cluster_ip: 10.152.183.11, selector: {app: host}, ports: [{name: m, port: 9100, target_port: metrics}]}
"""


@pytest.mark.parametrize("mode", ["iptables", "userspace", "nftables"])
def test_named_target_ports_resolve_per_pod_and_host_network_pods_are_endpoints(mode):
    cluster = parse_cluster(NAMED.replace("MODE", mode), source="named.yaml")
    web, metrics = cluster.services
    assert cluster.port_endpoints(web, web.ports[0]) == [("default/a", parse_ip("10.1.10.5"), 8080),
                                                         ("default/b", parse_ip("10.1.20.5"), 9090)]
    assert cluster.port_endpoints(metrics, metrics.ports[0]) == [("default/h", parse_ip("192.168.1.10"), 9100)]
    assert [p.key for p in cluster.host_pods] == ["default/h"] and "default/h" not in cluster.pods_by_key
    report = verify(cluster)
    assert report.holds, [v.message for v in report.violations]
    assert report["service-reachability"].checked == 10            # 2 ports x (3 pods + 2 nodes)
    if mode == "iptables":
        rules = generate_node(cluster, cluster.nodes[0]).iptables
        assert "--to-destination 10.1.10.5:8080" in rules and "--to-destination 10.1.20.5:9090" in rules
        assert "10.1.20.6" not in rules                            # pod c has no port named http


def test_a_service_that_misses_a_named_endpoint_is_caught():
    # The generated rules are right; a hand-made node1 dump that DNATs pod b's port by number
    # (8080, as if the name were resolved once for all pods) sends b's traffic to a closed port.
    cluster = parse_cluster(NAMED.replace("MODE", "iptables"), source="named.yaml")
    rules = generate_node(cluster, cluster.nodes[0]).iptables.replace("10.1.20.5:9090", "10.1.20.5:8080")
    text = NAMED.replace("MODE", "iptables").replace(
        "  - {name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24}\n",
        "  - name: node1\n    ip: 192.168.1.10/24\n    pod_cidr: 10.1.10.0/24\n    dumps:\n      iptables: |\n"
        + "".join(f"        {line}\n" for line in rules.splitlines()))
    report = verify(parse_cluster(text, source="named.yaml"))
    assert any("10.1.20.5:8080, which is not a ready endpoint" in v.message for v in report.violations)


@pytest.mark.parametrize("change,message", [
    ("target_port: http}]}\n", "target_port: http}], endpoint_ips: [10.1.10.9]}\n"),
    ("{name: http, port: 8080}", "{name: HTTP_PORT, port: 8080}"),
    ("[{name: http, port: 9090}, 53]", "[{name: http, port: 9090}, {name: http, port: 53}]"),
    ("{name: h, node: node1, host_network: true,", "{name: h, node: node1, host_network: true, ip: 10.1.10.7,"),
    ("{name: http, port: 8080}", "{name: http, port: 8080, protocol: ICMP}"),
])
def test_port_and_host_network_mistakes_are_refused_with_their_line(change, message):
    text = NAMED.replace("MODE", "iptables").replace(change, message, 1)
    assert text != NAMED.replace("MODE", "iptables")
    with pytest.raises(InputError) as err:
        parse_cluster(text, source="c.yaml")
    assert err.value.source == "c.yaml" and err.value.line in range(6, 13)


def test_inline_dumps_are_used_and_their_errors_name_the_yaml_line(tmp_path):
    text = HEAD.replace("MODE", "iptables").replace(
        "  - {name: node2, ip: 192.168.1.20/24, pod_cidr: 10.1.20.0/24}\n",
        "  - name: node2\n    ip: 192.168.1.20/24\n    pod_cidr: 10.1.20.0/24\n    dumps:\n      iptables: |\n"
        "        *filter\n        :INPUT ACCEPT [0:0]\n        :FORWARD DROP [0:0]\n        :OUTPUT ACCEPT [0:0]\n"
        "        COMMIT\n") + "pods:\n  - {name: a, node: node2, ip: 10.1.20.5}\n"
    report = verify(parse_cluster(text, source="inline.yaml"))
    assert not report["no-nat"].holds and "filter/FORWARD policy" in report["no-nat"].violations[0].path[-1]
    bad = text.replace("        :FORWARD DROP [0:0]\n", "        :FORWARD DROP [0:0]\n        -A FORWARD -j NOPE\n")
    with pytest.raises(InputError) as err:
        verify(parse_cluster(bad, source="inline.yaml"))
    lines = bad.splitlines()
    assert err.value.source == "inline.yaml" and lines[err.value.line - 1].strip() == "-A FORWARD -j NOPE"


def test_a_node_may_give_only_its_iptables_save(tmp_path):
    # The usual case when linting a proposed change: the rest is generated.
    base = load_cluster(__import__("pathlib").Path(__file__).resolve().parents[2] / "rules/seed/cluster-iptables.yaml")
    (tmp_path / "node2.rules").write_text(generate_node(base, base.nodes[1]).iptables)
    text = cluster_to_yaml(base).replace("- {name: node2, ip: 192.168.1.20/24, pod_cidr: 10.1.20.0/24, bridge: cbr0}",
                                         "- {name: node2, ip: 192.168.1.20/24, pod_cidr: 10.1.20.0/24, bridge: cbr0, "
                                         "iptables: node2.rules}")
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    cluster = load_cluster(path)
    assert cluster.nodes[1].iptables and not cluster.nodes[1].routes and verify(cluster).holds
    with pytest.raises(InputError, match="given twice"):
        parse_cluster(text.replace("iptables: node2.rules}", "iptables: node2.rules, dumps: {iptables: x}}"),
                      source="c.yaml", base=tmp_path)


@pytest.mark.parametrize("svc_line,expected", [
    ("{name: s, cluster_ip: 10.99.0.1, ports: [{port: 80}]}", "outside the service CIDR"),
    ("{name: s, cluster_ip: 10.1.10.200, ports: [{port: 80}]}", "inside node node1's pod CIDR"),
    ("{name: s, cluster_ip: 192.168.1.20, ports: [{port: 80}]}", "is node node2's address"),
    ("{name: s, cluster_ip: 10.152.183.10, ports: [{port: 80}]}", "also the ClusterIP of service default/t"),
])
def test_the_service_address_plan_is_checked(svc_line, expected):
    text = HEAD.replace("MODE", "iptables") + (
        "services:\n  - {name: t, cluster_ip: 10.152.183.10, ports: [{port: 80}]}\n  - " + svc_line + "\n")
    report = verify(parse_cluster(text, source="plan.yaml"), invariants=["pod-ip-uniqueness"])
    messages = [v.message for v in report.violations]
    assert any(expected in m for m in messages), messages
    near_miss = text.replace(svc_line, "{name: s, cluster_ip: 10.152.183.11, ports: [{port: 80}]}")
    assert verify(parse_cluster(near_miss, source="plan.yaml"), invariants=["pod-ip-uniqueness"]).holds


def test_overlapping_service_and_cluster_cidrs_are_a_violation():
    text = HEAD.replace("MODE", "iptables").replace("service_cidr: 10.152.183.0/24", "service_cidr: 10.1.200.0/24")
    report = verify(parse_cluster(text, source="plan.yaml"), invariants=["pod-ip-uniqueness"])
    assert [v.message for v in report.violations] == [
        "the service CIDR 10.1.200.0/24 overlaps the cluster CIDR 10.1.0.0/16: ClusterIPs and pod IPs can collide"]


@pytest.mark.parametrize("mode,ok", [("iptables", True), ("userspace", True), ("nftables", True), ("ipvs", False),
                                     ("nft", False), ("NFTABLES", False)])
def test_proxy_mode_is_one_of_the_three_modelled(mode, ok):
    text = NAMED.replace("MODE", mode)
    if ok:
        assert parse_cluster(text, source="m.yaml").proxy_mode == mode
        return
    with pytest.raises(InputError) as err:
        parse_cluster(text, source="m.yaml")
    assert str(err.value).startswith(f"m.yaml:1: proxy_mode must be userspace, iptables or nftables, not '{mode}'")
