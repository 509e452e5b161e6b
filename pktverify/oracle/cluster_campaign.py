"""The ``pktverify selftest-cluster`` campaign: given clusters (default: every example under
``rules/``) and ``examples`` clusters drawn with planted faults, run the cluster lab on each
and print the agreement per flow, the disagreements with a reproducer, and what was skipped.

Every cluster file is loaded before any lab is built, so bad input stops the run at once
(InputError: ``FILE:LINE: message``, exit 2) with nothing built.  A drawn cluster with a
disagreement or a lab error is written as one self-contained YAML file (``cluster_to_yaml``)
into ``out`` so that ``pktverify selftest-cluster FILE`` replays it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from ..model.cluster import ClusterSpec
from .cluster_compare import _say
from .cluster_selftest import ClusterRun, drawn_clusters, run_cluster

__all__ = ["default_examples", "run_campaign_cli"]


def default_examples() -> list[Path]:
    """Every cluster example under the project's ``rules/`` (a YAML file with ``cluster:``, or a
    folder's ``cluster.yaml``), sorted."""
    root = Path(__file__).resolve().parents[2] / "rules"
    if not root.is_dir():
        root = Path("rules")
    out = []
    for path in sorted(root.rglob("*.yaml")):
        head = path.read_text(errors="replace")[:4000]
        if "\ncluster:" in "\n" + head or head.startswith("cluster:") or "\ncluster: {" in head:
            out.append(path)
    return out


def _escape(text: str) -> str:
    return text.encode("unicode_escape").decode("ascii")


def _print_run(run: ClusterRun, *, source: str, out: TextIO, verbose: bool, replay: str) -> None:
    if run.skipped:
        print(f"{_escape(run.name)}: skipped, {_escape(run.skipped)}", file=out)
        return
    if run.lab_errors:
        print(f"{_escape(run.name)}: LAB ERROR, the lab did not build what the dumps say (no verdict):", file=out)
        for err in run.lab_errors:
            print(f"  {_escape(err)}", file=out)
        return
    total = len(run.verdicts)
    extra = f", {run.unsent} ICMP/SCTP flow(s) not sent" if run.unsent else ""
    print(f"{_escape(run.name)}: {run.agreed}/{total} flows agree ({run.connections} connections, "
          f"{run.seconds:.1f} s{extra})", file=out)
    for v in run.verdicts:
        e = v.expectation
        if v.agrees and not verbose:
            continue
        mark = "agree   " if v.agrees else "DISAGREE"
        print(f"  {mark} [{e.invariant}] {_escape(e.label)}", file=out)
        if not v.agrees:
            promised = "; ".join(f"{p:.3g}: {_say(o)}" for o, p in e.promised)
            seen = "; ".join(f"{k}x {_say(o)}" for o, k in v.counts.most_common())
            print(f"      verify: {promised}\n      kernel: {seen}", file=out)
            for problem in v.problems:
                print(f"      - {_escape(problem)}", file=out)
            print(f"      reproduce: pktverify selftest-cluster {replay} --flow '{_escape(e.label)}'\n"
                  f"                 pktverify trace --cluster {replay} ... (the flow above)", file=out)


def run_campaign_cli(paths: list[str], *, examples: int, seed: int, minimum: int = 10, flow: str = "",
                     out_dir: str | None = None, verbose: bool = False, drawn_only: bool = False,
                     stream: TextIO = sys.stdout) -> int:
    """Run the campaign; 0 when every flow sent agrees, 1 on a disagreement or lab error.
    ``paths``: cluster files (default: :func:`default_examples`, none with ``drawn_only``)."""
    from ..cluster_api import cluster_to_yaml, load_cluster

    files = [Path(p) for p in paths] if paths or drawn_only else default_examples()
    clusters: list[tuple[str, ClusterSpec, str]] = []
    for path in files:                       # load every file first: bad input builds nothing
        clusters.append((str(path), load_cluster(path), str(path)))
    drawn = drawn_clusters(examples, seed) if examples else []
    folder = Path(out_dir) if out_dir else Path(f"cluster-lab-seed-{seed}")
    for i, cluster in enumerate(drawn):
        fault = getattr(cluster, "fault", None)
        name = f"drawn #{i} (seed {seed}{', fault ' + fault.name if fault else ''})"
        clusters.append((name, cluster, str(folder / f"drawn-{i}.yaml")))
    totals = {"flows": 0, "agree": 0, "clusters": 0, "skipped": 0, "lab": 0, "conns": 0}
    bad = False
    for name, cluster, replay in clusters:
        run = run_cluster(cluster, name=name, minimum=minimum, flow_filter=flow)
        if (run.disagreements or run.lab_errors) and not Path(replay).exists():
            folder.mkdir(parents=True, exist_ok=True)
            Path(replay).write_text(cluster_to_yaml(cluster))
        _print_run(run, source=name, out=stream, verbose=verbose, replay=replay)
        totals["skipped"] += bool(run.skipped)
        totals["lab"] += bool(run.lab_errors)
        totals["clusters"] += not run.skipped and not run.lab_errors
        totals["flows"] += len(run.verdicts)
        totals["agree"] += run.agreed
        totals["conns"] += run.connections
        bad |= bool(run.disagreements or run.lab_errors)
        stream.flush()
    share = 100.0 * totals["agree"] / totals["flows"] if totals["flows"] else 100.0
    print(f"\ncluster lab agreement: {totals['agree']}/{totals['flows']} flows ({share:.1f}%) over "
          f"{totals['clusters']} cluster(s), {totals['conns']} connections; {totals['skipped']} skipped, "
          f"{totals['lab']} with lab errors" + (f"; drawn with seed {seed}" if examples else ""), file=stream)
    return 1 if bad else 0
