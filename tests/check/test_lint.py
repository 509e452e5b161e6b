"""pktverify lint: one test per check id (a minimal rule set that triggers it and a near miss that must
not), suppression, selection, exit codes, --cluster, and shadowing checked against the tracer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pktverify.check.lint import REGISTRY, lint_files, lint_text
from pktverify.cli import main
from pktverify.generate.node_state import generate_node
from pktverify.parse.cluster_yaml import load_cluster
from pktverify.report.rules_doc import render

from ..helpers import pkt, tracer

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "rules" / "seed" / "cluster-iptables.yaml"
RULE_LEVEL = sorted(cid for cid, c in REGISTRY.items() if c.family in ("structure", "reachability")
                    or cid in ("PV301", "PV302", "PV307"))


def ids(text: str, **kw) -> set[str]:
    return {f.id for f in lint_text(text + "\n", "t.rules", **kw)}


@pytest.mark.parametrize("cid", RULE_LEVEL)
def test_each_rule_level_check_fires_on_its_example_and_not_on_the_near_miss(cid):
    check = REGISTRY[cid]
    assert cid in ids(check.bad), check.bad
    assert cid not in ids(check.good), check.good


def test_every_registered_id_is_tested_here():
    cluster_level = {"PV303", "PV304", "PV305", "PV306", "PV401", "PV402", "PV403", "PV404"}
    assert set(REGISTRY) == set(RULE_LEVEL) | cluster_level


def test_every_parse_error_is_a_finding_and_the_rest_is_still_checked():
    text = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n-A INPUT -p tcp --dport 99999 -j ACCEPT\n"
            "-A INPUT -j NOPE\n-A FORWARD -j DROP\n-A FORWARD -s 10.0.0.0/8 -j ACCEPT\n-A INPUT -m bogus -j DROP\nCOMMIT")
    found = sorted((f.line, f.id) for f in lint_text(text, "t.rules"))
    assert found == [(4, "PV100"), (5, "PV101"), (7, "PV202"), (8, "PV100")]


def test_shadowing_names_the_covering_rules_and_needs_all_of_them():
    text = ("*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -p tcp -d 10.0.0.0/25 -j ACCEPT\n"
            "-A FORWARD -p tcp -d 10.0.0.128/25 -j DROP\n-A FORWARD -p tcp -d 10.0.0.0/24 --dport 80 -j ACCEPT\n"
            "-A FORWARD -p udp -d 10.0.0.0/24 -j ACCEPT\nCOMMIT")
    [shadow] = [f for f in lint_text(text, "t.rules") if f.id == "PV203"]
    assert shadow.line == 5 and [line for _s, line, _w in shadow.related] == [3, 4]
    # A MARK between them changes the packet: the earlier rules no longer cover the later one.
    marked = text.replace("-A FORWARD -p tcp -d 10.0.0.0/24 --dport 80",
                          "-A FORWARD -j MARK --set-mark 1\n-A FORWARD -p tcp -d 10.0.0.0/24 --dport 80")
    assert "PV203" not in {f.id for f in lint_text(marked, "t.rules")}
    # An opaque match (tcp flags) in the earlier rule: it does not cover.
    opaque = text.replace("-d 10.0.0.0/25 -j ACCEPT", "-d 10.0.0.0/25 --syn -j ACCEPT")
    assert "PV203" not in {f.id for f in lint_text(opaque, "t.rules")}
    # Interfaces, negations, ranges and conntrack states are exact too.
    ifaces = ("*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -i eth+ -j ACCEPT\n-A FORWARD ! -i eth0 -j DROP\n"
              "-A FORWARD -i eth1 -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT\n"
              "-A FORWARD -m iprange --src-range 10.0.0.1-10.0.0.9 -i lo -j ACCEPT\nCOMMIT")
    assert [f.line for f in lint_text(ifaces, "t.rules") if f.id == "PV203"] == [5, 6]


# Shadowing is sound: a rule reported as shadowed never acts on a packet inside its own match.
_ADDRS = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "192.168.0.0/16"]


@st.composite
def filter_chains(draw):
    rules = []
    for _ in range(draw(st.integers(2, 7))):
        parts = ["-A FORWARD"]
        proto = draw(st.sampled_from(["", "tcp", "udp"]))
        if proto:
            parts.append(f"-p {proto}")
        for flag in ("-s", "-d"):
            if draw(st.booleans()):
                parts.append(f"{draw(st.sampled_from(['', '! ']))}{flag} {draw(st.sampled_from(_ADDRS))}")
        if proto and draw(st.booleans()):
            parts.append(f"--dport {draw(st.sampled_from(['80', '80:90', '1:1024']))}")
        if draw(st.booleans()):
            parts.append(f"-i {draw(st.sampled_from(['cni0', 'eth0', 'eth+']))}")
        parts.append(f"-j {draw(st.sampled_from(['ACCEPT', 'DROP', 'LOG', 'RETURN']))}")
        rules.append(" ".join(parts))
    return "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" + "\n".join(rules) + "\nCOMMIT\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(filter_chains(), st.data())
def test_a_shadowed_rule_never_acts_on_its_own_packets(text, data):
    from pktverify.check.headerspace import Universe, rule_box
    from pktverify.parse.iptables_save import parse_iptables_save
    shadowed = {f.line for f in lint_text(text, "rules.txt") if f.id in ("PV202", "PV203")}
    ruleset = parse_iptables_save(text, source="rules.txt")
    universe = Universe.of(ruleset)
    node = tracer(text)
    for rule in ruleset.tables["filter"].chains["FORWARD"].rules:
        if rule.line not in shadowed:
            continue
        box, _exact = rule_box(rule, universe)
        for _ in range(3):                  # packets inside the shadowed rule's own match
            src, dst = (data.draw(st.sampled_from([lo, hi])) for lo, hi in (data.draw(st.sampled_from(box[0])),
                                                                             data.draw(st.sampled_from(box[1]))))
            lo, hi = data.draw(st.sampled_from(box[2]))
            proto = next((p for p in (6, 17, 1) if lo <= p <= hi), None)
            if proto is None:
                continue
            dlo, dhi = data.draw(st.sampled_from(box[4]))
            iface = next((n for n in ("cni0", "eth0") if any(a <= universe.interface_atom(n) <= b for a, b in box[5])), None)
            if iface is None:
                continue
            from pktverify.model.addresses import format_ip
            trace = node.trace(pkt(format_ip(src), format_ip(dst), dport=dlo if proto != 1 else 0,
                                   proto={6: "tcp", 17: "udp", 1: "icmp"}[proto]), in_iface=iface)
            steps = [s for o in trace.outcomes for s in o.steps if s.table == "filter" and s.line == rule.line]
            assert not steps, (rule.text, trace.outcomes[0].steps)


def test_inline_suppression_and_selection():
    text = ("*filter\n:FORWARD ACCEPT [0:0]\n:UNUSED - [0:0]\n-A FORWARD -j DROP\n"
            "-A FORWARD -d 10.0.0.0/8 -m comment --comment \"pktverify: ignore[PV202]\" -j ACCEPT\n"
            "-A FORWARD -d 10.9.0.0/16 -m comment --comment \"owner: team-a; pktverify: ignore[PV1, PV2]\" -j ACCEPT\n"
            "-A FORWARD -d 10.8.0.0/16 -j ACCEPT\nCOMMIT\n")
    path = ROOT / "tests" / "_lint_tmp.rules"
    path.write_text(text)
    try:
        assert [(f.id, f.line) for f in lint_files([path]).findings] == [("PV104", 3), ("PV202", 7)]
        assert [f.id for f in lint_files([path], select_ids=["PV2"]).findings] == ["PV202"]
        assert [f.id for f in lint_files([path], ignore_ids=["PV202"]).findings] == ["PV104"]
        assert main(["lint", str(path)]) == 0                                 # warnings only
        assert main(["lint", str(path), "--fail-on", "warning"]) == 1
        assert main(["lint", str(path), "--select", "PV999"]) == 2           # no such id: bad input
    finally:
        path.unlink()


def test_bad_input_exits_2_without_a_traceback(tmp_path, capsys):
    assert main(["lint", str(tmp_path / "missing.rules")]) == 2
    (tmp_path / "bin").write_bytes(b"\x00\x01\x02")
    assert main(["lint", str(tmp_path / "bin")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 2


# ------------------------------------------------------------------ --cluster
@pytest.fixture()
def proposed(tmp_path):
    """node1's generated rules of the seed cluster (iptables mode), edited by the test."""
    cluster = load_cluster(SEED)
    text = generate_node(cluster, cluster.nodes[0]).iptables

    def write(edit) -> Path:
        path = tmp_path / "proposed.rules"
        path.write_text(edit(text))
        return path
    return write


def _cluster_ids(path: Path) -> dict[str, list[int]]:
    result = lint_files([path], cluster=load_cluster(SEED), node="node1")
    out: dict[str, list[int]] = {}
    for f in result.findings:
        out.setdefault(f.id, []).append(f.line)
    return out


def test_the_unchanged_rules_are_clean_in_their_cluster(proposed):
    assert _cluster_ids(proposed(lambda t: t)) == {}


def test_pv402_and_pv305_a_masquerade_of_pod_traffic(proposed):
    path = proposed(lambda t: t.replace(":POSTROUTING ACCEPT [0:0]\n",
                                        ":POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -s 10.1.0.0/16 -j MASQUERADE\n", 1))
    line = path.read_text().splitlines().index("-A POSTROUTING -s 10.1.0.0/16 -j MASQUERADE") + 1
    found = _cluster_ids(path)
    assert set(found["PV402"]) == {line} and found["PV305"] == [line]
    near = proposed(lambda t: t.replace(":POSTROUTING ACCEPT [0:0]\n", ":POSTROUTING ACCEPT [0:0]\n"
                                        "-A POSTROUTING -s 10.1.0.0/16 -d 8.8.8.0/24 -j MASQUERADE\n", 1))
    assert _cluster_ids(near) == {}


def test_pv403_and_pv301_a_skewed_endpoint_choice(proposed):
    path = proposed(lambda t: t.replace("--probability 0.50000000000", "--probability 0.20000000000"))
    found = _cluster_ids(path)
    assert "PV403" in found and "PV301" in found
    lines = path.read_text().splitlines()
    # one finding, at the split's first statistic branch (the endpoint of the last branch too)
    [line] = found["PV403"]
    assert lines[line - 1].startswith("-A KUBE-SVC-SIW7LBJJAVI2ZFAT ") and "--probability 0.2" in lines[line - 1]


def test_pv303_dnat_to_a_non_endpoint_and_pv304_a_clusterip_outside(proposed):
    path = proposed(lambda t: t.replace("--to-destination 10.1.30.7:8080", "--to-destination 10.1.30.99:8080")
                    .replace("-d 10.152.183.69/32", "-d 10.1.20.200/32"))
    found = _cluster_ids(path)
    assert "PV303" in found and "PV304" in found
    assert "PV303" not in _cluster_ids(proposed(lambda t: t))


def test_pv306_an_empty_service_not_rejected(tmp_path):
    text = SEED.read_text() + ("  - {name: empty, namespace: default, cluster_ip: 10.152.183.99,\n"
                               "     ports: [{name: http, port: 80, target_port: 8080, protocol: TCP}], "
                               "selector: {app: nobody}}\n")
    cluster_path = tmp_path / "cluster.yaml"
    cluster_path.write_text(text)
    cluster = load_cluster(cluster_path)
    rules = generate_node(cluster, cluster.nodes[0]).iptables
    good, bad = tmp_path / "good.rules", tmp_path / "bad.rules"
    good.write_text(rules)
    bad.write_text("\n".join(line for line in rules.split("\n") if not ("default/empty:http" in line and "REJECT" in line)))
    assert "PV306" in {f.id for f in lint_files([bad], cluster=cluster, node="node1").findings}
    assert "PV306" not in {f.id for f in lint_files([good], cluster=cluster, node="node1").findings}


def test_pv404_routing_and_pv401_the_address_plan(proposed, tmp_path):
    path = proposed(lambda t: t.replace("*filter\n:INPUT ACCEPT [0:0]", "*filter\n:INPUT DROP [0:0]"))
    found = _cluster_ids(path)
    lines = path.read_text().splitlines()
    assert "PV404" in found and all(lines[n - 1].startswith(":INPUT DROP") for n in found["PV404"])
    broken = tmp_path / "cluster.yaml"
    broken.write_text(SEED.read_text().replace("cluster_ip: 10.152.183.69", "cluster_ip: 10.1.10.200"))
    result = lint_files([proposed(lambda t: t)], cluster=load_cluster(broken), node="node1", select_ids=["PV401"])
    assert result.findings and {f.source for f in result.findings} == {str(broken)}
    assert any("inside node node1's pod CIDR" in f.message for f in result.findings)


def test_cluster_mode_needs_a_node_and_one_file(proposed, capsys):
    path = proposed(lambda t: t)
    assert main(["lint", str(path), "--cluster", str(SEED)]) == 2
    assert main(["lint", str(path), str(path), "--cluster", str(SEED), "--node", "node1"]) == 2
    assert main(["lint", str(path), "--node", "node1"]) == 2
    assert "--node is needed" in capsys.readouterr().err


def test_rules_doc_is_generated_from_the_registry():
    assert (ROOT / "docs" / "rules.md").read_text() == render(), \
        "docs/rules.md is stale: run `python -m pktverify.report.rules_doc > docs/rules.md`"


# ------------------------------------------------------------------ PV307 shared userspace proxy port
def _portal(chain: str, dst: str, service: str, target: str, dport: int = 80, proto: str = "tcp") -> str:
    where = f"-d {dst}/32 " if dst else ""
    return (f"-A {chain} {where}-p {proto} -m comment --comment \"{service}\" -m {proto} --dport {dport} "
            f"-j {target}")


def _userspace(*rules: str) -> str:
    chains = ("KUBE-PORTALS-CONTAINER", "KUBE-PORTALS-HOST", "KUBE-NODEPORT-CONTAINER", "KUBE-NODEPORT-HOST")
    return ("*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" + "".join(f":{c} - [0:0]\n" for c in chains)
            + "-A PREROUTING -j KUBE-PORTALS-CONTAINER\n-A PREROUTING -j KUBE-NODEPORT-CONTAINER\n"
            "-A OUTPUT -j KUBE-PORTALS-HOST\n-A OUTPUT -j KUBE-NODEPORT-HOST\n" + "\n".join(rules) + "\nCOMMIT\n")


def test_pv307_two_services_on_one_proxy_port_and_its_near_misses():
    one = [_portal("KUBE-PORTALS-CONTAINER", "10.152.183.69", "default/a:", "REDIRECT --to-ports 36533"),
           _portal("KUBE-PORTALS-HOST", "10.152.183.69", "default/a:", "DNAT --to-destination 192.168.1.10:36533"),
           _portal("KUBE-NODEPORT-CONTAINER", "", "default/a:", "REDIRECT --to-ports 36533", dport=30080),
           _portal("KUBE-NODEPORT-HOST", "", "default/a:", "DNAT --to-destination 192.168.1.10:36533", dport=30080)]
    assert "PV307" not in ids(_userspace(*one))          # one service's ClusterIP, node port, host and pods
    # the host rule (DNAT to the node's own address) of another service on the same port
    other_host = _portal("KUBE-PORTALS-HOST", "10.152.183.70", "default/b:http", "DNAT --to-destination "
                         "192.168.1.10:36533")
    text = _userspace(*one, other_host)
    [finding] = [f for f in lint_text(text, "t.rules") if f.id == "PV307"]
    lines = text.splitlines()
    assert "default/a: and default/b:http" in finding.message and lines[finding.line - 1] == other_host
    assert lines[finding.related[0][1] - 1] == one[0]
    # the same port number in another protocol is another proxy socket
    udp = _portal("KUBE-PORTALS-CONTAINER", "10.152.183.70", "default/b:dns", "REDIRECT --to-ports 36533",
                  proto="udp")
    assert "PV307" not in ids(_userspace(*one, udp))
    # a DNAT to an address that is not the node's (an endpoint two services share) is no proxy port
    cluster = load_cluster(SEED)
    shared_pod = ("*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SEP-A - [0:0]\n:KUBE-SEP-B - [0:0]\n"
                  "-A PREROUTING -d 10.152.183.69/32 -p tcp --dport 80 -j KUBE-SEP-A\n"
                  "-A PREROUTING -d 10.152.183.70/32 -p tcp --dport 80 -j KUBE-SEP-B\n"
                  + _portal("KUBE-SEP-A", "", "default/a:", "DNAT --to-destination 192.168.1.10:6443") + "\n"
                  + _portal("KUBE-SEP-B", "", "default/b:", "DNAT --to-destination 192.168.1.10:6443") + "\nCOMMIT\n")
    assert "PV307" not in {f.id for f in lint_text(shared_pod, "t.rules", cluster=cluster, node="node1")}
    userspace = dataclasses.replace(cluster, proxy_mode="userspace")
    found = [f for f in lint_text(shared_pod, "t.rules", cluster=userspace, node="node1") if f.id == "PV307"]
    assert len(found) == 1                                # userspace mode: the node's own address is a proxy port
    assert not [f for f in lint_text(shared_pod, "t.rules", cluster=userspace, node="node2") if f.id == "PV307"]


@pytest.mark.parametrize("path", ["rules/seed/cluster-iptables.yaml", "rules/services/every-service-type.yaml"])
def test_pv307_is_clean_on_what_kube_proxy_userspace_writes(path):
    cluster = dataclasses.replace(load_cluster(ROOT / path), proxy_mode="userspace")
    for node in cluster.nodes:
        text = generate_node(cluster, node).iptables
        assert "REDIRECT --to-ports" in text
        assert not [f for f in lint_text(text, "t.rules", cluster=cluster, node=node.name) if f.id == "PV307"]
        assert "PV307" not in ids(text)
