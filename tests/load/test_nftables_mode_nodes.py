"""kube-proxy's nftables mode in the node folder layout: ``generate --out`` writes each node's
ruleset as the ``nft -f`` script kube-proxy loads (``nft-ruleset.nft``), kubectl input reads it
(or ``nft-ruleset.json``, never both) and tells the mode from it, and the cluster verifies the
same from kubectl JSON as from the YAML description."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from pktverify.cli import main
from pktverify.errors import InvalidArgument
from pktverify.generate.synthetic_cluster import synthetic_cluster
from pktverify.load.cluster import load_cluster as load_any_cluster
from pktverify.load.cluster_nodes import cluster_nodes
from pktverify.model.addresses import format_network
from pktverify.model.kube_proxy import NFT_SCRIPT_FILE, NODE_FILES

from ..hostile import tree, write_node_dumps
from ..parse.test_input_parity import _kubectl, _verify_json, _yaml, clusters

SEED = "rules/seed/cluster-iptables.yaml"


def test_generate_out_writes_each_nodes_nft_script(tmp_path):
    cluster_yaml = tmp_path / "cluster.yaml"
    root = Path(__file__).resolve().parents[2]
    cluster_yaml.write_text((root / SEED).read_text().replace("proxy_mode: iptables", "proxy_mode: nftables"))
    assert main(["generate", str(cluster_yaml), "--out", str(tmp_path / "out")]) == 0
    files = {"iptables-save.txt", "ip-addr.json", "ip-route.json", NFT_SCRIPT_FILE}
    assert tree(tmp_path / "out") == {f"node{i}" for i in (1, 2, 3)} | {f"node{i}/{f}" for i in (1, 2, 3) for f in files}
    script = (tmp_path / "out" / "node1" / NFT_SCRIPT_FILE).read_text()
    assert script.startswith("add table ip kube-proxy") and "192.168.1.10" in script
    assert (tmp_path / "out" / "node1" / "iptables-save.txt").read_text() == ""
    # iptables mode: no nft file, as before
    assert main(["generate", str(root / SEED), "--out", str(tmp_path / "ipt")]) == 0
    assert not any(p.endswith(NFT_SCRIPT_FILE) for p in tree(tmp_path / "ipt"))


def _nft_cluster():
    return dataclasses.replace(synthetic_cluster(2, 2, 4), proxy_mode="nftables")


def test_kubectl_input_reads_the_nft_script_and_tells_nftables_mode(tmp_path):
    cluster = _nft_cluster()
    write_node_dumps(cluster, tmp_path)
    assert (tmp_path / cluster.nodes[0].name / NFT_SCRIPT_FILE).is_file()
    loaded = load_any_cluster(_kubectl(cluster, tmp_path), cluster_cidr=format_network(*cluster.cidr),
                              service_cidr=format_network(*cluster.service_cidr))
    assert loaded.proxy_mode == "nftables"
    node = loaded.nodes[0]
    assert node.nft == str(tmp_path / node.name / NFT_SCRIPT_FILE)
    assert cluster_nodes(loaded)[node.name].nft.table("ip", "kube-proxy") is not None
    # the same script under the JSON name is read too (the readers tell the form by content) ...
    script = tmp_path / node.name / NFT_SCRIPT_FILE
    (tmp_path / node.name / NODE_FILES["nft"]).write_text(script.read_text())
    # ... but never both names at once
    with pytest.raises(InvalidArgument, match=f"holds both {NODE_FILES['nft']} and {NFT_SCRIPT_FILE}"):
        load_any_cluster(tmp_path / "cluster.json", cluster_cidr=format_network(*cluster.cidr),
                         service_cidr=format_network(*cluster.service_cidr))
    script.unlink()
    again = load_any_cluster(tmp_path / "cluster.json", cluster_cidr=format_network(*cluster.cidr),
                             service_cidr=format_network(*cluster.service_cidr))
    assert again.proxy_mode == "nftables" and again.nodes[0].nft.endswith(NODE_FILES["nft"])


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(clusters())
def test_yaml_and_kubectl_give_the_same_answer_in_nftables_mode(tmp_path_factory, capsys, cluster):
    cluster = dataclasses.replace(cluster, proxy_mode="nftables")
    folder = tmp_path_factory.mktemp("parity")
    write_node_dumps(cluster, folder)
    from_yaml = _verify_json(capsys, str(_yaml(cluster, folder)))
    from_kubectl = _verify_json(capsys, str(_kubectl(cluster, folder)), "--cluster-cidr",
                                format_network(*cluster.cidr), "--service-cidr", format_network(*cluster.service_cidr))
    assert from_yaml == from_kubectl
    # said once at most: another reason to check every flow (two pods on one address) may come first
    # (tests/check/test_verify_nftables_mode.py asserts the note on a clean cluster)
    assert json.dumps(from_yaml).count("which the address classes do not read") <= 1
