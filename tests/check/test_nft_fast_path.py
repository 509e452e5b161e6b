"""Address classes and node symmetry on nft rules: checking by class gives what checking every flow gives.

kube-proxy's nftables mode (drawn clusters), with drawn nft tables added on some or all nodes that
name pods and nodes in every form the classes read (addresses, prefixes, masks, anonymous and named
sets, concatenated keys, destination vmaps into nat chains, NAT targets, conntrack addresses), and
the forms that make them unsound (an affinity set the packet path updates, a hash of addresses).
"""

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

from ..helpers import assert_fast_equals_exhaustive

_CHAINS = ("add table ip extra\n"
           "add chain ip extra pre { type nat hook prerouting priority dstnat; }\n"
           "add chain ip extra post { type nat hook postrouting priority srcnat; }\n"
           "add chain ip extra fwd { type filter hook forward priority 0; }\n"
           "add chain ip extra svc\n"
           "add set ip extra pods { type ipv4_addr; }\n"
           "add map ip extra dst { type ipv4_addr . inet_proto . inet_service : verdict; }\n")

# Rules that name addresses the classes must cut at ({a}, {b}: pod addresses; {n}: a node's).
SOUND = [
    "add rule ip extra post ip saddr {a} ip daddr != 10.1.0.0/16 masquerade",
    "add rule ip extra post ip saddr {a} ip daddr {b} masquerade",
    "add rule ip extra fwd ip daddr {a} tcp dport 8080 drop",
    "add rule ip extra fwd ip saddr & 255.255.255.0 == {a24} ip daddr {b} drop",
    "add element ip extra pods {{ {a} }}\nadd rule ip extra fwd ip saddr @pods ip daddr {b} drop",
    "add rule ip extra fwd ip saddr . ip daddr {{ {a} . {b} }} drop",
    "add rule ip extra pre ip daddr {a} tcp dport 8080 dnat to {b}",
    "add element ip extra dst {{ {a} . tcp . 8080 : goto svc }}\n"
    "add rule ip extra pre ip daddr . meta l4proto . th dport vmap @dst\n"
    "add rule ip extra svc ip saddr {b} dnat to {a}:9999",
    "add rule ip extra fwd ct original ip daddr {a} ip saddr {b} drop",
    "add rule ip extra fwd ip daddr {n} drop",
    "add rule ip extra fwd ip saddr 10.1.0.0/16 ip daddr 10.1.0.0/16 accept",
]
UNSOUND = [
    "add set ip extra seen {{ type ipv4_addr; flags dynamic,timeout; timeout 3h; }}\n"
    "add rule ip extra fwd update @seen {{ ip saddr }}\nadd rule ip extra fwd ip saddr @seen drop",
    "add rule ip extra pre dnat to jhash ip saddr mod 2 map {{ 0 : {a}, 1 : {b} }}",
    "add rule ip extra fwd ip saddr & 255.255.255.0 > {a24} drop",
]


@st.composite
def nft_clusters(draw, rules=SOUND):
    cluster = synthetic_cluster(draw(st.integers(1, 4)), draw(st.integers(0, 3)), draw(st.integers(2, 12)),
                                proxy_mode="nftables")
    pods = [p.ip for p in cluster.pods]
    chosen = draw(st.lists(st.sampled_from(rules), min_size=1, max_size=3))
    every = draw(st.booleans())                 # the same rules on every node (node symmetry stays usable)
    targets = cluster.nodes if every else draw(st.lists(st.sampled_from(cluster.nodes), min_size=1, unique=True))
    filled = []
    for rule in chosen:
        a, b = draw(st.sampled_from(pods)), draw(st.sampled_from(pods))
        node_ip = draw(st.sampled_from(cluster.nodes)).ip
        filled.append(rule.format(a=format_ip(a), b=format_ip(b), a24=format_ip(a & 0xFFFFFF00), n=format_ip(node_ip)))
    nodes = []
    for node in cluster.nodes:
        if node in targets:
            text = generate_node(cluster, node).nft + _CHAINS + "\n".join(filled) + "\n"
            node = dataclasses.replace(node, inline=(("nft", text),))
        nodes.append(node)
    return dataclasses.replace(cluster, nodes=tuple(nodes))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(nft_clusters())
def test_nft_fast_path_equals_exhaustive(cluster):
    states = cluster_nodes(cluster)
    assert AddressClasses(cluster, states).sound, AddressClasses(cluster, states).unsound_reason
    assert_fast_equals_exhaustive(cluster, ClusterWalker(cluster, states))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(nft_clusters(UNSOUND))
def test_addresses_no_interval_can_stand_for_make_the_classes_unsound(cluster):
    classes = AddressClasses(cluster, cluster_nodes(cluster))
    assert not classes.sound
    assert "remembers exact addresses" in classes.unsound_reason or "Hash" in classes.unsound_reason \
        or "picks by" in classes.unsound_reason or "masked address compared with >" in classes.unsound_reason, \
        classes.unsound_reason


def test_kube_proxy_nft_cluster_groups_pods_and_swaps_nodes():
    # As in iptables mode: pods that are no endpoint share a class, the endpoint chains' `ip saddr
    # EP jump mark-for-masquerade` split only the endpoints of the service checked, and every node
    # is interchangeable except, for a service, the nodes of its endpoints.
    cluster = synthetic_cluster(4, 2, 12, proxy_mode="nftables")
    states = cluster_nodes(cluster)
    classes = AddressClasses(cluster, states)
    assert classes.sound, classes.unsound_reason
    by_node: dict[str, set] = {}
    for p in cluster.pods:
        by_node.setdefault(p.node, set()).add(classes.atom(p.ip))
    assert all(len(atoms) == 1 for atoms in by_node.values()), by_node
    svc = cluster.services[0]
    per_dst = classes.for_destination(svc.cluster_ip)
    endpoints = {ip for _label, ip in cluster.endpoints_of(svc)}
    assert len({per_dst(ip) for ip in endpoints}) == len(endpoints)
    sym = NodeSymmetry(cluster, states, classes)
    assert sym.usable and sym.all_free, sym.reason
    endpoint_nodes = {cluster.endpoint_node(label, ip) for label, ip in cluster.endpoints_of(svc)}
    assert sym.free(per_dst.extra) == {n.name for n in cluster.nodes} - endpoint_nodes


def test_a_node_whose_nft_rules_differ_is_not_swapped():
    cluster = synthetic_cluster(3, 1, 6, proxy_mode="nftables")
    node = cluster.nodes[1]
    text = generate_node(cluster, node).nft + _CHAINS + "add rule ip extra fwd tcp dport 8080 drop\n"
    bent = dataclasses.replace(cluster, nodes=(cluster.nodes[0], dataclasses.replace(node, inline=(("nft", text),)),
                                               cluster.nodes[2]))
    states = cluster_nodes(bent)
    sym = NodeSymmetry(bent, states, AddressClasses(bent, states))
    assert not sym.usable and "rules differ" in sym.reason
    assert_fast_equals_exhaustive(bent, ClusterWalker(bent, states))


def test_only_typed_positions_become_the_own_address_placeholder():
    from pktverify.check.invariants.nft_symmetry import nft_key
    from pktverify.load.nft_node import parse_nft

    def ruleset(own: str, mark: str) -> object:
        return parse_nft("add table ip t\nadd chain ip t c { type filter hook input priority 0; }\n"
                         f"add rule ip t c ip daddr {own} meta mark {mark} accept\n", source="x")

    a_ip, b_ip = 0xC0A8000A, 0xC0A8000B
    # each node's rule names its own address: alike once it is the placeholder
    assert nft_key(ruleset("192.168.0.10", "1"), a_ip) == nft_key(ruleset("192.168.0.11", "1"), b_ip)
    # a mark that happens to equal each node's own address is a mark, not an address: never alike
    assert nft_key(ruleset("10.0.0.1", hex(a_ip)), a_ip) != nft_key(ruleset("10.0.0.1", hex(b_ip)), b_ip)


NODE_BOUND = [
    "add rule ip extra post ip daddr != 10.1.0.0/16 masquerade",
    "add rule ip extra pre tcp dport 8080 redirect to :9090",
    "add rule ip extra fwd fib daddr type local drop",
    "add rule ip extra fwd meta pkttype broadcast drop",
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(nft_clusters(SOUND + NODE_BOUND))
def test_nodes_sharing_compiled_chains_answer_as_nodes_compiling_their_own(cluster):
    # Nodes share the compiled nft chains that read nothing of the node (eval/nft_share.py): every
    # invariant gives the same result, flow by flow, as when each node compiles its own.
    from pktverify.check.invariants import check_all
    from pktverify.eval.node_trace import NodeTracer

    states = cluster_nodes(cluster)
    shared = ClusterWalker(cluster, states)
    alone = ClusterWalker(cluster, states)
    alone.tracers = {name: NodeTracer(state) for name, state in states.items()}
    for a, b in zip(check_all(cluster, shared, exhaustive=True), check_all(cluster, alone, exhaustive=True)):
        assert (a.name, a.holds, a.checked) == (b.name, b.holds, b.checked)
        assert [v.message for v in a.violations] == [v.message for v in b.violations]


def test_a_masked_address_compared_by_order_is_no_single_cut():
    # `ip saddr & 255.255.255.0 > 10.1.0.0` holds for 10.1.1.x and 10.1.2.x alike, not for 10.1.0.x:
    # no one prefix stands for it, so the classes must not read it as one (they check every flow).
    cluster = synthetic_cluster(2, 1, 6, proxy_mode="nftables")
    node = cluster.nodes[0]
    text = generate_node(cluster, node).nft + _CHAINS + "add rule ip extra fwd ip saddr & 255.255.255.0 > 10.1.0.0 drop\n"
    bent = dataclasses.replace(cluster, nodes=(dataclasses.replace(node, inline=(("nft", text),)), *cluster.nodes[1:]))
    classes = AddressClasses(bent, cluster_nodes(bent))
    assert not classes.sound and "masked address compared with >" in classes.unsound_reason
