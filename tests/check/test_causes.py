"""Root causes first: violations grouped by cause, none lost, biggest first, in text and JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings

from pktverify import strategies, verify
from pktverify.check.causes import group_violations


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(strategies.faulty_clusters())
def test_grouping_never_loses_a_violation(cluster):
    report = verify(cluster)
    groups = group_violations(report.results)
    members = [(inv, id(v)) for g in groups for inv, v in g.members]
    assert sorted(members) == sorted((r.name, id(v)) for r in report.results for v in r.violations)
    assert len(set(members)) == len(members)                       # each violation in one group
    assert [g.flows for g in groups] == sorted((g.flows for g in groups), reverse=True)
    violating = sum(r.violating for r in report.results)
    assert all(g.flows <= violating for g in groups) and sum(g.flows for g in groups) >= violating
    for g in groups:           # a drop (forward or reply) is never blamed on a rewrite met before it
        for _inv, v in g.members:
            if v.end is not None and (v.end.kind != "arrived" or any(b.kind != "arrived" for b in v.replies)):
                assert g.kind != "rewrite", (g.cause, v.message)
    doc = json.loads(report.to_json())
    listed = sorted((inv, n) for g in doc["groups"] for inv, n in g["violations"])
    assert listed == sorted((r["name"], n) for r in doc["invariants"] for n in range(len(r["violations"])))
    assert all(h["packet"] and "rules" in h for r in doc["invariants"] for v in r["violations"] for h in v["hops"])


def test_a_planted_rule_is_one_cause_at_its_line():
    # A FORWARD DROP for one pod breaks many flows; they are one cause, located at the rule.
    from hypothesis import find
    cluster = find(strategies.faulty_clusters(faults="forward-drop"), lambda c: True,
                   settings=settings(database=None, max_examples=10))
    report = verify(cluster)
    [group] = group_violations(report.results)
    assert group.location is not None and group.location.endswith(":19")       # the planted rule's line
    assert "filter/FORWARD #1 DROP" in group.cause and group.flows == len(report.violations)
    text = report.to_text()
    assert "1 cause(s), biggest first:" in text and "filter/FORWARD #1 DROP" in text.split("\n")[8]


def test_a_route_is_a_cause_at_its_line():
    """A blackhole route (whatever rewrote the packet before it) and a default route that takes
    packets off the cluster are causes located at their line of the routes dump."""
    from hypothesis import find
    cluster = find(strategies.faulty_clusters(faults="blackhole-route", max_nodes=2), lambda c: True,
                   settings=settings(database=None, max_examples=10))
    report = verify(cluster)
    [group] = group_violations(report.results)
    assert group.kind == "route" and group.location is not None
    line = int(group.location.rsplit(":", 1)[1])
    routes = next(text for n in cluster.nodes for kind, text in n.inline if kind == "routes")
    route = routes.split("\n")[line - 1]
    assert route.startswith("blackhole ")
    assert group.cause.endswith(f"route {' '.join(route.split()[:2])}")      # "route blackhole PREFIX"


def test_a_missing_route_names_the_pod_cidr_and_the_route_used():
    from pathlib import Path
    from pktverify import load_cluster
    path = Path(__file__).resolve().parents[2] / "rules" / "broken" / "missing-route" / "cluster.yaml"
    [group] = group_violations(verify(load_cluster(path)).results)
    assert "no route to node node3's pod CIDR 10.1.30.0/24" in group.cause
    assert "by route default via 192.168.1.1 dev eth0" in group.cause
    assert group.location.endswith("missing-route/node1/ip-route.txt:1")


@pytest.mark.parametrize("example,kind,line", [("stale-endpoint.yaml", "no-pod", None),
                                               ("non-uniform-probabilities/cluster.yaml", "statistic", 33)])
def test_a_fact_on_several_paths_is_one_cause(example, kind, line):
    """No pod at a stale endpoint's address (reached routed or bridged), a service's uneven choice
    (seen at each endpoint, the last one passing no statistic rule): one cause each, located at
    the first line that shows it (for the choice, the service's first statistic rule: here the one
    with the wrong probability)."""
    from pathlib import Path
    from pktverify import load_cluster
    path = Path(__file__).resolve().parents[2] / "rules" / "broken" / example
    [group] = group_violations(verify(load_cluster(path)).results)
    assert group.kind == kind
    if line is not None:
        assert group.location.endswith(f"iptables-save.txt:{line}")
        assert "--probability 0.5" in path.parent.joinpath("node1", "iptables-save.txt").read_text().split("\n")[line - 1]


def test_a_wrong_endpoint_is_blamed_on_the_dnat_and_explains_the_one_never_reached():
    """A NodePort that two services claim: its flows reach the other service's pods (the DNAT that
    chose them is the cause, not the MASQUERADE after it), and so never reach their own endpoint
    (the same cause), beside the address-plan fact."""
    from pathlib import Path
    from pktverify import load_cluster
    path = Path(__file__).resolve().parents[2] / "rules" / "broken" / "nodeport-collision.yaml"
    groups = group_violations(verify(load_cluster(path)).results)
    assert sorted(g.kind for g in groups) == ["address-plan", "rewrite"]
    [rewrite] = [g for g in groups if g.kind == "rewrite"]
    assert " DNAT" in rewrite.cause and any("never reaches endpoint" in v.message for _i, v in rewrite.members)
