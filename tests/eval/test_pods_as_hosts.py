"""Pods are hosts: each has eth0 with its address and prefix and routes (its subnet on-link,
default via the bridge address), so its own route lookup decides ARP on the bridge or the
gateway, and its kernel drops a packet whose source is its own address (a martian).

Each claim was checked in network namespaces first (a bridge with hairpin ports in a node
namespace, two pod namespaces; see pktverify.eval.pod_stack)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pktverify.cli import main
from pktverify.errors import InputError
from pktverify.eval.cluster_walk import ClusterWalker
from pktverify.eval.pod_stack import pod_stack
from pktverify.generate.node_state import generate_node
from pktverify.load.cluster_nodes import cluster_nodes
from pktverify.model.addresses import parse_ip
from pktverify.model.packet import Packet
from pktverify.parse.cluster_yaml import parse_cluster
from pktverify.report.cluster_yaml import cluster_to_yaml

RULES = Path(__file__).resolve().parents[2] / "rules"

HEAD = "cluster: {cidr: 10.1.0.0/16, service_cidr: 10.152.183.0/24, proxy_mode: iptables%s}\n"
WEB = "labels: {app: web}, containers: [{name: nginx, ports: [8080]}]"


def _walker(text: str, tmp_path: Path | None = None) -> ClusterWalker:
    cluster = parse_cluster(text, base=tmp_path)
    return ClusterWalker(cluster, cluster_nodes(cluster))


def _send(walker: ClusterWalker, src: str, dst: str, dport: int = 8080, ttl: int = 64):
    pod = walker.cluster.pods_by_key[src]
    return walker.walk(walker.pod_endpoint(pod), Packet(6, pod.ip, parse_ip(dst), 40000, dport, ttl=ttl))


def _replies(walker: ClusterWalker, src: str, ends) -> list:
    client = walker.pod_endpoint(walker.cluster.pods_by_key[src])
    return [r for e in ends if e.kind == "arrived" for r in walker.reply(e, client)]


# ------------------------------------------------------------------ on-link: ARP on the bridge
CLUSTERIP_IN_POD_CIDR = HEAD % "" + f"""nodes:
  - {{name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24}}
  - {{name: node2, ip: 192.168.1.20/24, pod_cidr: 10.1.20.0/24}}
pods:
  - {{name: web-1, node: node1, ip: 10.1.10.5, {WEB}}}
  - {{name: client, node: node2, ip: 10.1.20.7}}
  - {{name: client-1, node: node1, ip: 10.1.10.7}}
services:
  - {{name: web, cluster_ip: 10.1.20.200, selector: {{app: web}}, ports: [{{port: 80, target_port: 8080}}]}}
"""


def test_a_clusterip_inside_the_pod_subnet_is_unreachable_from_that_subnet():
    # client (10.1.20.7/24) ARPs for 10.1.20.200 on node2's bridge; nobody owns it (kube-proxy's
    # DNAT is in the node's PREROUTING, which the packet never reaches). node1's pod sends it to
    # its gateway and reaches web-1.
    walker = _walker(CLUSTERIP_IN_POD_CIDR)
    [end] = _send(walker, "default/client", "10.1.20.200", 80)
    assert end.kind == "drop" and end.reason.startswith("no ARP answer for 10.1.20.200 on cbr0 (node2)")
    assert [h.point for h in end.hops] == ["pod:default/client:eth0"]      # never left the pod
    [other] = _send(walker, "default/client-1", "10.1.20.200", 80)
    assert other.kind == "arrived" and other.at.name == "default/web-1"


def test_verify_reports_the_clusterip_in_the_pod_subnet_as_unreachable(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(CLUSTERIP_IN_POD_CIDR)
    assert main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "service-reachability  FAILS" in out
    assert "from pod default/client: drop (no ARP answer for 10.1.20.200 on cbr0 (node2)" in out


def test_overlapping_cidrs_the_other_nodes_pods_are_unreachable_and_replies_lost():
    walker = _walker((RULES / "broken" / "overlapping-pod-cidrs.yaml").read_text())
    # web-1 (10.1.10.5/24) has web-2's 10.1.10.130 on-link: its SYN never leaves the pod.
    [end] = _send(walker, "default/web-1", "10.1.10.130")
    assert end.kind == "drop" and "no ARP answer for 10.1.10.130 on cbr0 (node1)" in end.reason
    # web-2 (10.1.10.130/25) sends 10.1.10.5 to its gateway: it arrives, the reply is lost.
    [there] = _send(walker, "default/web-2", "10.1.10.5")
    assert there.kind == "arrived" and there.at.name == "default/web-1"
    [back] = walker.reply(there, walker.pod_endpoint(walker.cluster.pods_by_key["default/web-2"]))
    assert back.kind == "drop" and "no ARP answer for 10.1.10.130 on cbr0 (node1)" in back.reason
    # The nodes still reach both pods (the more specific route), and their replies come back.
    node1 = walker.node_endpoint(walker.cluster.node("node1"))
    [to_web2] = walker.walk(node1, Packet(6, parse_ip("192.168.1.10"), parse_ip("10.1.10.130"), 40000, 8080))
    assert to_web2.kind == "arrived" and [r.kind for r in walker.reply(to_web2, node1)] == ["arrived"]


def test_the_overlapping_example_names_what_fails(capsys):
    text = (RULES / "broken" / "overlapping-pod-cidrs.yaml").read_text()
    assert "# Fails: pod-ip-uniqueness, no-nat.\n" in text and "still delivers today" not in text
    assert main(["verify", str(RULES / "broken" / "overlapping-pod-cidrs.yaml")]) == 1
    out = capsys.readouterr().out
    assert "no-nat                FAILS              10                2" in out


def test_a_node_address_inside_the_subnet_answers_arp(tmp_path):
    # arp_ignore=0: the node answers ARP for any address of its own, on any interface (kernel-
    # checked with an address on the node's lo); the packet enters the node from the bridge.
    (tmp_path / "addrs.txt").write_text(
        "1: lo    inet 127.0.0.1/8 scope host lo\n1: lo    inet 10.1.10.77/32 scope host lo\n"
        "2: eth0    inet 192.168.1.10/24 brd 192.168.1.255 scope global eth0\n"
        "3: cbr0    inet 10.1.10.1/24 scope global cbr0\n")
    text = HEAD % "" + f"""nodes:
  - {{name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24, addrs: addrs.txt}}
pods:
  - {{name: web-1, node: node1, ip: 10.1.10.5, {WEB}}}
"""
    walker = _walker(text, tmp_path)
    [end] = _send(walker, "default/web-1", "10.1.10.77", 9000)
    assert end.kind == "arrived" and end.at.kind == "node" and end.at.name == "node1"
    assert end.hops[1].point == "node1:cbr0"
    [gateway] = _send(walker, "default/web-1", "10.1.10.1", 9000)
    assert gateway.kind == "arrived" and gateway.at.name == "node1"


# ------------------------------------------------------------------ outside the subnet: the gateway
OUTSIDE = HEAD % "" + f"""nodes:
  - {{name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24, iptables: rules.txt}}
pods:
  - {{name: web-1, node: node1, ip: 10.1.10.5, {WEB}}}
  - {{name: web-2, node: node1, ip: 10.1.10.6, {WEB}}}
  - {{name: stray, node: node1, ip: 10.1.99.5}}
"""
BRIDGED_DROP = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m physdev --physdev-is-bridged -j DROP
COMMIT
"""


def test_a_pod_outside_its_nodes_cidr_reaches_its_bridge_neighbours_through_the_gateway(tmp_path):
    # stray (10.1.99.5/24, default via 10.1.10.1 onlink) has web-1 off-link: it goes to the node,
    # which routes it back out cbr0 (FORWARD -i cbr0 -o cbr0, not bridged: TTL - 1). Kernel-checked:
    # the node's FORWARD counter for cbr0 -> cbr0 sees it, and the connection is made.
    (tmp_path / "rules.txt").write_text(BRIDGED_DROP)
    walker = _walker(OUTSIDE, tmp_path)
    [routed] = _send(walker, "default/stray", "10.1.10.5", ttl=64)
    assert routed.kind == "arrived" and routed.at.name == "default/web-1" and routed.packet.ttl == 63
    assert "via its gateway 10.1.10.1" in routed.hops[0].note
    # web-2 has web-1 on-link: the frame is bridged, and the bridged-frame DROP stops it.
    [bridged] = _send(walker, "default/web-2", "10.1.10.5", ttl=64)
    assert bridged.kind == "drop" and "filter/FORWARD #1" in " ".join(h.note for h in bridged.hops)
    stack = pod_stack(walker.cluster.node("node1"), walker.states["node1"], walker.cluster.pods_by_key["default/stray"])
    assert stack.route_lines() == ("default via 10.1.10.1 dev eth0 onlink",
                                   "10.1.99.0/24 dev eth0 proto kernel scope link src 10.1.99.5")


# ------------------------------------------------------------------ the receiving pod's kernel
def test_a_hairpinned_syn_from_the_pods_own_address_is_a_martian_in_the_pod():
    # hairpin without masquerade: web-1 -> ClusterIP -> DNAT to web-1 itself; the SYN arrives on
    # eth0 with web-1's own source and the pod's kernel drops it (kernel-checked: the pod's raw
    # PREROUTING sees it, its INPUT never does, in_martian_src counts it), so nothing answers.
    walker = _walker((RULES / "broken" / "hairpin-without-masquerade" / "cluster.yaml").read_text(),
                     RULES / "broken" / "hairpin-without-masquerade")
    ends = _send(walker, "default/web-1", "10.152.183.164", 80)
    itself = [e for e in ends if e.packet.dst == parse_ip("10.1.10.5")]
    assert [e.kind for e in itself] == ["drop"]
    assert itself[0].reason.startswith("martian source at pod default/web-1: 10.1.10.5 is its own address")
    assert itself[0].hops[-1].point == "pod:default/web-1:eth0"
    assert sorted(e.at.name for e in ends if e.kind == "arrived") == ["default/web-2", "default/web-3"]


def test_the_hairpin_example_says_the_pod_drops_the_syn(capsys):
    path = RULES / "broken" / "hairpin-without-masquerade" / "cluster.yaml"
    assert "martian" in path.read_text().split("cluster:")[0]
    assert main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "from pod default/web-1: drop (martian source at pod default/web-1" in out


def test_a_hairpin_with_masquerade_is_answered():
    # kube-proxy's own rules (-s ep -j KUBE-MARK-MASQ): the SYN arrives from the bridge address,
    # through the bridge port it left by (kubelet puts every pod port in hairpin mode).
    text = HEAD % "" + f"""nodes:
  - {{name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24}}
pods:
  - {{name: web-1, node: node1, ip: 10.1.10.5, {WEB}}}
services:
  - {{name: web, cluster_ip: 10.152.183.10, selector: {{app: web}}, ports: [{{port: 80, target_port: 8080}}]}}
"""
    walker = _walker(text)
    [end] = _send(walker, "default/web-1", "10.152.183.10", 80)
    assert end.kind == "arrived" and end.at.name == "default/web-1" and end.packet.src == parse_ip("10.1.10.1")
    [back] = _replies(walker, "default/web-1", [end])
    assert back.kind == "arrived" and back.packet.src == parse_ip("10.152.183.10")


# ------------------------------------------------------------------ pod_prefix
def test_pod_prefix_on_the_cluster_and_a_node_sets_what_pods_have_on_link(tmp_path):
    text = HEAD % ", pod_prefix: 16" + f"""nodes:
  - {{name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24}}
  - {{name: node2, ip: 192.168.1.20/24, pod_cidr: 10.1.20.0/24, pod_prefix: 24}}
pods:
  - {{name: web-1, node: node1, ip: 10.1.10.5, {WEB}}}
  - {{name: web-2, node: node2, ip: 10.1.20.5, {WEB}}}
"""
    walker = _walker(text)
    assert [n.pod_prefix for n in walker.cluster.nodes] == [16, 24]
    # web-1 carries 10.1.10.5/16: web-2 is on-link for it, and nobody on node1's bridge answers.
    [end] = _send(walker, "default/web-1", "10.1.20.5")
    assert end.kind == "drop" and "inside the pod subnet 10.1.0.0/16 (on-link)" in end.reason
    [other] = _send(walker, "default/web-2", "10.1.10.5")
    assert other.kind == "arrived"
    again = parse_cluster(cluster_to_yaml(walker.cluster))
    assert again == walker.cluster and [n.pod_prefix for n in again.nodes] == [16, 24]


@pytest.mark.parametrize("value,fragment", [("33", "pod_prefix must be a prefix length from 0 to 32, not 33"),
                                            ("'24'", "pod_prefix must be a int, not str"),
                                            ("true", "pod_prefix must be a int, not bool")])
def test_a_bad_pod_prefix_is_one_line_at_its_line(value, fragment):
    text = HEAD % "" + f"""nodes:
  - {{name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24,
     pod_prefix: {value}}}
"""
    with pytest.raises(InputError) as exc:
        parse_cluster(text, source="c.yaml")
    assert str(exc.value).startswith("c.yaml:4: ") and fragment in str(exc.value)


# ------------------------------------------------------------------ generated bridges
def test_a_bridge_named_docker0_is_generated_without_docker_mode(tmp_path, capsys):
    text = HEAD % "" + f"""nodes:
  - {{name: node1, ip: 192.168.1.10/24, pod_cidr: 172.17.0.0/16, bridge: docker0}}
  - {{name: node2, ip: 192.168.1.20/24, pod_cidr: 10.1.20.0/24}}
pods:
  - {{name: web-1, node: node1, ip: 172.17.0.2, {WEB}}}
  - {{name: web-2, node: node2, ip: 10.1.20.5, {WEB}}}
"""
    cluster = parse_cluster(text)
    made = generate_node(cluster, cluster.node("node1"))
    assert "docker0    inet 172.17.0.1/16" in made.addrs
    assert "172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1" in made.routes
    assert "-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE" not in made.iptables      # not docker mode
    walker = ClusterWalker(cluster, cluster_nodes(cluster))
    [end] = _send(walker, "default/web-2", "172.17.0.2")
    assert end.kind == "arrived" and end.at.name == "default/web-1"
    # docker mode still writes docker0 once.
    docker = parse_cluster(text.replace("bridge: docker0}", "bridge: docker0, docker: true}"))
    assert generate_node(docker, docker.node("node1")).addrs.count("docker0    inet") == 1


# ------------------------------------------------------------------ sysctls (sysctl.txt beside the dumps)
from pktverify.parse.sysctl import parse_sysctls  # noqa: E402

EMPTY_FILTER = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"


def _with_sysctls(tmp_path: Path, sysctls: str, rules: str = EMPTY_FILTER, *, pods: str = "", services: str = "",
                  addrs: bool = False) -> ClusterWalker:
    folder = tmp_path / "node1"
    folder.mkdir()
    (folder / "rules.txt").write_text(rules)
    (folder / "sysctl.txt").write_text(sysctls)
    if addrs:
        (folder / "addrs.txt").write_text(
            "1: lo    inet 127.0.0.1/8 scope host lo\n1: lo    inet 10.1.10.77/32 scope host lo\n"
            "2: eth0    inet 192.168.1.10/24 brd 192.168.1.255 scope global eth0\n"
            "3: cbr0    inet 10.1.10.1/24 scope global cbr0\n")
    text = HEAD % "" + f"""nodes:
  - {{name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24, iptables: node1/rules.txt{
        ', addrs: node1/addrs.txt' if addrs else ''}}}
  - {{name: node2, ip: 192.168.1.20/24, pod_cidr: 10.1.20.0/24}}
pods:
  - {{name: web-1, node: node1, ip: 10.1.10.5, {WEB}}}
  - {{name: web-2, node: node2, ip: 10.1.20.5, {WEB}}}
  - {{name: stray, node: node1, ip: 10.1.99.5}}
{pods}{services}"""
    return _walker(text, tmp_path)


def test_sysctl_txt_is_read_as_sysctl_a_writes_it():
    s = parse_sysctls("net.ipv4.conf.all.rp_filter = 1\nnet.ipv4.conf.eth0/100.rp_filter = 2\n"
                      "kernel.hostname = a b c\nnet.ipv4.conf.default.arp_ignore=1\n", source="s.txt")
    assert s.rp_filter("eth0.100") == 2 and s.rp_filter("cbr0") == 1
    assert s.arp_ignore("cbr0") == 1 and s.ip_forward and s.bridge_nf_call_iptables
    for bad, line in (("net.ipv4.ip_forward = 1\nnot a pair\n", 2), ("net.ipv4.conf.all.rp_filter = strict\n", 1)):
        with pytest.raises(InputError) as exc:
            parse_sysctls(bad, source="s.txt")
        assert str(exc.value).startswith(f"s.txt:{line}: ")


@pytest.mark.parametrize("mode,arrives", [(0, True), (1, False), (2, True)])
def test_the_nodes_rp_filter_applies_to_a_pod_outside_its_cidr(tmp_path, mode, arrives):
    # stray's source 10.1.99.5 is routed back by node1's default route (eth0), not cbr0: strict
    # rp_filter drops it, loose passes it (a route exists). Kernel-checked with the same routes.
    walker = _with_sysctls(tmp_path, f"net.ipv4.conf.all.rp_filter = {mode}\n")
    [end] = _send(walker, "default/stray", "10.1.10.5")
    assert (end.kind == "arrived") is arrives
    if not arrives:
        assert "reverse-path filter: the route back to 10.1.99.5 leaves by eth0, not cbr0 (rp_filter=1" in end.reason
    # web-1's own traffic passes in every mode.
    assert [e.kind for e in _send(walker, "default/web-1", "10.1.20.5")] == ["arrived"]


def test_loose_rp_filter_drops_a_source_with_no_route_back(tmp_path):
    walker = _with_sysctls(tmp_path, "net.ipv4.conf.cbr0.rp_filter = 2\n")
    assert walker.states["node1"].sysctls.rp_filter("cbr0") == 2
    # Take node1's default route away: 10.1.99.5 has no route back at all.
    from dataclasses import replace
    state = walker.states["node1"]
    nodes = dict(walker.states, node1=replace(state, routes=tuple(r for r in state.routes if r.mask != 0)))
    walker = ClusterWalker(walker.cluster, nodes)
    [end] = _send(walker, "default/stray", "10.1.10.5")
    assert end.kind == "drop" and "reverse-path filter: no route back to 10.1.99.5 (rp_filter=2 on cbr0 (loose))" \
        in end.reason


def test_ip_forward_0_refuses_what_the_node_would_forward(tmp_path):
    walker = _with_sysctls(tmp_path, "net.ipv4.ip_forward = 0\n")
    [end] = _send(walker, "default/web-1", "10.1.20.5")
    assert end.kind in ("reject", "drop") and "ip_forward=0" in end.reason
    [local] = _send(walker, "default/web-1", "192.168.1.10", 10250)       # delivered locally: no forwarding
    assert local.kind == "arrived"


def test_arp_ignore_1_answers_only_for_the_bridges_own_addresses(tmp_path):
    # Kernel-checked: with arp_ignore=1 an address on the node's lo is no longer answered on cbr0.
    walker = _with_sysctls(tmp_path, "net.ipv4.conf.all.arp_ignore = 1\n", addrs=True)
    [end] = _send(walker, "default/web-1", "10.1.10.77", 9000)
    assert end.kind == "drop" and end.reason.startswith("no ARP answer for 10.1.10.77 on cbr0")
    [bridge] = _send(walker, "default/web-1", "10.1.10.1", 9000)
    assert bridge.kind == "arrived"


def test_without_bridge_nf_call_iptables_bridged_frames_skip_iptables_and_clusterip_replies_break(tmp_path, capsys):
    # Kernel-checked: with net.bridge.bridge-nf-call-iptables=0 a "-m physdev --physdev-is-bridged
    # -j DROP" no longer stops web-1 -> web-3 (same bridge, on-link), and a ClusterIP DNATed to web-3
    # fails: web-3 answers web-1 on-link, the reply is bridged past conntrack, never un-DNATed.
    rules = EMPTY_FILTER.replace("COMMIT", "-A FORWARD -m physdev --physdev-is-bridged -j DROP\nCOMMIT")
    svc = "services:\n  - {name: one, cluster_ip: 10.152.183.7, endpoints: [default/web-3], " \
          "ports: [{port: 80, target_port: 8080}]}\n"
    pod = "  - {name: web-3, node: node1, ip: 10.1.10.6, containers: [{name: nginx, ports: [8080]}]}\n"
    walker = _with_sysctls(tmp_path, "net.bridge.bridge-nf-call-iptables = 0\n", rules, pods=pod)
    [end] = _send(walker, "default/web-1", "10.1.10.6")
    assert end.kind == "arrived" and "bridge-nf-call-iptables=0" in end.hops[1].note
    generated = tmp_path / "svc"
    (generated / "node1").mkdir(parents=True)
    (generated / "node1" / "sysctl.txt").write_text("net.bridge.bridge-nf-call-iptables = 0\n")
    text = HEAD % "" + f"""nodes:
  - {{name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24%s}}
pods:
  - {{name: web-1, node: node1, ip: 10.1.10.5, {WEB}}}
{pod}{svc}"""
    plain = parse_cluster(text % "")
    (generated / "node1" / "rules.txt").write_text(generate_node(plain, plain.node("node1")).iptables)
    text = text % ", iptables: node1/rules.txt"
    svc_walker = _walker(text, generated)
    [to_svc] = _send(svc_walker, "default/web-1", "10.152.183.7", 80)
    assert to_svc.kind == "arrived" and to_svc.at.name == "default/web-3"
    [back] = _replies(svc_walker, "default/web-1", [to_svc])
    assert back.kind == "arrived" and back.packet.src == parse_ip("10.1.10.6")      # not from 10.152.183.7


def test_kubectl_input_reads_sysctl_txt_in_a_nodes_folder(tmp_path, capsys):
    # The folder layout collect-node writes: <node>/sysctl.txt beside the node's other dumps.
    import shutil
    folder = tmp_path / "cluster"
    shutil.copytree(Path(__file__).resolve().parents[1] / "corpus" / "realcluster", folder,
                    ignore=shutil.ignore_patterns("*.py", "*.yaml", "__pycache__"))
    nets = ["--cluster-cidr", "10.244.0.0/16", "--service-cidr", "10.96.0.0/12", "--jobs", "1"]
    defaults = "".join(f"{k} = {v}\n" for k, v in
                       (("net.bridge.bridge-nf-call-iptables", 1), ("net.ipv4.conf.all.rp_filter", 0),
                        ("net.ipv4.conf.eth0.rp_filter", 0), ("net.ipv4.ip_forward", 1)))
    for node in ("cp-1", "worker-1", "worker-2"):
        (folder / node / "sysctl.txt").write_text(defaults)
    assert main(["verify", str(folder / "cluster.json"), *nets]) == 0        # what is assumed: still clean
    capsys.readouterr()
    (folder / "worker-1" / "sysctl.txt").write_text(defaults.replace("ip_forward = 1", "ip_forward = 0"))
    assert main(["verify", str(folder / "cluster.json"), *nets, "--all"]) == 1
    out = capsys.readouterr().out
    assert f"ip_forward=0 ({folder / 'worker-1' / 'sysctl.txt'})" in out
    assert "\n1 cause(s), biggest first:\n  1. worker-1: ip_forward=0" in out      # one fault, one cause
