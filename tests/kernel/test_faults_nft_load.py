"""Every fault planted in a kube-proxy nftables-mode ruleset is a ruleset a node can have: the
kernel accepts it.

For each nft form of :mod:`pktverify.testing.faults` (planted on the seed cluster switched to
nftables mode, on node2; see tests/check/test_faults_nft.py), the planted node's ruleset is
checked with ``nft -c -f`` in a network namespace of the test's own (deleted afterwards; the
host's ruleset is never touched). etp-local-pod-detour edits no rule: the rulesets of the nodes
whose short-circuit rule does it are checked. And the check can fail: the stale element without
the old chains it names is refused.

Then each planted cluster goes through the cluster lab (:func:`pktverify.oracle.cluster_selftest.run_cluster`):
every flow verify checks is sent for real, and the kernel's outcome must be among verify's, flow by
flow; so what verify reports about a planted fault is what the kernel does with it.
"""

from __future__ import annotations

import subprocess

import pytest

from pktverify.generate.node_state import generate_node
from pktverify.oracle.cluster_selftest import run_cluster
from pktverify.testing.faults import IN_NFT_TOO, NEEDS_NFTABLES

from ..check.test_faults_nft import planted_on_node2
from .conftest import require_lab
from .nft_netns import netns_fixture, nft

pytestmark = pytest.mark.kernel


netns = netns_fixture("pv-fnft", lab=False)          # a fresh namespace for each ruleset


def _check(ns: str, script: str) -> subprocess.CompletedProcess:
    return nft(ns, "-c", "-f", "-", script=script)


def _scripts(name: str) -> list[str]:
    cluster = planted_on_node2(name)
    if name == "etp-local-pod-detour":
        return [generate_node(cluster, n).nft for n in cluster.nodes if n.name != "node2"]
    [script] = [n.dump_text("nft") for n in cluster.nodes if n.dump_text("nft")]
    assert script != generate_node(cluster, cluster.node("node2")).nft
    return [script]


@pytest.mark.parametrize("name", sorted(IN_NFT_TOO | NEEDS_NFTABLES))
def test_the_planted_ruleset_loads(netns, name):
    for script in _scripts(name):
        checked = _check(netns, script)
        assert checked.returncode == 0, f"{name}: nft -c -f refused it: {checked.stderr}"


def test_the_check_refuses_a_map_element_that_names_no_chain(netns):
    [script] = _scripts("stale-map-element")
    lines = script.split("\n")
    added = [line for line in lines if line.startswith(("add chain ", "add rule ")) and "svc-deleted" in line]
    assert len(added) == 6 and any(line.startswith("add element ") and "svc-deleted" in line for line in lines)
    broken = "\n".join(line for line in lines if line not in added)
    assert _check(netns, broken).returncode != 0


@pytest.mark.parametrize("name", sorted(IN_NFT_TOO | NEEDS_NFTABLES))
def test_the_kernel_agrees_with_verify_on_the_planted_cluster(name):
    require_lab("cluster lab")
    run = run_cluster(planted_on_node2(name), name=name, minimum=2)
    assert not run.skipped and not run.lab_errors, run.lab_errors
    assert run.verdicts and run.agreed == len(run.verdicts), \
        "\n".join(f"{v.expectation.label}: {v.problems}" for v in run.disagreements)
