"""kube-proxy's LoadBalancer firewall in our iptables generator against upstream's own expected
dump (TestLoadBalancer in shared/corpus/kube-proxy, nodeIP 192.168.0.2): the source ranges, then
the LoadBalancer IPs themselves only when a range holds the node's IP (allowFromNode in
pkg/proxy/iptables/proxier.go); and per node in a generated cluster, the nodes a range does not hold
sharing one text."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from pktverify.generate.kube_proxy_iptables import ServicePort, chain_suffix, kube_proxy_iptables_rules
from pktverify.generate.node_state import generate_node
from pktverify.generate.synthetic_cluster import synthetic_cluster

from ..conftest import SHARED

CASE = SHARED / "corpus" / "kube-proxy" / "TestLoadBalancer.json"
SVC = ServicePort("ns1/svc1:p80", "172.30.0.41", 80, "TCP", ("10.180.0.1:80",), node_port=3001,
                  lb_ips=("1.2.3.4", "5.6.7.8"), lb_source_ranges=("192.168.0.0/24", "203.0.113.0/25"))


def _firewall(text: str) -> list[tuple[str, str]]:
    """The KUBE-FW-* chain's rules as (source, target), sources without iptables-save's ``/32``."""
    out = []
    for line in text.splitlines():
        if line.startswith("-A KUBE-FW-"):
            source = re.search(r" -s (\S+)", line)
            target = re.search(r" -j (\S+)", line)
            out.append((source.group(1).removesuffix("/32") if source else "",
                        target.group(1) if target else ""))
    return out


@pytest.mark.skipif(not CASE.is_file(), reason="shared corpus not present")
def test_the_firewall_chain_is_upstreams_when_a_range_holds_the_node_ip():
    case = json.loads(CASE.read_text())
    [node_ip] = case["node_ips"]
    ours = kube_proxy_iptables_rules([SVC], cluster_cidr=case["pod_cidr"], node_ip=node_ip)
    ext = f"KUBE-EXT-{chain_suffix(SVC.name, 'tcp')}"
    assert ext == "KUBE-EXT-XPGD46QRK7WJZT7O"
    assert _firewall(ours) == _firewall(case["iptables_save"]) == [
        ("192.168.0.0/24", ext), ("203.0.113.0/25", ext), ("1.2.3.4", ext), ("5.6.7.8", ext), ("", "")]


@pytest.mark.parametrize("node_ip", ["192.168.1.2", "10.0.0.1", None])
def test_the_lb_ips_are_not_let_through_when_no_range_holds_the_node_ip(node_ip):
    ext = f"KUBE-EXT-{chain_suffix(SVC.name, 'tcp')}"
    rules = kube_proxy_iptables_rules([SVC], cluster_cidr="10.0.0.0/8", node_ip=node_ip)
    assert _firewall(rules) == [("192.168.0.0/24", ext), ("203.0.113.0/25", ext), ("", "")]
    # everything else is the same as on a node the ranges hold
    held = kube_proxy_iptables_rules([SVC], cluster_cidr="10.0.0.0/8", node_ip="192.168.0.200")
    assert [line for line in held.splitlines() if " -s 1.2.3.4/32 " not in line and " -s 5.6.7.8/32 " not in line] \
        == rules.splitlines()


def _lb_cluster(ranges: tuple[tuple[int, int], ...]):
    """A generated cluster whose first service is a LoadBalancer with ``ranges``."""
    cluster = synthetic_cluster(4, 2, 3)
    first = dataclasses.replace(cluster.services[0], lb_ips=((198 << 24) | (51 << 16) | (100 << 8) | 20,),
                                lb_source_ranges=ranges)
    return dataclasses.replace(cluster, services=(first, *cluster.services[1:]))


def test_nodes_no_range_holds_share_one_text_and_the_others_let_the_lb_ip_through():
    plain = _lb_cluster(((203 << 24 | 113 << 8, 0xFFFFFF00),))
    texts = [generate_node(plain, n).iptables for n in plain.nodes]
    assert all(t is texts[0] for t in texts) and "KUBE-FW-" in texts[0] and "-s 198.51.100.20/32" not in texts[0]
    one = plain.nodes[1]
    held = _lb_cluster(((203 << 24 | 113 << 8, 0xFFFFFF00), (one.ip, 0xFFFFFFFF)))
    texts = [generate_node(held, n).iptables for n in held.nodes]
    assert ["-s 198.51.100.20/32" in t for t in texts] == [n.name == one.name for n in held.nodes]
    others = [t for t, n in zip(texts, held.nodes) if n.name != one.name]
    assert all(t is others[0] for t in others)
    every = _lb_cluster(((0, 0),))        # 0.0.0.0/0 holds every node: one text, the LB IP let through
    texts = [generate_node(every, n).iptables for n in every.nodes]
    assert all(t is texts[0] for t in texts) and "-s 198.51.100.20/32" in texts[0]
