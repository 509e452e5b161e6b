"""Flows from interchangeable nodes checked once (pktverify.check.invariants.node_symmetry): the same verdicts,
counts and violating flows as checking every flow, on drawn clusters with faults that keep the
nodes alike and faults that set some apart."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pktverify.check.invariants.address_classes import AddressClasses
from pktverify.check.invariants.node_symmetry import NodeSymmetry
from pktverify.eval.cluster_walk import ClusterWalker
from pktverify.generate.node_state import generate_node
from pktverify.generate.synthetic_cluster import synthetic_cluster
from pktverify.load.cluster_nodes import cluster_nodes
from pktverify.model.addresses import format_ip
from pktverify.model.cluster import ServicePortSpec, ServiceSpec

from ..helpers import assert_fast_equals_exhaustive

# Rules written alike on every node: some keep the nodes interchangeable (they name only what
# every node shares), some name one pod and so set its node apart.
ALIKE = ["-A POSTROUTING -s 10.1.0.0/16 ! -d 10.1.0.0/16 -j MASQUERADE",        # pod → node masqueraded
         "-A POSTROUTING -s 10.1.0.0/16 -d 10.1.0.0/16 -p tcp --dport 8080 -j MASQUERADE",
         "-A PREROUTING -d 10.1.0.0/16 -p tcp --dport 10250 -j DNAT --to-destination 192.168.0.10",
         "-A OUTPUT -d 10.1.0.0/16 -p tcp --dport 8080 -j DNAT --to-destination 10.96.0.1",   # node → pods lost
         # a port range holding some userspace proxy ports (32768-60999) and not others
         "-A PREROUTING -p tcp --dport 30000:45000 -j RETURN"]
NAMING_ONE = ["-A POSTROUTING -s {pod}/32 -j MASQUERADE", "-A PREROUTING -d {pod}/32 -p tcp -j DNAT "
              "--to-destination {other}"]


def _with_nat_rule(text: str, rule: str) -> str:
    head, sep, tail = text.partition("*nat\n")
    body, commit, rest = tail.partition("COMMIT\n")
    return head + sep + body + rule + "\n" + commit + rest


@st.composite
def alike_clusters(draw):
    cluster = synthetic_cluster(draw(st.integers(2, 5)), draw(st.integers(0, 4)), draw(st.integers(2, 14)),
                                proxy_mode=draw(st.sampled_from(["iptables", "userspace"])))
    if draw(st.booleans()):              # a stale endpoint inside some node's pod CIDR
        node = draw(st.sampled_from(cluster.nodes))
        stale = node.pod_cidr[0] + 250
        svc = ServiceSpec("stale", "default", (10 << 24) | (152 << 16) | 200, (ServicePortSpec("", 80, 8080, "tcp"),),
                          None, None, (stale,))
        cluster = dataclasses.replace(cluster, services=cluster.services + (svc,))
    rules = draw(st.lists(st.sampled_from(ALIKE + NAMING_ONE), max_size=2))
    pods = [format_ip(p.ip) for p in cluster.pods]
    rules = [r.format(pod=draw(st.sampled_from(pods)), other=draw(st.sampled_from(pods))) for r in rules]
    if rules:       # the same rules added to every node's own (userspace: its own proxy ports)
        nodes = []
        for node in cluster.nodes:
            text = generate_node(cluster, node).iptables
            for rule in rules:
                text = _with_nat_rule(text, rule)
            nodes.append(dataclasses.replace(node, inline=(("iptables", text),)))
        cluster = dataclasses.replace(cluster, nodes=tuple(nodes))
    return cluster


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(alike_clusters())
def test_symmetric_fast_path_equals_exhaustive(cluster):
    states = cluster_nodes(cluster)
    walker = ClusterWalker(cluster, states)
    assert_fast_equals_exhaustive(cluster, walker)


def test_generated_nodes_are_interchangeable_and_endpoints_set_theirs_apart():
    cluster = synthetic_cluster(6, 3, 12)
    states = cluster_nodes(cluster)
    classes = AddressClasses(cluster, states)
    sym = NodeSymmetry(cluster, states, classes)
    assert sym.usable, sym.reason
    assert sym.free() == {n.name for n in cluster.nodes}
    svc = cluster.services[0]
    endpoint_nodes = {cluster.endpoint_node(label, ip) for label, ip in cluster.endpoints_of(svc)}
    assert sym.free(classes.for_destination(svc.cluster_ip).extra) == {n.name for n in cluster.nodes} - endpoint_nodes


def test_what_breaks_the_symmetry_is_named():
    cluster = synthetic_cluster(3, 1, 6)
    node = cluster.nodes[1]
    lines = generate_node(cluster, node).routes.splitlines()        # node1 routes node2's pods elsewhere
    routes = "\n".join("10.1.2.0/24 via 192.168.0.99 dev eth0" if line.startswith("10.1.2.0/24 ") else line
                       for line in lines) + "\n"
    bent = dataclasses.replace(cluster, nodes=(cluster.nodes[0], dataclasses.replace(node, inline=(("routes", routes),)),
                                               cluster.nodes[2]))
    states = cluster_nodes(bent)
    sym = NodeSymmetry(bent, states, AddressClasses(bent, states))
    assert not sym.usable and "node1" in sym.reason
    userspace = dataclasses.replace(cluster, proxy_mode="userspace")
    states = cluster_nodes(userspace)
    assert "userspace" in NodeSymmetry(userspace, states, AddressClasses(userspace, states)).reason


def test_userspace_nodes_are_interchangeable_up_to_their_proxy_ports():
    """Each userspace node's portals name its own address and its own random proxy ports: with
    those as placeholders the rule sets are one, and only a service's endpoints set nodes apart."""
    cluster = synthetic_cluster(5, 3, 10, proxy_mode="userspace")
    states = cluster_nodes(cluster)
    walker = ClusterWalker(cluster, states)
    classes = AddressClasses(cluster, states)
    sym = NodeSymmetry(cluster, states, classes, walker.proxy_ports)
    assert sym.usable, sym.reason
    assert sym.all_free
    assert len({id(s.ruleset) for s in states.values()}) == len(cluster.nodes)    # each node's rules its own


def test_a_port_range_splitting_the_proxy_ports_keeps_userspace_nodes_apart():
    cluster = synthetic_cluster(3, 2, 6, proxy_mode="userspace")
    nodes = tuple(dataclasses.replace(n, inline=(("iptables", _with_nat_rule(
        generate_node(cluster, n).iptables, "-A PREROUTING -p tcp --dport 30000:45000 -j RETURN")),))
        for n in cluster.nodes)
    cluster = dataclasses.replace(cluster, nodes=nodes)
    states = cluster_nodes(cluster)
    sym = NodeSymmetry(cluster, states, AddressClasses(cluster, states), ClusterWalker(cluster, states).proxy_ports)
    assert not sym.usable
    assert "holding some proxy ports only" in sym.reason


def test_a_node_with_other_sysctls_or_pod_prefix_is_not_interchangeable():
    # node1 forwards nothing (sysctl.txt: ip_forward=0): flows from its pods fail where another
    # node's succeed, so it stands for no other node; so does a node whose pods carry a /26.
    from pktverify.model.sysctls import Sysctls
    cluster = synthetic_cluster(3, 1, 9)
    states = cluster_nodes(cluster)
    states["node1"] = dataclasses.replace(states["node1"], sysctls=Sysctls((("net.ipv4.ip_forward", 0),), "s.txt"))
    sym = NodeSymmetry(cluster, states, AddressClasses(cluster, states))
    assert not sym.usable and "node1 has sysctls other than the assumed ones (net.ipv4.ip_forward=0)" in sym.reason
    assert_fast_equals_exhaustive(cluster, ClusterWalker(cluster, states))
    narrow = dataclasses.replace(cluster, nodes=tuple(dataclasses.replace(n, pod_prefix=26) for n in cluster.nodes))
    states = cluster_nodes(narrow)
    sym = NodeSymmetry(narrow, states, AddressClasses(narrow, states))
    assert not sym.usable and "pods carry a /26 (pod_prefix)" in sym.reason
