"""The small things a user hits first: --version, a reader that goes away, how steps read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pktverify.cli import main

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "rules/kube-node"


def _trace(capsys, *argv: str) -> str:
    code = main(["trace", "--iptables", str(NODE / "iptables-save.txt"), "--addrs", str(NODE / "ip-addr.json"),
                 "--routes", str(NODE / "ip-route.txt"), *argv])
    assert code == 0
    return capsys.readouterr().out


def test_version(capsys):
    from importlib import metadata
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out == f"pktverify {metadata.version('pktverify')}\n"


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path):
    # 40 nodes: far more output than a pipe holds (64 KiB), so the writer surely meets the closed end
    nodes = "\n".join(f"  - {{name: node{i}, ip: 192.168.1.{i}/24, pod_cidr: 10.1.{i}.0/24, bridge: cbr0}}"
                      for i in range(1, 41))
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text("cluster: {cidr: 10.1.0.0/16, service_cidr: 10.152.183.0/24, proxy_mode: iptables, "
                       f"routing: direct}}\nnodes:\n{nodes}\n")
    proc = subprocess.Popen([sys.executable, "-c", "from pktverify.cli import run; run()", "generate", str(cluster)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"# node1/")
    proc.stdout.close()                    # as `| head -1` does
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141 and err == b""


def test_a_policy_reads_once_and_a_connected_hop_says_on_link(capsys):
    out = _trace(capsys, "--in-iface", "eth0", "--proto", "TCP", "--src", "10.1.20.5", "--dst", "10.1.10.5",
                 "--dport", "80")
    assert "policy ACCEPT" in out and "policy: policy" not in out
    assert "FORWARD out cbr0 on-link (to the destination itself, no gateway)" in out
    out = _trace(capsys, "--in-iface", "cbr0", "--proto", "tcp", "--src", "10.1.10.5", "--dst", "10.1.20.5",
                 "--dport", "80")
    assert "FORWARD out eth0 via 192.168.1.20" in out


def test_an_empty_path_is_refused_not_ignored(capsys, tmp_path):
    for argv, option in ((["verify", str(ROOT / "rules/seed/cluster.yaml"), "--html", ""], "--html"),
                         (["verify", ""], "CLUSTER"), (["generate", str(ROOT / "rules/seed/cluster.yaml"), "--out", ""],
                                                        "--out"),
                         (["verify", str(ROOT / "rules/seed/cluster.yaml"), "--pcap-dir", ""], "--pcap-dir")):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.err == f"pktverify: {option} is empty: give a path\n" and captured.out == ""


@pytest.mark.parametrize("bug", [ValueError("a slip"), TypeError("a slip"), KeyError("a slip")])
def test_a_bare_error_from_a_bug_is_an_internal_error_not_bad_input(capsys, monkeypatch, bug):
    import pktverify.cli as cli

    def broken(args):
        raise bug
    monkeypatch.delenv("PKTVERIFY_DEBUG", raising=False)
    monkeypatch.setattr(cli, "generate_command", broken)
    assert main(["generate", str(ROOT / "rules/seed/cluster.yaml")]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("pktverify: internal error (a bug in pktverify, please report it with the input): "
                                   f"{type(bug).__name__}: {bug} at test_cli_small.py:")
    assert captured.err.endswith("; PKTVERIFY_DEBUG=1 shows the traceback\n") and captured.err.count("\n") == 1


def test_pktverifys_own_errors_are_bad_input(capsys, monkeypatch):
    import pktverify.cli as cli
    from pktverify.errors import InputError, InvalidArgument

    for error, said in ((InvalidArgument("--out is not a folder"), "--out is not a folder"),
                        (InputError("x.yaml", 3, "no such field", "nodez"), "x.yaml:3: no such field: nodez")):
        def refuse(args, error=error):
            raise error
        monkeypatch.setattr(cli, "generate_command", refuse)
        assert main(["generate", str(ROOT / "rules/seed/cluster.yaml")]) == 2
        assert capsys.readouterr().err == f"pktverify: {said}\n"
