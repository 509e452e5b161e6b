"""kube-proxy's rules for every service type, in the kernel and in pktverify: the same verdict,
tuple and interface for an off-cluster client (the lab's LAN peer), a pod and the node itself.

The lab node is 192.168.0.2 (eth0) with pods behind cni0 (10.0.0.0/24); endpoint 10.0.0.20 is
"local" (behind cni0), 192.168.0.30 is on another host (the LAN peer owns it). The external and
load-balancer IPs sit in 10.200.0.0/15, which the LAN peer routes to the node (a router would)."""

from __future__ import annotations

import pytest

from pktverify.generate.kube_proxy_iptables import ServicePort, kube_proxy_iptables_rules
from pktverify.oracle.kernel_campaign import Probe

from .cli_campaign import run_probe

pytestmark = pytest.mark.kernel

LOCAL, REMOTE = "10.0.0.20:8080", "192.168.0.30:8080"
SERVICES = [
    ServicePort("ns/np-cluster:http", "10.96.0.10", 80, "TCP", (REMOTE,), (), node_port=30010),
    ServicePort("ns/np-local:http", "10.96.0.11", 80, "TCP", (LOCAL,), (LOCAL,), node_port=30011,
                external_local=True),
    ServicePort("ns/np-local-elsewhere:http", "10.96.0.12", 80, "TCP", (REMOTE,), (), node_port=30012,
                external_local=True),
    ServicePort("ns/lb:https", "10.96.0.13", 443, "TCP", (LOCAL,), (LOCAL,), node_port=30013,
                lb_ips=("10.201.0.20",), lb_source_ranges=("192.168.0.0/28",)),
    ServicePort("ns/ext:http", "10.96.0.14", 80, "UDP", (REMOTE,), (), external_ips=("10.200.0.50",)),
    ServicePort("ns/itp-local:http", "10.96.0.15", 80, "TCP", (REMOTE,), (), internal_local=True),
    ServicePort("ns/sticky:http", "10.96.0.16", 80, "TCP", (LOCAL,), (LOCAL,), affinity_timeout=10800),
    ServicePort("ns/none:http", "10.96.0.17", 80, "TCP", (), (), node_port=30017),
]
RULES = kube_proxy_iptables_rules(SERVICES, cluster_cidr="10.0.0.0/16", node_ip="192.168.0.2")

PROBES = [
    ("lan", "tcp", "192.168.0.2", 30010),      # NodePort, Cluster: DNAT to the other host, masqueraded
    ("lan", "tcp", "192.168.0.2", 30011),      # NodePort, Local, endpoint here: DNAT, source kept
    ("lan", "tcp", "192.168.0.2", 30012),      # NodePort, Local, no endpoint here: dropped
    ("pod", "tcp", "192.168.0.2", 30012),      # ... but a pod takes the shortcut to every endpoint
    ("node", "tcp", "192.168.0.2", 30012),     # ... and so does the node itself (masqueraded)
    ("lan", "tcp", "10.201.0.20", 443),      # LoadBalancer IP from inside the source ranges
    ("pod", "tcp", "10.201.0.20", 443),      # ... from outside them: KUBE-PROXY-FIREWALL drops
    ("lan", "udp", "10.200.0.50", 80),          # external IP
    ("pod", "tcp", "10.96.0.15", 80),          # internalTrafficPolicy: Local, no endpoint here: dropped
    ("pod", "tcp", "10.96.0.16", 80),          # session affinity: the first connection (fresh lists)
    ("lan", "tcp", "192.168.0.2", 30017),      # no endpoints: REJECT
]


@pytest.mark.parametrize("client,proto,dst,dport", PROBES)
def test_service_type_rules_agree_with_kernel(lab, client, proto, dst, dport):
    res = run_probe(lab, Probe(RULES, client, proto, 41000 + dport % 1000, dst, dport))
    assert res.agrees, res.explanation
    assert res.kernel is not None
