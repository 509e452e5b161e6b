"""nftables dumps on every input path (issue #24): ``load_node(nft=...)``, the cluster YAML's ``nft:``
(a file, or inline under ``dumps:``), the node folder's ``nft-ruleset.json`` with kubectl input, and
``scripts/collect-node`` (in a network namespace of its own). Each reads the same ruleset from any of
nft's three forms into the same ``NodeState.nft``; tables of families other than ip and inet are
skipped with a note; a mixed node reads iptables-nft's tables from iptables-save, and refuses their
``xt`` statements (or their lossy listing) without it; a cluster whose nodes run kube-proxy in
nftables mode is refused, naming the node and the evidence, until verify models that mode."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from pktverify.errors import InputError
from pktverify.load.cluster import load_cluster as load_any_cluster
from pktverify.load.cluster_nodes import cluster_nodes
from pktverify.load.nft_node import parse_nft
from pktverify.load.node import load_node
from pktverify.model.addresses import parse_ip
from pktverify.model.nft import NftRuleset
from pktverify.node_api import trace
from pktverify.packets import make_packet
from pktverify.parse.cluster_yaml import load_cluster
from pktverify.report.cluster_yaml import cluster_to_yaml

from .nft_samples import JSON, MIXED_IPTABLES, MIXED_JSON, MIXED_TEXT, SCRIPT, TEXT

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "rules/kube-node"
REALCLUSTER = ROOT / "tests/corpus/realcluster"
FORMS = {"script": ("ruleset.nft", SCRIPT), "text": ("ruleset.txt", TEXT), "json": ("nft-ruleset.json", JSON)}


def _ipv4_tables(text: str) -> NftRuleset:
    """What a node keeps of a ruleset: its ip and inet tables."""
    rs = parse_nft(text, source="expected")
    return NftRuleset("expected", rs.form, tuple(t for t in rs.tables if t.family in ("ip", "inet")))


EXPECTED = _ipv4_tables(JSON)


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _node(path: Path, **dumps) -> object:
    return load_node(addrs=NODE / "ip-addr.json", routes=NODE / "ip-route.txt", nft=path, **dumps)


# -- one node -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", FORMS)
def test_load_node_reads_each_form_into_the_same_model(tmp_path, form):
    name, text = FORMS[form]
    node = _node(_write(tmp_path, name, text))
    assert node.nft == EXPECTED and node.nft.form == form
    assert [(t.family, t.name) for t in node.nft.tables] == [("inet", "fw"), ("ip", "nat4")]
    assert node.ruleset.rule_count() == 0             # no iptables-save: iptables' tables are empty
    skipped = [w for w in node.warnings if "skipped" in w and "nftables" in w]
    assert skipped == [f"{tmp_path / name}: 2 nftables table(s) of families other than ip and inet skipped "
                       "(ip6 v6, bridge br): bridge: bridged frames: not modelled yet; ip6: IPv6 only"]


def test_a_node_without_nft_has_none_and_no_rules_at_all_is_refused():
    node = load_node(iptables=NODE / "iptables-save.txt", addrs=NODE / "ip-addr.json", routes=NODE / "ip-route.txt")
    assert node.nft is None
    from pktverify.errors import InvalidArgument
    with pytest.raises(InvalidArgument, match="iptables .* nft"):
        load_node(addrs=NODE / "ip-addr.json", routes=NODE / "ip-route.txt")


def test_only_skipped_families_leave_an_empty_ruleset_and_a_note(tmp_path):
    path = _write(tmp_path, "v6.nft", "add table ip6 v6\nadd chain ip6 v6 in { type filter hook input priority 0; }\n")
    node = _node(path)
    assert node.nft is not None and node.nft.tables == ()
    assert any("(ip6 v6): ip6: IPv6 only" in w for w in node.warnings)
    assert trace(node, make_packet(proto="tcp", src="192.168.1.50", dst="10.0.0.1", dport=443),
                 in_iface="eth0").outcomes                  # nothing the tracer would ignore: traced


def test_an_empty_dump_is_a_ruleset_without_tables(tmp_path):
    assert _node(_write(tmp_path, "empty.json", "")).nft.tables == ()


def test_bad_input_names_the_file_and_line(tmp_path):
    with pytest.raises(InputError) as err:
        _node(_write(tmp_path, "bad.nft", "\n# a comment\nhello world\n"))
    assert str(err.value).startswith(f"{tmp_path / 'bad.nft'}:3: not an nftables ruleset")
    with pytest.raises(InputError) as err:
        _node(_write(tmp_path, "bad.json", '{"nftables": [{"table": 5}]}'))
    assert str(err.value).startswith(f"{tmp_path / 'bad.json'}: nftables[0].table: ")


@pytest.mark.parametrize("form", FORMS)
def test_the_node_traces_its_nft_tables(tmp_path, form):
    name, text = FORMS[form]
    node = _node(_write(tmp_path, name, text))
    result = trace(node, make_packet(proto="tcp", src="192.168.1.50", dst="10.96.0.1", sport=40000, dport=443),
                   in_iface="eth0")
    [outcome] = result.outcomes
    assert outcome.verdict == "local" and (outcome.packet.dst, outcome.packet.dport) == (parse_ip("192.168.1.10"), 6443)
    assert [(s.table, s.chain, s.rule_index) for s in outcome.steps if s.table] == [("ip nat4", "pre", 1),
                                                                                    ("inet fw", "input", None)]


# -- a mixed node -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,text", [("nft-ruleset.json", MIXED_JSON), ("ruleset.txt", MIXED_TEXT)])
def test_a_mixed_node_reads_iptables_nft_tables_from_iptables_save(tmp_path, name, text):
    ipt = _write(tmp_path, "iptables-save.txt", MIXED_IPTABLES)
    node = _node(_write(tmp_path, name, text), iptables=ipt)
    assert [(t.family, t.name) for t in node.nft.tables] == [("inet", "fw")]     # each table read once
    assert node.ruleset.tables["filter"].chains["INPUT"].rules                  # ip filter: from iptables-save
    assert f"{tmp_path / name}: table(s) ip filter written by iptables-nft: read from iptables-save, not from the " \
           "nft dump" in node.warnings


def test_an_xt_statement_without_iptables_save_is_refused_in_one_line(tmp_path):
    path = _write(tmp_path, "nft-ruleset.json", MIXED_JSON)
    with pytest.raises(InputError) as err:
        _node(path)
    assert str(err.value) == (
        f"{path}: nftables[5].rule: table ip filter was written by iptables-nft (chain INPUT holds `xt match "
        "comment`, whose arguments only iptables-save shows): pass the node's iptables-save too (trace --iptables "
        "FILE; iptables: in the cluster YAML; iptables-save.txt in the node folder)")


def test_an_iptables_nft_listing_without_iptables_save_is_refused(tmp_path):
    # nft list ruleset drops the comment match and prints statistic as `meta random`: not what the kernel runs
    path = _write(tmp_path, "ruleset.txt", MIXED_TEXT)
    with pytest.raises(InputError) as err:
        _node(path)
    assert str(err.value).startswith(f"{path}:1: table ip filter was written by iptables-nft (iptables' table and "
                                     "chain names): `nft list ruleset` prints its rules as nft translates them")
    assert "\n" not in str(err.value) and "pass the node's iptables-save too" in str(err.value)


def test_native_tables_named_like_iptables_are_kept(tmp_path):
    # iptables' table name, but lower-case chains: written with nft, not by iptables-nft
    text = "table ip filter {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t}\n}\n"
    node = _node(_write(tmp_path, "r.txt", text), iptables=NODE / "iptables-save.txt")
    assert [(t.family, t.name) for t in node.nft.tables] == [("ip", "filter")]


# -- the cluster YAML ---------------------------------------------------------------------------------------------
def _yaml(folder: Path, node1_extra: str, node2_extra: str = "") -> Path:
    path = folder / "cluster.yaml"
    path.write_text("cluster: {cidr: 10.1.0.0/16, service_cidr: 10.152.183.0/24, proxy_mode: iptables, "
                    "routing: direct}\nnodes:\n"
                    f"  - name: node1\n    ip: 192.168.1.10/24\n    pod_cidr: 10.1.10.0/24\n{node1_extra}"
                    f"  - name: node2\n    ip: 192.168.1.20/24\n    pod_cidr: 10.1.20.0/24\n{node2_extra}")
    return path


def _inline(kind: str, text: str) -> str:
    return f"    dumps:\n      {kind}: |\n" + textwrap.indent(text, " " * 8)


@pytest.mark.parametrize("form", FORMS)
def test_cluster_yaml_nft_as_a_file_and_inline(tmp_path, form):
    name, text = FORMS[form]
    _write(tmp_path, name, text)
    cluster = load_cluster(_yaml(tmp_path, f"    nft: {name}\n", _inline("nft", text)))
    assert cluster.nodes[0].nft == str(tmp_path / name) and cluster.nodes[1].dump_text("nft") == text
    states = cluster_nodes(cluster)
    assert states["node1"].nft == states["node2"].nft == EXPECTED
    assert any("(ip6 v6, bridge br)" in w for w in states["node2"].warnings)


def test_cluster_yaml_inline_errors_name_the_cluster_file_line(tmp_path):
    path = _yaml(tmp_path, _inline("nft", "add table ip t\nadd chain ip t c { type filter hook input priority 0; }\n"
                                          "add rule ip t nochain accept\n"))
    with pytest.raises(InputError) as err:
        cluster_nodes(load_cluster(path))
    assert str(err.value) == f"{path}:10: no chain 'nochain' in table ip t: add rule ip t nochain accept"


def test_cluster_yaml_inline_json_errors_name_where_the_dump_starts(tmp_path):
    path = _yaml(tmp_path, "", _inline("nft", '{"nftables": [{"table": 5}]}\n'))
    with pytest.raises(InputError) as err:
        cluster_nodes(load_cluster(path))
    assert str(err.value).startswith(f"{path}:11: the nft dump of node node2: nftables[0].table: ")


def test_cluster_yaml_round_trip_keeps_nft(tmp_path):
    _write(tmp_path, "r.json", JSON)
    cluster = load_cluster(_yaml(tmp_path, "    nft: r.json\n", _inline("nft", TEXT)))
    again = tmp_path / "again.yaml"
    again.write_text(cluster_to_yaml(cluster))
    assert load_cluster(again).nodes == cluster.nodes
    inlined = tmp_path / "inlined.yaml"
    inlined.write_text(cluster_to_yaml(cluster, inline_files=True))
    back = load_cluster(inlined)
    assert back.nodes[0].nft is None and back.nodes[0].dump_text("nft") == JSON
    assert cluster_nodes(back)["node1"].nft == EXPECTED


def test_with_node_dumps_takes_nft_text(tmp_path):
    from pktverify.cluster_api import with_node_dumps
    cluster = with_node_dumps(load_cluster(_yaml(tmp_path, "")), "node2", nft=SCRIPT)
    assert cluster_nodes(cluster)["node2"].nft == EXPECTED
    written = tmp_path / "written.yaml"
    written.write_text(cluster_to_yaml(cluster))
    assert load_cluster(written).nodes[1].dump_text("nft") == SCRIPT


def test_cluster_yaml_refuses_kube_proxy_in_nftables_mode_on_an_iptables_mode_cluster(tmp_path):
    script = "add table ip kube-proxy { comment \"rules for kube-proxy\" ; }\n" \
             "add chain ip kube-proxy services\n"
    path = _yaml(tmp_path, "", _inline("nft", script))
    with pytest.raises(InputError) as err:
        load_cluster(path)
    assert str(err.value) == (f"{path}:6: node node2 runs kube-proxy in nftables mode (nft table ip kube-proxy), "
                              "but the cluster says proxy_mode: iptables: - name: node2")
    # the same node in a cluster that says nftables mode is read
    path.write_text(path.read_text().replace("proxy_mode: iptables", "proxy_mode: nftables", 1))
    assert load_cluster(path).proxy_mode == "nftables"


# -- kubectl input and the node folder ----------------------------------------------------------------------------
@pytest.fixture()
def kubectl_cluster(tmp_path) -> Path:
    folder = tmp_path / "cluster"
    shutil.copytree(REALCLUSTER, folder, ignore=shutil.ignore_patterns("*.py", "*.yaml", "__pycache__"))
    return folder


def _load_kubectl(folder: Path):
    return load_any_cluster(folder / "cluster.json", cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12")


def test_kubectl_input_reads_the_node_folders_nft_ruleset(kubectl_cluster):
    _write(kubectl_cluster / "worker-1", "nft-ruleset.json", JSON)
    cluster = _load_kubectl(kubectl_cluster)
    spec = cluster.node("worker-1")
    assert spec.nft == str(kubectl_cluster / "worker-1" / "nft-ruleset.json") and cluster.node("cp-1").nft is None
    states = cluster_nodes(cluster)
    assert states["worker-1"].nft == EXPECTED and states["cp-1"].nft is None


def test_kubectl_input_refuses_kube_proxy_in_two_modes(kubectl_cluster):
    (kubectl_cluster / "worker-1" / "iptables-save.txt").write_text("")
    _write(kubectl_cluster / "worker-1", "nft-ruleset.json",
           '{"nftables": [{"metainfo": {"json_schema_version": 1}}, '
           '{"table": {"family": "ip", "name": "kube-proxy", "handle": 3}}]}')
    with pytest.raises(InputError) as err:
        _load_kubectl(kubectl_cluster)
    assert str(err.value) == (f"{kubectl_cluster / 'cluster.json'}: the nodes run kube-proxy in different modes "
                              "(iptables on cp-1, worker-2; nftables on worker-1): pktverify verifies one mode per "
                              "cluster")


def test_no_kube_proxy_rules_with_nft_dumps_rules_out_nftables_mode(kubectl_cluster):
    for node in ("cp-1", "worker-1", "worker-2"):
        (kubectl_cluster / node / "iptables-save.txt").write_text("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
        _write(kubectl_cluster / node, "nft-ruleset.json", '{"nftables": [{"metainfo": {"json_schema_version": 1}}]}')
    with pytest.raises(InputError, match=r"no nat KUBE-SERVICES, no KUBE-PORTALS-\*\): kube-proxy not running \(nor "
                                         r"in nftables mode: their nft-ruleset.json has no kube-proxy table\)"):
        _load_kubectl(kubectl_cluster)


def test_kube_proxy_both_modes_on_one_node_is_nftables_mode_beside_the_others_iptables(kubectl_cluster):
    # a node mid-migration (#25) runs nftables mode now: beside nodes in iptables mode, two modes
    _write(kubectl_cluster / "worker-1", "nft-ruleset.json", "table inet kube-proxy {\n}\n")
    with pytest.raises(InputError, match=r"different modes \(iptables on cp-1, worker-2; nftables on worker-1\): .*"
                                         r"\(node\(s\) worker-1 hold kube-proxy's nftables table beside iptables "
                                         r"mode's rules"):
        _load_kubectl(kubectl_cluster)


# -- scripts/collect-node -----------------------------------------------------------------------------------------
def _can_make_namespaces() -> str:
    if os.geteuid() != 0:
        return "needs root"
    missing = [tool for tool in ("ip", "nft", "iptables-save") if shutil.which(tool) is None]
    return f"needs {', '.join(missing)}" if missing else ""


@pytest.mark.kernel
@pytest.mark.skipif(bool(_can_make_namespaces()), reason=_can_make_namespaces() or "ok")
def test_collect_node_writes_nft_ruleset_json(tmp_path):
    netns = f"pv-nftload-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=SCRIPT, text=True, check=True)
        folder = tmp_path / "node1"
        subprocess.run(["ip", "netns", "exec", netns, "bash", str(ROOT / "scripts/collect-node"), str(folder)],
                       check=True, capture_output=True)
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=True)
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("nft")) == ["nft-ruleset.json"]
    assert parse_nft((folder / "nft-ruleset.json").read_text(), source="x") == parse_nft(SCRIPT, source="y")
    node = load_node(iptables=folder / "iptables-save.txt", addrs=folder / "ip-addr.json",
                     routes=folder / "ip-route.json", nft=folder / "nft-ruleset.json")
    assert node.nft == EXPECTED


def test_a_dump_of_comments_only_is_a_ruleset_without_tables():
    """Found by tests/parse/test_fuzz_inputs.py: a file of comments only was a StopIteration (an internal error)."""
    from pktverify.load.nft_node import parse_nft

    assert parse_nft("# nothing here\n  # still nothing\n", source="f").tables == ()
