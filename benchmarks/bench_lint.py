"""Benchmark: `pktverify lint` on a kube-proxy iptables-mode dump of N services (~11 rules each).

Run:  python benchmarks/bench_lint.py [--services 10000]
Then `pktverify diff` of that dump and one where a single service lost an endpoint.
Targets (issue #12): each whole command under 10 s on 110k rules.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_node_trace import services  # noqa: E402  (the same dump as the trace benchmark)

from pktverify.generate.kube_proxy_iptables import kube_proxy_iptables_rules  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=10000)
    args = ap.parse_args()
    text = kube_proxy_iptables_rules(services(args.services), cluster_cidr="10.1.0.0/16")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "iptables-save.txt"
        path.write_text(text)
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pktverify", "lint", str(path), "--format", "json"],
                              capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
    rules = sum(1 for line in text.splitlines() if line.startswith("-A "))
    found = done.stdout.count('"id":')
    print(f"lint: {rules} rules, {found} finding(s), exit {done.returncode}, {elapsed:.2f} s (whole command)")
    bench_diff(args.services)


def bench_diff(n: int) -> None:
    """`pktverify diff` of two such dumps differing in one service (its endpoints' probabilities)."""
    svcs = services(n)
    old = kube_proxy_iptables_rules(svcs, cluster_cidr="10.1.0.0/16")
    from dataclasses import replace
    new_svcs = list(svcs)
    new_svcs[n // 2] = replace(svcs[n // 2], endpoints=svcs[n // 2].endpoints[:2])
    new = kube_proxy_iptables_rules(new_svcs, cluster_cidr="10.1.0.0/16")
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "old.txt", Path(tmp) / "new.txt"
        a.write_text(old)
        b.write_text(new)
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pktverify", "diff", str(a), str(b), "--format", "json"],
                              capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
    import json
    doc = json.loads(done.stdout) if done.stdout.startswith("{") else {"classes": [], "cells": "?"}
    print(f"diff: {len(doc['classes'])} class(es) over {doc['cells']} cells, exit {done.returncode}, "
          f"{elapsed:.2f} s (whole command){'' if done.returncode in (0, 1) else ': ' + done.stderr[-300:]}")


if __name__ == "__main__":
    main()
