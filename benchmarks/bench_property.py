"""Benchmark: property tests as a user runs them — random valid clusters verified under Hypothesis.

Run:  python benchmarks/bench_property.py [--examples 100] [--max-nodes 4]

1. In one process: Hypothesis draws ``--examples`` valid clusters (up to ``--max-nodes`` nodes,
   both proxy modes) and each is verified with ``pktverify.testing.assert_invariants``.
2. As a pytest run of a user's test file (8 tests of examples/8 each), once in one process and
   once with ``-n 2`` under pytest-xdist.
Target (issue #11): 100 clusters in under 30 s on 2 cores; near 2x faster with -n 2.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USERS_FILE = '''
import pytest
from hypothesis import given, settings, seed
from pktverify import strategies
from pktverify.testing import assert_invariants

@pytest.mark.parametrize("part", range(8))
@seed(2026)
@settings(max_examples={per_test}, deadline=None, database=None)
@given(cluster=strategies.clusters(max_nodes={max_nodes}))
def test_the_network_model_holds(part, cluster):
    assert_invariants(cluster)
'''


def in_process(examples: int, max_nodes: int) -> tuple[float, int]:
    from hypothesis import given, seed, settings

    from pktverify import strategies
    from pktverify.testing import assert_invariants

    checked = []

    @seed(2026)
    @settings(max_examples=examples, deadline=None, database=None)
    @given(strategies.clusters(max_nodes=max_nodes))
    def prop(cluster):
        checked.append(sum(r.checked for r in assert_invariants(cluster).results))

    t0 = time.perf_counter()
    prop()
    return time.perf_counter() - t0, len(checked)


def pytest_run(folder: Path, extra: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, str(folder)],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"the user's test run failed:\n{done.stdout[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=100)
    ap.add_argument("--max-nodes", type=int, default=4)
    args = ap.parse_args()
    elapsed, n = in_process(args.examples, args.max_nodes)
    print(f"in process: {n} random valid clusters (up to {args.max_nodes} nodes) drawn and verified in {elapsed:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "test_users.py").write_text(USERS_FILE.format(per_test=max(1, args.examples // 8),
                                                                max_nodes=args.max_nodes))
        one = pytest_run(folder, [])
        two = pytest_run(folder, ["-n", "2"])
    print(f"pytest, 8 tests x {args.examples // 8} examples: {one:.1f} s in one process, {two:.1f} s with -n 2 "
          f"({one / two:.2f}x)")


if __name__ == "__main__":
    main()
