"""PV303 and PV304 on kube-proxy's own nftables rulesets (``../shared/corpus/kube-proxy-nft``)
where the cluster is known: the Services and EndpointSlices of each IPv4 file (transcribed in
``kube_proxy_nft_cases`` or read from its ``inputs``) give the facts — the endpoints kube-proxy
uses, the node addresses, external and load-balancer IPs, the service CIDR — and neither upstream's
expected ruleset nor pktverify's generated one for the same objects gives a finding. The facts are
then narrowed (an endpoint forgotten, a smaller service CIDR) to show the checks see the rules."""

from __future__ import annotations

import pytest

from pktverify.check.lint.cluster import ServiceFacts
from pktverify.check.lint.nft_cluster import nft_cluster_findings
from pktverify.check.lint.nft_structure import nft_findings, parse_nft_with_findings
from pktverify.model.addresses import parse_ip, parse_network

from .kube_proxy_nft_cases import (
    NOT_GENERATED,
    TRANSCRIBED,
    corpus_files,
    generate,
    generate_transcribed,
    load,
    ports_of,
)

CASES = [p.stem for p in corpus_files() if p.stem not in NOT_GENERATED and load(p.stem)["ip_family"] == "ipv4"]


def _facts(case: dict, ports) -> ServiceFacts:
    nodes = frozenset(parse_ip(a) for a in case["node_ips"] if ":" not in a)
    endpoints = frozenset(parse_ip(e.rsplit(":", 1)[0]) for p in ports for e in p.endpoints + p.local_endpoints)
    doors = frozenset(parse_ip(a) for p in ports for a in p.external_ips + p.lb_ips)
    (cidr,) = case["service_cidrs"]
    return ServiceFacts(nodes | endpoints, nodes | doors, parse_network(cidr))


def _rulesets(stem: str) -> tuple[ServiceFacts, dict[str, str]]:
    case = load(stem)
    ports = TRANSCRIBED[stem][0] if stem in TRANSCRIBED else ports_of(case["inputs"])
    texts = {"generated": generate_transcribed(stem) if stem in TRANSCRIBED else generate(case, ports)}
    if case.get("nft_ruleset_dump_order"):
        texts["upstream"] = case["nft_ruleset_dump_order"]
    return _facts(case, ports), texts


def _judge(text: str, facts: ServiceFacts, stem: str):
    ruleset, findings = parse_nft_with_findings(text, stem)
    assert ruleset is not None, findings
    findings += nft_findings(ruleset, text)
    return nft_cluster_findings(ruleset, facts, findings)


@pytest.mark.skipif(not CASES, reason="the kube-proxy-nft corpus is not here")
def test_the_corpus_is_read_whole():
    with_upstream = [s for s in CASES if "upstream" in _rulesets(s)[1]]
    assert len(CASES) >= 45 and len(with_upstream) >= 12


@pytest.mark.parametrize("stem", CASES)
def test_kube_proxys_rulesets_of_a_known_cluster_have_no_finding(stem):
    facts, texts = _rulesets(stem)
    for kind, text in texts.items():
        assert _judge(text, facts, stem) == [], kind


@pytest.mark.parametrize("stem", [s for s in CASES if s in TRANSCRIBED])
def test_the_checks_see_the_rules(stem):
    facts, texts = _rulesets(stem)
    dnat = {parse_ip(line.rsplit("dnat to ", 1)[1].rsplit(":", 1)[0])
            for line in texts["generated"].split("\n") if "dnat to " in line}
    for kind, text in texts.items():
        forgotten = ServiceFacts(facts.endpoints - dnat, facts.front_doors, facts.service_cidr)
        found = _judge(text, forgotten, stem)
        assert {f.id for f in found} == ({"PV303"} if dnat else set()), kind
        assert len(found) == text.count("dnat to "), kind                # one per endpoint chain
        narrow = ServiceFacts(facts.endpoints, facts.front_doors, parse_network("172.30.255.0/24"))
        outside = _judge(text, narrow, stem)
        assert {f.id for f in outside} == {"PV304"}, kind
        assert all(f.message.startswith("element 172.30.0.") and "of table ip kube-proxy is for 172.30.0."
                   in f.message for f in outside), kind
