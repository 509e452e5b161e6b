"""lint --cluster with an nft ruleset as the proposed rules of a node: the node's nft dump replaced
(its iptables-save kept), the cluster verified with it, each violation reported at the nft rule or
chain responsible (the line of a listing or script; line 1 and ``nftables[i]`` in JSON, as the
structure findings are); a ruleset nft -f refuses verifies nothing and says so; one that holds
kube-proxy's own tables is refused in one line, as verify refuses such a node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pktverify.check.lint import lint_files
from pktverify.check.lint.cluster import proposed_cluster
from pktverify.cli import main
from pktverify.errors import InputError
from pktverify.generate.node_state import generate_node
from pktverify.parse.cluster_yaml import load_cluster
from pktverify.report.lint_report import lint_github, lint_json, lint_sarif, lint_text_report

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "rules" / "seed" / "cluster-iptables.yaml"

# node2 forwards nothing from the pod network to its own pods: replies to its pods and requests
# to them from other nodes' pods die at line 4.
DROP = """table inet guard {
  chain forward {
    type filter hook forward priority 0; policy accept;
    ip saddr 10.1.0.0/16 ip daddr 10.1.20.0/24 drop
  }
}
"""
HARMLESS = DROP.replace("ip saddr 10.1.0.0/16 ip daddr 10.1.20.0/24 drop", "ip saddr 192.0.2.0/24 drop")
POLICY_DROP = """table ip guard {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ip saddr 192.0.2.0/24 accept
  }
}
"""
# DROP as nft -j list ruleset writes it (nft 1.0.6): the rule is nftables[3].
DROP_JSON = json.dumps({"nftables": [
    {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
    {"table": {"family": "inet", "name": "guard", "handle": 1}},
    {"chain": {"family": "inet", "table": "guard", "name": "forward", "handle": 1, "type": "filter",
               "hook": "forward", "prio": 0, "policy": "accept"}},
    {"rule": {"family": "inet", "table": "guard", "chain": "forward", "handle": 2, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                   "right": {"prefix": {"addr": "10.1.0.0", "len": 16}}}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                   "right": {"prefix": {"addr": "10.1.20.0", "len": 24}}}},
        {"drop": None}]}}]})
# DROP as an nft -f script of commands: the rule is the command on line 3.
DROP_SCRIPT = """add table inet guard
add chain inet guard forward { type filter hook forward priority 0; policy accept; }
add rule inet guard forward ip saddr 10.1.0.0/16 ip daddr 10.1.20.0/24 drop
"""
# A masquerade of pod traffic leaving node1 (pods must see each other's own addresses).
MASQUERADE = """table ip snat {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 10.1.0.0/16 oifname "eth0" masquerade
  }
}
"""
UNDEFINED_JUMP = "table ip t {\n  chain f {\n    type filter hook forward priority 0;\n    jump nochain\n  }\n}\n"
KUBE_PROXY = "table ip kube-proxy {\n  chain filter-forward {\n    type filter hook forward priority -10;\n  }\n}\n"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _lint(path: Path, node: str = "node2", cluster=None, **kw):
    return lint_files([path], cluster=cluster or load_cluster(SEED), node=node, **kw)


def _placed(result) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for f in result.findings:
        out.setdefault(f.id, []).append(f.line)
    return out


def test_a_dropping_rule_is_found_at_its_line(tmp_path):
    path = _write(tmp_path, "drop.nft", DROP)
    result = _lint(path)
    assert not result.unverified and result.notes == []
    assert _placed(result) == {"PV402": [4], "PV403": [4]}
    for f in result.findings:
        assert f.source == str(path)
        assert f.message.startswith("node2: inet guard/forward #1 DROP: ")
        assert f.related and all(r[0] == str(SEED) for r in f.related)
    assert result.fails("error")


def test_a_harmless_ruleset_has_no_finding(tmp_path):
    result = _lint(_write(tmp_path, "ok.nft", HARMLESS))
    assert result.findings == [] and not result.unverified and not result.fails("error")


def test_a_chain_policy_is_found_at_the_chain(tmp_path):
    result = _lint(_write(tmp_path, "policy.nft", POLICY_DROP))
    assert _placed(result) == {"PV402": [2], "PV403": [2]}
    assert all("ip guard/forward policy DROP" in f.message for f in result.findings)


def test_a_masquerade_of_pod_traffic_is_found_at_its_line(tmp_path):
    result = _lint(_write(tmp_path, "masq.nft", MASQUERADE), node="node1")
    assert _placed(result) == {"PV402": [4]}
    assert "ip snat/post #1 MASQUERADE" in result.findings[0].message


def test_json_findings_are_at_line_1_naming_the_rule_index(tmp_path):
    path = _write(tmp_path, "drop.json", DROP_JSON)
    result = _lint(path)
    assert _placed(result) == {"PV402": [1], "PV403": [1]}
    assert all(f.message.startswith("nftables[3]: node2: inet guard/forward #1 DROP: ") for f in result.findings)
    # The same convention as the structure findings of a JSON ruleset.
    wrong = _write(tmp_path, "wrong.json", DROP_JSON.replace('"drop": null', '"jump": {"target": "nochain"}'))
    structure = lint_files([wrong])
    assert [(f.id, f.line, f.message.split(":")[0]) for f in structure.findings] == [("PV151", 1, "nftables[3]")]


def test_script_findings_are_at_the_command_line(tmp_path):
    result = _lint(_write(tmp_path, "drop.sh.nft", DROP_SCRIPT))
    assert _placed(result) == {"PV402": [3], "PV403": [3]}


def test_the_forms_give_the_same_findings_but_for_the_place(tmp_path):
    found = [_lint(_write(tmp_path, name, text)) for name, text in
             (("a.nft", DROP), ("b.json", DROP_JSON), ("c.nft", DROP_SCRIPT))]
    bodies = [[(f.id, f.message.removeprefix("nftables[3]: "), f.related) for f in r.findings] for r in found]
    assert bodies[0] == bodies[1] == bodies[2]


def test_a_refused_ruleset_is_not_verified_and_says_so(tmp_path):
    path = _write(tmp_path, "bad.nft", UNDEFINED_JUMP)
    result = _lint(path)
    assert [f.id for f in result.findings] == ["PV151"]
    assert result.unverified and result.fails("error")
    assert len(result.notes) == 1
    assert result.notes[0].startswith(f"nft -f would refuse {path} (line 4, PV151: ")
    assert "the cluster was not verified with it" in result.notes[0]
    unreadable = _lint(_write(tmp_path, "garbled.nft", "table ip t {\n  chain f {\n    ip saddr 10.0.0.300 drop\n"
                                                        "  }\n}\n"))
    assert unreadable.unverified and [f.id for f in unreadable.findings] == ["PV150"]
    assert "does not read as an nft ruleset (line 3, PV150" in unreadable.notes[0]


def test_a_warning_does_not_stop_the_verification(tmp_path):
    # PV160 (a chain nothing jumps to) is a ruleset nft -f loads: the cluster is verified with it.
    text = DROP.replace("  }\n}\n", "  }\n  chain unused {\n    drop\n  }\n}\n")
    result = _lint(_write(tmp_path, "warn.nft", text))
    assert not result.unverified
    assert _placed(result) == {"PV160": [6], "PV402": [4], "PV403": [4]}


def test_kube_proxy_tables_are_refused_in_one_line(tmp_path, capsys):
    # As the cluster file is refused with that dump on node2 (kube-proxy's nftables mode is not the
    # cluster's proxy_mode, or not modelled across a cluster), and for the same reason.
    path = _write(tmp_path, "kp.nft", KUBE_PROXY)
    node2 = "{name: node2, ip: 192.168.1.20/24, pod_cidr: 10.1.20.0/24, bridge: cbr0"
    with pytest.raises(InputError) as refused:
        load_cluster(_write(tmp_path, "c.yaml", SEED.read_text().replace(node2, f"{node2}, nft: {path}")))
    why = refused.value.message.split("node node2 ", 1)[1]
    assert "kube-proxy in nftables mode (nft table ip kube-proxy)" in why
    with pytest.raises(InputError) as err:
        _lint(path)
    assert str(err.value) == f"{path}: with it, node node2 {why}; lint {path} without --cluster checks its structure"
    assert main(["lint", str(path), "--cluster", str(SEED), "--node", "node2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "kube-proxy in nftables mode" in err and str(path) in err
    # Without --cluster, its structure is linted as before.
    assert main(["lint", str(path)]) == 0


def test_a_mixed_node_keeps_its_iptables_save(tmp_path):
    cluster = load_cluster(SEED)
    rules = generate_node(cluster, cluster.nodes[1]).iptables
    # node2's own iptables-save drops what reaches web-2's port 8080 in FORWARD: a finding in that file.
    at = rules.index("*filter\n")
    head = rules[at:].index("COMMIT")
    saved = rules[:at + head] + "-A FORWARD -d 10.1.20.5/32 -p tcp --dport 8080 -j DROP\n" + rules[at + head:]
    iptables = _write(tmp_path, "node2-iptables-save.txt", saved)
    old_nft = _write(tmp_path, "node2-old.nft", DROP)
    text = SEED.read_text().replace(
        "{name: node2, ip: 192.168.1.20/24, pod_cidr: 10.1.20.0/24, bridge: cbr0}",
        f"{{name: node2, ip: 192.168.1.20/24, pod_cidr: 10.1.20.0/24, bridge: cbr0, iptables: {iptables}, "
        f"nft: {old_nft}}}")
    mixed = load_cluster(_write(tmp_path, "cluster.yaml", text))
    proposed = _write(tmp_path, "new.nft", HARMLESS)
    spec, name = proposed_cluster(mixed, "node2", str(proposed), "nft")
    node2 = spec.node("node2")
    assert name == "node2" and node2.iptables == str(iptables) and node2.nft == str(proposed.resolve())
    result = _lint(proposed, cluster=mixed)
    line = saved.split("\n").index("-A FORWARD -d 10.1.20.5/32 -p tcp --dport 8080 -j DROP") + 1
    assert {(f.source, f.line) for f in result.findings} == {(str(iptables), line)}
    assert all("filter/FORWARD" in f.message for f in result.findings)


def test_the_cli_forms(tmp_path, capsys):
    path = _write(tmp_path, "drop.json", DROP_JSON)
    base = ["--cluster", str(SEED), "--node", "node2"]
    assert main(["lint", str(path), *base, "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [(f["id"], f["line"], f["file"]) for f in doc["findings"]] == [("PV402", 1, str(path)),
                                                                          ("PV403", 1, str(path))]
    assert doc["findings"][0]["message"].startswith("nftables[3]: ")
    # --nft FILE is the one proposed file too.
    assert main(["lint", "--nft", str(path), *base, "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out) == doc
    assert main(["lint", str(path), "--nft", str(path), *base]) == 2
    assert "give one FILE" in capsys.readouterr().err
    result = _lint(path)
    assert "1:1" in lint_text_report(result, colour=False) and "nftables[3]: node2" in lint_text_report(result)
    assert "line=1" in lint_github(result) and "PV402" in lint_github(result)
    sarif = json.loads(lint_sarif(result))
    starts = {r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in sarif["runs"][0]["results"]}
    assert starts == {1}
    assert json.loads(lint_json(result)) == doc


def test_a_cluster_in_kube_proxys_nftables_mode_is_verified_with_the_proposed_ruleset(tmp_path):
    # kube-proxy's own table is the cluster's mode there: node1's generated ruleset is clean, and a
    # table added to it that drops pod traffic is found at its rule's line.
    spec = _write(tmp_path, "c.yaml", SEED.read_text().replace("proxy_mode: iptables", "proxy_mode: nftables"))
    cluster = load_cluster(spec)
    generated = generate_node(cluster, cluster.nodes[0]).nft
    assert "table ip kube-proxy" in generated
    assert lint_files([_write(tmp_path, "kp.nft", generated)], cluster=cluster, node="node1").findings == []
    guarded = generated.rstrip("\n") + "\n" + DROP_SCRIPT.replace("10.1.20.0/24", "10.1.10.0/24")
    line = guarded.split("\n").index("add rule inet guard forward ip saddr 10.1.0.0/16 ip daddr 10.1.10.0/24 drop") + 1
    result = lint_files([_write(tmp_path, "guarded.nft", guarded)], cluster=cluster, node="node1")
    assert {(f.id, f.line) for f in result.findings} == {("PV402", line), ("PV403", line)}
