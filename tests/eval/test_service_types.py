"""Every way a service is exposed: the YAML for it, the doors service-reachability checks, and
what each door promises (traffic policies, source ranges, session affinity) in both proxy modes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import pktverify
from pktverify.check.invariants.flows import CLIENT_SPORT as _CLIENT_SPORT
from pktverify.errors import InputError
from pktverify.eval.cluster_walk import ClusterWalker
from pktverify.eval.walk_notes import remembered
from pktverify.load.cluster_nodes import cluster_nodes
from pktverify.model.addresses import format_ip, parse_ip
from pktverify.model.packet import Packet
from pktverify.parse.cluster_yaml import parse_cluster
from pktverify.report.cluster_yaml import cluster_to_yaml

RULES = Path(__file__).resolve().parents[2] / "rules"
EVERY = RULES / "services" / "every-service-type.yaml"


def walker_for(cluster):
    return ClusterWalker(cluster, cluster_nodes(cluster))


def reached(ends):
    """{(where, source the endpoint sees): probability} of the arrived ends, and the other kinds."""
    out: dict = {}
    for end in ends:
        key = (end.at.name, format_ip(end.packet.src)) if end.kind == "arrived" else end.kind
        out[key] = out.get(key, 0.0) + end.probability
    return {k: round(v, 9) for k, v in out.items()}


@pytest.fixture(scope="module", params=["iptables", "userspace"])
def every(request):
    cluster = pktverify.load_cluster(EVERY)
    return dataclasses.replace(cluster, proxy_mode=request.param)


def test_every_service_type_holds_in_iptables_mode():
    report = pktverify.verify(pktverify.load_cluster(EVERY))
    assert report.holds, report.to_text()


def test_userspace_mode_ignores_internal_traffic_policy_and_verify_names_the_door(every):
    report = pktverify.verify(every)
    bad = report["service-reachability"].violations
    if every.proxy_mode == "iptables":
        assert not bad
        return
    assert bad and all("default/web-local:80 via ClusterIP 10.152.183.14:80" in v.message for v in bad)
    assert all("traffic policy (Local)" in v.message for v in bad)


def test_nodeport_from_off_cluster_reaches_every_endpoint_masqueraded(every):
    walker = walker_for(every)
    for node in every.nodes:
        client = walker.external_endpoint(node)
        ends = walker.walk(client, Packet(6, walker.external_ip, node.ip, _CLIENT_SPORT, 30080))
        got = reached(ends)
        assert {where for where, _src in got} == {"default/web-1", "default/web-2"}, got
        # ETP Cluster may masquerade: the endpoint sees a node's address, never the client's.
        assert all(src != format_ip(walker.external_ip) for _where, src in got), got
        for end in ends:
            assert all(back.answers(client, Packet(6, walker.external_ip, node.ip, _CLIENT_SPORT, 30080))
                       for back in walker.reply(end, client))


def test_load_balancer_source_ranges_let_in_only_their_clients():
    cluster = pktverify.load_cluster(EVERY)
    walker = walker_for(cluster)
    lb = parse_ip("198.51.100.20")
    assert format_ip(walker.external_ip) == "203.0.113.10"          # inside 203.0.113.0/24: let in
    inside = reached(walker.walk(walker.external_endpoint(cluster.nodes[0]),
                                 Packet(6, walker.external_ip, lb, _CLIENT_SPORT, 443)))
    assert {where for where, _src in inside} == {"default/web-1", "default/web-2"}
    narrowed = dataclasses.replace(cluster, services=tuple(
        dataclasses.replace(s, lb_source_ranges=((parse_ip("198.18.0.0"), 0xFFFF0000),)) if s.name == "web-lb" else s
        for s in cluster.services))
    walker = walker_for(narrowed)
    outside = reached(walker.walk(walker.external_endpoint(narrowed.nodes[0]),
                                  Packet(6, walker.external_ip, lb, _CLIENT_SPORT, 443)))
    assert outside == {"drop": 1.0}
    # ... which service-reachability expects: the door is reported blocked, not broken.
    assert pktverify.verify(narrowed).holds


def test_external_traffic_policy_local_keeps_the_source_and_the_node():
    cluster = pktverify.load_cluster(RULES / "broken" / "etp-local-node-without-endpoints.yaml")
    walker = walker_for(cluster)
    node1, node2, _node3 = cluster.nodes
    ext = format_ip(walker.external_ip)
    at_node1 = reached(walker.walk(walker.external_endpoint(node1),
                                   Packet(6, walker.external_ip, node1.ip, _CLIENT_SPORT, 30080)))
    assert at_node1 == {("default/web-1", ext): 1.0}
    at_node2 = reached(walker.walk(walker.external_endpoint(node2),
                                   Packet(6, walker.external_ip, node2.ip, _CLIENT_SPORT, 30080)))
    assert at_node2 == {"drop": 1.0}
    bad = pktverify.verify(cluster)["service-reachability"].violations
    # The drops are what kube-proxy means; the one violation is the pod's unmasqueraded detour.
    assert len(bad) == 1 and "via NodePort 192.168.1.20:30080 from pod default/client" in bad[0].message
    assert "the reply from pod default/web-1 arrives as" in bad[0].message


def test_internal_traffic_policy_local_keeps_clients_on_their_node():
    every = pktverify.load_cluster(EVERY)          # iptables mode (userspace has no such policy: above)
    walker = walker_for(every)
    cip = parse_ip("10.152.183.14")
    pods = every.pods_by_key
    for key, want in (("default/web-1", {"default/web-1"}), ("default/client", set())):
        pod = pods[key]
        got = reached(walker.walk(walker.pod_endpoint(pod), Packet(6, pod.ip, cip, _CLIENT_SPORT, 80)))
        assert {k[0] for k in got if isinstance(k, tuple)} == want, got
        assert ("drop" in got) == (not want)


def test_session_affinity_sends_the_next_connection_to_the_same_endpoint(every):
    walker = walker_for(every)
    pod = every.pods_by_key["default/client"]
    first = Packet(6, pod.ip, parse_ip("10.152.183.15"), _CLIENT_SPORT, 80)
    client = walker.pod_endpoint(pod)
    ends = [e for e in walker.walk(client, first) if e.kind == "arrived"]
    assert {e.at.name for e in ends} == {"default/web-1", "default/web-2"}
    for end in ends:
        again = walker.walk(client, first._replace(sport=_CLIENT_SPORT + 1), recent=remembered(end, walker))
        assert reached(again) == {(end.at.name, format_ip(again[0].packet.src)): 1.0}
    # Without what the first connection left, the next one is balanced again.
    assert len(walker.walk(client, first._replace(sport=_CLIENT_SPORT + 1))) == 2


def test_yaml_round_trip_keeps_every_field():
    cluster = pktverify.load_cluster(EVERY)
    again = parse_cluster(cluster_to_yaml(cluster))
    assert again == cluster
    lb = next(s for s in again.services if s.name == "web-lb")
    assert lb.type == "LoadBalancer" and lb.ports[0].node_port == 30000       # allocated: the lowest free


BASE = """cluster: {cidr: 10.1.0.0/16, service_cidr: 10.152.183.0/24}
nodes: [{name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24}]
services:
  - {name: s, cluster_ip: 10.152.183.10, ports: [{port: 80}], %s}
"""


@pytest.mark.parametrize("extra,message", [
    ("type: Headless", "type must be ClusterIP, NodePort, LoadBalancer or ExternalName"),
    ("external_traffic_policy: Local", "external_traffic_policy may only be set for a service reachable"),
    ("internal_traffic_policy: Nearby", "internal_traffic_policy must be Cluster or Local"),
    ("load_balancer_ips: [192.0.2.1]", "load_balancer_ips (status.loadBalancer.ingress) need type LoadBalancer"),
    ("session_affinity: Cookie", "session_affinity must be None or ClientIP"),
    ("session_affinity_timeout: 60", "only with session_affinity: ClientIP"),
    ("type: NodePort, external_ips: [192.0.2.1, 192.0.2.1]", "external_ips: 192.0.2.1 is listed twice"),
])
def test_service_fields_are_checked_with_their_line(extra, message):
    with pytest.raises(InputError) as exc:
        parse_cluster(BASE % extra, source="c.yaml")
    assert message in str(exc.value) and "c.yaml:4" in str(exc.value), str(exc.value)


def test_node_port_on_a_cluster_ip_service_is_an_error():
    text = BASE.replace("ports: [{port: 80}]", "ports: [{port: 80, node_port: 30001}]") % "type: ClusterIP"
    with pytest.raises(InputError, match="node_port may not be used when type is ClusterIP"):
        parse_cluster(text)


def test_headless_and_external_name_services_are_notes():
    text = BASE % "type: ClusterIP" + ("  - {name: h, cluster_ip: None, ports: [{port: 80}]}\n"
                                       "  - {name: alias, type: ExternalName, ports: [{port: 80}]}\n")
    cluster = parse_cluster(text)
    assert [s.name for s in cluster.services] == ["s"]
    notes = pktverify.verify(cluster)["pod-ip-uniqueness"].notes
    assert any("default/h is headless" in n for n in notes) and any("default/alias is of type ExternalName" in n
                                                                     for n in notes)


def test_node_ports_outside_the_range_are_an_address_plan_violation():
    text = (BASE % "type: NodePort").replace("ports: [{port: 80}]", "ports: [{port: 80, node_port: 8080}]")
    text = text.replace("service_cidr: 10.152.183.0/24", "service_cidr: 10.152.183.0/24, node_port_range: 30000-30100")
    bad = pktverify.verify(parse_cluster(text))["pod-ip-uniqueness"].violations
    assert [v.message for v in bad] == ["service default/s:80 NodePort 8080/tcp is outside the node-port range "
                                        "30000-30100"]


@pytest.mark.parametrize("extra", [
    "type: [NodePort]", "external_ips: 192.0.2.1", "external_ips: [7]", "external_ips: [192.0.2.300]",
    "load_balancer_source_ranges: [203.0.113.0/33]", "load_balancer_source_ranges: [{a: 1}]",
    "external_traffic_policy: 1", "session_affinity: [ClientIP]", "session_affinity_timeout: '60'",
    "type: 'NodePort\\nX'", "type: NodePort, external_ips: ['../../etc']",
])
def test_hostile_service_fields_are_one_line_with_their_place(tmp_path, capsys, extra):
    from pktverify.cli import main
    path = tmp_path / "c.yaml"
    path.write_text(BASE % extra)
    assert main(["verify", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pktverify: {path}:") and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]          # nothing written


@pytest.mark.parametrize("change", [
    {"type": 5}, {"externalIPs": "192.0.2.1"}, {"externalIPs": [{"ip": "x"}]},
    {"externalTrafficPolicy": "Nearby"}, {"loadBalancerSourceRanges": ["x/99"]},
    {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": "long"}}},
])
def test_hostile_kubectl_service_fields_are_one_line(tmp_path, capsys, change):
    import json

    from pktverify.cli import main

    from ..load.test_cluster_kubectl import kubectl_dump
    path = kubectl_dump(tmp_path)
    doc = json.loads(path.read_text())
    svc = next(i for i in doc["items"] if i["kind"] == "Service")
    svc["spec"].update(change)
    path.write_text(json.dumps(doc))
    assert main(["verify", str(path), "--cluster-cidr", "10.1.0.0/16", "--service-cidr", "10.152.183.0/24"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pktverify: {path}:") and "Traceback" not in err, err
