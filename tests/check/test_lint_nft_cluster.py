"""PV303 (dnat-to-non-endpoint) and PV304 (clusterip-outside-service-cidr) on nft rulesets: with
``lint --cluster``, a proposed nft ruleset's DNATs (``dnat to A:P``, DNAT map elements, kube-proxy's
endpoint chains) and kube-proxy's service dispatch (``service-ips`` and ``no-endpoint-services``
elements, ``ip daddr X`` rules) are judged against the cluster as iptables rules are; findings name
the nft rule (table, chain, handle, line; JSON: ``nftables[i]``) and the element. A generated
kube-proxy nftables ruleset of a correct cluster gives none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from pktverify.check.lint import lint_files, lint_text
from pktverify.check.lint.cluster import ServiceFacts
from pktverify.check.lint.nft_cluster import cluster_findings, nft_cluster_findings
from pktverify.check.lint.nft_structure import nft_findings, parse_nft_with_findings
from pktverify.cli import main
from pktverify.generate.node_state import generate_node
from pktverify.parse.cluster_yaml import load_cluster
from pktverify.testing.strategies import clusters

ROOT = Path(__file__).resolve().parents[2]
SEEDS = sorted((ROOT / "rules" / "seed").glob("*.yaml")) + [ROOT / "rules" / "services" / "every-service-type.yaml"]
SEED = ROOT / "rules" / "seed" / "cluster-iptables.yaml"
HTTP_SVC = "service-W5DDGQT4-default/http-svc/tcp/http"         # kube-proxy's chain for default/http-svc:http


def _nftables_mode(tmp_path: Path, spec: Path) -> Path:
    text = spec.read_text()
    text = text.replace("proxy_mode: iptables", "proxy_mode: nftables").replace("proxy_mode: userspace",
                                                                                "proxy_mode: nftables")
    if "proxy_mode: nftables" not in text:
        text = text.replace("cluster:\n", "cluster:\n  proxy_mode: nftables\n", 1)
    out = tmp_path / f"nft-{spec.name}"
    out.write_text(text)
    return out


@pytest.fixture
def seed(tmp_path):
    """The seed cluster in nftables mode, and node1's generated ruleset (a knftables script)."""
    spec = _nftables_mode(tmp_path, SEED)
    cluster = load_cluster(spec)
    return spec, cluster, generate_node(cluster, cluster.nodes[0]).nft


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _pv3(path: Path, cluster, node: str = "node1") -> list[tuple[str, int, str]]:
    result = lint_files([path], cluster=cluster, node=node, select_ids=["PV303", "PV304"])
    assert not result.unverified
    return [(f.id, f.line, f.message) for f in result.findings]


def _line(text: str, wanted: str) -> int:
    return text.split("\n").index(wanted) + 1


@pytest.mark.parametrize("spec", SEEDS, ids=lambda p: p.name)
def test_generated_rulesets_of_correct_clusters_have_no_finding(tmp_path, spec):
    cluster = load_cluster(_nftables_mode(tmp_path, spec))
    assert cluster.proxy_mode == "nftables"
    for node in cluster.nodes:
        text = generate_node(cluster, node).nft
        assert "dnat to" in text and "add element ip kube-proxy service-ips" in text   # something to judge
        assert _pv3(_write(tmp_path, f"{node.name}.nft", text), cluster, node.name) == []


def test_a_dnat_to_a_non_endpoint_in_an_endpoint_chain(tmp_path, seed):
    _spec, cluster, text = seed
    planted = text.replace("meta l4proto tcp dnat to 10.1.20.5:8080", "meta l4proto tcp dnat to 10.1.20.99:8080")
    assert planted != text
    chain = "endpoint-D5PRO3B6-default/http-svc/tcp/http__10.1.20.5/8080"
    line = _line(planted, f"add rule ip kube-proxy {chain} meta l4proto tcp dnat to 10.1.20.99:8080")
    assert _pv3(_write(tmp_path, "stale.nft", planted), cluster) == [
        ("PV303", line, f"rule #2 (meta l4proto tcp dnat to 10.1.20.99:8080) of chain {chain} of table ip kube-proxy "
                        "DNATs to 10.1.20.99, which is no ready endpoint of any service")]


def test_service_rules_for_an_address_outside_the_service_cidr(tmp_path, seed):
    _spec, cluster, text = seed
    element = f"add element ip kube-proxy service-ips {{ 10.1.10.7 . tcp . 80 : goto {HTTP_SVC} }}"
    dispatch = f"add rule ip kube-proxy services ip daddr 10.1.10.8 tcp dport 80 goto {HTTP_SVC}"
    planted = text + element + "\n" + dispatch + "\n"
    vmap = _line(planted, "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips")
    assert _pv3(_write(tmp_path, "outside.nft", planted), cluster) == [
        ("PV304", vmap, "element 10.1.10.7 . tcp . 80 of rule #1 (ip daddr . meta l4proto . th dport vmap "
                        "@service-ips) of chain services of table ip kube-proxy is for 10.1.10.7, outside the "
                        "service CIDR"),
        ("PV304", _line(planted, dispatch),
         f"rule #3 (ip daddr 10.1.10.8 tcp dport 80 goto {HTTP_SVC}) of chain services of table ip kube-proxy is for "
         "10.1.10.8, outside the service CIDR")]
    # The same element for a ClusterIP of the service CIDR, a node address and an external IP: service addresses.
    fine = "".join(f"add element ip kube-proxy service-ips {{ {ip} . tcp . 81 : goto {HTTP_SVC} }}\n"
                   for ip in ("10.152.183.200", "192.168.1.20"))
    assert _pv3(_write(tmp_path, "inside.nft", text + fine), cluster) == []


def test_no_endpoint_services_elements_are_service_rules_too(tmp_path, seed):
    _spec, cluster, text = seed
    planted = text + "add element ip kube-proxy no-endpoint-services { 10.1.30.44 . tcp . 80 : goto reject-chain }\n"
    found = _pv3(_write(tmp_path, "noep.nft", planted), cluster)
    assert [(cid, message.split(" of rule")[0]) for cid, _l, message in found] == [
        ("PV304", "element 10.1.30.44 . tcp . 80")]
    assert "of chain service-endpoints-check of table ip kube-proxy is for 10.1.30.44" in found[0][2]


def test_nodeport_ips_and_addresses_elsewhere_are_not_judged(tmp_path, seed):
    # @nodeport-ips holds what --nodeport-addresses chose (any address of the node): its rule names
    # no ClusterIP. A rule for a pod address in a chain that is no service dispatch is no service rule.
    _spec, cluster, text = seed
    planted = (text.replace("add element ip kube-proxy nodeport-ips { 192.168.1.10 }",
                            "add element ip kube-proxy nodeport-ips { 172.16.0.10 }")
               + "add rule ip kube-proxy filter-forward ip daddr 10.1.10.7 tcp dport 80 accept\n")
    assert "172.16.0.10" in planted
    assert _pv3(_write(tmp_path, "np.nft", planted), cluster) == []


MAPS = """table ip t {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    dnat to ip daddr map { 10.9.9.9 : 10.1.10.5, 10.9.9.8 : 10.1.77.7 }
    tcp dport { 1, 2 } dnat to 10.1.77.8
    tcp dport 3 dnat to 10.1.77.0-10.1.77.9
    tcp dport 4 dnat to 192.168.1.20:30080
    tcp dport 5 dnat to 10.1.30.7
  }
}
"""


def test_dnat_maps_by_element_and_rules_once(tmp_path):
    # A DNAT map's element is named; a DNAT after a set lookup is one finding for its rule; a range is
    # not judged; a node address and a ready endpoint are fine. In an iptables-mode cluster too.
    cluster = load_cluster(SEED)
    path = _write(tmp_path, "maps.nft", MAPS)
    assert _pv3(path, cluster, "node2") == [
        ("PV303", 4, "element 10.9.9.8 of rule #1 (dnat to ip daddr map { 10.9.9.9 : 10.1.10.5, 10.9.9.8 : 10.1.77.7 "
                     "}) of chain pre of table ip t DNATs to 10.1.77.7, which is no ready endpoint of any service"),
        ("PV303", 5, "rule #2 (tcp dport { 1, 2 } dnat to 10.1.77.8) of chain pre of table ip t DNATs to 10.1.77.8, "
                     "which is no ready endpoint of any service")]
    # Without a cluster there is nothing to judge against.
    assert not {f.id for f in lint_files([path]).findings} & {"PV303", "PV304"}
    assert not {f.id for f in lint_text(MAPS, "maps.nft")} & {"PV303", "PV304"}


def test_a_listing_names_the_handle_and_json_the_rule_index(tmp_path):
    cluster = load_cluster(SEED)
    listing = ("table ip t { # handle 3\n\tchain pre { # handle 1\n\t\ttype nat hook prerouting priority dstnat; "
               "policy accept;\n\t\ttcp dport 80 dnat to 10.1.77.7:8080 # handle 4\n\t}\n}\n")
    assert _pv3(_write(tmp_path, "l.nft", listing), cluster, "node2") == [
        ("PV303", 4, "rule #1 (tcp dport 80 dnat to 10.1.77.7:8080 # handle 4) of chain pre of table ip t DNATs to "
                     "10.1.77.7, which is no ready endpoint of any service")]
    doc = json.dumps({"nftables": [
        {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
        {"table": {"family": "ip", "name": "t", "handle": 3}},
        {"chain": {"family": "ip", "table": "t", "name": "pre", "handle": 1, "type": "nat", "hook": "prerouting",
                   "prio": -100, "policy": "accept"}},
        {"rule": {"family": "ip", "table": "t", "chain": "pre", "handle": 4, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80}},
            {"dnat": {"addr": "10.1.77.7", "port": 8080}}]}}]})
    found = _pv3(_write(tmp_path, "l.json", doc), cluster, "node2")
    assert [(cid, line) for cid, line, _m in found] == [("PV303", 1)]
    assert found[0][2].startswith("nftables[3]: rule #1 (tcp dport 80 dnat to 10.1.77.7:8080 # handle 4) of chain "
                                  "pre of table ip t DNATs to 10.1.77.7")


def test_the_cli_exit_code_and_json(tmp_path, seed, capsys):
    spec, _cluster, text = seed
    clean = _write(tmp_path, "clean.nft", text)
    stale = _write(tmp_path, "stale.nft", text.replace("dnat to 10.1.10.9:6443", "dnat to 10.1.10.99:6443"))
    base = ["--cluster", str(spec), "--node", "node1", "--format", "json"]
    assert main(["lint", str(clean), *base]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []
    assert main(["lint", str(stale), *base]) == 1
    doc = json.loads(capsys.readouterr().out)
    pv303 = [f for f in doc["findings"] if f["id"] == "PV303"]
    assert [(f["name"], f["severity"], f["file"]) for f in pv303] == [("dnat-to-non-endpoint", "error", str(stale))]
    assert pv303[0]["line"] == _line(stale.read_text(), "add rule ip kube-proxy endpoint-SKU5W76E-default/kubernetes/"
                                                        "tcp/https__10.1.10.9/6443 meta l4proto tcp dnat to "
                                                        "10.1.10.99:6443")
    assert "DNATs to 10.1.10.99" in pv303[0]["message"]
    # --ignore silences it as any finding (PV4: the broken service the verification finds too).
    assert main(["lint", str(stale), *base, "--ignore", "PV303,PV4"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


def test_a_ruleset_read_as_another_type_is_not_judged():
    # The map's data has one part where its type says two (PV158): nft refuses the ruleset, and
    # pktverify's reading of the element is no DNAT nft would do: nothing is said of it.
    text = ("table ip t {\n  map m {\n    type ipv4_addr : ipv4_addr . inet_service\n"
            "    elements = { 10.9.9.9 : 10.1.77.7 }\n  }\n  chain pre {\n"
            "    type nat hook prerouting priority dstnat; policy accept;\n    dnat to ip daddr map @m\n  }\n}\n")
    ruleset, findings = parse_nft_with_findings(text, "t.nft")
    findings += nft_findings(ruleset, text)
    assert [f.id for f in findings] == ["PV158"]
    facts = ServiceFacts(frozenset(), frozenset(), (0x0A98B700, 0xFFFFFF00))
    assert [f.id for f in nft_cluster_findings(ruleset, facts, [])] == ["PV303"]      # as read, were it loaded
    assert nft_cluster_findings(ruleset, facts, findings) == []
    assert lint_text(text, "t.nft", cluster=load_cluster(SEED)) == findings


@pytest.mark.property
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(clusters(proxy_modes=("nftables",), max_services=6))
def test_drawn_nftables_mode_clusters_have_no_finding(cluster):
    for node in cluster.nodes:
        ruleset, findings = parse_nft_with_findings(generate_node(cluster, node).nft, node.name)
        assert ruleset is not None
        assert cluster_findings(ruleset, cluster, findings) == []
