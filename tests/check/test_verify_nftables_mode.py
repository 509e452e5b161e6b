"""kube-proxy's nftables mode in a cluster: the seed and services clusters switched to
``proxy_mode: nftables`` verify with the same answers as in iptables mode, the deliberate
differences between the modes show where they should (and nowhere else), and a fault in the
generated nft ruleset is found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pktverify import strategies, verify
from pktverify.cli import main
from pktverify.eval.cluster_walk import ClusterWalker
from pktverify.generate.node_state import generate_node
from pktverify.load.cluster_nodes import cluster_nodes
from pktverify.model.addresses import format_ip, parse_ip
from pktverify.model.packet import Packet
from pktverify.parse.cluster_yaml import load_cluster

RULES = Path(__file__).resolve().parents[2] / "rules"
CASES = [RULES / "seed" / "cluster-iptables.yaml", RULES / "services" / "every-service-type.yaml",
         RULES / "broken" / "stale-endpoint.yaml", RULES / "broken" / "etp-local-node-without-endpoints.yaml",
         RULES / "broken" / "nodeport-collision.yaml"]


def _as_nftables(path: Path, folder: Path) -> Path:
    text = path.read_text()
    assert text.count("proxy_mode: iptables") == 1
    out = folder / path.name
    out.write_text(text.replace("proxy_mode: iptables", "proxy_mode: nftables"))
    return out


def _verify(path: Path, capsys) -> tuple[int, dict]:
    status = main(["verify", "--format", "json", str(path)])
    return status, json.loads(capsys.readouterr().out)


def _answers(doc: dict) -> dict:
    return {i["name"]: (i["holds"], i["checked"], sorted(v["message"] for v in i["violations"]))
            for i in doc["invariants"]}


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_nftables_mode_gives_the_iptables_modes_answers(path, tmp_path, capsys):
    ipt_status, ipt = _verify(path, capsys)
    nft_status, nft = _verify(_as_nftables(path, tmp_path), capsys)
    assert (nft_status, _answers(nft)) == (ipt_status, _answers(ipt))
    # the one labelled difference: where a service has NodePorts, the nftables-mode report says how
    # the modes differ on purpose; the iptables-mode report never does
    notes = {i["name"]: i["notes"] for i in nft["invariants"]}
    said = [n for n in notes["service-reachability"] if n.startswith("kube-proxy's nftables mode")]
    cluster = load_cluster(path)
    assert len(said) == (1 if any(s.has_node_ports for s in cluster.services) else 0)
    assert not any("nftables mode" in n for i in ipt["invariants"] for n in i["notes"])
    # the address classes read nft rules as they read iptables rules: flows are checked by class in
    # both modes, or one by one in both (ClientIP affinity remembers exact client addresses: -m recent
    # in iptables mode, an affinity set in nftables mode), and the report says why
    one_by_one = [[n for i in report["invariants"] for n in i["notes"] if "one by one" in n] for report in (ipt, nft)]
    assert bool(one_by_one[0]) == bool(one_by_one[1]), one_by_one
    assert all("remembers exact addresses" in n for n in one_by_one[1])


def test_generated_nodes_carry_kube_proxys_nft_table_and_no_iptables_rules(tmp_path):
    cluster = load_cluster(_as_nftables(RULES / "services" / "every-service-type.yaml", tmp_path))
    for node in cluster.nodes:
        gen = generate_node(cluster, node)
        assert gen.iptables == "" and gen.nft.startswith("add table ip kube-proxy")
        # NodePorts on the node's primary address only (kube-proxy's --nodeport-addresses primary)
        assert f"add element ip kube-proxy nodeport-ips {{ {format_ip(node.ip)} }}" in gen.nft.splitlines()
    states = cluster_nodes(cluster)
    assert all(s.nft is not None and s.nft.table("ip", "kube-proxy") is not None for s in states.values())
    assert states["node1"].nft.source == "<generated nft of node1>"
    # iptables mode: no nft, as before
    plain = load_cluster(RULES / "services" / "every-service-type.yaml")
    assert generate_node(plain, plain.nodes[0]).nft is None
    assert all(s.nft is None for s in cluster_nodes(plain).values())


def _nodeport_ends(cluster, dst: str, port: int = 30080):
    walker = ClusterWalker(cluster, cluster_nodes(cluster))
    node = cluster.node("node1")
    return walker.walk(walker.node_endpoint(node), Packet(6, parse_ip(dst), parse_ip(dst), 40000, port)) \
        if dst.startswith("127.") else \
        walker.walk(walker.pod_endpoint(next(p for p in cluster.pods if p.node == "node1")),
                    Packet(6, next(p for p in cluster.pods if p.node == "node1").ip, parse_ip(dst), 40000, port))


def test_nodeport_on_the_bridge_address_answers_in_iptables_mode_only(tmp_path):
    ipt = load_cluster(RULES / "services" / "every-service-type.yaml")
    nft = load_cluster(_as_nftables(RULES / "services" / "every-service-type.yaml", tmp_path))
    bridge = "10.1.10.1"            # node1's cbr0: a local address, not the primary one
    arrived = [e for e in _nodeport_ends(ipt, bridge) if e.kind == "arrived"]
    assert arrived and all(e.packet.dport == 8080 for e in arrived)
    assert not any(e.kind == "arrived" and e.packet.dport == 8080 for e in _nodeport_ends(nft, bridge))
    # on the primary address both modes answer
    for cluster in (ipt, nft):
        assert any(e.kind == "arrived" and e.packet.dport == 8080 for e in _nodeport_ends(cluster, "192.168.1.10"))


def test_a_numgen_modulus_that_skips_an_endpoint_is_a_violation(tmp_path, capsys):
    path = _as_nftables(RULES / "seed" / "cluster-iptables.yaml", tmp_path)
    cluster = load_cluster(path)
    gen = generate_node(cluster, cluster.node("node1"))
    lines = gen.nft.splitlines()
    picks = [i for i, line in enumerate(lines) if "default/http-svc/tcp/http" in line and "numgen random mod 2" in line]
    assert len(picks) == 1
    # a stale ruleset: one endpoint's bucket dropped from the vmap, the modulus left at 2
    head, _sep, _tail = lines[picks[0]].partition(" , ")
    lines[picks[0]] = head + " }"
    folder = tmp_path / "node1"
    folder.mkdir()
    (folder / "nft").write_text("\n".join(lines) + "\n")
    text = path.read_text().replace("{name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24, bridge: cbr0}",
                                    "{name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24, bridge: cbr0, "
                                    "nft: node1/nft}")
    assert text != path.read_text()
    path.write_text(text)
    status, doc = _verify(path, capsys)
    assert status == 1
    failing = {i["name"]: i["violations"] for i in doc["invariants"] if not i["holds"]}
    assert set(failing) == {"service-reachability"}
    assert all("http-svc" in v["message"] for v in failing["service-reachability"])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(data=st.data())
def test_a_skewed_numgen_drawn_in_nftables_mode_breaks_service_reachability(data):
    cluster = data.draw(strategies.faulty_clusters(faults="non-uniform-probabilities", proxy_modes=("nftables",)))
    assert cluster.proxy_mode == "nftables" and "numgen" in cluster.fault.detail
    planted = [n for n in cluster.nodes if n.dump_text("nft")]
    assert len(planted) == 1 and "numgen random mod 4" in planted[0].dump_text("nft")
    report = verify(cluster)
    broken = {r.name for r in report.results if not r.holds}
    assert broken == {"service-reachability"}, [v.message for v in report.violations[:3]]
    assert any("not the uniform" in v.message for v in report.violations)
