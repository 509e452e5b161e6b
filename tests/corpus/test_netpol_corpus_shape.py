"""The NetworkPolicy corpus (tests/corpus/netpol/, upstream's e2e cases as data) is well-formed: every
case names only the model's namespaces and pods, its policies are NetworkPolicy objects whose spec
holds only NetworkPolicySpec fields, its probes use TCP/UDP/SCTP on the model's ports, and each probe
expands to a full 9x9 truth table the way upstream's Reachability builds it."""

from __future__ import annotations

import re

import pytest

from .netpol_cases import expand, load_cases, load_model, namespace_labels, pod_labels, pod_names, selector_matches

MODEL = load_model()
PODS = pod_names(MODEL)
CASES = load_cases()
IDS = [c["file"].removesuffix(".yaml") for c in CASES]

CASE_KEYS = {"name", "context", "source", "step", "steps", "namespace_labels", "pod_labels", "policies", "probes", "file"}
SPEC_KEYS = {"podSelector", "policyTypes", "ingress", "egress"}  # networking.k8s.io/v1 NetworkPolicySpec
PEER_KEYS = {"podSelector", "namespaceSelector", "ipBlock"}
PORT_KEYS = {"protocol", "port", "endPort"}
PROTOCOLS = {"TCP", "UDP", "SCTP"}
SOURCE = re.compile(r"^test/e2e/network/netpol/network_policy\.go:(\d+)-(\d+)$")
NAMED_PORTS = {p["name"] for pod in MODEL["pods"].values() for c in pod["containers"] for p in c["ports"]}
MODEL_PORTS = {p["containerPort"] for pod in MODEL["pods"].values() for c in pod["containers"] for p in c["ports"]}


def test_model_is_upstreams_default_model():
    assert list(MODEL["namespaces"]) == ["x", "y", "z"]
    assert PODS == [f"{ns}/{pod}" for ns in "xyz" for pod in "abc"]
    for ns, info in MODEL["namespaces"].items():
        assert info["labels"]["kubernetes.io/metadata.name"] == ns
    for name, pod in MODEL["pods"].items():
        assert pod["labels"] == {"pod": name.split("/")[1]}
        ports = [(p["containerPort"], p["protocol"], p["name"]) for c in pod["containers"] for p in c["ports"]]
        assert sorted(ports) == sorted((n, pr, f"serve-{n}-{pr.lower()}") for n in (80, 81) for pr in PROTOCOLS)
        assert pod["service"]["name"] == "s-" + name.replace("/", "-")
        assert pod["service"]["selector"] == pod["labels"]


def _check_selector(sel: dict, where: str) -> None:
    assert isinstance(sel, dict) and set(sel) <= {"matchLabels", "matchExpressions"}, where
    assert all(isinstance(v, str) for v in (sel.get("matchLabels") or {}).values()), where
    for expr in sel.get("matchExpressions") or []:
        assert expr["operator"] in {"In", "NotIn", "Exists", "DoesNotExist"}, where
        assert isinstance(expr["key"], str), where


def _check_rule(rule: dict, peers_key: str, where: str) -> None:
    assert isinstance(rule, dict) and set(rule) <= {peers_key, "ports"}, where
    for peer in rule.get(peers_key) or []:
        assert peer and set(peer) <= PEER_KEYS, where
        for key in ("podSelector", "namespaceSelector"):
            if key in peer:
                _check_selector(peer[key], f"{where} {key}")
    for port in rule.get("ports") or []:
        assert port and set(port) <= PORT_KEYS, where
        assert port.get("protocol", "TCP") in PROTOCOLS, where
        if isinstance(port.get("port"), str):
            assert port["port"] in NAMED_PORTS, f"{where}: named port {port['port']} not in the model"
        elif "port" in port:
            assert isinstance(port["port"], int) and 0 < port["port"] < 65536, where


def _check_policy(policy: dict, where: str) -> None:
    assert set(policy) == {"metadata", "spec"}, where
    assert set(policy["metadata"]) == {"name", "namespace"}, where
    assert policy["metadata"]["namespace"] in MODEL["namespaces"], where
    spec = policy["spec"]
    assert set(spec) <= SPEC_KEYS and "podSelector" in spec, f"{where}: spec keys {sorted(spec)}"
    _check_selector(spec["podSelector"], f"{where} podSelector")
    assert spec.get("policyTypes") and set(spec["policyTypes"]) <= {"Ingress", "Egress"}, where
    for key, peers_key in (("ingress", "from"), ("egress", "to")):
        assert isinstance(spec.get(key, []), list), where
        for rule in spec.get(key) or []:
            _check_rule(rule, peers_key, f"{where} {key}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_case_fields(case):
    assert set(case) <= CASE_KEYS and {"name", "context", "source", "policies", "probes"} <= set(case)
    start, end = map(int, SOURCE.match(case["source"]).groups())
    assert start < end
    assert ("step" in case) == ("steps" in case)
    if "step" in case:
        assert 1 <= case["step"] <= case["steps"] and case["file"].endswith(f"-step{case['step']}.yaml")
    for ns, labels in (case.get("namespace_labels") or {}).items():
        assert ns in MODEL["namespaces"] and labels["kubernetes.io/metadata.name"] == ns
    for pod, labels in (case.get("pod_labels") or {}).items():
        assert pod in MODEL["pods"] and labels["pod"] == pod.split("/")[1]
    names = [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in case["policies"]]
    assert len(names) == len(set(names)), "two policies of one name in one namespace"
    for i, policy in enumerate(case["policies"]):
        _check_policy(policy, f"{case['file']} policies[{i}]")
    assert case["probes"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_probes_expand_to_full_matrix(case):
    for probe in case["probes"]:
        assert set(probe) == {"protocol", "port", "default", "expect"}
        assert probe["protocol"] in PROTOCOLS
        assert probe["port"] in MODEL_PORTS or probe["port"] in NAMED_PORTS
        assert isinstance(probe["default"], bool)
        for rule in probe["expect"] or []:
            assert set(rule) == {"from", "to", "allowed"} and isinstance(rule["allowed"], bool)
            for sel in (rule["from"], rule["to"]):
                ns, _, pod = sel.partition("/")
                assert ns in {"*", *MODEL["namespaces"]} and pod in {"*", "a", "b", "c"}, sel
                assert any(selector_matches(sel, p) for p in PODS)
        table = expand(probe, PODS)
        assert len(table) == 81 and set(table) == {(a, b) for a in PODS for b in PODS}
        assert all(isinstance(v, bool) for v in table.values())


def test_steps_of_a_case_are_complete():
    by_case: dict[tuple[str, str], list[dict]] = {}
    for case in CASES:
        by_case.setdefault((case["context"], case["name"]), []).append(case)
    for key, files in by_case.items():
        steps = sorted(c.get("step", 1) for c in files)
        assert steps == list(range(1, files[0].get("steps", 1) + 1)), key
        assert len({c["source"] for c in files}) == 1, key
    # 42 + 3 + 3 upstream It(...) cases, 3 left out (ipBlock on live pod IPs): README.md
    assert len(by_case) == 45 and len(CASES) == 54


def _falses(table: dict) -> set[tuple[str, str]]:
    return {pair for pair, allowed in table.items() if not allowed}


def test_expand_applies_rules_in_order_like_upstream():
    # ExpectPeer(&Peer{}, &Peer{Namespace: x}, false): the x column is closed to all 9 sources
    deny_x = {"default": True, "expect": [{"from": "*/*", "to": "x/*", "allowed": False}]}
    assert _falses(expand(deny_x, PODS)) == {(a, b) for a in PODS for b in ("x/a", "x/b", "x/c")}
    # ExpectAllIngress(x/a, false) then Expect(x/b, x/a, true): the later rule wins for its one pair
    probe = {"default": True, "expect": [{"from": "*/*", "to": "x/a", "allowed": False},
                                         {"from": "x/b", "to": "x/a", "allowed": True}]}
    assert _falses(expand(probe, PODS)) == {(a, "x/a") for a in PODS if a != "x/b"}
    # a default of false with one pod-wildcard allow
    probe = {"default": False, "expect": [{"from": "y/*", "to": "z/c", "allowed": True}]}
    assert {p for p, v in expand(probe, PODS).items() if v} == {("y/a", "z/c"), ("y/b", "z/c"), ("y/c", "z/c")}
    with pytest.raises(ValueError):
        expand({"default": True, "expect": [{"from": "x", "to": "*/*", "allowed": False}]}, PODS)


def test_labels_at_a_step():
    case = next(c for c in CASES if c["file"] == "should-allow-ingress-access-from-updated-pod-step2.yaml")
    assert pod_labels(case, MODEL)["x/b"] == {"pod": "b", "pod2": "updated"}
    assert pod_labels(case, MODEL)["x/a"] == {"pod": "a"}
    case = next(c for c in CASES if c["file"] == "should-allow-ingress-access-from-updated-namespace-step2.yaml")
    assert namespace_labels(case, MODEL)["y"] == {"kubernetes.io/metadata.name": "y", "ns2": "updated"}
    assert namespace_labels(case, MODEL)["z"] == {"kubernetes.io/metadata.name": "z"}
