"""kube-proxy's own nftables-mode expectations as the oracle of pktverify's nftables-mode generator.

1. Ruleset-asserting files (TestOverallNFTablesRules, TestBadIPs, TestSyncProxyRules*): the same
   Services and EndpointSlices, transcribed in ``kube_proxy_nft_cases``, generate upstream's
   ruleset exactly, as a multiset of ``add`` commands (order, comments and blank lines aside).
2. Flow files (``inputs`` and ``flows``, no ruleset): the ruleset generated from the inputs is
   read with pktverify's own nft reader on a node holding the corpus's node addresses, every
   flow is traced, and the endpoints reached, DROP/REJECT and the masquerade flag must be
   upstream's. Upstream's tracer follows every ``numgen`` branch: pktverify gives each its share,
   and the shares must sum to 1, exactly. It runs locally sent packets through prerouting:
   pktverify sends them down the output path (nat-output, filter-output-pre-dnat), as the kernel
   does. IPv6 flows wait for pktverify's IPv6 evaluation (ip6 tables are skipped today).
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from pktverify.eval.node_trace import NodeTracer
from pktverify.generate.kube_proxy_iptables import ServicePort
from pktverify.generate.kube_proxy_nft import kube_proxy_nft_rules, nft_chain_base, nft_endpoint_chain_base
from pktverify.load.node import build_node
from pktverify.model.addresses import format_ip, parse_ip
from pktverify.model.packet import PROTO_NUMBERS, Packet
from pktverify.parse.ipaddr import parse_ip_addr
from pktverify.parse.iproute import parse_routes
from pktverify.parse.iptables_save import parse_iptables_save
from pktverify.parse.nft_text import parse_nft_text

from .kube_proxy_nft_cases import (
    CORPUS,
    NOT_GENERATED,
    TRANSCRIBED,
    commands,
    corpus_files,
    generate,
    generate_transcribed,
    load,
    ports_of,
)

# The corpus's node_ips (upstream's testNodeIPs, IPv4) on interfaces, and a pod bridge for 10.0.0.0/8.
ADDRS = """\
1: lo    inet 127.0.0.1/8 scope host lo
2: eth0    inet 192.168.0.2/24 brd 192.168.0.255 scope global eth0
3: eth1    inet 192.168.1.2/24 scope global eth1
4: eth2    inet 192.168.99.11/24 scope global eth2
5: cni0    inet 10.0.0.1/8 brd 10.255.255.255 scope global cni0
"""
ROUTES = """\
default via 192.168.0.1 dev eth0
10.0.0.0/8 dev cni0 proto kernel scope link src 10.0.0.1
192.168.0.0/24 dev eth0 proto kernel scope link src 192.168.0.2
192.168.1.0/24 dev eth1 proto kernel scope link src 192.168.1.2
192.168.99.0/24 dev eth2 proto kernel scope link src 192.168.99.11
"""


def _ruleset_stems() -> list[str]:
    return [p.stem for p in corpus_files() if load(p.stem)["nft_ruleset"] is not None]


def _flow_params() -> list:
    out = []
    for path in corpus_files():
        case = load(path.stem)
        if case["nft_ruleset"] is None:
            out += [pytest.param(path.stem, i, id=f"{path.stem}:{i}:{f['name']}") for i, f in enumerate(case["flows"])]
    return out


def test_corpus_is_complete(shared):
    """51 files: 14 with a ruleset (12 generated here, 2 fork data), 37 with the 207 flows."""
    assert CORPUS.is_dir(), f"{CORPUS} is missing"
    assert len(corpus_files()) == 51
    assert sorted(_ruleset_stems()) == sorted([*TRANSCRIBED, *NOT_GENERATED])
    assert len(_flow_params()) == 207


# ------------------------------------------------------------------ 1. rulesets
@pytest.mark.parametrize("stem", sorted(TRANSCRIBED))
def test_generated_ruleset_is_upstreams(shared, stem):
    got = Counter(commands(generate_transcribed(stem)))
    want = Counter(commands(load(stem)["nft_ruleset"]))
    missing, extra = sorted((want - got).elements()), sorted((got - want).elements())
    assert not missing and not extra, "\nmissing:\n" + "\n".join(missing) + "\nextra:\n" + "\n".join(extra)


# ------------------------------------------------------------------ 2. flows
_TRACERS: dict[str, NodeTracer] = {}


def _tracer(stem: str, case: dict) -> NodeTracer:
    if stem not in _TRACERS:
        dump = parse_routes(ROUTES)
        iptables = parse_iptables_save("*filter\nCOMMIT\n", source="iptables-save.txt")
        node = build_node("test-node", parse_ip_addr(ADDRS), dump.routes, iptables, legacy_routes=dump.legacy)
        text = generate(case, ports_of(case["inputs"]))
        _TRACERS[stem] = NodeTracer(dataclasses.replace(node, nft=parse_nft_text(text, f"{stem}.nft")))
    return _TRACERS[stem]


@pytest.mark.parametrize("stem,index", _flow_params())
def test_flow_matches_kube_proxy(shared, stem, index):
    case = load(stem)
    flow = case["flows"][index]
    if case["ip_family"] != "ipv4":
        pytest.skip("IPv6: pktverify evaluates ip and inet tables for IPv4 only (ip6 tables are skipped with a note)")
    src = flow["source_ip"]
    local = src in case["node_ips"]
    packet = Packet(PROTO_NUMBERS[flow["protocol"]], parse_ip(src), parse_ip(flow["dest_ip"]), 40000, flow["dest_port"])
    outcomes = _tracer(stem, case).trace(packet, in_iface=None if local else
                                         ("cni0" if src.startswith("10.") else "eth0")).outcomes
    assert abs(sum(o.probability for o in outcomes) - 1.0) < 1e-9
    assert all(o.exact for o in outcomes)
    verdicts = {o.verdict for o in outcomes}
    expected = flow["expected_output"]
    if expected in ("DROP", "REJECT"):
        assert verdicts == {expected.lower()}, outcomes
        return
    assert verdicts <= {"forward", "local"}, outcomes
    reached = {f"{format_ip(o.packet.dst)}:{o.packet.dport}" for o in outcomes}
    assert reached == (set(expected.split(", ")) if expected else {f"{flow['dest_ip']}:{flow['dest_port']}"})
    assert {o.masquerade for o in outcomes} == {flow["expected_masq"]}


# ------------------------------------------------------------------ the generator beyond the corpus
def test_long_names_are_hashed_then_cut_to_240_characters():
    """hashAndTruncate: past 240 characters the base ends in '...', and the hash keeps it unique."""
    long_ns = "n" * 63
    base = nft_endpoint_chain_base(f"{long_ns}/{'s' * 63}:{'p' * 63}", "sctp",
                                   "[2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]:65535")
    assert len(base) == 240 and base.endswith("...") and base[8] == "-"
    assert nft_chain_base("ns1/svc1:p80", "TCP") == "ULMVA6XW-ns1/svc1/tcp/p80"
    assert nft_endpoint_chain_base("ns1/svc1:p80", "tcp", "10.180.0.1:80") == "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
    assert nft_chain_base("ns1/svc1:", "tcp").endswith("-ns1/svc1/tcp/")


def _rules(text: str, chain: str) -> list[str]:
    head = f"add rule ip kube-proxy {chain} "
    return [line[len(head):] for line in text.splitlines() if line.startswith(head)]


def test_nodeport_addresses_unset_matches_every_local_address_but_loopback():
    text = kube_proxy_nft_rules([], node_ips=["192.168.0.2"], pod_cidr="10.0.0.0/8")
    assert "nodeport-ips" not in text
    assert _rules(text, "services")[1] == ("fib daddr type local ip daddr != 127.0.0.0/8 "
                                          "meta l4proto . th dport vmap @service-nodeports")
    assert _rules(text, "nodeport-endpoints-check") == [
        "ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports"]
    assert not any("unallocated" in r for r in _rules(text, "cluster-ips-check"))


def test_internal_local_without_local_endpoints_drops_and_masquerade_all_marks_everything():
    svc = ServicePort("ns/a:p", "172.30.0.9", 80, "UDP", ("10.1.0.5:8080",), internal_local=True)
    text = kube_proxy_nft_rules([svc], node_ips=["192.168.0.2"], pod_cidr=None, masquerade_all=True)
    assert 'add element ip kube-proxy no-endpoint-services { 172.30.0.9 . udp . 80 comment "ns/a:p" : drop }' in text
    assert "chain ip kube-proxy local-" not in text and "chain ip kube-proxy endpoint-" not in text
    here = dataclasses.replace(svc, local_endpoints=("10.1.0.5:8080",))
    text = kube_proxy_nft_rules([here], node_ips=["192.168.0.2"], pod_cidr=None, masquerade_all=True)
    chain = "local-" + nft_chain_base("ns/a:p", "udp")
    assert _rules(text, chain)[0] == "ip daddr 172.30.0.9 jump mark-for-masquerade"


def test_endpoints_in_kube_proxys_order():
    """Sorted by their text, as kube-proxy's EndpointsMap keeps them: 10.0.0.10 before 10.0.0.9."""
    svc = ServicePort("ns/a:p", "172.30.0.9", 80, "TCP", ("10.0.0.9:80", "10.0.0.10:80", "10.0.0.9:80"))
    text = kube_proxy_nft_rules([svc], node_ips=["192.168.0.2"], pod_cidr=None)
    rule = _rules(text, "service-" + nft_chain_base("ns/a:p", "tcp"))[-1]
    assert rule.startswith("numgen random mod 2 vmap { 0 : goto endpoint-") and "__10.0.0.10/80 , 1 : " in rule


def test_other_family_addresses_are_left_out():
    svc = ServicePort("ns/a:p", "172.30.0.9", 80, "TCP", ("10.1.0.5:80", "[fd00::5]:80"), external_ips=("fd00::9",))
    text = kube_proxy_nft_rules([svc, dataclasses.replace(svc, name="ns/b:p", cluster_ip="fd00:96::1")],
                                node_ips=["2001:db8::1", "192.168.0.2"], pod_cidr="10.0.0.0/8",
                                service_cidrs=["fd00:96::/112", "172.30.0.0/16"], nodeport_addresses=["0.0.0.0/0"])
    assert "fd00" not in text and "ns/b" not in text
    assert "add chain ip kube-proxy external-" not in text       # no door of the family: not externally accessible
    assert "add element ip kube-proxy nodeport-ips { 192.168.0.2 }" in text
    six = kube_proxy_nft_rules([dataclasses.replace(svc, name="ns/b:p", cluster_ip="fd00:96::1")], node_ips=["::1"],
                               pod_cidr=["10.0.0.0/8", "fd00:10::/64"], family="ip6")
    assert "ip6 daddr fd00:96::1 ip6 saddr != fd00:10::/64 jump mark-for-masquerade" in six and "10.0.0.0" not in six


def test_generated_text_is_read_by_pktverify():
    """Every transcribed ruleset reads with pktverify's nft reader (the kernel test loads them all)."""
    for stem in TRANSCRIBED:
        ruleset = parse_nft_text(generate_transcribed(stem), f"{stem}.nft")
        assert any(t.name == "kube-proxy" for t in ruleset.tables)
