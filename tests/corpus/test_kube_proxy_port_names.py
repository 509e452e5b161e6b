"""A service port without a name, as kube-proxy names it in its rules: ``ns/svc``, not ``ns/svc:``.

kube-proxy's ServicePortName.String() (pkg/proxy/types.go) adds ``:port`` only when the port has a
name (fmtPortName; since v1.19). The iptables proxier writes that string in its comments and hashes
it into its chain names (portProtoHash(servicePortName, protocol): the first 16 base32 characters of
SHA-256(name + protocol), behind KUBE-SVC-/KUBE-SVL-/KUBE-EXT-/KUBE-FW-; KUBE-SEP- hashes name +
protocol + endpoint, pkg/proxy/iptables/proxier.go); the userspace proxier writes it in its
KUBE-PORTALS comments (iptablesCommonPortalArgs, ``--comment service.String()``); the nftables
proxier builds chain names from its parts (servicePortChainNameBase: ``ns/svc/proto/port``, the port
part empty) and writes String() in its element comments. Our model names an unnamed port
``ns/svc:``; the generators must write what kube-proxy writes. Checked against upstream's own
dumps where the corpus has an unnamed port (iptables mode: ``ns1/svc1`` in TestInternalTrafficPolicyE2E
and TestEndpointSliceWithTerminatingEndpoints*), against upstream's documented example names
(nftables), and named ports against upstream's dumps too (unchanged).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import shlex

import pytest

from pktverify.check.lint import lint_text
from pktverify.generate.kube_proxy_iptables import ServicePort, kube_proxy_iptables_rules, service_port_name
from pktverify.generate.kube_proxy_nft import kube_proxy_nft_rules, nft_chain_base, nft_endpoint_chain_base
from pktverify.generate.kube_proxy_userspace import PortalPort, kube_proxy_userspace_rules
from pktverify.generate.node_state import generate_node
from pktverify.parse.cluster_yaml import load_cluster

from ..conftest import REPO, SHARED

CORPUS = SHARED / "corpus" / "kube-proxy"


def upstream_port_proto_hash(service_port_name: str, *parts: str) -> str:
    """portProtoHash / servicePortEndpointChainName as upstream writes them:
    ``base32.StdEncoding.EncodeToString(sha256.Sum256([]byte(name + protocol [+ endpoint])))[:16]``."""
    return base64.b32encode(hashlib.sha256((service_port_name + "".join(parts)).encode()).digest()).decode()[:16]


def upstream_hash_and_truncate(name: str) -> str:
    """hashAndTruncate (pkg/proxy/nftables/proxier.go): ``encoded[:8] + "-" + name`` (never truncated here)."""
    return base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()[:8] + "-" + name


_TOP = {"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES", "KUBE-PROXY-FIREWALL"}


def _triples(text: str, tables: tuple[str, ...] = ("nat", "filter")) -> set[tuple[str, str, str]]:
    """(chain, comment, target) of every per-service rule (the ones whose comment names ns1/svc1) in
    a chain some rule jumps to. Our generator also writes a KUBE-SEP chain, never jumped to, for a
    remote endpoint of an internalTrafficPolicy: Local service (upstream writes only the locally
    reachable endpoints' chains); those unreached chains are not compared here."""
    jumped = set(re.findall(r" -j (KUBE-[A-Z]+-[A-Z2-7]{16})\b", text)) | _TOP
    out, table = set(), None
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        if not line.startswith("-A ") or table not in tables:
            continue
        words = shlex.split(line)
        comment = words[words.index("--comment") + 1] if "--comment" in words else ""
        target = words[words.index("-j") + 1] if "-j" in words else ""
        if "ns1/svc1" in comment and words[1] in jumped:
            out.add((words[1], comment, target))
    return out


def _case(name: str) -> dict:
    path = CORPUS / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"shared corpus case {name} not present")
    return json.loads(path.read_text())


EPS = ("10.0.1.1:80", "10.0.1.2:80", "10.0.1.3:80")
# (corpus case, our record of its service; the name as our model makes it for a port without a name)
UNNAMED_CASES = [
    ("TestInternalTrafficPolicyE2E-1", ServicePort("ns1/svc1:", "172.30.1.1", 80, "TCP", EPS)),
    ("TestInternalTrafficPolicyE2E-2", ServicePort("ns1/svc1:", "172.30.1.1", 80, "TCP", EPS,
                                                   local_endpoints=("10.0.1.1:80",), internal_local=True)),
    ("TestInternalTrafficPolicyE2E-3", ServicePort("ns1/svc1:", "172.30.1.1", 80, "TCP", EPS[1:],
                                                   internal_local=True)),
    ("TestEndpointSliceWithTerminatingEndpointsTrafficPolicyLocal-1",
     ServicePort("ns1/svc1:", "172.30.1.1", 80, "TCP", ("10.0.1.1:80", "10.0.1.2:80", "10.0.1.5:80"),
                 local_endpoints=("10.0.1.1:80", "10.0.1.2:80"), lb_ips=("1.2.3.4",), external_local=True,
                 affinity_timeout=10800)),
    ("TestEndpointSliceWithTerminatingEndpointsTrafficPolicyLocal-4",
     ServicePort("ns1/svc1:", "172.30.1.1", 80, "TCP", (), lb_ips=("1.2.3.4",), external_local=True)),
]


@pytest.mark.parametrize("case_name, svc", UNNAMED_CASES, ids=[c for c, _ in UNNAMED_CASES])
def test_iptables_unnamed_port_chains_and_comments_are_upstreams(case_name, svc):
    case = _case(case_name)
    ours = kube_proxy_iptables_rules([svc], cluster_cidr=case["pod_cidr"], node_ip=case["node_ips"][0])
    # filter's KUBE-NODEPORTS holds upstream's health-check rule, which we do not write
    want = {t for t in _triples(case["iptables_save"]) if t[0] != "KUBE-NODEPORTS" or t[2] != "ACCEPT"}
    assert want, "the corpus case has no rule of ns1/svc1"
    assert _triples(ours) == want
    assert "ns1/svc1:" not in ours
    # the chain names are upstream's hash of "ns1/svc1" + "tcp" (portProtoHash)
    svc_hash = upstream_port_proto_hash("ns1/svc1", "tcp")
    assert svc_hash == "AQI2S6QIMU7PVVRP"          # as TestInternalTrafficPolicyE2E's dump names KUBE-SVC-
    chains = set(re.findall(r"KUBE-(?:SVC|SVL|EXT|FW)-[A-Z2-7]{16}", ours))
    assert chains <= {f"KUBE-{k}-{svc_hash}" for k in ("SVC", "SVL", "EXT", "FW")}
    seps = set(re.findall(r"KUBE-SEP-[A-Z2-7]{16}", ours))
    assert seps == {f"KUBE-SEP-{upstream_port_proto_hash('ns1/svc1', 'tcp', ep)}" for ep in svc.endpoints
                    if f"DNAT --to-destination {ep}" in ours}


def test_iptables_either_unnamed_form_gives_the_same_rules():
    with_colon = ServicePort("ns1/svc1:", "172.30.1.1", 80, "UDP", EPS, node_port=30001, lb_ips=("1.2.3.4",),
                             lb_source_ranges=("192.168.0.0/24",), affinity_timeout=60)
    text = kube_proxy_iptables_rules([with_colon], cluster_cidr="10.0.0.0/8", node_ip="192.168.0.2")
    assert text == kube_proxy_iptables_rules([dataclasses.replace(with_colon, name="ns1/svc1")],
                                             cluster_cidr="10.0.0.0/8", node_ip="192.168.0.2")
    fw = f"KUBE-FW-{upstream_port_proto_hash('ns1/svc1', 'udp')}"
    assert f"-j {fw}" in text and f'"ns1/svc1 traffic not accepted by {fw}"' in text


NAMED_CASES = [
    ("TestNodePort", ServicePort("ns1/svc1:p80", "172.30.0.41", 80, "TCP", ("10.180.0.1:80",), node_port=3001)),
    ("TestLoadBalancer", ServicePort("ns1/svc1:p80", "172.30.0.41", 80, "TCP", ("10.180.0.1:80",), node_port=3001,
                                     lb_ips=("1.2.3.4", "5.6.7.8"),
                                     lb_source_ranges=("192.168.0.0/24", "203.0.113.0/25"))),
]


@pytest.mark.parametrize("case_name, svc", NAMED_CASES, ids=[c for c, _ in NAMED_CASES])
def test_iptables_named_port_chains_and_comments_are_upstreams(case_name, svc):
    case = _case(case_name)
    ours = kube_proxy_iptables_rules([svc], cluster_cidr=case["pod_cidr"], node_ip=case["node_ips"][0])
    want = _triples(case["iptables_save"])
    assert want and _triples(ours) == want
    assert f"KUBE-SVC-{upstream_port_proto_hash('ns1/svc1:p80', 'tcp')}" == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert "KUBE-SVC-XPGD46QRK7WJZT7O" in ours


def test_service_port_name_is_upstreams_string():
    assert service_port_name("ns1/svc1:") == "ns1/svc1"
    assert service_port_name("ns1/svc1") == "ns1/svc1"
    assert service_port_name("ns1/svc1:p80") == "ns1/svc1:p80"


def _comments(text: str) -> set[str]:
    return {shlex.split(line)[shlex.split(line).index("--comment") + 1]
            for line in text.splitlines() if "--comment" in line}


def test_userspace_unnamed_port_comment_is_upstreams():
    """iptablesCommonPortalArgs writes ``--comment service.String()`` in every portal rule."""
    unnamed = PortalPort("default/backend:", "10.152.183.69", 80, "tcp", 36533, node_port=30080,
                         external_ips=("192.168.10.100",), lb_ips=("1.2.3.4",))
    named = PortalPort("default/web:http", "10.152.183.164", 80, "tcp", 58263, node_port=30081)
    text = kube_proxy_userspace_rules([unnamed, named], node_ip="192.168.10.5")
    service_rules = [line for line in text.splitlines() if "--to-ports" in line or "--to-destination" in line
                     or "KUBE-NODEPORT-NON-LOCAL -p" in line]
    # unnamed: (cluster IP, LB IP) x (container, host), 3 for the external IP, 3 for the NodePort; named: 2 + 3
    assert len(service_rules) == 4 + 3 + 3 + 5
    assert _comments("\n".join(service_rules)) == {"default/backend", "default/web:http"}
    assert sum("--comment default/web:http " in line or '--comment "default/web:http" ' in line
               for line in service_rules) == 5
    assert "default/backend:" not in text
    assert text == kube_proxy_userspace_rules([dataclasses.replace(unnamed, name="default/backend"), named],
                                              node_ip="192.168.10.5")


def test_nft_unnamed_port_chain_bases_and_comments_are_upstreams():
    # upstream's own examples for a named port (servicePortChainNameBase and
    # servicePortEndpointChainNameBase doc comments, pkg/proxy/nftables/proxier.go)
    assert nft_chain_base("ns1/svc1:p80", "TCP") == "ULMVA6XW-ns1/svc1/tcp/p80"
    assert nft_endpoint_chain_base("ns1/svc1:p80", "tcp", "10.180.0.1:80") == "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
    # an unnamed port: fmt.Sprintf("%s/%s/%s/%s", ns, name, protocol, "")
    for name in ("ns1/svc1:", "ns1/svc1"):
        assert nft_chain_base(name, "tcp") == upstream_hash_and_truncate("ns1/svc1/tcp/")
        assert nft_endpoint_chain_base(name, "tcp", "10.0.1.1:80") == upstream_hash_and_truncate(
            "ns1/svc1/tcp/__10.0.1.1/80")
    # element comments are svcPortNameString (ServicePortName.String())
    lonely = ServicePort("ns1/svc1:", "172.30.1.1", 80, "TCP", (), node_port=30001)
    text = kube_proxy_nft_rules([lonely], node_ips=["192.168.0.2"], pod_cidr="10.0.0.0/8",
                                service_cidrs=["172.30.0.0/16"], nodeport_addresses=["192.168.0.2/32"])
    elements = [line for line in text.splitlines() if "no-endpoint-" in line and "add element" in line]
    assert len(elements) == 2 and all('comment "ns1/svc1" :' in line for line in elements)
    assert "ns1/svc1:" not in text


def test_generated_nodes_name_unnamed_ports_as_kube_proxy():
    """Through node_state: the seed cluster's default/default-http-backend has a port without a name."""
    cluster = load_cluster(REPO / "rules" / "seed" / "cluster-iptables.yaml")
    [backend] = [s for s in cluster.services if s.key == "default/default-http-backend"]
    assert [p.name for p in backend.ports] == [""]
    text = generate_node(cluster, cluster.nodes[0]).iptables
    svc_chain = f"KUBE-SVC-{upstream_port_proto_hash('default/default-http-backend', 'tcp')}"
    assert f'--comment "default/default-http-backend cluster IP" -m tcp --dport 80 -j {svc_chain}' in text
    assert "default-http-backend:" not in text
    assert f"KUBE-SVC-{upstream_port_proto_hash('default/http-svc:http', 'tcp')}" in text    # named: unchanged
    userspace = generate_node(dataclasses.replace(cluster, proxy_mode="userspace"), cluster.nodes[0]).iptables
    assert "default-http-backend:" not in userspace
    assert '--comment "default/default-http-backend" -m tcp --dport 80 -j REDIRECT' in userspace
    assert '--comment "default/http-svc:http" -m tcp --dport 80 -j REDIRECT' in userspace
    nft = generate_node(dataclasses.replace(cluster, proxy_mode="nftables"), cluster.nodes[0]).nft
    assert f"service-{upstream_hash_and_truncate('default/default-http-backend/tcp/')}" in nft
    assert "default-http-backend:" not in nft


def test_pv307_tells_apart_services_whose_ports_have_no_name():
    """PV307 (two services on one userspace proxy port) reads kube-proxy's comments: an unnamed port's
    is ``ns/svc`` from v1.19 on (``ns/svc:`` before); both forms are service comments."""
    def portal(service: str, ip: str) -> str:
        return (f'-A KUBE-PORTALS-CONTAINER -d {ip}/32 -p tcp -m comment --comment "{service}" -m tcp --dport 80 '
                "-j REDIRECT --to-ports 36533")

    def pv307(*rules: str) -> list[str]:
        text = ("*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-PORTALS-CONTAINER - [0:0]\n"
                "-A PREROUTING -j KUBE-PORTALS-CONTAINER\n" + "\n".join(rules) + "\nCOMMIT\n")
        return [f.message for f in lint_text(text, "t.rules") if f.id == "PV307"]

    for a, b in (("default/a", "default/b"), ("default/a", "default/b:http"), ("default/a:", "default/b")):
        [message] = pv307(portal(a, "10.152.183.69"), portal(b, "10.152.183.70"))
        assert f"services {a} and {b} both go to userspace proxy port 36533/tcp" in message
    assert pv307(portal("default/a", "10.152.183.69"), portal("default/a", "10.152.183.70")) == []
    assert pv307(portal("not a service", "10.152.183.69"), portal("default/b", "10.152.183.70")) == []
