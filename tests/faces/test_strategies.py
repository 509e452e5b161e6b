"""pktverify.strategies: valid clusters verify clean, every planted fault is caught by the invariant
it must break, faults shrink to tiny clusters, and every piece draws what it says."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from pktverify import cluster_to_yaml, strategies, verify
from pktverify.eval.cluster_walk import ClusterWalker
from pktverify.load.cluster_nodes import cluster_nodes
from pktverify.model.addresses import in_network, networks_overlap
from pktverify.packets import packet_from_scapy
from pktverify.parse.cluster_yaml import parse_cluster
from pktverify.parse.iptables_save import parse_iptables_save

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                    database=None)


@pytest.mark.parametrize("mode", strategies.PROXY_MODES)
@settings(SETTINGS, max_examples=60)
@given(data=st.data())
def test_every_drawn_valid_cluster_verifies_clean(mode, data):
    cluster = data.draw(strategies.clusters(proxy_modes=(mode,), docker=True))
    report = verify(cluster)
    assert report.holds, [v.message for v in report.violations[:3]]
    assert cluster.proxy_mode == mode


@pytest.mark.parametrize("fault", sorted(strategies.FAULTS))
@settings(SETTINGS, max_examples=12)
@given(data=st.data())
def test_every_fault_class_is_caught_by_the_invariant_it_must_break(fault, data):
    cluster = data.draw(strategies.faulty_clusters(faults=fault))
    assert cluster.fault.name == fault and cluster.fault.breaks == strategies.FAULTS[fault][0]
    broken = {r.name for r in verify(cluster).results if not r.holds}
    assert cluster.fault.breaks <= broken, (cluster.fault, broken)


@pytest.mark.parametrize("fault", ["forward-drop", "missing-peer-route"])
def test_a_planted_fault_shrinks_to_at_most_two_nodes_and_two_pods(fault):
    # As a user's property test fails: Hypothesis shrinks, then replays the final example last.
    tried = []

    @settings(SETTINGS, max_examples=30)
    @given(strategies.faulty_clusters(faults=fault, max_nodes=4, max_pods_per_node=4))
    def users_property(cluster):
        tried.append(cluster)
        assert verify(cluster).holds

    with pytest.raises(AssertionError):
        users_property()
    smallest = tried[-1]
    assert not verify(smallest).holds
    assert len(smallest.nodes) <= 2 and len(smallest.pods) + len(smallest.host_pods) <= 2, cluster_to_yaml(smallest)


@settings(SETTINGS, max_examples=60)
@given(strategies.clusters(docker=True))
def test_drawn_clusters_keep_the_address_plan(cluster):
    assert 1 <= len(cluster.nodes) <= 4 and not networks_overlap(cluster.cidr, cluster.service_cidr)
    for a in cluster.nodes:
        assert all(not networks_overlap(a.pod_cidr, b.pod_cidr) for b in cluster.nodes if b is not a)
    for pod in cluster.pods:
        assert in_network(pod.ip, *cluster.node(pod.node).pod_cidr)
    assert all(p.ip == cluster.node(p.node).ip for p in cluster.host_pods)
    assert len({s.cluster_ip for s in cluster.services}) == len(cluster.services)
    assert all(in_network(s.cluster_ip, *cluster.service_cidr) for s in cluster.services)
    assert sum(n.docker for n in cluster.nodes) <= 1


def test_strategies_cover_what_the_issue_asks_for():
    # Over many draws: several containers' ports, named target ports, host-network pods,
    # not-ready pods, services selecting none / several pods, UDP ports, both modes.
    seen = set()

    @settings(SETTINGS, max_examples=150)
    @given(strategies.clusters())
    def look(cluster):
        seen.add(cluster.proxy_mode)
        for svc in cluster.services:
            counts = [len(cluster.port_endpoints(svc, p)) for p in svc.ports]
            seen.update({"no endpoints"} if 0 in counts else set())
            seen.update({"many endpoints"} if any(c > 1 for c in counts) else set())
            seen.update("named target" for p in svc.ports if isinstance(p.target_port, str))
            seen.update("udp" for p in svc.ports if p.protocol == "udp")
            seen.update({"several ports"} if len(svc.ports) > 1 else set())
        seen.update({"host network"} if cluster.host_pods else set())
        seen.update({"not ready"} if any(not p.ready for p in cluster.pods) else set())
        seen.update({"named container port"} if any(p.named_ports for p in cluster.pods) else set())

    look()
    assert seen >= {"iptables", "userspace", "no endpoints", "many endpoints", "named target", "udp",
                    "several ports", "host network", "not ready", "named container port"}, seen


@pytest.mark.parametrize("call", [
    lambda: strategies.clusters(min_nodes=0),
    lambda: strategies.clusters(min_nodes=3, max_nodes=2),
    lambda: strategies.clusters(max_pods_per_node=1000),
    lambda: strategies.clusters(proxy_modes=("ipvs",)),
    lambda: strategies.clusters(max_services="4"),
    lambda: strategies.faulty_clusters(faults=["no-such-fault"]),
    lambda: strategies.node_networks(max_nodes=True),
    lambda: strategies.pods("not a cluster"),
    lambda: strategies.rule_sets(client="router"),
])
def test_bad_arguments_raise_invalid_argument(call):
    with pytest.raises(InvalidArgument):
        call().example()


@settings(SETTINGS, max_examples=25)
@given(st.data())
def test_the_pieces_compose(data):
    base = data.draw(strategies.node_networks(min_nodes=2, max_nodes=3))
    assert not base.pods and not base.services and 2 <= len(base.nodes) <= 3
    pods = data.draw(strategies.pods(base, min_pods_per_node=1, max_pods_per_node=2))
    assert {p.node for p in pods} == {n.name for n in base.nodes}
    from dataclasses import replace
    cluster = replace(base, pods=tuple(p for p in pods if not p.host_network),
                      host_pods=tuple(p for p in pods if p.host_network))
    cluster = replace(cluster, services=data.draw(strategies.services(cluster, min_services=1)))
    assert verify(cluster).holds
    client, pkt = data.draw(strategies.flows(cluster))
    walker = ClusterWalker(cluster, cluster_nodes(cluster))
    assert walker.walk(client, pkt)                      # every drawn flow can be walked
    scapy_pkt = data.draw(strategies.packets(cluster))
    assert packet_from_scapy(scapy_pkt).proto in (6, 17)
    text = data.draw(strategies.rule_sets())
    assert parse_iptables_save(text, source="drawn").rule_count() >= 0


@settings(SETTINGS, max_examples=40)
@given(st.one_of(strategies.clusters(docker=True), strategies.faulty_clusters()))
def test_cluster_yaml_round_trips(cluster):
    text = cluster_to_yaml(cluster)
    again = parse_cluster(text, source="round-trip.yaml")
    fields = ("cidr", "service_cidr", "proxy_mode", "routing", "nodes", "pods", "services", "host_pods")
    assert all(getattr(again, f) == getattr(cluster, f) for f in fields)
    assert cluster_to_yaml(again) == text


@settings(SETTINGS, max_examples=60)
@given(strategies.faulty_clusters(faults="nodeport-collision"))
def test_a_planted_nodeport_collision_is_a_cluster_the_api_server_would_accept(cluster):
    """The planter turns the other services into ClusterIP ones: without their node ports, and
    without load-balancer ingress or source ranges, which only a LoadBalancer may have."""
    assert all(not (s.lb_ips or s.lb_source_ranges) for s in cluster.services if s.type == "ClusterIP")
    parse_cluster(cluster_to_yaml(cluster), source="planted.yaml")
