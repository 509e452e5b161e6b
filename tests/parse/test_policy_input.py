"""NetworkPolicy and Namespace input: the cluster YAML's ``namespaces:`` and ``network_policies:``, kubectl's
Namespace and NetworkPolicy objects, and the API server's validation of policies (one line, FILE:LINE)."""

from __future__ import annotations

import json
import textwrap

import pytest

from pktverify.cli import main
from pktverify.errors import InputError
from pktverify.load.cluster_kubectl import load_kubectl_cluster
from pktverify.model.addresses import parse_network
from pktverify.model.network_policy import (
    IPBlock,
    LabelSelector,
    NamespaceSpec,
    PolicyPeer,
    PolicyPort,
    SelectorRequirement,
)
from pktverify.parse.cluster_yaml import parse_cluster

HEAD = """cluster: {cidr: 10.0.0.0/16, service_cidr: 10.96.0.0/16}
nodes:
  - {name: n1, ip: 192.168.1.10/24, pod_cidr: 10.0.1.0/24}
"""
POLICY = HEAD + """network_policies:
  - metadata: {name: p, namespace: x}
    spec:
      """          # the spec's first line is line 7


def parse(text: str):
    return parse_cluster(text, source="c.yaml")


def error(text: str) -> str:
    with pytest.raises(InputError) as exc:
        parse(text)
    return str(exc.value)


SPEC_ERRORS = [
    ("podSelector: {matchExpressions: [{key: a, operator: Equals, values: [x]}]}",
     "spec.podSelector.matchExpressions[0].operator: Invalid value: 'Equals': not a valid selector operator "
     "(In, NotIn, Exists, DoesNotExist)"),
    ("podSelector: {matchExpressions: [{key: a, operator: In}]}",
     "spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or "
     "'NotIn'"),
    ("podSelector: {matchExpressions: [{key: a, operator: Exists, values: [x]}]}",
     "spec.podSelector.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or "
     "'DoesNotExist'"),
    ("podSelector: {matchLabels: {a: 'x y'}}",
     "spec.podSelector.matchLabels: a='x y': must be empty or consist of alphanumeric characters, '-', '_' or '.', "
     "and must start and end with an alphanumeric character"),
    ("ingress: [{ports: [{port: http, endPort: 90}]}]",
     "spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is non-numeric"),
    ("ingress: [{ports: [{endPort: 90}]}]",
     "spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is not specified"),
    ("ingress: [{ports: [{port: 90, endPort: 80}]}]",
     "spec.ingress[0].ports[0].endPort: Invalid value: 90: must be greater than or equal to `port`"),
    ("ingress: [{ports: [{port: 0}]}]",
     "spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"),
    ("ingress: [{ports: [{port: '80'}]}]",
     "spec.ingress[0].ports[0].port: Invalid value: '80': must contain at least one letter"),
    ("ingress: [{ports: [{protocol: ICMP}]}]",
     "spec.ingress[0].ports[0].protocol: Unsupported value: 'ICMP': supported values: \"TCP\", \"UDP\", \"SCTP\""),
    ("ingress: [{from: [{ipBlock: {cidr: 10.0.0.1}}]}]",
     "spec.ingress[0].from[0].ipBlock.cidr: Invalid value: '10.0.0.1': must be a valid CIDR value, (e.g. "
     "10.9.8.0/24 or 2001:db8::/64)"),
    ("egress: [{to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}]",
     "spec.egress[0].to[0].ipBlock.except[0]: Invalid value: '10.1.0.0/24': must be a strict subset of `cidr` "
     "(10.0.0.0/16)"),
    ("egress: [{to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.0.0/16]}}]}]",
     "spec.egress[0].to[0].ipBlock.except[0]: Invalid value: '10.0.0.0/16': must be a strict subset of `cidr` "
     "(10.0.0.0/16)"),
    ("ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16}, podSelector: {}}]}]",
     "spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer"),
    ("ingress: [{from: [{}]}]", "spec.ingress[0].from[0]: Required value: must specify a peer"),
    ("policyTypes: [Ingress, Both]",
     "spec.policyTypes[1]: Unsupported value: 'Both': supported values: \"Ingress\", \"Egress\""),
    ("policyTypes: [Ingress, Egress, Ingress]",
     "spec.policyTypes: Invalid value: may not specify more than two policyTypes"),
]


@pytest.mark.parametrize("spec, message", SPEC_ERRORS, ids=[m.split(":")[0] + "-" + str(i)
                                                            for i, (_s, m) in enumerate(SPEC_ERRORS)])
def test_validation_errors_as_the_api_server(spec, message):
    assert error(POLICY + spec + "\n") == f"c.yaml:7: network policy x/p: {message}: {spec}"


def test_error_line_is_the_offending_field_in_block_yaml():
    text = POLICY + textwrap.dedent("""\
        podSelector: {}
              ingress:
                - from:
                    - podSelector: {}
                  ports:
                    - protocol: TCP
                      port: 80
                      endPort: 70
        """)
    assert error(text) == ("c.yaml:14: network policy x/p: spec.ingress[0].ports[0].endPort: Invalid value: 80: "
                           "must be greater than or equal to `port`: endPort: 70")


def test_unknown_keys_and_duplicates_are_refused():
    assert error(POLICY + "podSelector: {}\n      ingres: []\n") == (
        "c.yaml:8: network policy x/p: unknown key 'ingres' in a NetworkPolicy spec (valid: egress, ingress, "
        "podSelector, policyTypes): ingres: []")
    twice = POLICY + "{}\n  - metadata: {name: p, namespace: x}\n    spec: {}\n"
    assert error(twice) == "c.yaml:8: network policy x/p is described twice (also on line 5): - metadata: " \
                           "{name: p, namespace: x}"
    assert "apiVersion must be networking.k8s.io/v1" in error(
        HEAD + "network_policies:\n  - {apiVersion: v1, metadata: {name: p}, spec: {}}\n")


def test_policy_records_with_defaults():
    text = POLICY + textwrap.dedent("""\
        podSelector: {matchLabels: {app: db}}
              egress:
                - to:
                    - namespaceSelector: {matchExpressions: [{key: team, operator: NotIn, values: [a, b]}]}
                      podSelector: {}
                    - ipBlock: {cidr: 10.0.0.0/16, except: [10.0.1.0/24]}
                  ports: [{port: 53, protocol: UDP}, {port: dns}, {port: 8000, endPort: 8100}, {protocol: SCTP}]
              ingress: []
        """)
    (p,) = parse(text).network_policies
    assert (p.key, p.policy_types, p.ingress) == ("x/p", ("Ingress", "Egress"), ())
    assert p.pod_selector == LabelSelector((("app", "db"),))
    (rule,) = p.egress
    assert rule.peers == (PolicyPeer(LabelSelector(), LabelSelector((), (SelectorRequirement("team", "NotIn",
                                                                                             ("a", "b")),))),
                          PolicyPeer(ip_block=IPBlock(parse_network("10.0.0.0/16"), (parse_network("10.0.1.0/24"),),
                                                      "10.0.0.0/16")))
    assert rule.ports == (PolicyPort("UDP", 53), PolicyPort("TCP", "dns"), PolicyPort("TCP", 8000, 8100),
                          PolicyPort("SCTP"))


def test_absent_pod_selector_selects_every_pod_and_no_egress_rules_no_egress_type():
    (p,) = parse(HEAD + "network_policies:\n  - metadata: {name: p}\n    spec: {egress: []}\n").network_policies
    assert (p.namespace, p.pod_selector.selects_all, p.policy_types) == ("default", True, ("Ingress",))


def test_namespaces_map_and_list_forms_get_the_name_label():
    as_map = parse(HEAD + "namespaces:\n  x: {team: a, kubernetes.io/metadata.name: wrong}\n  y:\n")
    as_list = parse(HEAD + "namespaces:\n  - {name: x, labels: {team: a}}\n  - {name: y}\n")
    want = (NamespaceSpec("x", (("kubernetes.io/metadata.name", "x"), ("team", "a"))),
            NamespaceSpec("y", (("kubernetes.io/metadata.name", "y"),)))
    assert as_map.namespaces == want and as_list.namespaces == want
    assert as_map.namespace_labels("z") == {"kubernetes.io/metadata.name": "z"}     # unlisted: only its name
    assert error(HEAD + "namespaces:\n  - {name: X_1}\n").startswith("c.yaml:5: namespace 'X_1' ")
    assert error(HEAD + "namespaces:\n  - {name: x}\n  - {name: x}\n") == (
        "c.yaml:6: namespace x is described twice (also on line 5): - {name: x}")


def test_sctp_container_ports_accepted_and_service_ports_refused():
    pods = HEAD + ("pods:\n  - {name: a, node: n1, ip: 10.0.1.2, labels: {app: a}, containers: [{name: c, ports: "
                   "[{name: assoc, port: 9000, protocol: SCTP}]}]}\n")
    cluster = parse(pods)
    assert cluster.pods[0].named_ports == (("assoc", "sctp", 9000),)
    svc = pods + "services:\n  - {name: s, cluster_ip: 10.96.0.5, selector: {app: a}, ports: [{port: 9000,\n" \
                 "     protocol: SCTP}]}\n"
    assert error(svc) == ("c.yaml:8: SCTP service ports are not modelled (pktverify checks TCP and UDP services; "
                          "SCTP container ports are accepted): protocol: SCTP}]}")


def test_clusters_without_policies_are_unchanged():
    cluster = parse(HEAD)
    assert cluster.namespaces == () and cluster.network_policies == () and "notes" not in cluster.extras


def test_policies_are_noted_as_not_checked_on_the_nodes_yet():
    cluster = parse(HEAD + "network_policies:\n  - metadata: {name: p}\n    spec: {}\n")
    assert cluster.extras["notes"] == ["1 NetworkPolicy object(s) read; whether the nodes enforce them is not "
                                       "checked yet"]


def _kubectl(tmp_path, *extra):
    items = [{"kind": "Node", "metadata": {"name": "n1"}, "spec": {"podCIDR": "10.0.1.0/24"},
              "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.10"}]}},
             {"kind": "Namespace", "metadata": {"name": "x", "labels": {"team": "a",
                                                                        "kubernetes.io/metadata.name": "x"}}},
             {"kind": "Pod", "metadata": {"name": "a", "namespace": "x", "labels": {"pod": "a"}},
              "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [
                  {"containerPort": 80, "name": "serve-80-tcp"},
                  {"containerPort": 80, "name": "serve-80-sctp", "protocol": "SCTP"}, {"containerPort": 81}]}]},
              "status": {"podIP": "10.0.1.2", "conditions": [{"type": "Ready", "status": "True"}]}},
             *extra]
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=1))
    return path


POLICY_OBJECT = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"name": "allow", "namespace": "x", "uid": "1", "resourceVersion": "9",
                              "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1},
                 "spec": {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress"],
                          "ingress": [{"from": [{"namespaceSelector": {}}],
                                       "ports": [{"port": "serve-80-sctp", "protocol": "SCTP"}]}]}}


def test_kubectl_namespaces_policies_and_named_ports(tmp_path):
    path = _kubectl(tmp_path, POLICY_OBJECT)
    cluster = load_kubectl_cluster(path, cluster_cidr="10.0.0.0/16", service_cidr="10.96.0.0/16")
    assert cluster.namespaces == (NamespaceSpec("x", (("kubernetes.io/metadata.name", "x"), ("team", "a"))),)
    (p,) = cluster.network_policies
    assert (p.key, p.policy_types, p.ingress[0].ports) == ("x/allow", ("Ingress",), (PolicyPort("SCTP",
                                                                                                "serve-80-sctp"),))
    assert cluster.pods[0].named_ports == (("serve-80-tcp", "tcp", 80), ("serve-80-sctp", "sctp", 80))
    assert cluster.pods[0].ports == (80, 80, 81)
    notes = cluster.extras["notes"]
    assert "1 NetworkPolicy object(s) read; whether the nodes enforce them is not checked yet" in notes
    assert not any("not modelled" in n and "Namespace" in n for n in notes)


def test_kubectl_policy_error_names_the_json_line(tmp_path):
    bad = json.loads(json.dumps(POLICY_OBJECT))
    bad["spec"]["ingress"][0]["ports"][0]["endPort"] = 90
    path = _kubectl(tmp_path, bad)
    with pytest.raises(InputError) as exc:
        load_kubectl_cluster(path, cluster_cidr="10.0.0.0/16", service_cidr="10.96.0.0/16")
    line = next(n for n, text in enumerate(path.read_text().split("\n"), 1) if '"endPort": 90' in text)
    assert str(exc.value) == (f"{path}:{line}: network policy x/allow: spec.ingress[0].ports[0].endPort: Invalid "
                              "value: 90: may not be specified when `port` is non-numeric: \"endPort\": 90")


def test_cli_exit_2_on_a_bad_policy(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(POLICY + "ingress: [{from: [{}]}]\n")
    assert main(["verify", str(path)]) == 2
    assert f"{path}:7: network policy x/p: spec.ingress[0].from[0]: Required value: must specify a peer" \
        in capsys.readouterr().err
