"""lint output: SARIF 2.1.0 checked against the JSON schema and read back by real SARIF consumers
(sarif-tools, sarif-pydantic), GitHub workflow annotations, JSON and the text report."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from pktverify.check.lint import REGISTRY, lint_files
from pktverify.cli import main
from pktverify.report.lint_report import lint_github, lint_sarif, lint_text_report

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_SDIST = ROOT / ".cache" / "sarif" / "sarif_om-1.0.4.tar.gz"     # fetched by scripts/test

RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:UNUSED - [0:0]
-A FORWARD -d 10.1.0.0/16 -j ACCEPT
-A FORWARD -d 10.1.2.0/24 -m comment --comment "team: a, b: c%d" -j DROP
-A FORWARD -p tcp --dport 99999 -j ACCEPT
COMMIT
"""


@pytest.fixture()
def result(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deploy").mkdir()
    path = tmp_path / "deploy" / "node.rules"
    path.write_text(RULES)
    return lint_files(["deploy/node.rules"])


def _schema() -> dict:
    if not SCHEMA_SDIST.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{SCHEMA_SDIST} is missing: scripts/test downloads it")
        pytest.skip("the SARIF schema (sarif-om's source package) is not downloaded: run scripts/test")
    with tarfile.open(SCHEMA_SDIST) as tar:
        return json.load(tar.extractfile("sarif_om-1.0.4/sarif-2.1.0-rtm.4.json"))


def test_sarif_is_valid_2_1_0_and_real_consumers_read_it_back(result, tmp_path):
    import jsonschema
    import sarif_pydantic
    from sarif import loader

    text = lint_sarif(result)
    doc = json.loads(text)
    errors = sorted(e.message for e in jsonschema.Draft4Validator(_schema()).iter_errors(doc))
    assert errors == []
    run = doc["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == sorted(REGISTRY)
    assert all(r["help"]["text"] and r["defaultConfiguration"]["level"] in ("error", "warning", "note")
               for r in run["tool"]["driver"]["rules"])
    assert sarif_pydantic.Sarif.model_validate(doc).runs[0].results[0].rule_id == "PV104"
    path = tmp_path / "out.sarif"
    path.write_text(text)
    read = loader.load_sarif_file(str(path))
    records = read.get_records()
    assert read.get_result_count() == len(result.findings) == 3
    assert [(r["Code"], r["Line"], r["Location"]) for r in records] == [
        ("PV104", 5, "deploy/node.rules"), ("PV203", 7, "deploy/node.rules"), ("PV100", 8, "deploy/node.rules")]
    shadow = run["results"][1]
    assert shadow["relatedLocations"][0]["physicalLocation"]["region"]["startLine"] == 6
    assert run["results"][0]["ruleIndex"] == sorted(REGISTRY).index("PV104")


def test_github_annotations_escape_what_workflow_commands_need(result):
    lines = lint_github(result).splitlines()
    assert lines[0].startswith("::warning file=deploy/node.rules,line=5,col=1,title=PV104 unused-chain::chain UNUSED")
    assert lines[2].startswith("::error file=deploy/node.rules,line=8,")
    assert "%25" in lint_github(result.__class__([result.findings[0].__class__(
        "PV100", "100% bad\nline two", "a,b:c.rules", 1)], ["x"]))


def test_text_report_groups_by_file_and_colours_only_when_asked(result):
    plain = lint_text_report(result)
    assert plain.splitlines()[0] == "deploy/node.rules"
    assert "  7:1  warning  PV203 shadowed-rule  rule #2" in plain and "\x1b[" not in plain
    assert plain.rstrip().endswith("3 finding(s) in 1 file(s): 1 error, 2 warnings")
    assert "\x1b[31m" in lint_text_report(result, colour=True)


def test_cli_formats_and_exit_codes(result, capsys):
    assert main(["lint", "deploy/node.rules", "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"] == {"files": 1, "errors": 1, "warnings": 2, "info": 0}
    assert doc["findings"][1]["related"] == [{"file": "deploy/node.rules", "line": 6,
                                              "message": "covers part of rule #2"}]
    assert main(["lint", "deploy/node.rules", "--ignore", "PV1", "--format", "sarif"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"][0]["results"][0]["ruleId"] == "PV203"
    assert main(["lint", "deploy/node.rules", "--format", "github", "--select", "PV203"]) == 0
    assert capsys.readouterr().out.count("\n") == 1


def test_cluster_findings_and_an_unverified_run_are_valid_sarif(tmp_path, monkeypatch):
    """--cluster findings carry example flows as relatedLocations; a run whose file does not load
    says so in invocations (executionSuccessful false) — both valid SARIF 2.1.0."""
    import jsonschema

    from pktverify.generate.node_state import generate_node
    from pktverify.parse.cluster_yaml import load_cluster
    seed = ROOT / "rules" / "seed" / "cluster-iptables.yaml"
    cluster = load_cluster(seed)
    text = generate_node(cluster, cluster.nodes[0]).iptables
    monkeypatch.chdir(tmp_path)
    at = text.index("*filter\n")
    Path("drop.rules").write_text(text[:at] + text[at:].replace(":FORWARD ACCEPT", ":FORWARD DROP", 1))
    Path("typo.rules").write_text(text.replace("-j KUBE-POSTROUTING", "-j KUBE-POSTROUTNG", 1))
    schema = _schema()
    dropped = json.loads(lint_sarif(lint_files(["drop.rules"], cluster=cluster, node="node1")))
    typo = json.loads(lint_sarif(lint_files(["typo.rules"], cluster=cluster, node="node1")))
    for doc in (dropped, typo):
        assert sorted(e.message for e in jsonschema.Draft4Validator(schema).iter_errors(doc)) == []
    results = dropped["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"PV402", "PV403"} and len(results) == 2
    assert all(r["relatedLocations"] for r in results) and "invocations" not in dropped["runs"][0]
    [invocation] = typo["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    assert "not verified" in invocation["toolExecutionNotifications"][0]["message"]["text"]


# ------------------------------------------------------------------ hostile names and comments
HOSTILE_NAME = "::stop-commands::a b#c?\x1b[31m\x07\x7f##[add-mask]\udcff.rules"
HOSTILE_COMMENT = "::add-mask::x ##[stop-commands]y \x1b]0;t\x07 \x7f \x9b \u2028 end"
_RAW = [chr(c) for c in range(0x20) if c != 0x0A] + ["\x7f", "\u2028"] + [chr(c) for c in range(0x80, 0xA0)]


def _hostile_file(tmp_path: Path) -> str:
    rule = f'-A INPUT -s 10.0.0.0/8 -m comment --comment "{HOSTILE_COMMENT}" -j DROP\n'
    text = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" + rule + rule + "COMMIT\n"
    (tmp_path / HOSTILE_NAME).write_bytes(text.encode())      # the name holds a byte that is not UTF-8
    return HOSTILE_NAME


def _assert_inert(out: str, fmt: str) -> None:
    out.encode("utf-8")                                         # no lone surrogate: valid UTF-8
    assert not any(c in out for c in _RAW), fmt
    assert "##[" not in out or fmt in ("json", "sarif"), fmt    # JSON strings are no log lines
    for line in out.split("\n"):
        if line.lstrip().startswith("::"):
            assert fmt == "github" and line.startswith(("::warning file=", "::error file=", "::notice file=")), line


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github"])
def test_every_format_escapes_a_hostile_file_name_and_rule_comment(tmp_path, monkeypatch, capsys, fmt):
    monkeypatch.chdir(tmp_path)
    name = _hostile_file(tmp_path)
    assert main(["lint", name, "--format", fmt]) == 0
    out = capsys.readouterr().out
    _assert_inert(out, fmt)
    assert "PV201" in out and "add-mask" in out                # the finding and its comment are still shown
    if fmt in ("json", "sarif"):
        doc = json.loads(out)
        if fmt == "sarif":
            uri = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            assert uri.startswith("%3A%3Astop-commands%3A%3Aa%20b%23c%3F%1B%5B31m%07%7F%23%23%5Badd-mask%5D%FF")
            assert all(c.isalnum() or c in "-._~%/" for c in uri)
            assert all(c.isprintable() for r in doc["runs"][0]["results"] for c in r["message"]["text"])
        else:
            assert HOSTILE_COMMENT in doc["findings"][0]["message"]      # JSON keeps the value, escaped


def test_a_file_outside_the_working_folder_is_a_percent_encoded_file_uri(tmp_path, monkeypatch, capsys):
    name = _hostile_file(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["lint", str(tmp_path / name), "--format", "sarif"]) == 0
    doc = json.loads(capsys.readouterr().out)
    uri = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri.startswith("file:///") and uri.endswith("%23%23%5Badd-mask%5D%FF.rules") and " " not in uri


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_diff_escapes_a_hostile_file_name_and_rule_comment(tmp_path, monkeypatch, capsys, fmt):
    monkeypatch.chdir(tmp_path)
    old = _hostile_file(tmp_path)
    (tmp_path / "::new##[x]\x1b.rules").write_text("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
                                                  ":OUTPUT ACCEPT [0:0]\nCOMMIT\n")
    assert main(["diff", old, "::new##[x]\x1b.rules", "--format", fmt]) == 1
    out = capsys.readouterr().out
    _assert_inert(out, fmt)
    if fmt == "json":
        assert json.loads(out)["verdict"] == "different"
    else:
        assert "add-mask" in out and "(filter/INPUT #1 DROP)" in out
