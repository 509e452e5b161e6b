"""The meaning of NetworkPolicy objects (pktverify.check.policy_meaning): one test per rule of the API's
semantics, each with a connection the rule allows and one it does not."""

from __future__ import annotations

import textwrap

import pytest

from pktverify.check.policy_meaning import policy_verdict
from pktverify.model.addresses import parse_ip
from pktverify.parse.cluster_yaml import parse_cluster

BASE = """
cluster: {cidr: 10.0.0.0/16, service_cidr: 10.96.0.0/16}
nodes:
  - {name: n1, ip: 192.168.1.10/24, pod_cidr: 10.0.1.0/24}
  - {name: n2, ip: 192.168.1.11/24, pod_cidr: 10.0.2.0/24}
namespaces:
  x: {team: red}
  y: {team: blue}
pods:
  - {name: a, namespace: x, node: n1, ip: 10.0.1.2, labels: {app: a, tier: web},
     containers: [{name: c, ports: [{name: http, port: 8080}, {name: dns, port: 5353, protocol: UDP}]}]}
  - {name: b, namespace: x, node: n1, ip: 10.0.1.3, labels: {app: b},
     containers: [{name: c, ports: [{name: http, port: 9090}]}]}
  - {name: c, namespace: y, node: n2, ip: 10.0.2.2, labels: {app: b}}
  - {name: d, namespace: z, node: n2, ip: 10.0.2.3, labels: {app: d}}
  - {name: h, namespace: x, node: n2, host_network: true, labels: {app: h}}
"""


def cluster(policies: str = ""):
    text = BASE + ("network_policies:\n" + textwrap.indent(textwrap.dedent(policies), "  ") if policies else "")
    return parse_cluster(text, source="t.yaml")


def pod(c, key):
    return c.pods_by_key.get(key) or next(p for p in c.host_pods if p.key == key)


def allowed(c, src, dst, port=80, proto="TCP"):
    source = parse_ip(src) if src[0].isdigit() else pod(c, src)
    return policy_verdict(c, source, pod(c, dst), proto, port).allowed


def test_no_policy_allows_everything_and_says_why():
    c = cluster()
    v = policy_verdict(c, pod(c, "x/a"), pod(c, "x/b"), "tcp", 80)
    assert v.allowed is True and v.ingress.isolated_by == () and v.egress.isolated_by == ()
    assert v.why() == "egress: no policy selects it for egress; ingress: no policy selects it for ingress"


def test_ingress_isolation_is_per_direction_and_names_the_policy():
    c = cluster("""
    - metadata: {name: deny, namespace: x}
      spec: {podSelector: {matchLabels: {app: a}}}
    """)
    v = policy_verdict(c, pod(c, "x/b"), pod(c, "x/a"), "TCP", 80)
    assert v.allowed is False and v.ingress.isolated_by == ("x/deny",)
    assert v.why().endswith("ingress: isolated for ingress by x/deny and no rule allows it")
    assert allowed(c, "x/a", "x/b") is True            # a's egress is not isolated; b is not selected
    assert allowed(c, "x/b", "y/c") is True


def test_union_of_allows_across_policies():
    c = cluster("""
    - metadata: {name: from-b, namespace: x}
      spec:
        podSelector: {matchLabels: {app: a}}
        ingress: [{from: [{podSelector: {matchLabels: {app: b}}}]}]
    - metadata: {name: from-y, namespace: x}
      spec:
        podSelector: {matchLabels: {app: a}}
        ingress: [{from: [{namespaceSelector: {matchLabels: {team: blue}}}]}]
    """)
    v = policy_verdict(c, pod(c, "y/c"), pod(c, "x/a"), "TCP", 80)
    assert v.allowed and v.ingress.isolated_by == ("x/from-b", "x/from-y")
    assert v.ingress.allowed_by == (("x/from-y", 0),)
    assert allowed(c, "x/b", "x/a") is True
    assert allowed(c, "z/d", "x/a") is False


def test_empty_ingress_list_denies_and_one_empty_rule_allows_all():
    deny = cluster("""
    - metadata: {name: p, namespace: x}
      spec: {podSelector: {}, policyTypes: [Ingress], ingress: []}
    """)
    assert allowed(deny, "x/b", "x/a") is False and allowed(deny, "203.0.113.9", "x/a") is False
    allow = cluster("""
    - metadata: {name: p, namespace: x}
      spec: {podSelector: {}, ingress: [{}]}
    """)
    assert allowed(allow, "z/d", "x/a") is True and allowed(allow, "203.0.113.9", "x/a", 1, "SCTP") is True


@pytest.mark.parametrize("rule", ["{from: [], ports: []}", "{ports: [{protocol: TCP}]}"])
def test_empty_or_absent_from_matches_every_source_including_external(rule):
    c = cluster(f"""
    - metadata: {{name: p, namespace: x}}
      spec: {{podSelector: {{}}, ingress: [{rule}]}}
    """)
    assert allowed(c, "z/d", "x/a") is True and allowed(c, "203.0.113.9", "x/a", 443) is True


def test_protocol_only_port_matches_every_port_of_that_protocol():
    c = cluster("""
    - metadata: {name: udp, namespace: x}
      spec: {podSelector: {}, ingress: [{ports: [{protocol: UDP}]}]}
    """)
    assert allowed(c, "x/b", "x/a", 53, "UDP") is True and allowed(c, "x/b", "x/a", 65535, "udp") is True
    assert allowed(c, "x/b", "x/a", 53, "TCP") is False and allowed(c, "x/b", "x/a", 53, "SCTP") is False


def test_pod_selector_alone_is_the_policy_namespace_only():
    c = cluster("""
    - metadata: {name: p, namespace: x}
      spec: {podSelector: {matchLabels: {app: a}}, ingress: [{from: [{podSelector: {matchLabels: {app: b}}}]}]}
    """)
    assert allowed(c, "x/b", "x/a") is True
    assert allowed(c, "y/c", "x/a") is False           # app=b too, but in another namespace


def test_namespace_selector_alone_and_combined_with_pod_selector():
    alone = cluster("""
    - metadata: {name: p, namespace: x}
      spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: blue}}}]}]}
    """)
    assert allowed(alone, "y/c", "x/a") is True and allowed(alone, "x/b", "x/a") is False
    both = cluster("""
    - metadata: {name: p, namespace: x}
      spec:
        podSelector: {}
        ingress: [{from: [{namespaceSelector: {matchLabels: {team: red}}, podSelector: {matchLabels: {app: b}}}]}]
    """)
    assert allowed(both, "x/b", "x/a") is True
    assert allowed(both, "y/c", "x/a") is False        # app=b in a namespace the selector does not pick
    assert allowed(both, "x/a", "x/b") is False        # the right namespace, but app=a


def test_namespace_metadata_name_label_for_listed_and_unlisted_namespaces():
    c = cluster("""
    - metadata: {name: p, namespace: x}
      spec:
        podSelector: {}
        ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In,
                                                                  values: [z, y]}]}}]}]
    """)
    assert allowed(c, "z/d", "x/a") is True            # z is not listed: it has only that label
    assert allowed(c, "y/c", "x/a") is True and allowed(c, "x/b", "x/a") is False


@pytest.mark.parametrize("expr, allowed_from", [
    ("{key: app, operator: In, values: [b, d]}", {"x/b"}),
    ("{key: app, operator: NotIn, values: [b]}", {"x/a"}),
    ("{key: tier, operator: Exists}", {"x/a"}),
    ("{key: tier, operator: DoesNotExist}", {"x/b"}),
    ("{key: nolabel, operator: NotIn, values: [v]}", {"x/a", "x/b"}),     # absent key: NotIn holds
])
def test_match_expressions(expr, allowed_from):
    c = cluster(f"""
    - metadata: {{name: p, namespace: x}}
      spec: {{podSelector: {{}}, ingress: [{{from: [{{podSelector: {{matchExpressions: [{expr}]}}}}]}}]}}
    """)
    got = {src for src in ("x/a", "x/b") if allowed(c, src, "x/b" if src == "x/a" else "x/a")}
    assert got == allowed_from


def test_ip_block_with_except_matches_pod_and_external_addresses():
    c = cluster("""
    - metadata: {name: p, namespace: x}
      spec:
        podSelector: {matchLabels: {app: a}}
        ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.2.2/32]}}, {ipBlock: {cidr: 203.0.113.0/24}}]}]
    """)
    assert allowed(c, "z/d", "x/a") is True            # 10.0.2.3: in the cidr
    assert allowed(c, "y/c", "x/a") is False           # 10.0.2.2: excepted
    assert allowed(c, "203.0.113.7", "x/a") is True and allowed(c, "198.51.100.1", "x/a") is False
    assert allowed(c, "10.0.2.3", "x/a") is True       # a pod's address is that pod


def test_selectors_never_match_an_external_address():
    c = cluster("""
    - metadata: {name: p, namespace: x}
      spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}
    """)
    assert allowed(c, "z/d", "x/a") is True and allowed(c, "203.0.113.7", "x/a") is False


def test_named_port_is_resolved_per_destination_pod():
    c = cluster("""
    - metadata: {name: p, namespace: x}
      spec: {podSelector: {}, ingress: [{ports: [{port: http}]}]}
    """)
    assert allowed(c, "z/d", "x/a", 8080) is True and allowed(c, "z/d", "x/a", 9090) is False
    assert allowed(c, "z/d", "x/b", 9090) is True and allowed(c, "z/d", "x/b", 8080) is False
    assert allowed(c, "z/d", "x/a", 8080, "UDP") is False      # the name is a TCP port of a


def test_named_port_protocol_must_match_the_container_port():
    c = cluster("""
    - metadata: {name: p, namespace: x}
      spec: {podSelector: {}, ingress: [{ports: [{port: dns, protocol: UDP}]}]}
    """)
    assert allowed(c, "z/d", "x/a", 5353, "UDP") is True and allowed(c, "z/d", "x/a", 5353, "TCP") is False
    assert allowed(c, "z/d", "x/b", 5353, "UDP") is False      # b has no port named dns


def test_egress_named_port_is_the_destination_pods():
    c = cluster("""
    - metadata: {name: p, namespace: z}
      spec: {podSelector: {}, egress: [{ports: [{port: http}]}]}
    """)
    assert allowed(c, "z/d", "x/a", 8080) is True and allowed(c, "z/d", "x/b", 8080) is False
    assert allowed(c, "z/d", "x/b", 9090) is True


def test_end_port_range_is_inclusive():
    c = cluster("""
    - metadata: {name: p, namespace: x}
      spec: {podSelector: {}, ingress: [{ports: [{port: 8000, endPort: 8080}]}]}
    """)
    assert [allowed(c, "z/d", "x/a", p) for p in (7999, 8000, 8042, 8080, 8081)] == [False, True, True, True, False]


def test_policy_types_inferred_and_given():
    egress = cluster("""
    - metadata: {name: p, namespace: x}
      spec: {podSelector: {matchLabels: {app: a}}, egress: [{to: [{podSelector: {matchLabels: {app: b}}}]}]}
    """)
    assert egress.network_policies[0].policy_types == ("Ingress", "Egress")
    assert allowed(egress, "x/a", "x/b") is True and allowed(egress, "x/a", "y/c") is False
    assert allowed(egress, "x/b", "x/a") is False      # Ingress inferred too: isolated with no ingress rule
    only_egress = cluster("""
    - metadata: {name: p, namespace: x}
      spec:
        podSelector: {matchLabels: {app: a}}
        policyTypes: [Egress]
        ingress: [{from: [{podSelector: {matchLabels: {app: none}}}]}]
    """)
    assert only_egress.network_policies[0].policy_types == ("Egress",)
    assert allowed(only_egress, "x/b", "x/a") is True      # ingress rules of a policy without Ingress: no effect
    assert allowed(only_egress, "x/a", "x/b") is False     # egress isolated, no egress rule


def test_egress_and_ingress_must_both_allow():
    c = cluster("""
    - metadata: {name: out, namespace: x}
      spec: {podSelector: {matchLabels: {app: a}}, policyTypes: [Egress], egress: [{}]}
    - metadata: {name: in, namespace: y}
      spec: {podSelector: {}, ingress: [{from: [{podSelector: {}}]}]}
    """)
    v = policy_verdict(c, pod(c, "x/a"), pod(c, "y/c"), "TCP", 80)
    assert v.allowed is False and v.egress.allowed and not v.ingress.allowed
    assert v.egress.allowed_by == (("x/out", 0),)


def test_host_network_and_node_addresses_are_apart():
    c = cluster("""
    - metadata: {name: p, namespace: x}
      spec: {podSelector: {}, ingress: []}
    """)
    for src, dst in (("x/h", "x/a"), ("x/b", "x/h")):
        v = policy_verdict(c, pod(c, src), pod(c, dst), "TCP", 80)
        assert v.allowed is None and "hostNetwork" in v.why() and v.ingress is None
    own = policy_verdict(c, parse_ip("192.168.1.10"), pod(c, "x/a"), "TCP", 80)
    assert own.allowed is True and "own node" in own.why()
    other = policy_verdict(c, parse_ip("192.168.1.11"), pod(c, "x/a"), "TCP", 80)
    assert other.allowed is None and "another node" in other.why()


def test_external_source_has_no_egress_side():
    c = cluster()
    v = policy_verdict(c, parse_ip("203.0.113.9"), pod(c, "x/a"), "TCP", 80)
    assert v.allowed is True and v.egress is None and v.why() == "ingress: no policy selects it for ingress"
