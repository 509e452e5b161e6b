"""``pktverify verify --pcap-dir``: one capture per violation's counterexample (and per checked flow)."""

from __future__ import annotations

import re
from pathlib import Path

from ..check.invariants import InvariantResult
from ..eval.cluster_walk import ClusterWalker
from ..errors import InvalidArgument
from ..eval.flows import Flow, cluster_flow
from .files import OutputDir
from .pcap import write_pcapng

__all__ = ["write_verify_pcaps", "SPLITS", "capture_names"]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")[:80]


SPLITS = ("flow", "point")


def write_verify_pcaps(walker: ClusterWalker, results: list[InvariantResult], directory: str | Path | OutputDir,
                       *, all_flows: bool = False, split: str = "flow") -> list[Path]:
    """Write ``<invariant>-violation-<n>.pcapng`` per violation with a path; with ``all_flows``
    also ``flow-<invariant>-<n>-<flow>[-p<k>].pcapng`` per checked flow (one file per outcome).
    ``split="point"``: one file per flow and observation point instead (``...-at-<point>.pcapng``),
    each holding the packets seen there, so Wireshark's TCP analysis sees each segment once."""
    if split not in SPLITS:
        raise InvalidArgument(f"split={split!r}: use one of {', '.join(SPLITS)}")
    if isinstance(directory, OutputDir):
        return _write_all(walker, results, directory, all_flows, split)
    with OutputDir(directory) as folder:
        return _write_all(walker, results, folder, all_flows, split)


def capture_names(results: list[InvariantResult], written: list[Path]) -> dict[tuple[str, int], list[Path]]:
    """Which of the ``written`` captures hold each violation's counterexample:
    ``(invariant, index in its violations) -> paths`` (one per flow, or one per observation point
    with ``split="point"``), for the reports to name next to each example."""
    out: dict[tuple[str, int], list[Path]] = {}
    wanted = {f"{r.name}-violation-{n}": (r.name, n - 1) for r in results for n in range(1, len(r.violations) + 1)}
    for path in written:
        stem = path.name[:-len(".pcapng")] if path.name.endswith(".pcapng") else path.name
        key = wanted.get(stem.split("-at-", 1)[0])
        if key is not None:
            out.setdefault(key, []).append(path)
    return out


MANIFEST = ".pktverify-verify-captures"      # the names the last run wrote in this folder
_OURS = re.compile(r"^(?:[a-z-]+-violation-\d+|flow-[a-z-]+-\d+-[A-Za-z0-9._]*(?:-p\d+)?)"
                   r"(?:-at-[A-Za-z0-9._]+)?\.pcapng$")


def _write_all(walker: ClusterWalker, results: list[InvariantResult], folder: OutputDir,
               all_flows: bool, split: str = "flow") -> list[Path]:
    """Write this run's captures, then remove what the previous run wrote and this one did not
    (only names its manifest lists that have our names: never anything else in the folder)."""
    before = folder.read_small(MANIFEST)
    written = _write_captures(walker, results, folder, all_flows, split)
    names = {p.name for p in written}
    if before is not None:
        for old in before.decode("utf-8", "replace").split("\n"):
            if old and old not in names and _OURS.match(old):
                folder.remove(old)
    folder.write(MANIFEST, "\n".join(sorted(names)).encode())
    return written


def _write_captures(walker: ClusterWalker, results: list[InvariantResult], folder: OutputDir,
                    all_flows: bool, split: str) -> list[Path]:
    written: list[Path] = []

    def write(flow: Flow, name: str) -> None:
        if split == "flow":
            written.append(write_pcapng([flow], f"{name}.pcapng", folder=folder))
            return
        points: dict[str, list] = {}
        for hop in flow.hops:
            points.setdefault(hop.point, []).append(hop)
        used: set[str] = set()
        for point, hops in points.items():
            slug = _slug(point) or "point"
            while slug in used:
                slug += "_"
            used.add(slug)
            part = Flow(f"{flow.title} at {point}", flow.probability, tuple(hops))
            written.append(write_pcapng([part], f"{name}-at-{slug}.pcapng", folder=folder))

    for res in results:
        for n, v in enumerate(res.violations, 1):
            if v.end is None or v.client is None:
                continue
            flow = cluster_flow(walker, v.client, v.end, title=f"{res.name} violation {n}: {v.flow}",
                                replies=list(v.replies) if v.replies else None,
                                comment=f"invariant {res.name} violated: {v.message}")
            write(flow, f"{res.name}-violation-{n}")
        for n, checked in enumerate(res.flows or [], 1):
            many = len(checked.ends) > 1
            for k, (end, backs) in enumerate(checked.ends, 1):
                title = f"{res.name}: {checked.label}" + (f" (outcome {k}, p={end.probability:.6g})" if many else "")
                flow = cluster_flow(walker, checked.client, end, title=title, replies=list(backs))
                name = f"flow-{res.name}-{n}-{_slug(checked.label)}" + (f"-p{k}" if many else "")
                write(flow, name)
    return written
