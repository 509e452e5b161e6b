"""A real cluster as a user collects it: no false alarms, unmodelled dataplanes refused in one line.

``tests/corpus/realcluster`` holds ``kubectl get nodes,pods,services,endpointslices -A -o json`` of
a three-node cluster as kubectl writes it (managedFields, hostNetwork pods, Completed Job pods, a
Failed pod whose IP a Running pod now holds) and each node's dumps as ``scripts/collect-node``
writes them (kubelet's canary and firewall chains, kube-proxy's iptables mode). The tests copy it,
change one thing, and check what pktverify says.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from pktverify.cli import main
from pktverify.errors import InputError, InvalidArgument
from pktverify.load.cluster_kubectl import load_kubectl_cluster
from pktverify.model.addresses import format_network, parse_network
from pktverify.parse.cluster_yaml import load_cluster
from pktverify.parse.dataplane import detect_dataplane
from pktverify.parse.iproute import parse_routes

HERE = Path(__file__).resolve().parents[1]
FIXTURE = HERE / "corpus" / "realcluster"
REALWORLD = HERE / "corpus" / "realworld"
NETS = ["--cluster-cidr", "10.244.0.0/16", "--service-cidr", "10.96.0.0/12"]
NODES = ("cp-1", "worker-1", "worker-2")


@pytest.fixture()
def cluster(tmp_path) -> Path:
    """A copy of the realistic cluster: its cluster.json (node folders beside it)."""
    folder = tmp_path / "cluster"
    shutil.copytree(FIXTURE, folder, ignore=shutil.ignore_patterns("*.py", "*.yaml", "__pycache__"))
    return folder / "cluster.json"


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _verify_json(capsys, path: Path, *extra) -> tuple[int, dict, str]:
    code, out, err = _run(capsys, "verify", str(path), *NETS, "--format", "json", "--jobs", "1", *extra)
    return code, (json.loads(out) if out else {}), err


def _notes(doc: dict) -> list[str]:
    return [n for inv in doc["invariants"] for n in inv["notes"]]


def _edit(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, indent=4))


def _item(doc: dict, kind: str, name: str) -> dict:
    return next(i for i in doc["items"] if i["kind"] == kind and i["metadata"]["name"] == name)


# -- the clean cluster --------------------------------------------------------------------------------------------

def test_the_realistic_cluster_verifies_clean(capsys):
    """The fixture as checked in (a Failed pod's old IP held by a Running pod, hostNetwork pods,
    kubelet's chains on every node): every invariant holds, exit 0."""
    code, doc, err = _verify_json(capsys, FIXTURE / "cluster.json")
    assert code == 0, (err, [v for inv in doc.get("invariants", []) for v in inv["violations"]][:3])
    assert all(inv["holds"] and not inv["violations"] for inv in doc["invariants"])
    assert not err, err                       # every node has its dumps: nothing to warn about
    assert "3 completed pod(s) (Succeeded/Failed) skipped: their IPs are released" in _notes(doc)


def test_the_fixture_is_what_kubectl_and_collect_node_write():
    """The fixture holds what makes real input hard: a test of the others means nothing without it."""
    doc = json.loads((FIXTURE / "cluster.json").read_text())
    pods = [i for i in doc["items"] if i["kind"] == "Pod"]
    phases = {p["status"]["phase"] for p in pods}
    assert {"Running", "Succeeded", "Failed"} <= phases
    running = {p["status"]["podIP"] for p in pods if p["status"]["phase"] == "Running"
               and not p["spec"].get("hostNetwork")}
    failed = [p["status"]["podIP"] for p in pods if p["status"]["phase"] == "Failed"]
    assert set(failed) & running, "a Failed pod's old IP must be held by a Running pod"
    node_ips = {a["address"] for n in doc["items"] if n["kind"] == "Node" for a in n["status"]["addresses"]
                if a["type"] == "InternalIP"}
    assert {p["status"]["podIP"] for p in pods if p["spec"].get("hostNetwork")} == node_ips
    assert all("managedFields" in i["metadata"] for i in doc["items"])
    assert any(i["kind"] == "Service" and i["spec"]["type"] == "NodePort" for i in doc["items"])
    for node in NODES:
        rules = (FIXTURE / node / "iptables-save.txt").read_text()
        for chain in ("KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY", "KUBE-IPTABLES-HINT", "KUBE-FIREWALL"):
            assert f":{chain} - [0:0]" in rules, (node, chain)
        assert {p.name for p in (FIXTURE / node).iterdir()} == {"iptables-save.txt", "ip-addr.json", "ip-route.json",
                                                                "ip-rule.json", "ipset-save.txt"}


@pytest.mark.kernel
def test_the_fixture_rules_load_into_the_kernel():
    """iptables-restore --test accepts every node's iptables-save (in a namespace of its own)."""
    if os.geteuid() != 0 or not shutil.which("iptables-restore") or not shutil.which("ip"):
        pytest.skip("needs root, ip and iptables-restore")
    ns = f"pvt-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"cannot make a network namespace: {made.stderr.strip()}")
    try:
        for node in NODES:
            run = subprocess.run(["ip", "netns", "exec", ns, "iptables-restore", "--test"],
                                 input=(FIXTURE / node / "iptables-save.txt").read_text(), capture_output=True,
                                 text=True)
            assert run.returncode == 0, (node, run.stderr)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


# -- completed pods -----------------------------------------------------------------------------------------------

def test_completed_pods_hold_no_address(cluster):
    c = load_kubectl_cluster(cluster, cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12")
    names = {p.name for p in c.pods}
    assert "api-0" in names and not names & {"report-28391700-hm5tz", "db-migrate-28391740-x7k2d"}
    api = next(s for s in c.services if s.name == "api")
    assert [key for key, _ip in c.endpoints_of(api)] == ["shop/api-0"]


def test_a_completed_pod_that_a_selector_matches_is_no_endpoint(cluster, capsys):
    """The Failed pod carries the api service's labels and its old IP is api-0's, and the service has
    no EndpointSlice (its selector picks the pods): still no violation, api-0 the only endpoint."""
    def change(doc):
        _item(doc, "Pod", "report-28391700-hm5tz")["metadata"]["labels"]["app"] = "api"
        doc["items"] = [i for i in doc["items"] if not (i["kind"] == "EndpointSlice"
                                                        and i["metadata"]["labels"].get("kubernetes.io/service-name")
                                                        == "api")]
    _edit(cluster, change)
    code, doc, err = _verify_json(capsys, cluster)
    assert code == 0, err
    c = load_kubectl_cluster(cluster, cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12")
    api = next(s for s in c.services if s.name == "api")
    assert [key for key, _ip in c.endpoints_of(api)] == ["shop/api-0"]


# -- dataplane detection ------------------------------------------------------------------------------------------

def _one_line_refusal(capsys, path: Path, *extra) -> str:
    code, out, err = _run(capsys, "verify", str(path), *NETS, *extra)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and not out, (code, err, out[:300])
    return lines[0]


def _add_interface(folder: Path, name: str, address: str | None = None) -> None:
    addrs = json.loads((folder / "ip-addr.json").read_text())
    info = [{"family": "inet", "local": address.split("/")[0], "prefixlen": int(address.split("/")[1]),
             "scope": "global", "label": name}] if address else []
    addrs.append({"ifindex": 90, "ifname": name, "flags": ["BROADCAST", "NOARP", "UP", "LOWER_UP"], "mtu": 1450,
                  "operstate": "UNKNOWN", "addr_info": info})
    (folder / "ip-addr.json").write_text(json.dumps(addrs))


def _ipvs_node(folder: Path) -> None:
    """kube-proxy's IPVS mode on a node: its rules and ipsets (the realworld corpus) and kube-ipvs0."""
    shutil.copy(REALWORLD / "kube-proxy-ipvs" / "iptables-save.txt", folder / "iptables-save.txt")
    shutil.copy(REALWORLD / "kube-proxy-ipvs" / "ipset-save.txt", folder / "ipset-save.txt")
    _add_interface(folder, "kube-ipvs0", "10.96.0.1/32")


def _flannel_vxlan_node(folder: Path, own: str, peers: dict[str, str]) -> None:
    """flannel's VXLAN backend on a node: its rules (the realworld corpus), flannel.1 and the
    onlink routes to the other nodes' pod CIDRs through it."""
    shutil.copy(REALWORLD / "flannel-vxlan" / "iptables-save.txt", folder / "iptables-save.txt")
    _add_interface(folder, "flannel.1", own)
    routes = [r for r in json.loads((folder / "ip-route.json").read_text())
              if r.get("gateway") is None or r["dst"] == "default"]
    routes += [{"dst": cidr, "gateway": cidr.split("/")[0], "dev": "flannel.1", "flags": ["onlink"]}
               for cidr in peers.values()]
    (folder / "ip-route.json").write_text(json.dumps(routes))


def test_an_ipvs_node_is_refused_in_one_line(cluster, capsys):
    _ipvs_node(cluster.parent / "worker-1")
    line = _one_line_refusal(capsys, cluster)
    assert line.startswith(f"pktverify: {cluster}: node worker-1 runs kube-proxy in IPVS mode (interface kube-ipvs0, "
                           "ipset KUBE-CLUSTER-IP, ipset KUBE-LOAD-BALANCER): not modelled yet; pktverify models the "
                           "userspace, iptables and nftables modes"), line


def test_ipvs_is_seen_in_the_rules_alone(cluster, capsys):
    """Without ip addr and ipset dumps, the rules matching KUBE-CLUSTER-IP show IPVS mode."""
    folder = cluster.parent / "worker-2"
    shutil.copy(REALWORLD / "kube-proxy-ipvs" / "iptables-save.txt", folder / "iptables-save.txt")
    (folder / "ipset-save.txt").unlink()
    line = _one_line_refusal(capsys, cluster)
    assert "node worker-2 runs kube-proxy in IPVS mode (rules matching set KUBE-CLUSTER-IP" in line, line


def test_a_flannel_vxlan_node_is_refused_in_one_line(cluster, capsys):
    _flannel_vxlan_node(cluster.parent / "worker-2", "10.244.2.0/32",
                        {"cp-1": "10.244.0.0/24", "worker-1": "10.244.1.0/24"})
    line = _one_line_refusal(capsys, cluster)
    assert line.startswith(f"pktverify: {cluster}: node worker-2 runs an overlay network (interface flannel.1, route "
                           "10.244.0.0/24 via 10.244.0.0 dev flannel.1 onlink, route 10.244.1.0/24 via 10.244.1.0 dev "
                           "flannel.1 onlink): not modelled yet; pktverify models pod traffic routed directly between "
                           "nodes"), line


@pytest.mark.parametrize("name, address, seen", [
    ("vxlan.calico", "10.244.1.192/32", "interface vxlan.calico"), ("tunl0", "10.244.1.1/32", "interface tunl0"),
    ("cilium_host", "10.244.1.7/32", "Cilium's eBPF dataplane (interface cilium_host"),
    ("wireguard.cali", None, "interface wireguard.cali"), ("wg0", None, "interface wg0")])
def test_overlay_interfaces_are_refused(cluster, capsys, name, address, seen):
    _add_interface(cluster.parent / "worker-1", name, address)
    line = _one_line_refusal(capsys, cluster)
    assert "node worker-1 runs" in line and seen in line and "not modelled yet" in line, line


def test_tunl0_without_an_address_is_no_overlay():
    """The kernel makes tunl0 whenever the ipip module is loaded: only an address says IP-in-IP is used."""
    from pktverify.model.node import IfAddr, Interface
    down = detect_dataplane(interfaces={"tunl0": Interface("tunl0", (), up=False)})
    used = detect_dataplane(interfaces={"tunl0": Interface("tunl0", (IfAddr(0x0AF40101, 32),))})
    assert not down.overlay and used.overlay == ("interface tunl0",)


def test_onlink_routes_via_a_node_are_direct_routing():
    """An onlink route whose gateway is a node's address is direct routing; via anything else, an overlay."""
    node = parse_network("172.18.0.4/32")[0]
    routes = parse_routes("10.244.2.0/24 via 172.18.0.4 dev eth0 onlink\n").routes
    assert not detect_dataplane(routes=routes, node_ips=[node]).overlay
    routes = parse_routes("10.244.2.0/24 via 10.244.2.0 dev eth0 onlink\n").routes
    assert detect_dataplane(routes=routes, node_ips=[node]).overlay == ("route 10.244.2.0/24 via 10.244.2.0 dev eth0 "
                                                                         "onlink",)


def test_pods_without_a_bridge_are_refused(cluster, capsys):
    """Calico wires each pod to the node by a point-to-point veth (cali*), no bridge holds an address."""
    folder = cluster.parent / "worker-1"
    addrs = [a for a in json.loads((folder / "ip-addr.json").read_text()) if a["ifname"] != "cni0"]
    (folder / "ip-addr.json").write_text(json.dumps(addrs))
    line = _one_line_refusal(capsys, cluster)
    assert line.startswith(f"pktverify: {cluster}: node worker-1 has pods but no bridge: no interface holds an "
                           "address in its pod CIDR 10.244.1.0/24 (interfaces: lo, veth"), line
    assert line.endswith("pods on point-to-point veths (Calico) are not modelled yet; pktverify models pods on a "
                         "bridge"), line


def test_a_node_without_pods_needs_no_bridge():
    """The bridge CNI makes cni0 with the node's first pod: a node without pods has none, and is fine."""
    from pktverify.load.kubectl_nodes import NodeInput, node_specs
    from pktverify.model.node import IfAddr, Interface
    eth0 = Interface("eth0", (IfAddr(parse_network("172.18.0.3/32")[0], 16),))
    node = NodeInput("worker-1", eth0.addresses[0].ip, parse_network("10.244.1.0/24"), interfaces={"eth0": eth0})
    assert node_specs([node], [], with_pods=set())[0].prefixlen == 16
    with pytest.raises(InputError, match="node worker-1 has pods but no bridge"):
        node_specs([node], [], with_pods={"worker-1"})


def _generated(tmp_path: Path, mode: str) -> Path:
    """pktverify generate of the fixture's equivalent cluster YAML in ``mode``."""
    text = (FIXTURE / "equivalent.yaml").read_text().replace("proxy_mode: iptables", f"proxy_mode: {mode}")
    (tmp_path / f"{mode}.yaml").write_text(text)
    assert main(["generate", str(tmp_path / f"{mode}.yaml"), "--out", str(tmp_path / mode)]) == 0
    return tmp_path / mode


def test_userspace_dumps_are_verified_in_userspace_mode(cluster, tmp_path, capsys):
    generated = _generated(tmp_path, "userspace")
    for node in NODES:
        shutil.copy(generated / node / "iptables-save.txt", cluster.parent / node / "iptables-save.txt")
    c = load_kubectl_cluster(cluster, cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12")
    assert c.proxy_mode == "userspace"
    assert load_kubectl_cluster(FIXTURE / "cluster.json", cluster_cidr="10.244.0.0/16",
                                service_cidr="10.96.0.0/12").proxy_mode == "iptables"
    code, _doc, err = _verify_json(capsys, cluster)
    assert code == 0, err


def test_userspace_proxy_ports_pktverify_does_not_pick_are_refused(cluster, tmp_path, capsys):
    """A real userspace kube-proxy listens on random ports; the model's proxies on the ones it picks:
    verifying would call every service through the other ports unreachable."""
    generated = _generated(tmp_path, "userspace")
    for node in NODES:
        shutil.copy(generated / node / "iptables-save.txt", cluster.parent / node / "iptables-save.txt")
    rules = cluster.parent / "worker-1" / "iptables-save.txt"
    text = rules.read_text()
    port = re.search(r"-A KUBE-PORTALS-CONTAINER .*--to-ports (\d+)", text).group(1)
    rules.write_text(text.replace(f"--to-ports {port}", "--to-ports 40999"))
    line = _one_line_refusal(capsys, cluster)
    assert line.startswith(f"pktverify: {cluster}: node worker-1 runs kube-proxy in userspace mode with proxy ports of "
                           "its own (40999 in KUBE-PORTALS-CONTAINER): not modelled yet"), line


def test_nodes_in_different_modes_are_refused_naming_them(cluster, tmp_path, capsys):
    generated = _generated(tmp_path, "userspace")
    shutil.copy(generated / "worker-2" / "iptables-save.txt", cluster.parent / "worker-2" / "iptables-save.txt")
    line = _one_line_refusal(capsys, cluster)
    assert line == (f"pktverify: {cluster}: the nodes run kube-proxy in different modes (iptables on cp-1, worker-1; "
                    "userspace on worker-2): pktverify verifies one mode per cluster"), line


def test_no_kube_proxy_rules_anywhere_is_refused(cluster, capsys):
    """nftables mode writes no iptables rules: pktverify cannot tell it from a cluster without kube-proxy."""
    for node in NODES:
        (cluster.parent / node / "iptables-save.txt").write_text("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]"
                                                                 "\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n")
    line = _one_line_refusal(capsys, cluster)
    assert "no kube-proxy rules found in the iptables-save of nodes cp-1, worker-1, worker-2" in line, line
    assert "nftables mode" in line


def test_one_node_without_kube_proxy_rules_is_verified_and_noted(cluster, capsys):
    (cluster.parent / "worker-2" / "iptables-save.txt").write_text("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT "
                                                                    "[0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n")
    code, doc, _err = _verify_json(capsys, cluster)
    assert code == 1                 # services from worker-2 fail: its kube-proxy is down
    assert any(n.startswith("node worker-2: no kube-proxy rules found") for n in _notes(doc))


def _yaml_with_dumps(tmp_path: Path, mode: str, dumps: dict[str, Path]) -> Path:
    """The fixture's equivalent YAML in ``mode``, node N taking its dumps from folder dumps[N]."""
    text = (FIXTURE / "equivalent.yaml").read_text().replace("proxy_mode: iptables", f"proxy_mode: {mode}")
    for node, folder in dumps.items():
        text = text.replace(f"{{name: {node}, ", f"{{name: {node}, iptables: {folder}/iptables-save.txt, addrs: "
                                                 f"{folder}/ip-addr.json, routes: {folder}/ip-route.json, ")
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return path


def _yaml_line(path: Path, node: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if f"name: {node}," in line)


def test_yaml_node_dumps_that_contradict_the_mode_are_refused(cluster, tmp_path, capsys):
    path = _yaml_with_dumps(tmp_path, "userspace", {"worker-1": cluster.parent / "worker-1"})
    code, _out, err = _run(capsys, "verify", str(path))
    assert code == 2 and err.startswith(f"pktverify: {path}:{_yaml_line(path, 'worker-1')}: node worker-1 runs "
                                        "kube-proxy in iptables mode (chain nat/KUBE-SERVICES"), err
    assert "but the cluster says proxy_mode: userspace" in err and len(err.splitlines()) == 1


def test_yaml_nodes_with_ipvs_or_flannel_dumps_are_refused(cluster, tmp_path, capsys):
    _ipvs_node(cluster.parent / "worker-1")
    path = _yaml_with_dumps(tmp_path, "iptables", {"worker-1": cluster.parent / "worker-1"})
    code, _out, err = _run(capsys, "verify", str(path))
    assert code == 2 and err.startswith(f"pktverify: {path}:{_yaml_line(path, 'worker-1')}: node worker-1 runs "
                                        "kube-proxy in IPVS mode"), err
    _flannel_vxlan_node(cluster.parent / "cp-1", "10.244.0.0/32", {"worker-1": "10.244.1.0/24"})
    path = _yaml_with_dumps(tmp_path, "iptables", {"cp-1": cluster.parent / "cp-1"})
    code, _out, err = _run(capsys, "verify", str(path))
    assert code == 2 and err.startswith(f"pktverify: {path}:{_yaml_line(path, 'cp-1')}: node cp-1 runs an overlay "
                                        "network (interface flannel.1"), err


def test_yaml_nodes_with_their_real_dumps_verify_clean(cluster, tmp_path, capsys):
    """The near miss: the fixture's own dumps agree with the YAML (iptables mode, direct routes)."""
    path = _yaml_with_dumps(tmp_path, "iptables", {n: cluster.parent / n for n in NODES})
    code, _out, err = _run(capsys, "verify", str(path))
    assert code == 0, err


# -- missing dumps ------------------------------------------------------------------------------------------------

def test_a_dumps_folder_that_does_not_exist_is_an_error(cluster, capsys):
    line = _one_line_refusal(capsys, cluster, "--dumps", str(cluster.parent / "nodse"))
    assert line.startswith(f"pktverify: --dumps {cluster.parent / 'nodse'} does not exist"), line


def test_a_folder_named_after_the_fqdn_is_said_and_not_silently_generated(cluster, capsys):
    folder = cluster.parent
    (folder / "worker-1").rename(folder / "worker-1.example.com")
    code, doc, err = _verify_json(capsys, cluster)
    warnings = [line for line in err.splitlines() if line.startswith("pktverify: warning: ")]
    assert any("worker-1.example.com holds node dumps but matches no node (did you mean worker-1?" in w
               for w in warnings), err
    assert any("1 of 3 nodes have no complete dumps" in w and "(worker-1)" in w for w in warnings), err
    assert any("did you mean worker-1?" in n for n in _notes(doc))
    code, _out, err = _run(capsys, "verify", str(cluster), *NETS, "--require-dumps")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--require-dumps: node worker-1 has no iptables-save.txt, ip-addr.json, ip-route.json" in err
    assert "worker-1.example.com matches no node" in err


def test_a_stray_folder_name_cannot_break_the_report_lines(cluster, capsys):
    (cluster.parent / "worker-1").rename(cluster.parent / "w1\nFAKE LINE")
    code, out, err = _run(capsys, "verify", str(cluster), *NETS)
    assert code == 0 and "\nFAKE LINE" not in out and "\nFAKE LINE" not in err, (out, err)
    assert "w1\\nFAKE LINE" in out and "w1\\nFAKE LINE" in err


def test_require_dumps_goes_with_lint_too(cluster, capsys):
    (cluster.parent / "worker-2" / "ip-route.json").unlink()
    rules = cluster.parent / "cp-1" / "iptables-save.txt"
    code, _out, err = _run(capsys, "lint", str(rules), "--cluster", str(cluster), "--node", "cp-1", *NETS,
                           "--require-dumps")
    assert code == 2 and "--require-dumps: node worker-2 has no ip-route.json" in err, err


def test_dump_paths_are_absolute(cluster, monkeypatch):
    """Dask workers read the dumps by path: a relative one breaks as soon as the working folder differs."""
    monkeypatch.chdir(cluster.parent.parent)
    c = load_kubectl_cluster(Path("cluster") / "cluster.json", cluster_cidr="10.244.0.0/16",
                             service_cidr="10.96.0.0/12")
    paths = [getattr(n, k) for n in c.nodes for k in ("iptables", "addrs", "routes", "ipsets", "rules")]
    assert all(p and os.path.isabs(p) for p in paths), paths
    c = load_kubectl_cluster(Path("cluster") / "cluster.json", cluster_cidr="10.244.0.0/16",
                             service_cidr="10.96.0.0/12", dumps="cluster")
    assert all(os.path.isabs(n.iptables) for n in c.nodes)


# -- nodes without spec.podCIDR -----------------------------------------------------------------------------------

def _drop_pod_cidr(path: Path, node: str) -> None:
    def change(doc):
        spec = _item(doc, "Node", node)["spec"]
        del spec["podCIDR"], spec["podCIDRs"]
    _edit(path, change)


def test_a_pod_cidr_missing_from_the_node_is_read_from_its_dumps(cluster, capsys):
    _drop_pod_cidr(cluster, "worker-1")
    code, doc, err = _verify_json(capsys, cluster)
    assert code == 0, err
    assert "node worker-1: no spec.podCIDR; pod CIDR 10.244.1.0/24 taken from its dumps (the connected route " \
           "10.244.1.0/24 dev cni0)" in _notes(doc)


def test_a_pod_cidr_from_an_address_or_an_ipam_block():
    from pktverify.load.kubectl_nodes import NodeInput, pod_cidr_from_dumps
    from pktverify.model.node import IfAddr, Interface
    cluster = parse_network("10.244.0.0/16")
    node = NodeInput("n", 1, None, interfaces={"cni0": Interface("cni0", (IfAddr(parse_network("10.244.3.1/32")[0],
                                                                                   24),))})
    cidr, how = pod_cidr_from_dumps(node, cluster)
    assert (format_network(*cidr), how) == ("10.244.3.0/24", "the address 10.244.3.1/24 on cni0")
    node = NodeInput("n", 1, None, routes=parse_routes("blackhole 10.244.3.64/26 proto bird\n"
                                                       "10.244.3.70 dev cali1234 scope link\n").routes)
    assert format_network(*pod_cidr_from_dumps(node, cluster)[0]) == "10.244.3.64/26"
    assert pod_cidr_from_dumps(NodeInput("n", 1, None, routes=parse_routes(
        "10.244.3.70 dev cali1234 scope link\n").routes), cluster) is None


def test_without_pod_cidr_and_dumps_the_error_says_both_ways_out(cluster, capsys):
    _drop_pod_cidr(cluster, "worker-2")
    shutil.rmtree(cluster.parent / "worker-2")
    line = _one_line_refusal(capsys, cluster)
    assert "node worker-2 has no spec.podCIDR" in line and "--pod-cidr worker-2=CIDR" in line \
        and "ip-addr.json" in line, line
    code, doc, err = _verify_json(capsys, cluster, "--pod-cidr", "worker-2=10.244.2.0/24")
    assert code == 0, err
    assert "node worker-2: no spec.podCIDR; pod CIDR 10.244.2.0/24 from --pod-cidr" in _notes(doc)


@pytest.mark.parametrize("value, message", [
    ("worker-9=10.244.2.0/24", "--pod-cidr worker-9=10.244.2.0/24: no node 'worker-9'"),
    ("worker-2=10.244.2.1/24", "must be a network in CIDR form without host bits (did you mean 10.244.2.0/24?)"),
    ("worker-2=10.244.2.0/33", "--pod-cidr worker-2=10.244.2.0/33:"),
    ("worker-2=10.244.9.0/24", "the Node object says spec.podCIDR 10.244.2.0/24")])
def test_pod_cidr_options_are_checked(cluster, capsys, value, message):
    code, _out, err = _run(capsys, "verify", str(cluster), *NETS, "--pod-cidr", value)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_pod_cidr_needs_node_and_cidr(cluster, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["verify", str(cluster), *NETS, "--pod-cidr", "worker-2"])
    assert exc.value.code == 2 and "give NODE=CIDR" in capsys.readouterr().err


# -- cluster YAML: the smaller things -----------------------------------------------------------------------------

def test_verify_of_a_folder_reads_its_cluster_yaml(tmp_path, capsys):
    shutil.copy(FIXTURE / "equivalent.yaml", tmp_path / "cluster.yaml")
    code, out, err = _run(capsys, "verify", str(tmp_path))
    assert code == 0 and "routing" in out, err
    (tmp_path / "cluster.yaml").unlink()
    code, _out, err = _run(capsys, "verify", str(tmp_path))
    assert code == 2 and err.strip() == f"pktverify: {tmp_path}: a folder without cluster.yaml or cluster.json, and " \
                                        "not a regular file: give the cluster file (YAML, or kubectl get nodes,pods," \
                                        "services,endpointslices -A -o json output)"


def test_verify_of_a_folder_reads_its_kubectl_list(cluster, capsys):
    """The collected layout: cluster.json beside the node folders."""
    code, _doc, err = _verify_json(capsys, cluster.parent)
    assert code == 0, err


def test_a_cluster_yaml_in_json_or_flow_style_is_yaml(tmp_path):
    import yaml
    doc = yaml.safe_load((FIXTURE / "equivalent.yaml").read_text())
    for name, text in (("json.yaml", json.dumps(doc)), ("flow.yaml", yaml.safe_dump(doc, default_flow_style=True))):
        (tmp_path / name).write_text(text)
        assert text.lstrip().startswith("{")
        c = load_cluster(tmp_path / name)
        assert [n.name for n in c.nodes] == list(NODES)
    from pktverify.load.cluster_kubectl import looks_like_kubectl
    assert looks_like_kubectl((FIXTURE / "cluster.json").read_text()[:4096])
    assert looks_like_kubectl('{"kind": "Node", "metadata": {"name": "x"}}')
    assert not looks_like_kubectl(json.dumps(doc))


def test_an_empty_node_list_is_refused(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("cluster: {cidr: 10.1.0.0/16, service_cidr: 10.2.0.0/16}\nnodes: []\n")
    code, _out, err = _run(capsys, "verify", str(path))
    assert code == 2 and err.startswith(f"pktverify: {path}:2: nodes is empty"), err


def test_whole_file_errors_have_no_line_zero(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    code, _out, err = _run(capsys, "verify", str(missing))
    assert code == 2 and err.strip() == f"pktverify: {missing}: cannot read file: No such file or directory", err
    assert str(InputError("f", 0, "whole file")) == "f: whole file"
    assert str(InputError("f", 3, "a line", "text")) == "f:3: a line: text"


def test_an_over_long_path_cannot_be_read_not_written(tmp_path, capsys):
    long = "a" * 5000
    code, _out, err = _run(capsys, "verify", str(tmp_path / long))
    assert code == 2 and "cannot read" in err and "cannot write" not in err, err[:200]
    path = tmp_path / "c.yaml"
    path.write_text(f"cluster: {{cidr: 10.1.0.0/16, service_cidr: 10.2.0.0/16}}\nnodes:\n  - {{name: n1, ip: "
                    f"192.168.1.10/24, pod_cidr: 10.1.1.0/24, iptables: {long}}}\n")
    code, _out, err = _run(capsys, "verify", str(path))
    assert code == 2 and err.startswith(f"pktverify: {path}:3: iptables file cannot be read (File name too long)"), \
        err[:200]


def test_a_bridge_missing_from_the_address_dump_names_the_yaml_line(tmp_path, capsys):
    shutil.copy(FIXTURE / "worker-1" / "ip-addr.json", tmp_path / "ip-addr.json")
    shutil.copy(FIXTURE / "worker-1" / "ip-route.json", tmp_path / "ip-route.json")
    path = tmp_path / "c.yaml"
    path.write_text("cluster: {cidr: 10.244.0.0/16, service_cidr: 10.96.0.0/12}\nnodes:\n"
                    "  - {name: n1, ip: 172.18.0.3/16, pod_cidr: 10.244.1.0/24, addrs: ip-addr.json, "
                    "routes: ip-route.json}\npods:\n  - {name: p, node: n1, ip: 10.244.1.5}\n")
    code, _out, err = _run(capsys, "verify", str(path))
    assert code == 2 and err.startswith(f"pktverify: {path}:3: node n1: bridge cbr0 is not in its address dump"), err
    assert "set bridge: cni0" in err


def test_invalid_argument_is_the_root_of_option_errors():
    """--dumps and --pod-cidr problems are InvalidArgument (exit 2, one line), not a traceback."""
    with pytest.raises(InvalidArgument):
        load_kubectl_cluster(FIXTURE / "cluster.json", cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12",
                             dumps=FIXTURE / "missing")
