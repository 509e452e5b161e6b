"""``pktverify verify --pcap-dir``: one capture per violation's counterexample (and per checked flow)."""

from __future__ import annotations

import re
from pathlib import Path

from ..check.invariants import InvariantResult
from ..eval.cluster_walk import ClusterWalker
from ..eval.flows import cluster_flow
from .files import OutputDir
from .pcap import write_pcapng

__all__ = ["write_verify_pcaps"]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")[:80]


def write_verify_pcaps(walker: ClusterWalker, results: list[InvariantResult], directory: str | Path | OutputDir,
                       *, all_flows: bool = False) -> list[Path]:
    """Write ``<invariant>-violation-<n>.pcapng`` per violation with a path; with ``all_flows``
    also ``flow-<invariant>-<n>-<flow>[-p<k>].pcapng`` per checked flow (one file per outcome)."""
    if isinstance(directory, OutputDir):
        return _write_all(walker, results, directory, all_flows)
    with OutputDir(directory) as folder:
        return _write_all(walker, results, folder, all_flows)


MANIFEST = ".pktverify-verify-captures"      # the names the last run wrote in this folder
_OURS = re.compile(r"^(?:[a-z-]+-violation-\d+|flow-[a-z-]+-\d+-[A-Za-z0-9._]*(?:-p\d+)?)\.pcapng$")


def _write_all(walker: ClusterWalker, results: list[InvariantResult], folder: OutputDir,
               all_flows: bool) -> list[Path]:
    """Write this run's captures, then remove what the previous run wrote and this one did not
    (only names its manifest lists that have our names: never anything else in the folder)."""
    before = folder.read_small(MANIFEST)
    written = _write_captures(walker, results, folder, all_flows)
    names = {p.name for p in written}
    if before is not None:
        for old in before.decode("utf-8", "replace").split("\n"):
            if old and old not in names and _OURS.match(old):
                folder.remove(old)
    folder.write(MANIFEST, "\n".join(sorted(names)).encode())
    return written


def _write_captures(walker: ClusterWalker, results: list[InvariantResult], folder: OutputDir,
                    all_flows: bool) -> list[Path]:
    written: list[Path] = []
    for res in results:
        for n, v in enumerate(res.violations, 1):
            if v.end is None or v.client is None:
                continue
            flow = cluster_flow(walker, v.client, v.end, title=f"{res.name} violation {n}: {v.flow}",
                                replies=list(v.replies) if v.replies else None,
                                comment=f"invariant {res.name} violated: {v.message}")
            written.append(write_pcapng([flow], f"{res.name}-violation-{n}.pcapng", folder=folder))
        for n, checked in enumerate(res.flows or [], 1):
            many = len(checked.ends) > 1
            for k, (end, backs) in enumerate(checked.ends, 1):
                title = f"{res.name}: {checked.label}" + (f" (outcome {k}, p={end.probability:.6g})" if many else "")
                flow = cluster_flow(walker, checked.client, end, title=title, replies=list(backs))
                name = f"flow-{res.name}-{n}-{_slug(checked.label)}" + (f"-p{k}" if many else "")
                written.append(write_pcapng([flow], f"{name}.pcapng", folder=folder))
    return written
