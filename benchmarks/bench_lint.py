"""Benchmark: `pktverify lint` on a kube-proxy iptables-mode dump of N services (~11 rules each).

Run:  python benchmarks/bench_lint.py [--services 10000]
Then `pktverify diff` of that dump and one where a single service lost an endpoint.
Targets (issue #12): each whole command under 10 s on 110k rules.
`--adversarial`: the shapes of issue #21 (blocklists, a 30,000-deep jump chain, interleaved ranges,
a change hidden behind 600 address pairs), each a verdict or a "not analysed"/inexact note.
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
    ap.add_argument("--adversarial", action="store_true", help="the shapes of issue #21 instead")
    args = ap.parse_args()
    if args.adversarial:
        bench_adversarial()
        return
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


def _ip(n: int) -> str:
    import ipaddress
    return str(ipaddress.IPv4Address(n))


def _filter(body: str) -> str:
    return f"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{body}COMMIT\n"


def _run(label: str, *argv_files: str, texts: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, text in texts.items():
            paths[name] = str(Path(tmp) / name)
            Path(paths[name]).write_text(text)
        argv = [paths.get(a, a) for a in argv_files]
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pktverify", *argv], capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
    first = (done.stdout.strip().split("\n") or [""])
    notes = [line for line in first if line.startswith(("note:", "inexact:"))]
    print(f"{label}: exit {done.returncode}, {elapsed:.2f} s; {first[-1][:100]}"
          + (f" [{notes[0][:120]}]" if notes else ""))


def bench_adversarial() -> None:
    """Each shape of issue #21, timed as the whole command."""
    for n in (10_000, 20_000):
        block = "".join(f"-A INPUT -s {_ip(0x0A000000 + 3 * i)}/32 -j DROP\n" for i in range(n))
        _run(f"lint blocklist {n:,}", "lint", "b.rules", texts={"b.rules": _filter(block)})
        _run(f"diff blocklist {n:,} + ACCEPT", "diff", "a.rules", "b.rules",
             texts={"a.rules": _filter(block), "b.rules": _filter(block + "-A INPUT -p tcp --dport 22 -j ACCEPT\n")})
    n = 30_000
    deep = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            + "".join(f":C{i} - [0:0]\n" for i in range(n)) + "-A INPUT -j C0\n"
            + "".join(f"-A C{i} -j C{i + 1}\n" for i in range(n - 1)) + f"-A C{n - 1} -j MARK --set-mark 1\nCOMMIT\n")
    _run("lint 30,000-deep jump chain", "lint", "d.rules", texts={"d.rules": deep})
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.test_lint_diff_bounded import PAIRS, SPORT_DROP, _interleaved
    for k in (50, 100):
        _run(f"lint {k} interleaved iprange/multiport rules", "lint", "r.rules", texts={"r.rules": _interleaved(k)})
    _run("diff sport 65535 behind 600 pairs", "diff", "a.rules", "b.rules",
         texts={"a.rules": _filter(PAIRS), "b.rules": _filter(PAIRS + SPORT_DROP)})


if __name__ == "__main__":
    main()
