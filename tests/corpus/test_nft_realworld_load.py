"""The real-world nftables rulesets of tests/corpus/nft/ read and traced without root: every probe's
verdict from ``pktverify trace --nft`` on the script as written (beside its iptables-save text on the
mixed node) is the one the kernel gave (tests/kernel/test_nft_realworld.py checks it on the kernel's
own dumps)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from pktverify.cli import main
from pktverify.oracle.kernel_lab import CLIENT_ADDRESSES, LAB_ADDRS, LAB_ROUTES

from .nft_cases import NFT_CASES, NFT_IDS


@pytest.mark.parametrize("case", NFT_CASES, ids=NFT_IDS)
def test_realworld_nft_ruleset_traces_as_the_kernel_did(tmp_path, case):
    (tmp_path / "addrs.txt").write_text(LAB_ADDRS)
    (tmp_path / "routes.txt").write_text(LAB_ROUTES)
    src, iface = CLIENT_ADDRESSES[case.client]
    ipt = case.folder / "iptables-save.txt"
    argv = ["trace", "--nft", str(case.folder / "ruleset.nft"), *(["--iptables", str(ipt)] if ipt.exists() else []),
            "--addrs", str(tmp_path / "addrs.txt"), "--routes", str(tmp_path / "routes.txt"),
            *(["--in-iface", iface] if iface else ["--local"]), "--proto", case.proto, "--src", src,
            "--sport", str(case.sport), "--dst", case.dst, "--dport", str(case.dport), "--format", "json"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(argv) == 0, err.getvalue()
    outcomes = json.loads(out.getvalue())["outcomes"]
    assert [o["verdict"] for o in outcomes] == [case.verdict] and outcomes[0]["exact"], (case.why, outcomes)
