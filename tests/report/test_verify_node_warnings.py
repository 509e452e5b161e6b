"""verify's reports (text, JSON, HTML) show what the nodes' dumps held that pktverify left out, each
warning once, after the answer: a warning several nodes share but for the path of their own dump
is one entry naming the nodes; a cluster without warnings gets the reports it always had."""

from __future__ import annotations

import json
from pathlib import Path

from pktverify.cli import main
from pktverify.cluster_api import load_cluster, verify
from pktverify.report.node_warnings import fold_node_warnings, node_list

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "rules" / "seed" / "cluster-iptables.yaml"

IP6 = "table ip6 foo {\n  chain input {\n    type filter hook input priority 0; policy accept;\n  }\n}\n"
BRIDGE = "table bridge br {\n  chain forward {\n    type filter hook forward priority 0; policy accept;\n  }\n}\n"
HARMLESS = "table ip guard {\n  chain input {\n    type filter hook input priority 0; policy accept;\n  }\n}\n"


def _cluster(tmp_path: Path, rulesets: dict[str, str]) -> Path:
    """The seed cluster with ``rulesets[node]`` as each named node's nft dump (node/nft.txt)."""
    text = SEED.read_text()
    for node, ruleset in rulesets.items():
        folder = tmp_path / node
        folder.mkdir()
        (folder / "nft.txt").write_text(ruleset)
        head = f"{{name: {node}, "
        assert head in text
        text = text.replace(head, f"{{name: {node}, nft: {folder / 'nft.txt'}, ", 1)
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return path


def test_the_same_warning_on_several_nodes_is_one_entry(tmp_path):
    path = _cluster(tmp_path, {"node1": IP6 + HARMLESS, "node2": IP6 + HARMLESS, "node3": BRIDGE})
    report = verify(load_cluster(path))
    assert report.holds
    skipped = ("nft.txt: 1 nftables table(s) of families other than ip and inet skipped (ip6 foo): ip6: IPv6 only")
    assert report.node_warnings == [
        (("node1", "node2"), skipped),
        (("node3",), f"{tmp_path / 'node3' / 'nft.txt'}: 1 nftables table(s) of families other than ip and inet "
                     "skipped (bridge br): bridge: bridged frames: not modelled yet")]
    text = report.to_text()
    lines = text.split("\n")
    at = lines.index("warnings on the nodes' dumps (what pktverify left out):")
    assert lines[at + 1] == f"  on 2 nodes (node1, node2): {skipped}"
    assert lines[at + 2].startswith(f"  node3: {tmp_path / 'node3' / 'nft.txt'}: 1 nftables table(s)")
    assert text.count("ip6 foo") == 1                     # once, not once per node
    assert next(n for n, line in enumerate(lines) if line.startswith("routing ")) < at   # after the answer
    doc = json.loads(report.to_json())
    assert doc["node_warnings"] == [{"nodes": ["node1", "node2"], "warning": skipped},
                                    {"nodes": ["node3"], "warning": report.node_warnings[1][1]}]
    html = report.to_html()
    assert html.count("ip6 foo") == 1 and '<ul id="node-warnings">' in html
    assert html.index('id="invariants"') < html.index('id="node-warnings"') < html.index("<h2>The cluster</h2>")


def test_a_cluster_without_warnings_keeps_its_reports(tmp_path):
    plain = verify(load_cluster(SEED))
    assert plain.node_warnings == []
    assert "node_warnings" not in json.loads(plain.to_json())
    assert "warnings on the nodes' dumps" not in plain.to_text()
    assert "node-warnings" not in plain.to_html()
    # A harmless nft dump with nothing left out adds nothing either.
    quiet = verify(load_cluster(_cluster(tmp_path, {"node1": HARMLESS})))
    assert quiet.node_warnings == [] and "warnings on the nodes' dumps" not in quiet.to_text()
    assert "node_warnings" not in json.loads(quiet.to_json()) and "node-warnings" not in quiet.to_html()


def test_the_cli_shows_them_in_every_format(tmp_path, capsys):
    path = _cluster(tmp_path, {"node2": IP6 + HARMLESS})
    assert main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"  node2: {tmp_path / 'node2' / 'nft.txt'}: 1 nftables table(s)" in out
    assert main(["verify", str(path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["node_warnings"][0]["nodes"] == ["node2"]
    page = tmp_path / "page.html"
    assert main(["verify", str(path), "--html", str(page)]) == 0
    assert "ip6 foo" in page.read_text()


def test_folding_is_by_the_nodes_own_files(tmp_path):
    cluster = load_cluster(_cluster(tmp_path, {"node1": IP6, "node2": IP6}))

    class State:
        def __init__(self, *warnings):
            self.warnings = warnings
    own1, own2 = (str(tmp_path / n / "nft.txt") for n in ("node1", "node2"))
    states = {"node1": State(f"{own1}: same", f"{own1}: same", "/shared/file: about a shared file"),
              "node2": State(f"{own2}: same", f"{own2}:3: another line"),
              "node3": State("/shared/file: about a shared file", "<a & b>")}
    assert fold_node_warnings(cluster, states) == [
        (("node1", "node2"), "nft.txt: same"),
        (("node1", "node3"), "/shared/file: about a shared file"),
        (("node2",), f"{own2}:3: another line"),
        (("node3",), "<a & b>")]
    assert node_list(("a",)) == "a"
    assert node_list(tuple(f"n{i}" for i in range(40))) == "on 40 nodes (n0, n1, n2 and 37 more nodes)"
