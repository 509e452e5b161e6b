"""The class-based fast path gives the same verdicts as checking every flow one by one.

Random small clusters (Hypothesis: sizes, proxy mode, and faults injected into some nodes'
generated rules and routes) are verified both ways; per invariant the verdict, the number of
flows checked and the number of violating flows (a class violation counts for its class)
must be equal.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pktverify import strategies
from pktverify.check.invariants import check_all
from pktverify.check.invariants.address_classes import AddressClasses
from pktverify.eval.cluster_walk import ClusterWalker
from pktverify.generate.node_state import generate_node
from pktverify.generate.synthetic_cluster import synthetic_cluster
from pktverify.load.node import build_node
from pktverify.model.addresses import format_ip
from pktverify.parse.ipaddr import parse_ip_addr
from pktverify.parse.iproute import parse_routes
from pktverify.parse.iptables_save import parse_iptables_save

from ..helpers import assert_fast_equals_exhaustive


def _insert(text: str, table: str, rule: str) -> str:
    head, sep, tail = text.partition(f"*{table}\n")
    if not sep:
        chains = {"nat": ":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                         ":POSTROUTING ACCEPT [0:0]\n",
                  "filter": ":INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"}[table]
        return text + f"*{table}\n{chains}{rule}\nCOMMIT\n"
    body, commit, rest = tail.partition("COMMIT\n")
    return head + sep + body + rule + "\n" + commit + rest


@st.composite
def faulty_clusters(draw):
    mode = draw(st.sampled_from(["iptables", "userspace"]))
    n_nodes = draw(st.integers(1, 3))
    cluster = synthetic_cluster(n_nodes, draw(st.integers(0, 3)), draw(st.integers(2, 9)), proxy_mode=mode)
    texts = {n.name: generate_node(cluster, n) for n in cluster.nodes}
    texts = {k: [v.iptables, v.addrs, v.routes] for k, v in texts.items()}
    pods = [format_ip(p.ip) for p in cluster.pods]
    for _ in range(draw(st.integers(0, 3))):
        node = draw(st.sampled_from(sorted(texts)))
        kind = draw(st.sampled_from(["masq", "masq-subnet", "drop", "dnat", "route"]))
        if kind == "masq-subnet":
            texts[node][0] = _insert(texts[node][0], "nat", "-A POSTROUTING -s 10.1.0.0/16 ! -d 10.1.0.0/16"
                                     " -o eth0 -j MASQUERADE" if draw(st.booleans()) else
                                     "-A POSTROUTING -s 10.1.0.0/16 -o eth0 -j MASQUERADE")
        elif kind == "masq":
            texts[node][0] = _insert(texts[node][0], "nat",
                                     f"-A POSTROUTING -s {draw(st.sampled_from(pods))}/32 -o eth0 -j MASQUERADE")
        elif kind == "drop":
            texts[node][0] = _insert(texts[node][0], "filter", f"-A FORWARD -d {draw(st.sampled_from(pods))}/32 -j DROP")
        elif kind == "dnat":
            a, b = draw(st.sampled_from(pods)), draw(st.sampled_from(pods))
            texts[node][0] = _insert(texts[node][0], "nat",
                                     f"-A PREROUTING -d {a}/32 -p tcp -j DNAT --to-destination {b}")
        else:
            lines = texts[node][2].splitlines()
            peer_routes = [line for line in lines if " via 192.168." in line and not line.startswith("default")]
            if peer_routes:
                lines.remove(draw(st.sampled_from(peer_routes)))
                texts[node][2] = "\n".join(lines) + "\n"
    nodes = {}
    for name, (rules, addrs, routes) in texts.items():
        dump = parse_routes(routes)
        nodes[name] = build_node(name, parse_ip_addr(addrs), dump.routes, parse_iptables_save(rules))
    return cluster, nodes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(faulty_clusters())
def test_fast_path_equals_exhaustive(case):
    cluster, nodes = case
    walker = ClusterWalker(cluster, nodes)
    assert AddressClasses(cluster, nodes).sound
    assert_fast_equals_exhaustive(cluster, walker)


def test_grouping_is_real_on_a_kube_proxy_cluster():
    # Pods that are no endpoint of a service share a class; kube-proxy's per-endpoint
    # "-s ep/32" tests only split the endpoints of the service being checked.
    cluster = synthetic_cluster(3, 2, 12)
    from pktverify.load.cluster_nodes import cluster_nodes
    classes = AddressClasses(cluster, cluster_nodes(cluster))
    by_node = {}
    for p in cluster.pods:
        by_node.setdefault(p.node, set()).add(classes.atom(p.ip))
    assert all(len(atoms) == 1 for atoms in by_node.values()), by_node
    svc = cluster.services[0]
    key = classes.for_destination(svc.cluster_ip)
    endpoints = {ip for _label, ip in cluster.endpoints_of(svc)}
    for node in by_node:
        here = [p for p in cluster.pods if p.node == node]
        others = {key(p.ip) for p in here if p.ip not in endpoints}
        assert len(others) <= 1
        assert not others & {key(p.ip) for p in here if p.ip in endpoints}


def test_synthetic_userspace_cluster_verifies_clean():
    # Regression: two service ports once drew the same proxy port on a node (30 services).
    cluster = synthetic_cluster(10, 30, 40, proxy_mode="userspace")
    from pktverify.load.cluster_nodes import cluster_nodes
    results = check_all(cluster, ClusterWalker(cluster, cluster_nodes(cluster)))
    assert all(r.holds for r in results), [(r.name, r.violations[:1]) for r in results]


def test_parallel_workers_give_the_same_results(monkeypatch):
    from pathlib import Path

    from pktverify.check.invariants import runner as invariants
    monkeypatch.setattr(invariants, "_MIN_PARALLEL_TASKS", 1)      # also fork for the small broken cluster
    from pktverify.load.cluster_nodes import cluster_nodes
    from pktverify.parse.cluster_yaml import load_cluster
    rules = Path(__file__).resolve().parents[2] / "rules"
    for cluster in (synthetic_cluster(4, 40, 30), load_cluster(rules / "broken" / "stale-endpoint.yaml")):
        walker = ClusterWalker(cluster, cluster_nodes(cluster))
        one = check_all(cluster, walker)
        two = check_all(cluster, walker, jobs=2)
        assert not invariants._PARALLEL_TASKS
        assert [(r.name, r.checked, r.notes, [v.message for v in r.violations], [v.path for v in r.violations])
                for r in one] == \
               [(r.name, r.checked, r.notes, [v.message for v in r.violations], [v.path for v in r.violations])
                for r in two]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(st.one_of(strategies.clusters(docker=True), strategies.faulty_clusters()))
def test_fast_path_equals_exhaustive_on_the_public_strategies(cluster):
    # Named ports, host-network endpoints, hairpins and every planted fault class, both ways.
    from pktverify.load.cluster_nodes import cluster_nodes
    walker = ClusterWalker(cluster, cluster_nodes(cluster))
    assert_fast_equals_exhaustive(cluster, walker)


@st.composite
def clusters_with_pod_prefixes(draw):
    """Synthetic clusters whose nodes give their pods another prefix than the pod CIDR's
    (``pod_prefix``: finer, so a node's pods are on-link for some neighbours and reach others
    through the gateway; coarser, so other nodes' pods are on-link), some with a rule that
    tells a bridged frame from a routed one, a pod outside its node's CIDR, and sysctls
    other than the assumed ones."""
    from dataclasses import replace
    mode = draw(st.sampled_from(["iptables", "userspace"]))
    cluster = synthetic_cluster(draw(st.integers(1, 3)), draw(st.integers(0, 2)), draw(st.integers(2, 40)),
                                proxy_mode=mode)
    nodes = tuple(replace(n, pod_prefix=draw(st.sampled_from((None, 16, 23, 25, 27, 28, 30)))) for n in cluster.nodes)
    cluster = replace(cluster, nodes=nodes)
    if draw(st.booleans()):       # one pod outside its node's CIDR (its gateway then onlink, rp_filter may bite)
        stray = cluster.pods[-1]
        cluster = replace(cluster, pods=cluster.pods[:-1] + (replace(stray, ip=(10 << 24) | (1 << 16) | (250 << 8) | 7),))
    from pktverify.model.sysctls import Sysctls
    texts = {n.name: generate_node(cluster, n) for n in cluster.nodes}
    states = {}
    for name, made in texts.items():
        rules = made.iptables
        rule = draw(st.sampled_from(("", "-A FORWARD -m physdev --physdev-is-bridged -j DROP",
                                     "-A FORWARD -i cbr0 -o cbr0 -m physdev ! --physdev-is-bridged -j DROP")))
        if rule:
            rules = _insert(rules, "filter", rule)
        state = build_node(name, parse_ip_addr(made.addrs), parse_routes(made.routes).routes, parse_iptables_save(rules))
        settings = draw(st.sampled_from(((), (("net.ipv4.conf.all.rp_filter", 1),), (("net.ipv4.conf.cbr0.rp_filter", 2),),
                                         (("net.ipv4.conf.all.arp_ignore", 1),),
                                         (("net.bridge.bridge-nf-call-iptables", 0),))))
        states[name] = replace(state, sysctls=Sysctls(settings, "<drawn>"))
    return cluster, states


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(clusters_with_pod_prefixes())
def test_fast_path_equals_exhaustive_with_pod_prefixes(case):
    # Each pod's eth0 subnet decides on-link (bridged) or the gateway (routed): a cut of the classes;
    # the nodes' rp_filter, arp_ignore and bridge-nf-call-iptables read routes and addresses the
    # classes already cut at.
    cluster, nodes = case
    assert_fast_equals_exhaustive(cluster, ClusterWalker(cluster, nodes))
