"""pktverify verify: the seed clusters hold, each broken cluster fails exactly what it names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pktverify.cli import main
from pktverify.eval.cluster_walk import ClusterWalker
from pktverify.load.cluster_nodes import cluster_nodes
from pktverify.model.addresses import format_ip, parse_ip
from pktverify.model.packet import Packet
from pktverify.parse.cluster_yaml import load_cluster, parse_cluster

RULES = Path(__file__).resolve().parents[2] / "rules"

BROKEN = {
    "docker-default-nat.yaml": {"pod-ip-uniqueness", "no-nat", "routing"},
    "docker-default-iptables.yaml": {"pod-ip-uniqueness", "no-nat", "service-reachability", "routing"},
    "clusterip-in-pod-cidr.yaml": {"pod-ip-uniqueness"},
    "overlapping-pod-cidrs.yaml": {"pod-ip-uniqueness", "no-nat"},     # web-1 ARPs for web-2 (on-link)
    "stale-endpoint.yaml": {"service-reachability"},
    "missing-route/cluster.yaml": {"routing"},
    "masquerade-pod-to-pod/cluster.yaml": {"no-nat"},
    "hairpin-without-masquerade/cluster.yaml": {"service-reachability"},
    "non-uniform-probabilities/cluster.yaml": {"service-reachability"},
    "nodeport-collision.yaml": {"pod-ip-uniqueness", "service-reachability"},
    "etp-local-node-without-endpoints.yaml": {"service-reachability"},
    "session-affinity-broken.yaml": {"service-reachability"},
}


def verify_json(path: Path, capsys) -> tuple[int, dict]:
    status = main(["verify", "--format", "json", str(path)])
    return status, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-iptables.yaml"])
def test_seed_cluster_verifies_clean(name, capsys):
    status, out = verify_json(RULES / "seed" / name, capsys)
    assert status == 0
    assert [i["name"] for i in out["invariants"]] == ["pod-ip-uniqueness", "no-nat", "service-reachability", "routing"]
    assert all(i["holds"] and i["checked"] > 0 for i in out["invariants"]), out


def test_every_broken_example_is_tested():
    shipped = {str(p.relative_to(RULES / "broken")) for p in (RULES / "broken").rglob("*.yaml")}
    assert shipped == set(BROKEN)


@pytest.mark.parametrize("name,failing", sorted(BROKEN.items()))
def test_broken_cluster_fails_exactly_what_it_names(name, failing, capsys):
    status, out = verify_json(RULES / "broken" / name, capsys)
    assert status == 1
    assert {i["name"] for i in out["invariants"] if not i["holds"]} == failing
    for inv in out["invariants"]:
        for v in inv["violations"]:
            assert v["message"] and set(v) == {"message", "flow", "path", "hops"}
            if inv["name"] != "pod-ip-uniqueness":
                assert v["flow"] and v["path"], v      # a concrete counterexample with its hops


def test_text_output_is_a_table_then_paths(capsys):
    assert main(["verify", str(RULES / "broken" / "stale-endpoint.yaml")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["invariant", "result", "flows", "checked", "violating", "flows"]
    assert out[4].split()[:2] == ["service-reachability", "FAILS"]
    assert any("blackhole" in line and "10.1.20.99" in line for line in out)
    assert any(line.startswith("      pod:default/") for line in out)
    # root causes first: one line per cause, biggest first, before the examples
    assert out[7].endswith("cause(s), biggest first:") and out[8].startswith("  1. ")


def test_userspace_proxy_backend_sees_the_node_address():
    cluster = load_cluster(RULES / "seed" / "cluster.yaml")
    walker = ClusterWalker(cluster, cluster_nodes(cluster))
    client = next(p for p in cluster.pods if p.name == "web-1")
    ends = walker.walk(walker.pod_endpoint(client), Packet(6, client.ip, parse_ip("10.152.183.164"), 40000, 80))
    arrived = {e.at.name: format_ip(e.packet.src) for e in ends if e.kind == "arrived"}
    # Two endpoints, each with p=1/2: web-1 on the same node sees the bridge address,
    # web-2 on node2 sees node1's address — the proxy's own connection, not the client's.
    assert arrived == {"default/web-1": "10.1.10.1", "default/web-2": "192.168.1.10"}
    assert sorted(e.probability for e in ends) == [0.5, 0.5]
    for end in ends:
        (back,) = walker.reply(end, walker.pod_endpoint(client))
        assert (format_ip(back.packet.src), back.packet.sport) == ("10.152.183.164", 80)


def test_routing_loop_is_detected(tmp_path):
    # node1 sends 10.1.30.0/24 to node2 and node2 sends it back: a loop, not an answer.
    seed = RULES / "seed" / "cluster-iptables.yaml"
    assert main(["generate", str(seed), "--out", str(tmp_path / "gen")]) == 0
    for node, via in (("node1", "192.168.1.20"), ("node2", "192.168.1.10")):
        (tmp_path / node).mkdir()
        for f in ("iptables-save.txt", "ip-addr.json"):
            (tmp_path / node / f).write_text((tmp_path / "gen" / node / f).read_text())
        routes = json.loads((tmp_path / "gen" / node / "ip-route.json").read_text())
        for r in routes:
            if r["dst"] == "10.1.30.0/24":
                r["gateway"] = via
        (tmp_path / node / "ip-route.json").write_text(json.dumps(routes))
    yaml_text = seed.read_text()
    for node in ("node1", "node2"):
        yaml_text = yaml_text.replace(f"{{name: {node}, ip:", f"{{iptables: {node}/iptables-save.txt, addrs: "
                                      f"{node}/ip-addr.json, routes: {node}/ip-route.json, name: {node}, ip:")
    (tmp_path / "cluster.yaml").write_text(yaml_text)
    cluster = load_cluster(tmp_path / "cluster.yaml")
    assert cluster.node("node1").iptables and cluster.node("node2").routes
    walker = ClusterWalker(cluster, cluster_nodes(cluster))
    pod = next(p for p in cluster.pods if p.name == "web-1")
    ends = walker.walk(walker.pod_endpoint(pod), Packet(6, pod.ip, parse_ip("10.1.30.7"), 40000, 8080))
    assert [e.kind for e in ends] == ["loop"], ends
    # (from node1 itself the kernel cuts the loop earlier: its own address coming back is a martian)
    node = walker.node_endpoint(cluster.node("node1"))
    ends = walker.walk(node, Packet(6, parse_ip("192.168.1.10"), parse_ip("10.1.30.1"), 40000, 80))
    assert [e.kind for e in ends] == ["drop"] and "martian source" in ends[0].reason
    assert main(["verify", str(tmp_path / "cluster.yaml")]) == 1


@pytest.mark.parametrize("text,line,fragment", [
    ("cluster: {cidr: 10.1.0.0/16, service_cidr: 10.152.183.0/24}\nnodes:\n  - {name: n1, ip: 192.168.1.300/24,"
     " pod_cidr: 10.1.10.0/24}\n", 3, "out of range"),
    ("cluster: {cidr: 10.1.0.0/16, service_cidr: 10.152.183.0/24}\nnodes:\n  - {name: n1, ip: 192.168.1.3/24,"
     " pod_cidr: 10.1.10.0/24, brigde: cbr0}\n", 3, "unknown key 'brigde'"),
    ("cluster: {cidr: 10.1.0.1/16, service_cidr: 10.152.183.0/24}\nnodes: []\n", 1, "host bits"),
    ("cluster: {cidr: 10.1.0.0/16}\nnodes: []\n", 1, "missing required key 'service_cidr'"),
    ("cluster: {cidr: 10.1.0.0/16, service_cidr: 10.152.183.0/24, proxy_mode: ipvs}\nnodes: []\n", 1, "proxy_mode"),
    ("cluster: {cidr: 10.1.0.0/16, service_cidr: 10.152.183.0/24}\nnodes: []\npods:\n  - {name: a, node: nope,"
     " ip: 10.1.1.1}\n", 4, "not described"),
    ("cluster: [oops\n", 2, "invalid YAML"),
])
def test_bad_cluster_yaml_names_file_and_line(tmp_path, capsys, text, line, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert main(["verify", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"pktverify: {path}:{line}: ") and fragment in err[0], err


def test_generated_dumps_parse_back_and_match_the_seed_notes(tmp_path):
    assert main(["generate", str(RULES / "seed" / "cluster.yaml"), "--out", str(tmp_path)]) == 0
    routes = json.loads((tmp_path / "node1" / "ip-route.json").read_text())     # as `ip -j route` prints it
    assert {"dst": "10.1.20.0/24", "gateway": "192.168.1.20", "dev": "eth0", "flags": []} in routes
    assert {"dst": "10.1.30.0/24", "gateway": "192.168.1.30", "dev": "eth0", "flags": []} in routes
    rules = (tmp_path / "node1" / "iptables-save.txt").read_text()
    assert "-A KUBE-PORTALS-CONTAINER -d 10.152.183.164/32 -p tcp" in rules
    assert "-j DNAT --to-destination 192.168.1.10:" in rules
    cluster = parse_cluster((RULES / "seed" / "cluster.yaml").read_text())
    assert set(cluster_nodes(cluster)) == {"node1", "node2", "node3"}


def test_clusterip_leaving_a_node_un_dnated_is_a_violation(tmp_path, capsys):
    # node1 has no kube-proxy rules at all: its pods' ClusterIP traffic follows the default route.
    assert main(["generate", str(RULES / "seed" / "cluster-iptables.yaml"), "--out", str(tmp_path)]) == 0
    (tmp_path / "node1" / "iptables-save.txt").write_text("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
    text = (RULES / "seed" / "cluster-iptables.yaml").read_text().replace(
        "{name: node1, ip:", "{iptables: node1/iptables-save.txt, addrs: node1/ip-addr.json, "
                            "routes: node1/ip-route.json, name: node1, ip:")
    (tmp_path / "cluster.yaml").write_text(text)
    status, out = verify_json(tmp_path / "cluster.yaml", capsys)
    assert status == 1
    service = next(i for i in out["invariants"] if i["name"] == "service-reachability")
    assert any("10.152.183.164) left node1 un-DNATed" in v["message"] for v in service["violations"])


def _seed_with_node1_rule(folder: Path, rule: str) -> Path:
    """The iptables-mode seed cluster whose node1 has real dumps with ``rule`` first in filter FORWARD."""
    seed = RULES / "seed" / "cluster-iptables.yaml"
    assert main(["generate", str(seed), "--out", str(folder)]) == 0
    dump = folder / "node1" / "iptables-save.txt"
    dump.write_text(dump.read_text().replace(":FORWARD ACCEPT [0:0]\n", f":FORWARD ACCEPT [0:0]\n{rule}\n", 1))
    text = seed.read_text().replace("{name: node1, ip:", "{iptables: node1/iptables-save.txt, addrs: node1/ip-addr.json, "
                                                         "routes: node1/ip-route.json, name: node1, ip:")
    (folder / "cluster.yaml").write_text(text)
    return folder / "cluster.yaml"


def test_same_node_pod_traffic_is_bridged_in_the_cluster_walk(tmp_path):
    # br_netfilter: a pod's packet enters through a bridge port; one for a pod behind the same
    # bridge is bridged (--physdev-is-bridged), one for another node is routed.
    cluster = load_cluster(_seed_with_node1_rule(tmp_path, "-A FORWARD -m physdev --physdev-is-bridged -j DROP"))
    walker = ClusterWalker(cluster, cluster_nodes(cluster))
    web1, proxy, web2 = (cluster.pods_by_key[k] for k in ("default/web-1", "default/apiserver-proxy", "default/web-2"))
    same = walker.walk(walker.pod_endpoint(web1), Packet(6, web1.ip, proxy.ip, 40000, 6443))
    other = walker.walk(walker.pod_endpoint(web1), Packet(6, web1.ip, web2.ip, 40000, 8080))
    assert [e.kind for e in same] == ["drop"] and "filter/FORWARD #1" in " ".join(h.note for h in same[0].hops)
    assert [e.kind for e in other] == ["arrived"] and all(e.exact for e in other)


def test_bridged_pods_keep_their_ttl_and_routed_ones_lose_one(tmp_path):
    # br_netfilter bridges a frame between two ports of one bridge (no routing, no TTL decrement),
    # also after a DNAT to a pod behind the same bridge; a packet for another node is routed.
    cluster = load_cluster(_seed_with_node1_rule(tmp_path, "-A FORWARD -m comment --comment nothing"))
    walker = ClusterWalker(cluster, cluster_nodes(cluster))
    web1, proxy, web2 = (cluster.pods_by_key[k] for k in ("default/web-1", "default/apiserver-proxy", "default/web-2"))
    [same] = walker.walk(walker.pod_endpoint(web1), Packet(6, web1.ip, proxy.ip, 40000, 6443, ttl=64))
    [other] = walker.walk(walker.pod_endpoint(web1), Packet(6, web1.ip, web2.ip, 40000, 8080, ttl=64))
    assert same.kind == "arrived" and same.packet.ttl == 64
    assert other.kind == "arrived" and other.packet.ttl < 64


def test_verify_at_decides_time_rules(tmp_path, capsys):
    path = _seed_with_node1_rule(tmp_path, "-A FORWARD -m time --timestart 08:00 --timestop 18:00 -j DROP")
    capsys.readouterr()
    assert main(["verify", str(path), "--at", "2026-11-27T20:00", "--jobs", "1"]) == 0
    assert main(["verify", str(path), "--at", "2026-11-27T09:00", "--jobs", "1"]) == 1


def test_two_endpoints_with_one_address_are_two_endpoints():
    # docker's default bridge on every node: web-1 and web-2 are both 172.17.0.2; each client
    # lands on the one behind its own node, so the other endpoint is never reached.
    from pktverify import verify
    report = verify(load_cluster(RULES / "broken" / "docker-default-iptables.yaml"),
                    invariants=["service-reachability"])
    messages = sorted(v.message for v in report.violations)
    assert messages and all("has the same address, and this client's packets go there" in m for m in messages)
    assert any("from node node1 never reaches endpoint default/web-2" in m for m in messages)
    assert any("from node node2 never reaches endpoint default/web-1" in m for m in messages)
