"""The kube-proxy-nft corpus (``../shared/corpus/kube-proxy-nft``, README there) as input to
pktverify's nftables-mode generator, shared by the corpus test and the kernel load test.

Ruleset-asserting files carry a summary, not objects: their Services and EndpointSlices are
transcribed here by hand from the summaries, the step descriptions and the expected rulesets of
upstream's ``proxier_test.go`` (kubernetes/kubernetes 81810de6). Flow files carry ``inputs``
(Services and EndpointSlices as the test builds them), turned into ServicePort records the way
kube-proxy's CategorizeEndpoints reads them.
"""

from __future__ import annotations

import json
from pathlib import Path

from pktverify.generate.kube_proxy_iptables import ServicePort
from pktverify.generate.kube_proxy_nft import kube_proxy_nft_rules

from ..conftest import SHARED

CORPUS = SHARED / "corpus" / "kube-proxy-nft"
HOSTNAME = "test-node"          # upstream's testHostname: endpoints with this node_name are local

P = "ip kube-proxy"


def _sp(name: str, ip: str, port: int, eps: tuple[str, ...] = (), **kw) -> ServicePort:
    return ServicePort(name, ip, port, "TCP", eps, **kw)


# TestOverallNFTablesRules (inputs.summary). svc4's "local" endpoint does not matter: its policies are Cluster.
_OVERALL = [
    _sp("ns1/svc1:p80", "172.30.0.41", 80, ("10.180.0.1:80",)),
    _sp("ns2/svc2:p80", "172.30.0.42", 80, ("10.180.0.2:80",), node_port=3001, external_ips=("192.168.99.22",),
        lb_ips=("1.2.3.4",), external_local=True),
    _sp("ns3/svc3:p80", "172.30.0.43", 80, ("10.180.0.3:80",), node_port=3003),
    _sp("ns4/svc4:p80", "172.30.0.44", 80, ("10.180.0.4:80", "10.180.0.5:80"), external_ips=("192.168.99.33",)),
    _sp("ns5/svc5:p80", "172.30.0.45", 80, ("10.180.0.3:80",), node_port=3002, lb_ips=("5.6.7.8",),
        lb_source_ranges=(" 203.0.113.0/25",), affinity_timeout=10800),
    _sp("ns6/svc6:p80", "172.30.0.46", 80),
]
# TestBadIPs: kube-proxy parses '172.30.0.041' and the like sloppily (leading zeros are decimal);
# the addresses below are those values, as the expected ruleset writes them.
_BAD_IPS = [_sp("ns1/svc1:p80", "172.30.0.41", 80, ("10.180.0.1:80",), node_port=3001,
                external_ips=("192.168.99.22",), lb_ips=("1.2.3.4",), lb_source_ranges=("203.0.113.0/25",))]

_SVC1 = _sp("ns1/svc1:p80", "172.30.0.41", 80, ("10.0.1.1:80",))
_SVC2 = _sp("ns2/svc2:p8080", "172.30.0.42", 8080, ("10.0.2.1:8080",))


def _svc3(*last: int) -> ServicePort:
    return _sp("ns3/svc3:p80", "172.30.0.43", 80, tuple(f"10.0.3.{i}:80" for i in last))


def _svc4(*last: int) -> ServicePort:
    return _sp("ns4/svc4:p80", "172.30.0.44", 80, tuple(f"10.0.4.{i}:80" for i in last))


# TestSyncProxyRulesRepeated, step by step (the subcases' descriptions). Steps 3, 7 and 9 also
# hold the chains kube-proxy flushed and keeps for a second before deleting them (staleChains):
# they come from the sync history, not from the objects, so they are named here.
_REPEATED = {
    1: ([_SVC1, _SVC2], []),
    2: ([_SVC1, _SVC2, _svc3(1)], []),
    3: ([_SVC1, _svc3(1)], ["service-MHHHYRWA-ns2/svc2/tcp/p8080",
                            "endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080"]),
    4: ([_SVC1, _svc3(1)], []),
    5: ([_SVC1, _svc3(1), _svc4()], []),
    6: ([_SVC1, _svc3(1), _svc4(1)], []),
    7: ([_SVC1, _svc3(2), _svc4(1)], ["endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80"]),
    8: ([_SVC1, _svc3(2, 3), _svc4(1)], []),
    9: ([_SVC1, _svc3(), _svc4(1)], ["service-4AT6LBPK-ns3/svc3/tcp/p80",
                                     "endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80",
                                     "endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80"]),
}

# file stem -> (service ports, stale chains)
TRANSCRIBED: dict[str, tuple[list[ServicePort], list[str]]] = {
    "TestOverallNFTablesRules": (_OVERALL, []),
    "TestBadIPs": (_BAD_IPS, []),
    "TestSyncProxyRulesStartup": ([_sp("ns1/svc1:p80", "172.30.0.41", 80, ("10.0.1.1:80", "10.0.1.2:80")), _SVC2,
                                   _svc3()], []),
    **{f"TestSyncProxyRulesRepeated-{n}": step for n, step in _REPEATED.items()},
}
# Ruleset files that are not generated from objects, and why.
NOT_GENERATED = {
    "TestTracePacketV4": "fork data: a static ruleset written by hand for the tracer's own test (older base chains, "
                         "a single endpoints-check chain), not the output of syncProxyRules",
    "TestTracePacketV6": "fork data, as TestTracePacketV4",
}


def load(stem: str) -> dict:
    return json.loads((CORPUS / f"{stem}.json").read_text())


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.json")) if CORPUS.is_dir() else []


def generate(case: dict, ports: list[ServicePort]) -> str:
    """The generator's ruleset for ``ports`` under the case's proxier settings."""
    return kube_proxy_nft_rules(ports, node_ips=case["node_ips"], pod_cidr=case["pod_cidr"],
                                service_cidrs=case["service_cidrs"], nodeport_addresses=case["nodeport_addresses"],
                                masquerade_all=case["masquerade_all"], masquerade_mark=int(case["masquerade_mark"], 16),
                                family="ip6" if case["ip_family"] == "ipv6" else "ip")


def generate_transcribed(stem: str) -> str:
    """A ruleset-asserting file's ruleset as generated, with the stale chains it names."""
    case = load(stem)
    ports, stale = TRANSCRIBED[stem]
    return generate(case, ports) + "".join(f"add chain {P} {name}\n" for name in stale)


def _join(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _usable(eps: list[dict]) -> tuple[list[dict], list[dict]]:
    """CategorizeEndpoints without topology: the ready endpoints, or the serving and terminating
    ones when none is ready; for the local ones likewise. (ready unset counts as ready, serving
    unset as ready, terminating unset as false, as the EndpointSlice API says.)"""
    def ready(e):
        return e.get("ready") is not False

    def serving_terminating(e):
        return e.get("serving", ready(e)) is not False and e.get("terminating") is True

    cluster = [e for e in eps if ready(e)] or [e for e in eps if serving_terminating(e)]
    mine = [e for e in eps if e.get("node_name") == HOSTNAME]
    local = [e for e in mine if ready(e)] or [e for e in mine if serving_terminating(e)]
    return cluster, local


def ports_of(inputs: dict) -> list[ServicePort]:
    """A flow file's Services and EndpointSlices as the ServicePort records kube-proxy would build."""
    out = []
    for svc in inputs["services"]:
        external_local = svc.get("external_traffic_policy") == "Local"
        for p in svc["ports"]:
            eps: list[tuple[dict, int]] = []
            for sl in inputs["endpoint_slices"]:
                if sl["service"] != svc["service"]:
                    continue
                for sp in sl["ports"]:
                    if sp["name"] == p["name"] and sp["protocol"] == p["protocol"]:
                        eps += [(e, sp["port"]) for e in sl["endpoints"]]
            cluster, local = _usable([dict(e, _port=port) for e, port in eps])
            out.append(ServicePort(
                f"{svc['service']}:{p['name']}", svc["cluster_ip"], p["port"], p["protocol"],
                tuple(_join(e["address"], e["_port"]) for e in cluster),
                tuple(_join(e["address"], e["_port"]) for e in local),
                node_port=p.get("node_port") or 0, external_ips=tuple(svc.get("external_ips") or ()),
                lb_ips=tuple(svc.get("load_balancer_ingress") or ()),
                lb_source_ranges=tuple(r.strip() for r in svc.get("load_balancer_source_ranges") or ()),
                external_local=external_local, internal_local=svc.get("internal_traffic_policy") == "Local"))
    return out


def commands(text: str) -> list[str]:
    """The ``add`` commands of a ruleset text (comments and blank lines aside)."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
