"""Benchmark: verify a generated cluster (all four invariants).

Run:  python benchmarks/bench_verify.py [--nodes 100] [--services 1000] [--pods 3000] [--mode userspace] [--jobs 2]
Target (issue #4): 100 nodes, 1,000 services, 3,000 pods in under 60 s.
"""

from __future__ import annotations

import argparse
import time

from pktverify.check.invariants import check_all
from pktverify.eval.cluster_walk import ClusterWalker
from pktverify.generate.synthetic_cluster import synthetic_cluster
from pktverify.load.cluster_nodes import cluster_nodes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=3000)
    ap.add_argument("--mode", default="iptables", choices=["iptables", "userspace", "nftables"])
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (pktverify verify --jobs)")
    args = ap.parse_args()
    cluster = synthetic_cluster(args.nodes, args.services, args.pods, proxy_mode=args.mode)
    t0 = time.perf_counter()
    nodes = cluster_nodes(cluster)
    walker = ClusterWalker(cluster, nodes)
    t1 = time.perf_counter()
    print(f"generate+parse+compile {args.nodes} nodes: {t1 - t0:.1f} s")
    results = check_all(cluster, walker, jobs=args.jobs)
    t2 = time.perf_counter()
    for r in results:
        print(f"  {r.name}: {'holds' if r.holds else 'FAILS'}, {r.checked} checked, {len(r.violations)} violations")
    print(f"invariants: {t2 - t1:.1f} s; total {t2 - t0:.1f} s")


if __name__ == "__main__":
    main()
