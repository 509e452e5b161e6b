"""lint --cluster on a dump as a real node writes it (kubelet's and kube-proxy's canary chains):
the cluster is really verified, a fault is one finding per responsible rule with its flow count
and examples, and only what stops the load skips the verification — checked against the
kernel's iptables-restore in a namespace of the test's own."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from pktverify.check.lint import REGISTRY, lint_files, lint_text
from pktverify.check.lint.structure import load_blocker
from pktverify.cli import main
from pktverify.generate.node_state import generate_node
from pktverify.oracle.kernel_lab import lab_available
from pktverify.parse.cluster_yaml import load_cluster
from pktverify.report.lint_report import lint_github, lint_sarif
from pktverify.report.node_folder import node_files

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "rules" / "seed" / "cluster-iptables.yaml"
BUILTIN = {"mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
           "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"), "filter": ("INPUT", "FORWARD", "OUTPUT")}
CANARIES = ("KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY")


def realistic(text: str) -> str:
    """``text`` (generated iptables-save) with what kubelet and kube-proxy declare on every node:
    their canary chains in mangle, nat and filter and kubelet's KUBE-IPTABLES-HINT in mangle."""
    for table in ("nat", "filter"):
        head = f"*{table}\n" + "".join(f":{c} ACCEPT [0:0]\n" for c in BUILTIN[table])
        assert head in text, table
        text = text.replace(head, head + "".join(f":{c} - [0:0]\n" for c in CANARIES), 1)
    mangle = ("*mangle\n" + "".join(f":{c} ACCEPT [0:0]\n" for c in BUILTIN["mangle"])
              + ":KUBE-IPTABLES-HINT - [0:0]\n" + "".join(f":{c} - [0:0]\n" for c in CANARIES) + "COMMIT\n")
    return mangle + text


@pytest.fixture()
def node1(tmp_path):
    """Writes node1's realistic rules of the seed cluster, edited by ``edit``; returns the path."""
    cluster = load_cluster(SEED)
    text = realistic(generate_node(cluster, cluster.nodes[0]).iptables)

    def write(edit=lambda t: t, name="node1.rules") -> Path:
        path = tmp_path / name
        path.write_text(edit(text))
        return path
    return write


def _filter_forward_drop(text: str) -> str:
    at = text.index("*filter\n")
    return text[:at] + text[at:].replace(":FORWARD ACCEPT [0:0]", ":FORWARD DROP [0:0]", 1)


def _line_of(path: Path, text: str) -> int:
    return path.read_text().splitlines().index(text) + 1


# ------------------------------------------------------------------ the cluster is verified
def test_canary_chains_are_no_pv104_but_a_canary_with_rules_still_is(node1):
    assert [f for f in lint_files([node1()]).findings] == []
    with_rule = node1(lambda t: t.replace(":KUBE-PROXY-CANARY - [0:0]\n", ":KUBE-PROXY-CANARY - [0:0]\n"
                                          "-A KUBE-PROXY-CANARY -j DROP\n", 1))
    assert [f.id for f in lint_files([with_rule]).findings] == ["PV104"]


def test_a_realistic_clean_dump_is_verified_and_passes(node1, capsys):
    path = node1()
    result = lint_files([path], cluster=load_cluster(SEED), node="node1")
    assert result.findings == [] and result.notes == [] and not result.unverified
    assert main(["lint", str(path), "--cluster", str(SEED), "--node", "node1"]) == 0
    assert "not verified" not in capsys.readouterr().out


def test_a_planted_drop_is_found_once_per_invariant_at_the_chain_declaration(node1, capsys):
    path = node1(_filter_forward_drop)
    line = _line_of(path, ":FORWARD DROP [0:0]")
    result = lint_files([path], cluster=load_cluster(SEED), node="node1")
    assert not result.unverified and result.notes == []
    here = sorted((f.id, f.line) for f in result.findings if f.source == str(path))
    assert here == [("PV402", line), ("PV403", line)]                  # one each, not one per flow
    assert all(f.source == str(SEED) for f in result.findings if f.source != str(path))
    for f in result.findings:
        if f.source == str(path):
            flows = int(f.message.split(": ")[-1].split(" flow(s)")[0])
            assert flows > 1 and "filter/FORWARD policy DROP" in f.message
            assert 1 <= len(f.related) <= 3 and all(src == str(SEED) and what.startswith("example: ")
                                                    for src, _n, what in f.related)
    assert main(["lint", str(path), "--cluster", str(SEED), "--node", "node1"]) == 1
    capsys.readouterr()


def test_a_drop_rule_is_the_place_not_the_policy_or_a_rewrite(node1):
    rule = "-A FORWARD -d 10.1.20.0/24 -j DROP"
    path = node1(lambda t: t.replace("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n",
                                     "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n", 1)
                 .replace('-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
                          '-j KUBE-SERVICES\n',
                          '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
                          f'-j KUBE-SERVICES\n{rule}\n', 1))
    line = _line_of(path, rule)
    result = lint_files([path], cluster=load_cluster(SEED), node="node1")
    assert {(f.id, f.line) for f in result.findings if f.source == str(path)} == {("PV402", line), ("PV403", line)}


@pytest.mark.parametrize("after", [True, False], ids=["after-KUBE-POSTROUTING", "before-KUBE-POSTROUTING"])
def test_pv305_where_cnis_put_their_masquerade(node1, after):
    jump = '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'
    masq = "-A POSTROUTING -s 10.1.0.0/16 -j MASQUERADE"
    path = node1(lambda t: t.replace(jump, f"{jump}\n{masq}" if after else f"{masq}\n{jump}", 1))
    line = _line_of(path, masq)
    found = {(f.id, f.line) for f in lint_files([path], cluster=load_cluster(SEED), node="node1").findings}
    assert ("PV305", line) in found and ("PV402", line) in found
    assert {n for _id, n in found} == {line}
    # The CNI's usual exceptions first: pod-to-pod and pod-to-node traffic is not masqueraded.
    near = node1(lambda t: t.replace(jump, f"{jump}\n-A POSTROUTING -s 10.1.0.0/16 -d 10.1.0.0/16 -j RETURN\n"
                                           f"-A POSTROUTING -s 10.1.0.0/16 -d 192.168.1.0/24 -j RETURN\n{masq}", 1),
                 name="near.rules")
    assert lint_files([near], cluster=load_cluster(SEED), node="node1").findings == []


@pytest.mark.parametrize("which", ["bad", "good"])
def test_pv305_docs_examples_judged_in_the_seed_cluster(tmp_path, which):
    text = getattr(REGISTRY["PV305"], which)
    found = {f.id for f in lint_text(text + "\n", "t.rules", cluster=load_cluster(SEED), node="node1")}
    assert ("PV305" in found) == (which == "bad")


def test_a_marked_packet_kube_postrouting_masquerades_is_no_pv305(node1):
    """KUBE-POSTROUTING's own MASQUERADE (only packets kube-proxy marked) is not a finding."""
    path = node1()
    assert "-j MASQUERADE" in path.read_text()
    assert "PV305" not in {f.id for f in lint_files([path], cluster=load_cluster(SEED), node="node1").findings}


# ------------------------------------------------------------------ the output formats
def test_sarif_related_locations_and_one_github_annotation_per_finding(node1, tmp_path, monkeypatch):
    path = node1(_filter_forward_drop)
    result = lint_files([path], cluster=load_cluster(SEED), node="node1")
    run = json.loads(lint_sarif(result))["runs"][0]
    mine = [r for r in run["results"] if r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .endswith("node1.rules")]
    assert len(mine) == 2 and all(len(r["relatedLocations"]) >= 1 for r in mine)
    assert all(loc["message"]["text"].startswith("example: ") for r in mine for loc in r["relatedLocations"])
    github = lint_github(result).splitlines()
    assert len(github) == len(result.findings)
    assert all("%0A" in line and "example: " in line for line in github if "node1.rules" in line.split("::")[1])


# ------------------------------------------------------------------ what skips the verification
def test_only_a_finding_that_stops_the_load_skips_the_verification(node1, capsys):
    refused = node1(lambda t: t.replace("-j KUBE-POSTROUTING", "-j KUBE-POSTROUTNG", 1), name="refused.rules")
    result = lint_files([refused], cluster=load_cluster(SEED), node="node1", ignore_ids=["PV1"])
    assert result.unverified and result.findings == []
    assert "iptables-restore would refuse" in result.notes[0]
    # A gate that checked nothing must not pass, even with the PV1xx findings ignored.
    assert main(["lint", str(refused), "--cluster", str(SEED), "--node", "node1", "--ignore", "PV1"]) == 1
    assert "not verified" in capsys.readouterr().out
    unread = node1(lambda t: t.replace("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n",
                                       "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                                       "-A INPUT -p dccp -m dccp --dport 5 -j ACCEPT\n", 1), name="unread.rules")
    result = lint_files([unread], cluster=load_cluster(SEED), node="node1")
    assert result.unverified and "pktverify cannot read" in result.notes[0]
    assert "refuse" not in result.notes[0] and "does not load" not in result.notes[0]


# ------------------------------------------------------------------ the kernel says what loads
def _kernel_accepts(text: str) -> bool:
    """Whether iptables-restore loads ``text`` into a fresh namespace of this test's own."""
    ns = f"pvh-lint-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        done = subprocess.run(["ip", "netns", "exec", ns, "iptables-restore"], input=text, text=True,
                              capture_output=True)
        return done.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


# A loop no built-in chain reaches: the kernel loads it, so lint must not say it does not load.
_UNREACHED_LOOP = "*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j A\nCOMMIT\n"
_UNREADABLE = ["*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p dccp -m dccp --dport 5 -j ACCEPT\nCOMMIT\n",
               "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -j SYNPROXY --sack-perm\nCOMMIT\n"]


@pytest.mark.kernel
def test_the_kernel_refuses_what_lint_says_stops_the_load_and_takes_the_rest(node1):
    if lab_available():
        pytest.skip(lab_available())
    for cid in ("PV100", "PV101", "PV102", "PV103", "PV104"):
        bad = REGISTRY[cid].bad + "\n"
        blockers = {load_blocker(f) for f in lint_text(bad, "t.rules")} - {None}
        assert blockers == ({"refused"} if cid != "PV104" else set()), cid
        assert _kernel_accepts(bad) == (cid == "PV104"), cid
    assert {load_blocker(f) for f in lint_text(_UNREACHED_LOOP, "t.rules")} <= {None}
    assert _kernel_accepts(_UNREACHED_LOOP)
    for text in _UNREADABLE:                          # pktverify cannot read them; the kernel takes them
        assert {load_blocker(f) for f in lint_text(text, "t.rules")} == {"unreadable"}
        assert _kernel_accepts(text)
    realistic_dump = node1().read_text()
    assert _kernel_accepts(realistic_dump)
    assert not lint_files([node1()], cluster=load_cluster(SEED), node="node1").unverified


def test_a_route_cause_is_reported_at_its_route_not_at_a_rule(node1, tmp_path):
    """A blackhole route in node1's own routes: the proposed rules are innocent, the findings sit
    at the route's line of the route dump (one per invariant)."""
    cluster = load_cluster(SEED)
    files = node_files(generate_node(cluster, cluster.nodes[0]))
    (tmp_path / "ip-addr.json").write_text(files["ip-addr.json"])
    routes = json.loads(files["ip-route.json"])
    for entry in routes:
        if entry["dst"] == "10.1.20.0/24":
            entry.clear()
            entry.update({"dst": "10.1.20.0/24", "type": "blackhole", "flags": []})
    (tmp_path / "ip-route.json").write_text(json.dumps(routes, indent=2))
    rules = node1()
    text = SEED.read_text().replace(
        "  - {name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24, bridge: cbr0}",
        f"  - {{name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24, bridge: cbr0, iptables: {rules.name}, "
        "addrs: ip-addr.json, routes: ip-route.json}")
    (tmp_path / "cluster.yaml").write_text(text)
    result = lint_files([rules], cluster=load_cluster(tmp_path / "cluster.yaml"), node="node1")
    lines = (tmp_path / "ip-route.json").read_text().splitlines()
    [(name, line)] = {(Path(f.source).name, f.line) for f in result.findings}
    assert name == "ip-route.json" and lines[line - 1].strip() == "{"          # the blackhole route's entry
    assert lines[line] == '    "dst": "10.1.20.0/24",' and lines[line + 1] == '    "type": "blackhole",'
    assert sorted(f.id for f in result.findings) == ["PV402", "PV403", "PV404"]
