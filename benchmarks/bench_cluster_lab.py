"""Benchmark: the cluster lab (pktverify selftest-cluster) over every example under rules/.

Run:  python benchmarks/bench_cluster_lab.py [--connections 10] [CLUSTER ...]   (as root)
Target (issue #22): every example in under 5 minutes on the project machine (2 cores).
Prints one line per cluster (flows, connections, seconds) and the total.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pktverify
from pktverify.oracle.cluster_campaign import default_examples
from pktverify.oracle.cluster_selftest import run_cluster


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clusters", nargs="*", help="cluster files (default: every example under rules/)")
    ap.add_argument("--connections", type=int, default=10, help="connections per single-outcome flow (default 10)")
    args = ap.parse_args()
    files = [Path(p) for p in args.clusters] or default_examples()
    start = time.perf_counter()
    flows = agreed = conns = 0
    for path in files:
        t0 = time.perf_counter()
        run = run_cluster(pktverify.load_cluster(path), name=str(path), minimum=args.connections)
        took = time.perf_counter() - t0
        state = run.skipped or (f"LAB ERROR {run.lab_errors[:1]}" if run.lab_errors else
                                f"{run.agreed}/{len(run.verdicts)} flows agree")
        print(f"{took:6.1f} s  {run.connections:5d} connections  {path}: {state}", flush=True)
        flows += len(run.verdicts)
        agreed += run.agreed
        conns += run.connections
    total = time.perf_counter() - start
    print(f"total {total:.1f} s for {len(files)} cluster(s): {agreed}/{flows} flows agree, {conns} connections"
          f" (target: under 300 s)")


if __name__ == "__main__":
    main()
