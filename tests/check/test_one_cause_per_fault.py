"""One cause per fault: a fault on one node is one cause, located where the fault is written.

The faults are those a real cluster has: docker's ``:FORWARD DROP`` policy on one node (on the
seed's 3 nodes and on 20), and a blackhole ``ip rule``. Each must be one cause, located at the
chain's declaration line or at the rule's line, explaining every violating flow; no cause is a
kube-proxy rewrite, and "endpoint X is never reached" folds into the drop that explains it,
its example drawn towards X.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pktverify import load_cluster, verify
from pktverify.check.causes import group_violations
from pktverify.generate.node_state import generate_node
from pktverify.generate.synthetic_cluster import synthetic_cluster

RULES = Path(__file__).resolve().parents[2] / "rules"
SEED = RULES / "seed" / "cluster-iptables.yaml"


def _dockerised(text: str) -> str:
    """A generated iptables-save with the filter FORWARD policy DROP, as docker sets it."""
    assert ":FORWARD ACCEPT [0:0]" in text.split("*filter", 1)[1]
    head, sep, tail = text.partition("*filter\n")
    return head + sep + tail.replace(":FORWARD ACCEPT [0:0]", ":FORWARD DROP [0:0]", 1)


def _with_dumps(cluster, name: str, **texts):
    """``cluster`` whose node ``name`` gives ``texts`` (kind -> text) inline."""
    node = next(n for n in cluster.nodes if n.name == name)
    new = replace(node, inline=tuple(texts.items()))
    return replace(cluster, nodes=tuple(new if n is node else n for n in cluster.nodes))


def _check_one_policy_cause(cluster, node_name: str) -> None:
    node = next(n for n in cluster.nodes if n.name == node_name)
    text = _dockerised(generate_node(cluster, node).iptables)
    report = verify(_with_dumps(cluster, node_name, iptables=text))
    groups = group_violations(report.results)
    assert len(groups) == 1, [g.summary() for g in groups]
    [group] = groups
    assert group.kind == "policy" and group.nodes == [node_name]
    assert group.cause == f"{node_name}: filter/FORWARD policy DROP"
    line = int(group.location.rsplit(":", 1)[1])
    assert text.split("\n")[line - 1] == ":FORWARD DROP [0:0]"           # the chain's declaration
    # it explains every violating flow, each once
    assert group.flows == sum(r.violating for r in report.results) > 0
    assert all(r.violating <= r.checked for r in report.results)
    # "never reached" is folded in, its example drawn towards the endpoint it never reaches
    never = [v for _inv, v in group.members if "never reaches endpoint" in v.message]
    assert never
    for v in never:
        endpoint = v.message.split("never reaches endpoint ", 1)[1].split(" (", 1)[1].split(")", 1)[0]
        assert v.end.kind == "drop" and f"{v.end.packet.describe().split(' > ')[1]}" == endpoint


def test_forward_drop_policy_on_one_of_three_nodes_is_one_cause():
    _check_one_policy_cause(load_cluster(SEED), "node2")


def test_forward_drop_policy_on_one_of_twenty_nodes_is_one_cause():
    _check_one_policy_cause(synthetic_cluster(20, 10, 60), "node3")


def test_a_blackhole_ip_rule_is_one_cause_at_its_line_not_a_dnat():
    cluster = load_cluster(SEED)
    node = cluster.nodes[0]
    rules = "0:\tfrom all lookup local\n100:\tfrom all to 10.1.20.0/24 blackhole\n" \
            "32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n"
    cluster = _with_dumps(cluster, node.name, iptables=generate_node(cluster, node).iptables, rules=rules)
    report = verify(cluster)
    [group] = group_violations(report.results)
    assert group.kind == "ip-rule" and group.nodes == [node.name]
    assert group.cause == f"{node.name}: ip rule 100: from all to 10.1.20.0/24 blackhole"
    assert group.location.endswith(":2")
    assert {"no-nat", "routing", "service-reachability"} <= set(group.invariants)
    assert group.flows == sum(r.violating for r in report.results)


def test_no_cause_is_a_rewrite_the_packet_met_before_it_was_dropped():
    """Every drop (forward or reply) is explained by what dropped it, never by the DNAT before."""
    from pktverify.check.causes import explain
    cluster = load_cluster(SEED)
    node = cluster.nodes[1]
    report = verify(_with_dumps(cluster, node.name, iptables=_dockerised(generate_node(cluster, node).iptables)))
    dropped = [(r.name, v) for r in report.results for v in r.violations
               if v.end is not None and (v.end.kind != "arrived" or any(b.kind != "arrived" for b in v.replies))]
    assert dropped
    for inv, v in dropped:
        cause = explain(inv, v)
        assert cause.kind == "policy" and "DNAT" not in cause.what, (v.message, cause)


def test_files_on_disk_name_the_dump_and_line(tmp_path):
    """The acceptance run as a user makes it: generated dumps on disk, one node Dockerised."""
    cluster = load_cluster(SEED)
    text = SEED.read_text()
    for node in cluster.nodes:
        gen = generate_node(cluster, node)
        folder = tmp_path / node.name
        folder.mkdir()
        (folder / "iptables-save.txt").write_text(_dockerised(gen.iptables) if node.name == "node2" else gen.iptables)
    old = "{name: node2, ip: 192.168.1.20/24, pod_cidr: 10.1.20.0/24, bridge: cbr0}"
    assert old in text
    (tmp_path / "cluster.yaml").write_text(text.replace(old, old[:-1] + ", iptables: node2/iptables-save.txt}"))
    report = verify(load_cluster(tmp_path / "cluster.yaml"))
    doc = json.loads(report.to_json())
    [group] = doc["groups"]
    assert group["location"] == f"{tmp_path / 'node2' / 'iptables-save.txt'}:3"
    assert group["kind"] == "policy" and group["nodes"] == ["node2"]
    assert group["flows"] == sum(i["violating_flows"] for i in doc["invariants"])
    lines = report.to_text().split("\n")
    assert lines[0].split() == ["invariant", "result", "flows", "checked", "violating", "flows"]
    rows = {line.split()[0]: line.split()[2:] for line in lines[2:6]}
    assert all(rows[i["name"]] == [str(i["checked"]), str(i["violating_flows"])] for i in doc["invariants"])
    assert lines[8].startswith(f"  1. node2: filter/FORWARD policy DROP ({tmp_path / 'node2' / 'iptables-save.txt'}:3)"
                               f" — {group['flows']} flow(s)")


@pytest.mark.parametrize("fault", ["forward-drop", "blackhole-route", "stale-endpoint", "stray-dnat"])
def test_violating_flows_never_exceed_flows_checked(fault):
    """A flow with several violating outcomes counts once: violating <= checked, and the causes
    explain exactly the violating flows (each flow is in one cause here: one fault)."""
    from hypothesis import find, settings
    from pktverify import strategies
    cluster = find(strategies.faulty_clusters(faults=fault, max_nodes=3), lambda c: True,
                   settings=settings(database=None, max_examples=10))
    report = verify(cluster)
    for r in report.results:
        if r.name != "pod-ip-uniqueness":
            assert r.violating <= r.checked
    assert sum(r.violating for r in report.results) > 0
    groups = group_violations(report.results)
    assert sum(g.flows for g in groups) >= sum(r.violating for r in report.results)
