"""Real-node rule shapes (tests/corpus/realworld/) load without --lenient and give exact answers.

The kernel agreement of the same dumps and probes is checked in
``tests/kernel/test_kernel_realworld.py``; this test needs no root.
"""

from __future__ import annotations

import json

import pytest

from pktverify.oracle.kernel_lab import CLIENT_ADDRESSES, LAB_ADDRS, LAB_ROUTES

from ..hostile import run
from .realworld_cases import CASES, IDS, dumps, reaches_the_node


def test_the_corpus_has_the_systems_the_issue_names():
    assert {p.name for p in dumps()} >= {"kube-proxy-ipvs", "calico", "flannel-vxlan", "weave", "istio-init",
                                         "docker-28", "libvirt", "home-router", "cilium", "aks-azure-npm",
                                         "company-gateway"}


@pytest.mark.parametrize("folder,probe", CASES, ids=IDS)
def test_every_probe_reaches_the_lab_node(folder, probe):
    assert reaches_the_node(probe[0], probe[3]), f"{folder.name}: {probe} never leaves its own namespace in the lab"


@pytest.mark.parametrize("folder,probe", CASES, ids=IDS)
def test_realworld_dump_loads_and_traces_without_lenient(tmp_path, folder, probe):
    (tmp_path / "addrs").write_text(LAB_ADDRS)
    (tmp_path / "routes").write_text(LAB_ROUTES)
    client, proto, sport, dst, dport = probe
    src, iface = CLIENT_ADDRESSES[client]
    argv = ["trace", "--iptables", str(folder / "iptables-save.txt"), "--addrs", str(tmp_path / "addrs"),
            "--routes", str(tmp_path / "routes"), *(["--in-iface", iface] if iface else ["--local"]),
            "--proto", proto, "--src", src, "--sport", str(sport), "--dst", dst, "--dport", str(dport),
            "--format", "json"]
    if (folder / "ipset-save.txt").is_file():
        argv += ["--ipsets", str(folder / "ipset-save.txt")]
    result = run(argv)
    assert result.status == 0, result.err
    outcomes = json.loads(result.out)["outcomes"]
    assert outcomes and all(0.0 < o["probability"] <= 1.0 for o in outcomes)
    if all(o["exact"] for o in outcomes):
        assert abs(sum(o["probability"] for o in outcomes) - 1.0) < 1e-9
