"""The Python API a CI job calls instead of shelling out: load_cluster, verify, the report, the helpers."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

import pktverify
from pktverify import InvalidArgument, load_cluster, verify
from pktverify.cli import main
from pktverify.testing import InvariantsFailed, assert_invariants, assert_trace

from ..load.test_cluster_kubectl import kubectl_dump

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "rules" / "seed" / "cluster-iptables.yaml"
STALE = ROOT / "rules" / "broken" / "stale-endpoint.yaml"


def test_verify_gives_the_clis_json(capsys):
    for path in (SEED, STALE):
        report = verify(load_cluster(path))
        capsys.readouterr()
        code = main(["verify", str(path), "--format", "json", "--jobs", "1"])
        assert capsys.readouterr().out == report.to_json()
        assert code == (0 if report.holds else 1)
    assert verify(load_cluster(SEED)).holds and not verify(load_cluster(STALE)).holds


def test_violations_are_objects_with_structured_hops():
    report = verify(load_cluster(STALE))
    broken = report["service-reachability"]
    assert not broken.holds and report.violations == [v for r in report.results for v in r.violations]
    v = broken.violations[0]
    assert v.invariant == "service-reachability" and v.packet.dport == 80 and 0 < v.probability <= 1
    assert v.hops and v.hops[0].point.startswith("pod:") and v.hops[0].packet == v.packet
    assert all(isinstance(h.note, str) and h.note for h in v.hops)
    assert [f"{h.point}: {h.packet.describe()} — {h.note}" for h in v.hops[:len(v.path)]] == list(v.path)
    with pytest.raises(KeyError, match="not checked"):
        verify(load_cluster(SEED), invariants=["routing"])["no-nat"]


def test_a_subset_of_invariants_and_the_options():
    cluster = load_cluster(SEED)
    report = verify(cluster, invariants=("routing", "pod-ip-uniqueness"))
    assert [r.name for r in report.results] == ["pod-ip-uniqueness", "routing"]
    assert verify(cluster, at=dt.datetime(2026, 11, 27, 9, 0), jobs=2).holds
    for bad in (dict(invariants=["no-such"]), dict(invariants="routing"), dict(invariants=[]), dict(jobs=0),
                dict(at="9am"), dict(max_paths=-1)):
        with pytest.raises(InvalidArgument):
            verify(cluster, **bad)
    with pytest.raises(InvalidArgument, match="give a cluster"):
        verify(str(SEED))


def test_load_cluster_reads_kubectl_json_like_the_cli(tmp_path):
    path = kubectl_dump(tmp_path)
    cluster = load_cluster(path, cluster_cidr="10.1.0.0/16", service_cidr="10.152.183.0/24")
    assert sorted(n.name for n in cluster.nodes) == ["node1", "node2", "node3"] and verify(cluster).holds
    with pytest.raises(InvalidArgument, match="--cluster-cidr"):
        load_cluster(path)
    with pytest.raises(InvalidArgument, match="kubectl JSON input"):
        load_cluster(SEED, dumps=tmp_path)


def test_the_package_exports_what_the_readme_says():
    for name in ("load_cluster", "verify", "cluster_to_yaml", "trace_to_pcapng", "trace", "trace_packet",
                 "load_node", "VerifyReport"):
        assert name in pktverify.__all__ and callable(getattr(pktverify, name))
    assert "INVARIANTS" in pktverify.__all__
    assert pktverify.INVARIANTS == ("pod-ip-uniqueness", "no-nat", "service-reachability", "routing")


def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "pktverify", "verify", str(SEED), "--jobs", "1"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and "service-reachability  holds" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "pktverify", "verify", "/nonexistent.yaml"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_report_writes_its_pcaps(tmp_path):
    report = verify(load_cluster(STALE))
    written = report.write_pcaps(tmp_path / "caps")
    assert len(written) == sum(1 for v in report.violations if v.end is not None) > 0
    assert all(p.is_file() and p.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a" for p in written)   # pcapng SHB


def test_assert_invariants_passes_a_clean_cluster_and_explains_a_broken_one():
    assert assert_invariants(load_cluster(SEED)).holds
    with pytest.raises(InvariantsFailed) as failed:
        assert_invariants(load_cluster(STALE))
    text = str(failed.value)
    assert text.startswith("8 violation(s) of the Kubernetes network model (service-reachability)")
    assert "service-reachability violation 1:" in text and "flow: pod default/web-1" in text
    assert "    pod:default/web-1:eth0: tcp 10.1.10.5:40000 > 10.152.183.164:80 — sent by pod" in text
    assert "and 5 more" in text and not failed.value.report.holds
    assert isinstance(failed.value, AssertionError)


def test_assert_trace_on_a_node_and_across_a_cluster():
    from pktverify.scapy_quiet import import_scapy
    import_scapy()
    from scapy.layers.inet import IP, TCP

    node = pktverify.load_node(iptables=ROOT / "rules/kube-node/iptables-save.txt",
                               addrs=ROOT / "rules/kube-node/ip-addr.json", routes=ROOT / "rules/kube-node/ip-route.txt")
    pkt = IP(src="10.1.10.5", dst="10.1.20.5", ttl=64) / TCP(sport=40000, dport=8080, flags="S")
    assert assert_trace(node, pkt, in_iface="cbr0", verdict="forward").outcomes
    with pytest.raises(AssertionError, match="expected drop, got forward"):
        assert_trace(node, pkt, in_iface="cbr0", verdict="drop")
    cluster = load_cluster(SEED)
    ends = assert_trace(cluster, pkt, sender="default/web-1", reaches="default/web-2", no_nat=True)
    assert [e.kind for e in ends] == ["arrived"]
    with pytest.raises(AssertionError, match="not default/backend-1"):
        assert_trace(cluster, pkt, sender="default/web-1", reaches="default/backend-1")
    with pytest.raises(InvalidArgument):
        assert_trace(cluster, pkt, sender="default/nobody")


def test_library_misuse_is_invalid_argument_not_a_bare_value_error(tmp_path):
    """A trace from an interface the node lacks, or an unknown capture split, is the caller's
    mistake: InvalidArgument (a PktverifyError) naming the argument, as every public call says it."""
    import pktverify
    from pktverify.report.verify_pcaps import write_verify_pcaps

    node = pktverify.load_node(iptables=ROOT / "rules/kube-node/iptables-save.txt",
                               addrs=ROOT / "rules/kube-node/ip-addr.json", routes=ROOT / "rules/kube-node/ip-route.txt")
    packet = pktverify.make_packet(proto="tcp", src="10.1.10.7", dst="10.152.183.164", dport=80)
    with pytest.raises(pktverify.InvalidArgument, match="in_iface='nope'.*no such interface"):
        pktverify.trace(node, packet, in_iface="nope")
    with pytest.raises(pktverify.InvalidArgument, match="split='bogus'"):
        write_verify_pcaps(None, [], tmp_path / "out", split="bogus")
    assert not (tmp_path / "out").exists()
