"""A real cluster as kubectl prints it, plus per-node dumps: the same verification as the YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pktverify.cli import main
from pktverify.load.cluster_kubectl import load_kubectl_cluster
from pktverify.model.addresses import format_ip

RULES = Path(__file__).resolve().parents[2] / "rules"


def _node(name, ip, cidr):
    return {"kind": "Node", "metadata": {"name": name}, "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}}


def _pod(name, node, ip, labels, port=8080, ready=True, host_network=False):
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"nodeName": node, "hostNetwork": host_network,
                     "containers": [{"name": "c", "ports": [{"containerPort": port, "name": "http"}]}]},
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def kubectl_dump(tmp_path: Path) -> Path:
    """kubectl JSON for the seed cluster (iptables mode) and its nodes' dumps from `pktverify generate`."""
    assert main(["generate", str(RULES / "seed" / "cluster-iptables.yaml"), "--out", str(tmp_path / "gen")]) == 0
    for node in ("node1", "node2", "node3"):
        (tmp_path / node).mkdir()
        for src, dst in (("iptables-save.txt", "iptables-save.txt"), ("ip-addr.json", "ip-addr.json"),
                         ("ip-route.json", "ip-route.json")):
            (tmp_path / node / dst).write_text((tmp_path / "gen" / node / src).read_text())
    items = [
        _node("node1", "192.168.1.10", "10.1.10.0/24"), _node("node2", "192.168.1.20", "10.1.20.0/24"),
        _node("node3", "192.168.1.30", "10.1.30.0/24"),
        _pod("web-1", "node1", "10.1.10.5", {"app": "web"}), _pod("web-2", "node2", "10.1.20.5", {"app": "web"}),
        _pod("backend-1", "node3", "10.1.30.7", {"app": "default-http-backend"}),
        _pod("apiserver-proxy", "node1", "10.1.10.9", {"app": "apiserver"}, port=6443),
        _pod("kube-proxy-x", "node2", "192.168.1.20", {"k8s-app": "kube-proxy"}, host_network=True),
        {"kind": "Service", "metadata": {"name": "http-svc", "namespace": "default"},
         "spec": {"clusterIP": "10.152.183.164", "selector": {"app": "web"},
                  "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}},
        {"kind": "Service", "metadata": {"name": "default-http-backend", "namespace": "default"},
         "spec": {"clusterIP": "10.152.183.69", "selector": {"app": "default-http-backend"},
                  "ports": [{"name": "", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}},
        {"kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default"},
         "spec": {"clusterIP": "10.152.183.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]}},
        {"kind": "Service", "metadata": {"name": "headless", "namespace": "default"},
         "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}},
        {"kind": "EndpointSlice", "metadata": {"name": "http-svc-abc", "namespace": "default",
                                               "labels": {"kubernetes.io/service-name": "http-svc"}},
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
         "endpoints": [{"addresses": ["10.1.10.5"], "conditions": {"ready": True},
                        "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"}},
                       {"addresses": ["10.1.20.5"], "conditions": {"ready": True},
                        "targetRef": {"kind": "Pod", "name": "web-2", "namespace": "default"}}]},
        {"kind": "EndpointSlice", "metadata": {"name": "kubernetes", "namespace": "default",
                                               "labels": {"kubernetes.io/service-name": "kubernetes"}},
         "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
         "endpoints": [{"addresses": ["10.1.10.9"], "conditions": {"ready": True},
                        "targetRef": {"kind": "Pod", "name": "apiserver-proxy", "namespace": "default"}}]},
    ]
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2))
    return path


def test_kubectl_cluster_reads_like_the_yaml(tmp_path):
    cluster = load_kubectl_cluster(kubectl_dump(tmp_path), cluster_cidr="10.1.0.0/16", service_cidr="10.152.183.0/24")
    assert [n.name for n in cluster.nodes] == ["node1", "node2", "node3"]
    assert all(n.prefixlen == 24 and n.bridge == "cbr0" and n.iptables for n in cluster.nodes)
    assert "kube-proxy-x" not in {p.name for p in cluster.pods}          # host network: the node itself
    svc = {s.name: s for s in cluster.services}
    assert "headless" not in svc
    assert [p.target_port for p in svc["http-svc"].ports] == [8080]      # the named port, resolved by the slice
    assert [ep for ep, _ip in cluster.endpoints_of(svc["http-svc"])] == ["default/web-1", "default/web-2"]


def test_kubectl_cluster_verifies_clean(tmp_path, capsys):
    path = kubectl_dump(tmp_path)
    assert main(["verify", str(path), "--cluster-cidr", "10.1.0.0/16", "--service-cidr", "10.152.183.0/24"]) == 0
    assert "FAILS" not in capsys.readouterr().out


def test_kubectl_input_needs_the_networks(tmp_path, capsys):
    path = kubectl_dump(tmp_path)
    assert main(["verify", str(path)]) == 2
    assert "--cluster-cidr" in capsys.readouterr().err


@pytest.mark.parametrize("removed", [["ip-route.json"], ["iptables-save.txt"], ["ip-addr.json", "ip-route.json"],
                                     ["iptables-save.txt", "ip-addr.json", "ip-route.json"]])
def test_a_node_folder_may_hold_any_subset_of_its_dumps(tmp_path, capsys, removed):
    """What a node folder holds is used, the rest generated, and the notes say which."""
    path = kubectl_dump(tmp_path)
    for name in removed:
        (tmp_path / "node3" / name).unlink()
    code = main(["verify", str(path), "--cluster-cidr", "10.1.0.0/16", "--service-cidr", "10.152.183.0/24",
                 "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc
    notes = [n for inv in doc["invariants"] for n in inv["notes"] if n.startswith("node node3:")]
    kinds = {"ip-route.json": "routes", "iptables-save.txt": "iptables", "ip-addr.json": "addrs"}
    assert len(notes) == 1 and all(kinds[name] in notes[0] for name in removed), notes
    assert ("node network taken as /" in notes[0]) == ("ip-addr.json" in removed)


def test_kubectl_cluster_reads_every_service_type(tmp_path, capsys):
    """NodePort, LoadBalancer (ingress IPs, source ranges), external IPs, traffic policies and
    affinity come from the Service objects; ExternalName and hostname-only ingresses are notes."""
    from pktverify.load.cluster_kubectl import load_kubectl_cluster
    path = kubectl_dump(tmp_path)
    doc = json.loads(path.read_text())
    svc = next(i for i in doc["items"] if i["kind"] == "Service")
    svc["spec"].update({"type": "LoadBalancer", "externalIPs": ["192.0.2.50"], "externalTrafficPolicy": "Local",
                        "internalTrafficPolicy": "Local", "sessionAffinity": "ClientIP",
                        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
                        "loadBalancerSourceRanges": ["203.0.113.0/24"]})
    for p in svc["spec"]["ports"]:
        p["nodePort"] = 31000 + p["port"] % 700
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}, {"hostname": "lb.example.com"}]}}
    doc["items"].append({"kind": "Service", "metadata": {"name": "alias", "namespace": "default"},
                         "spec": {"type": "ExternalName", "externalName": "db.example.com"}})
    path.write_text(json.dumps(doc))
    cluster = load_kubectl_cluster(path, cluster_cidr="10.1.0.0/16", service_cidr="10.152.183.0/24")
    got = next(s for s in cluster.services if s.name == svc["metadata"]["name"])
    assert (got.type, got.external_policy, got.internal_policy, got.affinity_timeout) == ("LoadBalancer", "Local",
                                                                                          "Local", 600)
    assert [format_ip(ip) for ip in got.external_ips + got.lb_ips] == ["192.0.2.50", "198.51.100.7"]
    assert [p.node_port for p in got.ports] == [p["nodePort"] for p in svc["spec"]["ports"]]
    notes = " | ".join(cluster.extras["notes"])
    assert "default/alias is of type ExternalName" in notes and "lb.example.com has a hostname only" in notes


def test_ipv6_and_unmodelled_objects_are_notes_not_errors(tmp_path, capsys):
    path = kubectl_dump(tmp_path)
    doc = json.loads(path.read_text())
    pod = _pod("v6-only", "node2", "fd00::5", {"app": "v6"})
    dual = _pod("dual", "node3", "fd00::7", {"app": "dual"})
    dual["status"]["podIPs"] = [{"ip": "fd00::7"}, {"ip": "10.1.30.9"}]
    doc["items"] += [pod, dual,
                     {"kind": "Service", "metadata": {"name": "v6svc", "namespace": "default"},
                      "spec": {"clusterIP": "fd00::10", "clusterIPs": ["fd00::10"], "ports": [{"port": 80}]}},
                     {"kind": "NetworkPolicy", "metadata": {"name": "deny", "namespace": "default"}, "spec": {}}]
    path.write_text(json.dumps(doc))
    cluster = load_kubectl_cluster(path, cluster_cidr="10.1.0.0/16", service_cidr="10.152.183.0/24")
    assert "default/dual" in cluster.pods_by_key and "default/v6-only" not in cluster.pods_by_key
    assert main(["verify", str(path), "--cluster-cidr", "10.1.0.0/16", "--service-cidr", "10.152.183.0/24",
                 "--format", "json"]) == 0
    notes = json.loads(capsys.readouterr().out)["invariants"][0]["notes"]
    assert any("v6-only" in n and "IPv6" in n for n in notes)
    assert any("v6svc" in n for n in notes) and any("headless" in n for n in notes)
    assert any("NetworkPolicy" in n for n in notes)
