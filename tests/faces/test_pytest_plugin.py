"""The pytest plugin as a user meets it: a property test in their repository fails, and the shrunk
counterexample lands in --pktverify-pcap-dir as a cluster YAML and pcapng files (also under xdist)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pktverify import load_cluster, verify
from pktverify.cli import main
from pktverify.pytest_plugin import counterexample_folder

pytest_plugins = ["pytester"]

RULES = Path(__file__).resolve().parents[2] / "rules"

USERS_TESTS = '''
from hypothesis import Phase, given, settings
from pktverify import strategies
from pktverify.testing import assert_invariants

@settings(max_examples=25, database=None, deadline=None{phases})
@given(strategies.faulty_clusters(faults="{fault}"))
def test_{name}_holds(cluster):
    assert_invariants(cluster)

@settings(max_examples=10, database=None, deadline=None)
@given(strategies.clusters(max_nodes=2))
def test_clean_clusters_hold(cluster):
    assert_invariants(cluster)
'''

NO_SHRINK = ", phases=[Phase.generate]"     # where shrinking is not what a test is about: faster


def _read_pcapng(path: Path) -> list:
    from pktverify.scapy_quiet import import_scapy
    import_scapy()
    from scapy.utils import rdpcap
    return list(rdpcap(str(path)))


def test_a_failing_property_writes_its_shrunk_counterexample(pytester, tmp_path):
    pytester.makepyfile(test_users=USERS_TESTS.format(fault="forward-drop", name="forward", phases=""))
    out = tmp_path / "counterexamples"
    result = pytester.runpytest_subprocess("--pktverify-pcap-dir", str(out), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    [folder] = out.iterdir()
    assert folder.name == counterexample_folder("test_users.py::test_forward_holds")
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert names[0] == "cluster.yaml" and names[1:] and all(n.endswith(".pcapng") for n in names[1:])
    # The report says where, and what failed, hop by hop; Hypothesis shows the YAML with the example.
    result.stdout.fnmatch_lines(["*violation(s) of the Kubernetes network model (no-nat)*",
                                 "*planted fault: forward-drop*", "*no-nat violation 1:*", "*the failing cluster*"])
    result.stdout.fnmatch_lines(["*pktverify counterexample*", f"*{folder}/cluster.yaml*"])
    assert "def assert_invariants" not in result.stdout.str()      # the helper's frame is hidden
    cluster = load_cluster(folder / "cluster.yaml")            # the final, shrunk example
    assert len(cluster.nodes) <= 2 and len(cluster.pods) <= 2
    assert not verify(cluster).holds
    assert main(["verify", str(folder / "cluster.yaml"), "--jobs", "1"]) == 1
    frames = _read_pcapng(folder / names[1])
    assert frames and all(frame.haslayer("IP") for frame in frames)


def test_the_plugin_works_under_xdist(pytester, tmp_path):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_one=USERS_TESTS.format(fault="missing-peer-route", name="routes", phases=NO_SHRINK),
                        test_two=USERS_TESTS.format(fault="stray-dnat", name="dnat", phases=NO_SHRINK))
    out = tmp_path / "cex"
    result = pytester.runpytest_subprocess("-n", "2", "--pktverify-pcap-dir", str(out), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    folders = sorted(p.name for p in out.iterdir())
    assert folders == sorted(counterexample_folder(t) for t in ("test_one.py::test_routes_holds",
                                                                  "test_two.py::test_dnat_holds"))
    for name in folders:
        assert (out / name / "cluster.yaml").is_file() and list((out / name).glob("*.pcapng"))


def test_without_the_option_nothing_is_written(pytester):
    pytester.makepyfile(test_users=USERS_TESTS.format(fault="stale-endpoint", name="stale", phases=NO_SHRINK))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    assert "pktverify counterexample" not in result.stdout.str()
    assert not [p for p in pytester.path.rglob("*") if p.suffix in (".pcapng", ".yaml")]


def test_test_ids_become_safe_folder_names():
    for nodeid in ("t.py::test[../../etc]", "t.py::test[a/b]", "t.py::test[\x00\n]", "x" * 400):
        name = counterexample_folder(nodeid)
        assert "/" not in name and name not in (".", "..") and len(name) < 120 and name.isprintable()
    assert counterexample_folder("t.py::test[a/b]") != counterexample_folder("t.py::test[a_b]")


@pytest.mark.pktverify_cluster(str(RULES / "seed" / "cluster-iptables.yaml"))
def test_the_cluster_fixture_loads_the_marked_file(pktverify_cluster):
    assert [n.name for n in pktverify_cluster.nodes] == ["node1", "node2", "node3"]
    assert verify(pktverify_cluster).holds


@pytest.mark.parametrize("pktverify_cluster", [str(RULES / "broken" / "stale-endpoint.yaml")], indirect=True)
def test_the_cluster_fixture_takes_a_parameter(pktverify_cluster):
    assert not verify(pktverify_cluster).holds
