"""Benchmark: the whole `pktverify trace` command on a kube-proxy dump, side by side with
`iptables-restore --test` on the same file (issue #14: within 2x, cold, no cache).

Also times the opt-in model cache (``--cache-dir``): the run that fills it, then warm runs.

Run (as root, for iptables-restore in a fresh network namespace):
    python benchmarks/bench_trace_command.py [--services 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_node_trace import services  # noqa: E402  (the same dump as the trace benchmark)

from pktverify.generate.kube_proxy_iptables import kube_proxy_iptables_rules  # noqa: E402

ADDRS = ("1: lo    inet 127.0.0.1/8 scope host lo\n"
         "2: eth0    inet 192.168.1.10/24 brd 192.168.1.255 scope global eth0\n"
         "3: cbr0    inet 10.1.10.1/24 scope global cbr0\n")
ROUTES = ("default via 192.168.1.1 dev eth0\n10.1.10.0/24 dev cbr0 proto kernel scope link src 10.1.10.1\n"
          "192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.10\n")


def _time(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if done.returncode not in (0, 1):
            raise SystemExit(f"{cmd[0]} failed: {done.stderr.strip()}")
    return statistics.median(times)


def _console_script() -> str:
    """The ``pktverify`` script installed next to this interpreter: a version manager's shim on
    PATH (pyenv's is a bash script) would add its own start-up to ours."""
    beside = Path(sys.executable).parent / "pktverify"
    return str(beside) if beside.exists() else (shutil.which("pktverify") or "pktverify")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    text = kube_proxy_iptables_rules(services(args.services), cluster_cidr="10.1.0.0/16")
    rules = sum(1 for line in text.splitlines() if line.startswith("-A "))
    with tempfile.TemporaryDirectory() as tmp:
        dump, addrs, routes = Path(tmp) / "iptables-save.txt", Path(tmp) / "addrs", Path(tmp) / "routes"
        dump.write_text(text)
        addrs.write_text(ADDRS)
        routes.write_text(ROUTES)
        command = [_console_script(), "trace", "--iptables", str(dump), "--addrs", str(addrs),
                      "--routes", str(routes), "--in", "cbr0", "--src", "10.1.10.5", "--dst", "10.96.0.10",
                   "--proto", "tcp", "--dport", "80"]
        ours = _time(command, args.runs)
        print(f"pktverify trace: {ours:.2f} s (median of {args.runs}, {rules:,} rules, whole command)")
        cache = Path(tmp) / "cache"
        first = _time([*command, "--cache-dir", str(cache)], 1)
        warm = _time([*command, "--cache-dir", str(cache)], args.runs)
        print(f"pktverify trace --cache-dir: {first:.2f} s filling the cache, then {warm:.2f} s (median of"
              f" {args.runs}; measured apart from the 2x target, which is cold)")
        restore = shutil.which("iptables-restore")
        if restore is None or os.geteuid() != 0 or shutil.which("unshare") is None:
            print("iptables-restore --test: skipped (needs root, iptables and unshare)")
            return
        theirs = _time(["unshare", "-n", restore, "--test", str(dump)], args.runs)
        print(f"iptables-restore --test: {theirs:.2f} s; ratio {ours / theirs:.1f}x (target: 2x)")


if __name__ == "__main__":
    main()
