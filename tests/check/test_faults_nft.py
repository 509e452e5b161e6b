"""The faults in kube-proxy's nftables-mode ruleset (issue #25): each kube-proxy rule fault in its
nft form and the two nft-only faults (a stale map element, a numgen modulus that skips an
endpoint), planted on the seed cluster switched to nftables mode, are found by verify: the
invariant the fault must break and no other, the violating flows those of the node planted on,
the cause on that node; and the same cluster without the planted edit verifies clean (the edit
is what verify finds). The drawn side: faulty_clusters in nftables mode draws every fault that
has an nft form, the nft-only ones in nftables mode only.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from pktverify import strategies, verify
from pktverify.check.causes import group_violations
from pktverify.generate.kube_proxy_nft import nft_chain_base
from pktverify.generate.node_state import generate_node
from pktverify.model.addresses import format_ip, parse_ip
from pktverify.parse.cluster_yaml import parse_cluster
from pktverify.testing import faults_nft
from pktverify.testing.faults import FAULTS, IN_NFT_TOO, NEEDS_IPTABLES, NEEDS_NFTABLES, fault_modes, plant

SEED = Path(__file__).resolve().parents[2] / "rules" / "seed" / "cluster-iptables.yaml"
NFT_FORMS = sorted(IN_NFT_TOO | NEEDS_NFTABLES)
SETTINGS = settings(database=None, max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))


def _seed_nft():
    text = SEED.read_text()
    assert text.count("proxy_mode: iptables") == 1
    return parse_cluster(text.replace("proxy_mode: iptables", "proxy_mode: nftables"), source="seed-nft")


@st.composite
def _planted(draw, name: str):
    return plant(draw, name, _seed_nft())


def _planted_node(cluster) -> str:
    [name] = [n.name for n in cluster.nodes if n.dump_text("nft")]
    return name


def planted_on_node2(name: str):
    """The seed cluster (nftables mode) with fault ``name`` planted on node2 (its middle node)."""
    if name == "etp-local-pod-detour":          # no rule edited: the client's node is node2
        return find(_planted(name), lambda c: " on node2 → " in c.fault.detail, settings=SETTINGS)
    return find(_planted(name), lambda c: _planted_node(c) == "node2", settings=SETTINGS)


def _without_edit(cluster):
    """``cluster`` with every node's generated nft ruleset as kube-proxy writes it."""
    return replace(cluster, nodes=tuple(replace(n, inline=tuple((k, t) for k, t in n.inline if k != "nft"))
                                        for n in cluster.nodes))


def _broken(report) -> set[str]:
    return {r.name for r in report.results if not r.holds}


@pytest.mark.parametrize("name", NFT_FORMS)
def test_each_nft_form_is_found_on_the_node_it_is_planted_on(name):
    cluster = planted_on_node2(name)
    assert cluster.proxy_mode == "nftables" and cluster.fault.name == name
    report = verify(cluster)
    assert _broken(report) == set(FAULTS[name][0]) == {"service-reachability"}, cluster.fault.detail
    clients = {v.client.node for v in report.violations}
    groups = group_violations(report.results)
    if name == "etp-local-pod-detour":
        # the pod on node2 calls another node's NodePort: the DNAT there, by kube-proxy's own
        # short-circuit of pod traffic (no rule edited), is the cause
        assert clients <= {"node1", "node2", "node3"} and all(v.client.label().startswith("pod ")
                                                             for v in report.violations)
        assert {g.kind for g in groups} == {"rewrite"}
        for g in groups:
            [node] = g.nodes
            assert node != "node2" and g.location.startswith(f"<generated nft of {node}>:")
            line = generate_node(cluster, cluster.node(node)).nft.split("\n")[int(g.location.rsplit(":", 1)[1]) - 1]
            assert "-default/svc-local/" in line and " dnat to " in line
        cluster_policy = replace(cluster, services=tuple(replace(s, external_policy="Cluster") if s.name == "svc-local"
                                                         else s for s in cluster.services))
        assert verify(cluster_policy).holds
        return
    assert clients == {"node2"}, [v.message for v in report.violations]
    assert verify(_without_edit(cluster)).holds
    kinds = {"hairpin-without-masquerade": "other", "empty-service-not-rejected": "route",
             "session-affinity-lost": "affinity", "stale-map-element": "no-pod", "numgen-skips-endpoint": "endpoint",
             "non-uniform-probabilities": "statistic"}
    [group] = groups
    assert group.kind == kinds[name], group.cause
    if group.kind not in ("affinity", "endpoint"):        # facts of a service, at no node
        assert group.nodes == ["node2"], group.cause


def test_a_hairpin_without_masquerade_is_the_martian_at_the_endpoint():
    cluster = planted_on_node2("hairpin-without-masquerade")
    [v] = [v for v in verify(cluster).violations if "martian source" in v.message]
    assert v.client.kind == "pod" and v.client.node == "node2"
    assert "jump mark-for-masquerade" in cluster.fault.detail


def test_an_unrejected_empty_service_leaves_the_node_and_one_missing_element_alone_is_no_fault():
    cluster = planted_on_node2("empty-service-not-rejected")
    report = verify(cluster)
    assert all("left" in v.message and "un-DNATed" in v.message for v in report.violations)
    # kube-proxy's nftables mode rejects the service twice over: without its no-endpoint-services
    # element the cluster-ips check still rejects it (verify says nothing: nothing is wrong)
    node = cluster.node("node2")
    lines = generate_node(cluster, node).nft.split("\n")
    [element] = [i for i, line in enumerate(lines) if "no-endpoint-services" in line and "default/svc-empty" in line]
    one_gone = "\n".join(lines[:element] + lines[element + 1:])
    alone = replace(cluster, nodes=tuple(replace(n, inline=(("nft", one_gone),)) if n.name == "node2" else n
                                         for n in cluster.nodes))
    assert verify(alone).holds


def _rules_of(text: str, svc: str) -> list[str]:
    return [line for line in text.split("\n") if line.startswith("add rule ") and f"-default/{svc}/" in line.split()[4]]


def test_lost_affinity_balances_the_second_connection_again():
    cluster = planted_on_node2("session-affinity-lost")
    report = verify(cluster)
    assert report.violations and all("sessionAffinity: ClientIP" in v.message for v in report.violations)
    planted = _rules_of(cluster.node("node2").dump_text("nft"), "svc-sticky")
    generated = _rules_of(generate_node(cluster, cluster.node("node2")).nft, "svc-sticky")
    checks = [r for r in generated if " ip saddr @affinity-" in r]
    assert len(checks) == 2 and planted == [r for r in generated if r not in checks]
    assert sum(" update @affinity-" in r for r in planted) == 2          # the endpoints still record the client


def test_a_stale_element_sends_a_live_cluster_ip_to_the_deleted_services_endpoint():
    cluster = planted_on_node2("stale-map-element")
    text = cluster.node("node2").dump_text("nft")
    svc = next(s for s in cluster.services if s.name == "svc-live")
    [element] = [line for line in text.split("\n") if line.startswith("add element ") and " service-ips " in line
                 and f"{{ {format_ip(svc.cluster_ip)} . tcp . 80 : " in line]
    assert element.endswith(f" : goto service-{nft_chain_base('default/svc-deleted', 'tcp')} }}")
    assert not any(s.name == "svc-deleted" for s in cluster.services)
    gone = cluster.fault.detail.rsplit(" ", 1)[1]
    assert parse_ip(gone) not in {p.ip for p in cluster.pods}
    assert any(line.endswith(f" dnat to {gone}:8080") for line in _rules_of(text, "svc-deleted"))
    report = verify(cluster)
    assert any(f"no pod with IP {gone}" in v.message for v in report.violations)
    assert any(any("svc-deleted" in h.note for h in v.hops) for v in report.violations)


def test_a_numgen_modulus_below_the_endpoint_count_never_reaches_the_last_endpoints():
    cluster = planted_on_node2("numgen-skips-endpoint")
    modulus = int(cluster.fault.detail.split("numgen random mod ", 1)[1].split("`")[0])
    count = int(cluster.fault.detail.split(" over its ", 1)[1].split()[0])
    assert 1 <= modulus < count
    never = {v.message.split("never reaches endpoint ", 1)[1].split(" ", 1)[0]
             for v in verify(cluster).violations if "never reaches endpoint" in v.message}
    assert len(never) == count - modulus


@pytest.mark.parametrize("edit", [lambda t: faults_nft.without_hairpin_masquerade(t, "default/nope"),
                                  lambda t: faults_nft.without_affinity_checks(t, "default/http-svc"),
                                  lambda t: faults_nft.skip_endpoint(t, "default/http-svc", 2),
                                  lambda t: faults_nft.without_reject(t, "default/http-svc", "10.152.183.164")])
def test_an_edit_that_finds_nothing_to_change_says_so(edit):
    cluster = _seed_nft()
    with pytest.raises(AssertionError):
        edit(generate_node(cluster, cluster.node("node1")).nft)


def test_every_fault_with_an_nft_form_is_drawn_in_nftables_mode():
    modes = strategies.PROXY_MODES
    assert NEEDS_IPTABLES == frozenset()
    assert {n for n in FAULTS if "nftables" in fault_modes(n, modes)} == set(FAULTS)
    assert all(fault_modes(n, modes) == ("nftables",) for n in NEEDS_NFTABLES)
    assert all(fault_modes(n, modes) == ("iptables", "nftables") for n in IN_NFT_TOO)
    assert fault_modes("stale-map-element", ("iptables",)) == ("nftables",)
    assert fault_modes("hairpin-without-masquerade", ("userspace",)) == ("iptables",)


@settings(SETTINGS, max_examples=30)
@given(strategies.faulty_clusters(faults=sorted(NEEDS_NFTABLES | IN_NFT_TOO), max_nodes=3, max_pods_per_node=3,
                                  max_services=2))
def test_drawn_nft_faults_are_planted_in_the_table_of_their_mode(cluster):
    name = cluster.fault.name
    assert cluster.proxy_mode in ("iptables", "nftables")
    if name in NEEDS_NFTABLES:
        assert cluster.proxy_mode == "nftables"
    planted = [n for n in cluster.nodes if n.inline]
    if name != "etp-local-pod-detour":
        [node] = planted
        assert {k for k, _t in node.inline} == ({"nft"} if cluster.proxy_mode == "nftables" else {"iptables"})
    else:
        assert not planted
