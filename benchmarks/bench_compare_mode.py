"""Benchmark: ``verify --compare-mode`` (issue #25) on synthetic clusters: each node's iptables-mode
rules diffed against its nftables-mode rules, with the deliberate differences labelled.

Run:  python benchmarks/bench_compare_mode.py [--sizes 10x100,100x100,10x1000,100x1000] [--measure K]
          [--max-cells N] [--global-cuts]
Each size is NODESxSERVICES (3 pods per service, at most 250 per node). Every node is diffed on its own (nodes differ in
their addresses and routes), so the time is linear in the nodes: ``--measure K`` diffs the first K
nodes only and gives the whole cluster's time as nodes x the mean per node (said so on the line).
Prints per size: nodes diffed, seconds per node, cells per node, whether each diff was complete,
classes found and how many are deliberate, and the (extrapolated) total.
"""

from __future__ import annotations

import argparse
import time

from pktverify.check.compare_mode import CELLS_PER_PORT, compare_modes
from pktverify.check.diff import MAX_CELLS
from pktverify.generate.synthetic_cluster import synthetic_cluster


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10x100,100x100,10x1000,100x1000", help="NODESxSERVICES, comma-separated")
    ap.add_argument("--measure", type=int, default=0, help="diff only the first K nodes of each cluster (0: all)")
    ap.add_argument("--max-cells", type=int, default=None,
                    help=f"bound per node (default compare_modes' own: {MAX_CELLS:,} or {CELLS_PER_PORT} per service port)")
    ap.add_argument("--global-cuts", action="store_true",
                    help="cut as `pktverify diff` does (every rule's box cuts every destination): the old way")
    args = ap.parse_args()
    for size in args.sizes.split(","):
        n, s = (int(x) for x in size.split("x"))
        cluster = synthetic_cluster(n, s, min(3 * s, 250 * n))
        names = [node.name for node in cluster.nodes][:args.measure or n]
        t0 = time.perf_counter()
        cmp = compare_modes(cluster, nodes=names, max_cells=args.max_cells, local_cuts=not args.global_cuts)
        took = time.perf_counter() - t0
        per = took / len(cmp.nodes)
        cells = sum(x.result.cells for x in cmp.nodes) // len(cmp.nodes)
        complete = sum(x.result.complete for x in cmp.nodes)
        classes = sum(len(x.result.classes) for x in cmp.nodes)
        deliberate = classes - sum(len(x.result.unexplained) for x in cmp.nodes)
        total = f"{took:.1f} s" if len(cmp.nodes) == n else f"~{per * n:.0f} s extrapolated from {len(cmp.nodes)}"
        print(f"{n} nodes x {s} services: {len(cmp.nodes)} node(s) diffed, {per:.1f} s/node, {cells:,} cells/node, "
              f"{complete}/{len(cmp.nodes)} complete, {classes} classes ({deliberate} deliberate); whole cluster "
              f"{total}", flush=True)


if __name__ == "__main__":
    main()
