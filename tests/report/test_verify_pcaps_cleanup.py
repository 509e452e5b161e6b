"""verify --pcap-dir: a run leaves only its own captures, and never touches anything else."""

from __future__ import annotations

import os
from pathlib import Path

from pktverify.cli import main

RULES = Path(__file__).resolve().parents[2] / "rules"


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


def test_a_planted_manifest_link_is_not_followed(tmp_path, capsys):
    out = tmp_path / "caps"
    out.mkdir()
    (tmp_path / "target").write_text("routing-violation-1.pcapng\n")
    os.symlink(tmp_path / "target", out / ".pktverify-verify-captures")
    status = main(["verify", str(RULES / "broken" / "stale-endpoint.yaml"), "--pcap-dir", str(out), "--jobs", "1"])
    err = capsys.readouterr().err
    assert status == 2 and "not a regular file" in err and "Traceback" not in err
    assert (tmp_path / "target").read_text() == "routing-violation-1.pcapng\n"      # neither read as ours nor written


def test_lint_and_diff_refuse_devices_folders_and_fifos_with_one_line(tmp_path, capsys):
    fifo = tmp_path / "fifo.rules"
    os.mkfifo(fifo)
    good = tmp_path / "good.rules"
    good.write_text("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
    for argv in (["lint", str(fifo)], ["lint", str(tmp_path)], ["lint", "/dev/null"],
                 ["diff", str(good), str(fifo)], ["diff", str(tmp_path), str(good)],
                 ["lint", str(good), "--cluster", str(fifo)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, (argv, err)
