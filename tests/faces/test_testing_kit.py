"""What a platform engineer's own tests use: their rules on a drawn cluster's nodes, assertions
that cannot pass by asserting nothing, counterexamples that stand alone, a CI profile."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import pktverify
from pktverify import InvalidArgument
from pktverify.model.packet import Packet
from pktverify.testing import assert_trace, register_ci_profile

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "rules/seed/cluster-iptables.yaml"


def _forward_drop(cluster, node="node1"):
    dumps = pktverify.generated_dumps(cluster)
    text = dumps[node]["iptables"]
    assert ":FORWARD ACCEPT [0:0]" in text
    return pktverify.with_node_dumps(cluster, node, iptables=text.replace(":FORWARD ACCEPT", ":FORWARD DROP")), text


def test_own_rules_on_a_node_are_verified_and_located_in_their_text():
    cluster = pktverify.load_cluster(SEED)
    assert pktverify.verify(cluster).holds
    changed, text = _forward_drop(cluster)
    report = pktverify.verify(changed)
    assert not report.holds
    line = text.splitlines().index(":FORWARD DROP [0:0]".replace("DROP", "ACCEPT")) + 1
    assert report.groups[0].location == f"<iptables of node1 in {cluster.source}>:{line}"
    # Only node1 changed; the others keep generating their dumps.
    assert set(pktverify.generated_dumps(changed)["node1"]) == {"addrs", "routes"}
    assert set(pktverify.generated_dumps(changed)["node2"]) == {"iptables", "addrs", "routes"}


def test_inline_dumps_are_located_at_their_line_of_the_yaml(tmp_path):
    changed, _text = _forward_drop(pktverify.load_cluster(SEED))
    path = tmp_path / "cluster.yaml"
    path.write_text(pktverify.cluster_to_yaml(changed))
    report = pktverify.verify(pktverify.load_cluster(path))
    source, _, line = report.groups[0].location.rpartition(":")
    assert source == str(path)
    assert path.read_text().splitlines()[int(line) - 1].strip() == ":FORWARD DROP [0:0]"


def test_a_drawn_cluster_keeps_its_class_and_fault():
    from hypothesis import find

    from pktverify import strategies
    cluster = find(strategies.faulty_clusters(faults="forward-drop"), lambda c: True)
    node = cluster.nodes[0].name
    text = pktverify.generated_dumps(cluster)[node].get("iptables") or "*filter\nCOMMIT\n"
    copy = pktverify.with_node_dumps(cluster, node, iptables=text)
    assert type(copy) is type(cluster) and copy.fault == cluster.fault


@pytest.mark.parametrize("call, message", [
    (lambda c: pktverify.with_node_dumps(c, "node9", iptables=""), "no such node (it has node1, node2, node3)"),
    (lambda c: pktverify.with_node_dumps(c, "node1", iptables=b"x"), "give the dump's text as a str"),
    (lambda c: pktverify.with_node_dumps(c, "node1"), "give at least one of"),
    (lambda c: pktverify.generated_dumps("cluster.yaml"), "give a cluster from"),
])
def test_kit_arguments_are_checked(call, message):
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(pktverify.load_cluster(SEED))


def _scapy():
    from pktverify.scapy_quiet import import_scapy
    import_scapy()
    from scapy.layers.inet import IP, TCP
    return IP, TCP


def test_assert_trace_fails_on_a_drop_unless_told_to_expect_it(tmp_path):
    IP, TCP = _scapy()
    cluster = pktverify.load_cluster(SEED)
    changed, _text = _forward_drop(cluster)
    pkt = IP(src="10.1.10.5", dst="10.1.20.5", ttl=64) / TCP(sport=40000, dport=8080, flags="S")
    with pytest.raises(AssertionError, match="drop at - .* not arrived"):
        assert_trace(changed, pkt, sender="default/web-1")            # asserts something by default
    ends = assert_trace(changed, pkt, sender="default/web-1", verdict="drop")
    assert [e.kind for e in ends] == ["drop"]
    ends = assert_trace(cluster, pkt, sender="default/web-1")
    assert "10.1.20.5:8080" in repr(ends[0])                          # printable addresses
    with pytest.raises(InvalidArgument, match="verdict='drop' says no path arrives"):
        assert_trace(changed, pkt, sender="default/web-1", verdict="drop", reaches="default/web-2")
    node = pktverify.load_node(iptables=ROOT / "rules/kube-node/iptables-save.txt",
                               addrs=ROOT / "rules/kube-node/ip-addr.json", routes=ROOT / "rules/kube-node/ip-route.txt")
    assert assert_trace(node, pkt, in_iface="cbr0").outcomes                  # forward: gets through
    (tmp_path / "rules.txt").write_text("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                                        "COMMIT\n")
    closed = pktverify.load_node(iptables=tmp_path / "rules.txt", addrs=ROOT / "rules/kube-node/ip-addr.json",
                                 routes=ROOT / "rules/kube-node/ip-route.txt")
    with pytest.raises(AssertionError, match="expected it to get through .* got drop"):
        assert_trace(closed, pkt, in_iface="cbr0")
    assert assert_trace(closed, pkt, in_iface="cbr0", verdict="drop").outcomes
    with pytest.raises(InvalidArgument, match="on a node use one of"):
        assert_trace(node, pkt, in_iface="cbr0", verdict="arrived")


def test_packets_print_their_addresses():
    assert repr(Packet(6, 0x0A010A05, 0x0A011405, 40000, 8080)) == "Packet(tcp 10.1.10.5:40000 > 10.1.20.5:8080, SYN)"
    assert repr(Packet(1, 1, 2, 7, 0, 0, 8, 0, ttl=3)) == "Packet(icmp 0.0.0.1 > 0.0.0.2, type 8 code 0, ttl 3)"


def test_the_ci_profile_has_no_explain_phase():
    from hypothesis import Phase, settings
    profile = register_ci_profile("pktverify-test-ci", max_examples=7)
    assert Phase.explain not in profile.phases and Phase.shrink in profile.phases
    assert (profile.max_examples, profile.deadline, profile.derandomize) == (7, None, True)
    assert settings.get_profile("pktverify-test-ci") == profile
    with pytest.raises(InvalidArgument):
        register_ci_profile(max_examples=0)


def test_the_plugins_counterexample_stands_alone(pytester, tmp_path):
    """A cluster whose dumps are files: the written YAML holds them inline, and still fails the
    same way after the files are gone."""
    work = tmp_path / "cluster"
    shutil.copytree(ROOT / "rules/broken/missing-route", work)
    pytester.makepyfile(test_users=f'''
import pktverify
from pktverify.testing import assert_invariants

def test_it_holds():
    assert_invariants(pktverify.load_cluster({str(work / "cluster.yaml")!r}))
''')
    out = tmp_path / "counterexamples"
    result = pytester.runpytest_subprocess("--pktverify-pcap-dir", str(out), "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    [folder] = out.iterdir()
    before = pktverify.verify(pktverify.load_cluster(work / "cluster.yaml"))
    shutil.rmtree(work)
    text = (folder / "cluster.yaml").read_text()
    assert "iptables-save.txt" not in text and "dumps:" in text
    after = pktverify.verify(pktverify.load_cluster(folder / "cluster.yaml"))
    assert sorted(v.message for v in after.violations) == sorted(v.message for v in before.violations)
    assert not after.holds
