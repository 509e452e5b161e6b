"""The cluster lab on a kube-proxy nftables-mode cluster: each node's generated ``table ip
kube-proxy`` loaded with ``nft -f`` in its namespace (beside what iptables-restore loads), every
flow verify checks sent for real, the kernel's outcome among verify's, flow by flow."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import pktverify
from pktverify.oracle.cluster_selftest import run_cluster

from .conftest import require_lab

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "rules" / "seed" / "cluster-iptables.yaml"
SERVICES = ROOT / "rules" / "services" / "every-service-type.yaml"


@pytest.fixture(autouse=True)
def _needs_lab():
    require_lab("cluster lab")


def _nftables(path: Path, tmp_path: Path):
    text = path.read_text()
    assert text.count("proxy_mode: iptables") == 1
    out = tmp_path / path.name
    out.write_text(text.replace("proxy_mode: iptables", "proxy_mode: nftables"))
    cluster = pktverify.load_cluster(out)
    assert cluster.proxy_mode == "nftables"
    return cluster


def _explain(run) -> str:
    return "\n".join(f"{v.expectation.label}: {v.problems}" for v in run.disagreements) or str(run.lab_errors)


def test_seed_cluster_in_nftables_mode_agrees_flow_by_flow_and_leaves_nothing(tmp_path):
    run = run_cluster(_nftables(SEED, tmp_path), name="seed-nft", minimum=5)
    assert not run.skipped and not run.lab_errors, run.lab_errors
    assert len(run.verdicts) == 66 and run.connections >= 66 * 5
    assert run.agreed == len(run.verdicts), _explain(run)
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    assert run.prefix and not [ns for ns in left if ns.startswith(run.prefix)]


def test_every_service_type_in_nftables_mode_agrees(tmp_path):
    run = run_cluster(_nftables(SERVICES, tmp_path), name="svc-nft", minimum=3)
    assert not run.skipped and not run.lab_errors, run.lab_errors
    assert run.verdicts and run.agreed == len(run.verdicts), _explain(run)
