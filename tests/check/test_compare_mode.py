"""Switching kube-proxy between its iptables and nftables modes (issue #25): ``diff`` between a node's
iptables-mode and nftables-mode rules labels the documented mode differences (and only those), and
``verify --compare-mode`` answers per node, from a YAML cluster and from kubectl input with dumps."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pktverify.check.compare_mode import compare_modes
from pktverify.check.diff import run_diff
from pktverify.check.diff.deliberate import (
    LOCALHOST_NODEPORT,
    NODEPORT_ADDRESSES,
    UNALLOCATED_CLUSTER_IP,
    UNUSED_CLUSTER_IP_PORT,
)
from pktverify.cli import main
from pktverify.generate.node_state import generate_node
from pktverify.generate.synthetic_cluster import synthetic_cluster
from pktverify.load.cluster import load_cluster
from pktverify.model.addresses import format_network

from ..hostile import write_node_dumps
from ..parse.test_input_parity import _kubectl

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "rules/seed/cluster-iptables.yaml"
EVERY = ROOT / "rules/services/every-service-type.yaml"
LB_IP = (198 << 24) | (51 << 16) | (100 << 8) | 20


def _write_modes(cluster_path: Path, folder: Path, *, edit_nft=lambda t: t, cluster_nft=None) -> dict[str, Path]:
    """node1's iptables-mode and nftables-mode rules (the latter from ``cluster_nft`` if given, and
    edited by ``edit_nft``), with its addresses and routes, as files."""
    spec = load_cluster(cluster_path)
    node = spec.nodes[0]
    ipt = generate_node(dataclasses.replace(spec, proxy_mode="iptables"), node)
    nft = generate_node(dataclasses.replace(cluster_nft or spec, proxy_mode="nftables"), node)
    files = {"ipt": ipt.iptables, "nft": edit_nft(nft.nft), "addrs": ipt.addrs, "routes": ipt.routes}
    for name, text in files.items():
        (folder / name).write_text(text)
    return {name: folder / name for name in files}


def _diff(files, old="ipt", new="nft"):
    return run_diff(files[old], files[new], addrs=files["addrs"], routes=files["routes"]).result


def test_seed_cluster_differs_only_by_design(tmp_path):
    result = _diff(_write_modes(SEED, tmp_path))
    assert result.modes == "iptables → nftables" and result.complete and result.exact
    assert {c.deliberate for c in result.classes} == {UNALLOCATED_CLUSTER_IP, UNUSED_CLUSTER_IP_PORT}
    assert not result.unexplained
    for c in result.classes:
        assert c.old == ("forward on eth0",) and c.new == (("drop",) if c.deliberate == UNALLOCATED_CLUSTER_IP
                                                            else ("reject",))


def test_every_service_type_labels_each_documented_difference_and_both_directions_agree(tmp_path):
    files = _write_modes(EVERY, tmp_path)
    forward, backward = _diff(files), _diff(files, "nft", "ipt")
    labels = {c.deliberate for c in forward.classes}
    assert labels == {UNALLOCATED_CLUSTER_IP, UNUSED_CLUSTER_IP_PORT, NODEPORT_ADDRESSES, LOCALHOST_NODEPORT}
    assert backward.modes == "nftables → iptables"
    assert sorted((c.old, c.new, c.deliberate, c.cells) for c in forward.classes) == \
        sorted((c.new, c.old, c.deliberate, c.cells) for c in backward.classes)
    for c in forward.classes:
        dst = c.spans[1]
        if c.deliberate == LOCALHOST_NODEPORT:
            assert all(lo >> 24 == 127 for lo, _hi in dst) and c.spans[4] == ((30000, 30000), (30080, 30080))
        if c.deliberate == NODEPORT_ADDRESSES:      # the pod bridge's address, never the primary 192.168.1.10
            assert dst == (((10 << 24) | (1 << 16) | (10 << 8) | 1,) * 2,)


def test_a_loadbalancer_lets_its_own_ip_through_its_source_ranges_in_both_modes_only_on_nodes_they_hold(tmp_path):
    """kube-proxy lets a LoadBalancer IP itself through loadBalancerSourceRanges only when a range
    holds the node's IP (allowFromNode, pkg/proxy/iptables/proxier.go; the nftables mode the same).
    every-service-type's range holds no node: neither mode lets 198.51.100.20 through and the LB IP
    is in no class (our iptables generator let it through always: an unlabelled class, now gone).
    With a range holding node2's IP only, node2 lets it through in both modes, the others in neither."""
    result = _diff(_write_modes(EVERY, tmp_path))
    assert not result.unexplained and result.complete
    assert not [c for c in result.classes if any(lo <= LB_IP <= hi for lo, hi in c.spans[1])]
    path = tmp_path / "node2-in-range.yaml"
    path.write_text(EVERY.read_text().replace("load_balancer_source_ranges: [203.0.113.0/24]",
                                              "load_balancer_source_ranges: [203.0.113.0/24, 192.168.1.20/32]"))
    cluster = load_cluster(path)
    lb_rule = "-s 198.51.100.20/32 -m comment --comment \"default/web-lb loadbalancer IP\""
    assert [lb_rule in generate_node(cluster, n).iptables for n in cluster.nodes] == [False, True, False]
    nft = dataclasses.replace(cluster, proxy_mode="nftables")
    assert ["198.51.100.20 } drop" in generate_node(nft, n).nft for n in cluster.nodes] == [False, True, False]
    comparison = compare_modes(cluster)
    assert [n.node for n in comparison.nodes] == ["node1", "node2", "node3"]
    assert all(n.result.complete and not n.result.unexplained for n in comparison.nodes)


def test_a_missing_endpoint_in_one_mode_is_not_labelled(tmp_path):
    spec = load_cluster(SEED)
    without = dataclasses.replace(spec, pods=tuple(p for p in spec.pods if p.name != "web-2"))
    result = _diff(_write_modes(SEED, tmp_path, cluster_nft=without))
    odd = result.unexplained
    assert odd and all(not c.deliberate for c in odd)
    assert any(any("10.1.20.5" in f for f in c.old) and not any("10.1.20.5" in f for f in c.new) for c in odd)
    assert {c.deliberate for c in result.classes} - {""} == {UNALLOCATED_CLUSTER_IP, UNUSED_CLUSTER_IP_PORT}


def test_a_missing_service_or_primary_nodeport_address_in_nftables_mode_is_not_labelled(tmp_path):
    # the ClusterIP is still active (cluster-ips) but no longer served: rejected where iptables DNATs
    gone = _diff(_write_modes(SEED, tmp_path, edit_nft=lambda t: "\n".join(
        line for line in t.splitlines() if not (line.startswith("add element ip kube-proxy service-ips")
                                                and "10.152.183.164" in line)) + "\n"))
    assert any(c.new == ("reject",) and not c.deliberate and any("DNAT" in f for f in c.old)
               for c in gone.classes)
    # NodePorts on the primary address are not a mode difference: without it in nodeport-ips, unlabelled
    (tmp_path / "b").mkdir()
    files = _write_modes(EVERY, tmp_path / "b", edit_nft=lambda t: t.replace(
        "add element ip kube-proxy nodeport-ips { 192.168.1.10 }\n", ""))
    primary = (192 << 24) | (168 << 16) | (1 << 8) | 10
    hit = [c for c in _diff(files).classes if c.spans[1] == ((primary, primary),)]
    assert hit and all(not c.deliberate for c in hit)


def test_diff_cli_exits_0_when_every_difference_is_deliberate_and_says_so(tmp_path, capsys):
    files = _write_modes(SEED, tmp_path)
    argv = ["diff", str(files["ipt"]), str(files["nft"]), "--addrs", str(files["addrs"]), "--routes",
            str(files["routes"])]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "kube-proxy iptables → nftables: 2 class(es) differ, 2 of them deliberate (nftables mode by design), " \
           "0 not" in text
    assert text.count("[deliberate: ") == 2
    assert main([*argv, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "different" and out["all_deliberate"] is True
    assert (out["deliberate_classes"], out["unexplained_classes"]) == (2, 0)
    assert {c["deliberate"] for c in out["classes"]} == {UNALLOCATED_CLUSTER_IP, UNUSED_CLUSTER_IP_PORT}


def test_diff_cli_exits_1_on_a_difference_not_by_design_and_unchanged_json_between_one_mode(tmp_path, capsys):
    spec = load_cluster(SEED)
    without = dataclasses.replace(spec, pods=tuple(p for p in spec.pods if p.name != "web-2"))
    files = _write_modes(SEED, tmp_path, cluster_nft=without)
    assert main(["diff", str(files["ipt"]), str(files["nft"]), "--addrs", str(files["addrs"]), "--routes",
                 str(files["routes"]), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["all_deliberate"] is False and out["unexplained_classes"] >= 1
    assert any(c["deliberate"] is None for c in out["classes"])
    # two iptables rule sets: no labels, no mode fields
    other = tmp_path / "ipt2"
    other.write_text(files["ipt"].read_text().replace("-A KUBE-SERVICES -d 10.152.183.69/32", "-A KUBE-SERVICES "
                                                      "-d 10.152.183.70/32"))
    assert main(["diff", str(files["ipt"]), str(other), "--addrs", str(files["addrs"]), "--routes",
                 str(files["routes"]), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert "modes" not in out and out["classes"] and all("deliberate" not in c for c in out["classes"])


def test_verify_compare_mode_on_a_yaml_cluster(capsys):
    assert main(["verify", str(SEED), "--compare-mode"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == ("switching kube-proxy from iptables to nftables mode changes the fate of packets "
                                    "on 3 of 3 node(s); all as designed: kube-proxy's documented mode differences "
                                    "only")
    # every difference is a documented one, but ClientIP affinity (web-sticky) is decided by no
    # packet field: not decided whole, so exit 2 and not "all deliberate"
    assert main(["verify", str(EVERY), "--compare-mode", "--format", "json"]) == 2
    out = json.loads(capsys.readouterr().out)["compare_mode"]
    assert (out["from"], out["to"], out["nodes"], out["nodes_changed"]) == ("iptables", "nftables", 3, 3)
    assert out["nodes_not_deliberate"] == 0 and out["all_deliberate"] is False and out["complete"] is False
    assert [n["node"] for n in out["per_node"]] == ["node1", "node2", "node3"]
    assert all(n["unexplained_classes"] == 0 and n["deliberate_classes"] and not n["exact"] for n in out["per_node"])


def _shape(comparison) -> list:
    return [(n.node, sorted((c.old, c.new, c.deliberate, c.cells) for c in n.result.classes))
            for n in comparison.nodes]


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_compare_mode_from_kubectl_input_with_dumps_matches_the_generated_cluster(tmp_path, capsys, mode):
    """The nodes' given dumps (kube-proxy's rules taken out, the other mode's put in) answer as the
    generated nodes of the same cluster do."""
    cluster = dataclasses.replace(synthetic_cluster(2, 2, 4), proxy_mode=mode)
    write_node_dumps(cluster, tmp_path)
    loaded = load_cluster(_kubectl(cluster, tmp_path), cluster_cidr=format_network(*cluster.cidr),
                          service_cidr=format_network(*cluster.service_cidr))
    assert loaded.proxy_mode == mode and all(n.has_dump("iptables") for n in loaded.nodes)
    from_dumps, generated = compare_modes(loaded), compare_modes(cluster)
    assert _shape(from_dumps) == _shape(generated)
    assert from_dumps.all_deliberate and all(n.changes for n in from_dumps.nodes)
    assert main(["verify", str(tmp_path / "cluster.json"), "--compare-mode", "--cluster-cidr",
                 format_network(*cluster.cidr), "--service-cidr", format_network(*cluster.service_cidr)]) == 0
    other = "nftables" if mode == "iptables" else "iptables"
    assert capsys.readouterr().out.startswith(f"switching kube-proxy from {mode} to {other} mode changes the fate")


def test_compare_mode_refuses_the_userspace_mode(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(SEED.read_text().replace("proxy_mode: iptables", "proxy_mode: userspace"))
    assert main(["verify", str(path), "--compare-mode"]) == 2
    assert "compares kube-proxy's iptables and nftables modes" in capsys.readouterr().err


def test_diff_cli_exits_2_when_only_deliberate_differences_were_found_inexactly(tmp_path, capsys):
    """ClientIP affinity (-m recent) is decided by no packet field: every difference found is
    deliberate, but the comparison is not exact, so the answer is not "only as designed"."""
    sticky = tmp_path / "sticky.yaml"
    sticky.write_text(SEED.read_text().replace("name: http-svc, namespace: default,",
                                               "name: http-svc, namespace: default, session_affinity: ClientIP,"))
    (tmp_path / "f").mkdir()
    files = _write_modes(sticky, tmp_path / "f")
    result = _diff(files)
    assert not result.exact and result.classes and not result.unexplained
    assert main(["diff", str(files["ipt"]), str(files["nft"]), "--addrs", str(files["addrs"]), "--routes",
                 str(files["routes"])]) == 2
    assert "every difference found between kube-proxy's modes is a documented one" in capsys.readouterr().err
