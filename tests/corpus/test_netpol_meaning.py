"""pktverify's reading of NetworkPolicy objects against upstream's e2e truth tables (issue #26).

For every case transcribed from kubernetes/kubernetes ``test/e2e/network/netpol`` (tests/corpus/netpol/,
see its README.md), the cluster is upstream's model (namespaces x, y, z; pods a, b, c in each, with their
labels and named container ports) plus the case's policies, written as a cluster YAML and read by
:func:`pktverify.parse.cluster_yaml.parse_cluster` (so the input path is exercised too); then
:func:`pktverify.check.policy_meaning.policy_verdict` answers every (from pod, to pod) pair of every probe
and each answer is compared with upstream's expected table. Loopback pairs are compared too: upstream
ignores them when probing a live cluster (``ignoreLoopback``), but its Reachability still states them,
and the policies' meaning has no loopback exception.

The corpus leaves out upstream's three ipBlock cases, whose policies name the live pods' addresses.
This test's cluster has an address plan (x/a 10.0.1.2, x/b 10.0.1.3, ..., y/b 10.0.1.6, in upstream's
pod order), so ``IPBLOCK_CASES`` writes those three with its addresses, and upstream's expectations as
network_policy.go (commit 9db638c0807a, lines 992-1100) states them.
"""

from __future__ import annotations

import pytest
import yaml

from pktverify.check.policy_meaning import policy_verdict
from pktverify.model.addresses import format_ip
from pktverify.model.cluster import ClusterSpec, PodSpec
from pktverify.parse.cluster_yaml import parse_cluster

netpol_cases = pytest.importorskip("tests.corpus.netpol_cases", reason="the netpol corpus (H5) is not there yet")


def _cases() -> list[dict]:
    try:
        return netpol_cases.load_cases()
    except FileNotFoundError:
        return []


CASES = _cases()


def cluster_yaml(case: dict, model: dict) -> str:
    """Upstream's model with the case's labels and policies, as a cluster YAML (one node; pods get
    addresses 10.0.1.2, .3, ... in upstream's order)."""
    ns_labels = netpol_cases.namespace_labels(case, model)
    pod_labels = netpol_cases.pod_labels(case, model)
    pods = []
    for n, (key, info) in enumerate(model["pods"].items()):
        ns, _, name = key.partition("/")
        containers = [{"name": c["name"], "ports": [{"name": p["name"], "port": p["containerPort"],
                                                      "protocol": p.get("protocol", "TCP")} for p in c["ports"]]}
                      for c in info["containers"]]
        pods.append({"name": name, "namespace": ns, "node": "n1", "ip": f"10.0.1.{n + 2}",
                     "labels": pod_labels[key], "containers": containers})
    doc = {"cluster": {"cidr": "10.0.0.0/16", "service_cidr": "10.96.0.0/16"},
           "nodes": [{"name": "n1", "ip": "192.168.1.10/24", "pod_cidr": "10.0.1.0/24"}],
           "pods": pods,
           "namespaces": [{"name": ns, "labels": labels} for ns, labels in ns_labels.items()],
           "network_policies": case.get("policies") or []}
    return yaml.safe_dump(doc, sort_keys=False)


def probe_port(probe: dict, dest: PodSpec) -> int | None:
    """The port number a probe reaches ``dest`` on: a number, or upstream's named port looked up on the
    destination pod (None: the pod has no such port)."""
    port = probe["port"]
    if isinstance(port, int):
        return port
    return next((number for name, proto, number in dest.named_ports
                 if name == port and proto == probe["protocol"].lower()), None)


def mismatches(cluster: ClusterSpec, probe: dict, pods: list[str]) -> list[str]:
    """Every cell where the verdict differs from upstream's expectation, as a readable line."""
    expected = netpol_cases.expand(probe, pods)
    out = []
    for (src, dst), want in expected.items():
        source, dest = cluster.pods_by_key[src], cluster.pods_by_key[dst]
        port = probe_port(probe, dest)
        assert port is not None, f"{dst} has no port {probe['port']}/{probe['protocol']}"
        verdict = policy_verdict(cluster, source, dest, probe["protocol"], port)
        if verdict.allowed is not want:
            out.append(f"{probe['protocol']}/{probe['port']} {src} -> {dst}: upstream expects "
                       f"{'allowed' if want else 'denied'}, pktverify says {verdict.allowed} ({verdict.why()})")
    return out


def _egress_ip_block(name: str, source: str, block: dict, expect: list[dict]) -> dict:
    """An upstream ipBlock case: ``GenNetworkPolicyWithNameAndPodMatchLabel(..., {pod: a},
    SetSpecEgressRules(rule))`` in namespace x (policyTypes [Egress], as SetSpecEgressRules sets them)."""
    policy = {"metadata": {"name": "allow-client-a-via-cidr-egress-rule", "namespace": "x"},
              "spec": {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                       "egress": [{"to": [{"ipBlock": block}]}]}}
    return {"name": name, "source": source, "file": name, "policies": [policy],
            "probes": [{"protocol": "TCP", "port": 80, "default": True, "expect": expect}]}


IPBLOCK_CASES = [
    _egress_ip_block("should allow egress access to server in CIDR block", "network_policy.go:992-1017",
                     {"cidr": "10.0.1.6/32"},                                   # y/b's address
                     [{"from": "x/a", "to": "*/*", "allowed": False}, {"from": "x/a", "to": "y/b", "allowed": True}]),
    _egress_ip_block("should enforce except clause while egress access to server in CIDR block",
                     "network_policy.go:1019-1051", {"cidr": "10.0.1.2/4", "except": ["10.0.1.3/32"]},
                     [{"from": "x/a", "to": "x/b", "allowed": False}]),
    _egress_ip_block("should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed (step 2)",
                     "network_policy.go:1053-1100", {"cidr": "10.0.1.3/32"},
                     [{"from": "x/a", "to": "*/*", "allowed": False}, {"from": "x/a", "to": "x/b", "allowed": True}]),
]


@pytest.mark.parametrize("case", IPBLOCK_CASES, ids=["cidr", "except", "overlap-step2"])
def test_ip_block_cases_with_this_address_plan(case: dict):
    model = netpol_cases.load_model()
    pods = netpol_cases.pod_names(model)
    cluster = parse_cluster(cluster_yaml(case, model), source="ipblock.yaml")
    assert [format_ip(cluster.pods_by_key[k].ip) for k in ("x/a", "x/b", "y/b")] == ["10.0.1.2", "10.0.1.3",
                                                                                      "10.0.1.6"]
    bad = mismatches(cluster, case["probes"][0], pods)
    assert not bad, "\n".join(bad)


def test_corpus_is_there():
    if not CASES:
        pytest.skip("tests/corpus/netpol/cases holds no case yet (H5's transcription)")
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_case_meaning(case: dict):
    model = netpol_cases.load_model()
    pods = netpol_cases.pod_names(model)
    cluster = parse_cluster(cluster_yaml(case, model), source=case["file"])
    assert len(cluster.network_policies) == len(case.get("policies") or [])
    assert case["probes"], "a case without probes checks nothing"
    bad = [line for probe in case["probes"] for line in mismatches(cluster, probe, pods)]
    assert not bad, f"{case['name']}: {len(bad)} cell(s) differ from upstream:\n" + "\n".join(bad)
