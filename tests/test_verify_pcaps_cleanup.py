"""verify --pcap-dir: a run leaves only its own captures, and never touches anything else."""

from __future__ import annotations

import os
from pathlib import Path

from pktverify.cli import main

RULES = Path(__file__).resolve().parent.parent / "rules"


def test_a_second_run_removes_what_the_first_wrote_and_nothing_else(tmp_path, capsys):
    out = tmp_path / "caps"
    assert main(["verify", str(RULES / "broken" / "stale-endpoint.yaml"), "--pcap-dir", str(out), "--jobs", "1"]) == 1
    first = sorted(p.name for p in out.glob("*.pcapng"))
    assert first and all(n.startswith("service-reachability-violation-") for n in first)
    (out / "mine.pcapng").write_bytes(b"user data")                   # the user's own file
    (tmp_path / "elsewhere").write_text("keep")
    os.symlink(tmp_path / "elsewhere", out / "no-nat-violation-9.pcapng")   # a link with one of our names
    manifest = out / ".pktverify-verify-captures"
    manifest.write_text(manifest.read_text() + "\nno-nat-violation-9.pcapng\n../elsewhere\n")
    assert main(["verify", str(RULES / "broken" / "missing-route" / "cluster.yaml"), "--pcap-dir", str(out),
                 "--jobs", "1"]) == 1
    left = sorted(p.name for p in out.iterdir())
    assert left == [".pktverify-verify-captures", "mine.pcapng", "no-nat-violation-9.pcapng",
                    "routing-violation-1.pcapng"]
    assert (tmp_path / "elsewhere").read_text() == "keep" and (out / "mine.pcapng").read_bytes() == b"user data"
    assert manifest.read_text() == "routing-violation-1.pcapng"
    capsys.readouterr()
