"""The library entry points behind ``pktverify verify``: load a cluster, verify it, read the report.

>>> import pktverify
>>> cluster = pktverify.load_cluster("rules/seed/cluster-iptables.yaml")      # doctest: +SKIP
>>> report = pktverify.verify(cluster)                                         # doctest: +SKIP
>>> report.holds, [v.message for v in report.violations]                       # doctest: +SKIP
(True, [])
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .check.invariants import INVARIANTS, InvariantResult, Violation, check_all
from .errors import InvalidArgument
from .eval.cluster_walk import MAX_PATHS, ClusterWalker
from .limits import MAX_BRANCHES
from .model.cluster import ClusterSpec
from .report.cluster_yaml import cluster_to_yaml

__all__ = ["load_cluster", "verify", "VerifyReport", "cluster_to_yaml", "INVARIANTS"]


def load_cluster(path: str | Path, *, cluster_cidr: str | None = None, service_cidr: str | None = None,
                 dumps: str | Path | None = None) -> ClusterSpec:
    """Read a cluster as ``pktverify verify`` does: a cluster YAML, or ``kubectl get
    nodes,pods,services,endpointslices -A -o json`` output (told apart by content) with its
    per-node dumps under ``dumps`` (default: the JSON's folder) and the networks kubectl does not
    show (``cluster_cidr``, ``service_cidr``). Raises InputError (``file:line``) on bad input."""
    from .parse.cluster_kubectl import load_kubectl_cluster, looks_like_kubectl
    from .parse.cluster_yaml import load_cluster as load_yaml
    from .parse.source import read_bytes

    start = read_bytes(path, head=True, limit=4096).decode("utf-8", "replace")
    if not looks_like_kubectl(start):
        for option, value in (("dumps", dumps), ("cluster_cidr", cluster_cidr), ("service_cidr", service_cidr)):
            if value is not None:
                raise InvalidArgument(f"--{option.replace('_', '-')} is for kubectl JSON input, and {path} is not "
                                      "kubectl JSON (it does not start with '{'); a cluster YAML says it itself "
                                      "(cluster: cidr/service_cidr, a node's dump paths)")
        return load_yaml(path)
    if not (cluster_cidr and service_cidr):
        raise InvalidArgument("kubectl JSON does not say the pod and service networks: give --cluster-cidr and"
                              " --service-cidr (the values of kube-controller-manager --cluster-cidr and"
                              " kube-apiserver --service-cluster-ip-range)")
    return load_kubectl_cluster(path, dumps=dumps, cluster_cidr=cluster_cidr, service_cidr=service_cidr)


@dataclass
class VerifyReport:
    """What :func:`verify` found: ``results`` per invariant (in :data:`INVARIANTS` order),
    ``holds`` when none is broken, ``violations`` all of them (each with ``.invariant``,
    ``.message``, ``.flow``, ``.packet``, ``.hops`` as records and ``.probability``)."""
    cluster: ClusterSpec
    results: list[InvariantResult]
    walker: ClusterWalker = field(repr=False)

    @property
    def holds(self) -> bool:
        return all(r.holds for r in self.results)

    @property
    def violations(self) -> list[Violation]:
        return [v for r in self.results for v in r.violations]

    def __getitem__(self, invariant: str) -> InvariantResult:
        for r in self.results:
            if r.name == invariant:
                return r
        raise KeyError(f"{invariant!r} was not checked (checked: {', '.join(r.name for r in self.results)})")

    def to_json(self) -> str:
        """The JSON ``pktverify verify --format json`` prints, byte for byte."""
        from .report.verify_report import verify_to_json
        return verify_to_json(self.results)

    def to_text(self, *, max_violations: int = 2) -> str:
        """The text ``pktverify verify`` prints: the table, then the causes, biggest first."""
        from .report.verify_report import verify_to_text
        return verify_to_text(self.results, max_violations=max_violations)

    def to_html(self, *, max_violations: int = 2) -> str:
        """The self-contained HTML page ``pktverify verify --html FILE`` writes."""
        from .report.verify_html import verify_to_html
        return verify_to_html(self.cluster, self.results, max_violations=max_violations)

    @property
    def groups(self):
        """The violations grouped by cause (rule, route or address fact), biggest first."""
        from .check.causes import group_violations
        return group_violations(self.results)

    def write_pcaps(self, folder: str | Path, *, all_flows: bool = False, split: str = "flow") -> list[Path]:
        """Each violation's counterexample as pcapng in ``folder`` (made if missing), as
        ``pktverify verify --pcap-dir`` writes them (``split="point"``: one file per flow and
        observation point, as ``--pcap-split point``); the paths written."""
        from .report.files import OutputDir
        from .report.verify_pcaps import write_verify_pcaps
        with OutputDir(folder) as out:
            return write_verify_pcaps(self.walker, self.results, out, all_flows=all_flows, split=split)


def verify(cluster: ClusterSpec, *, invariants: Iterable[str] | None = None, jobs: int = 1,
           lenient: bool = False, max_branches: int = MAX_BRANCHES, max_paths: int = MAX_PATHS,
           at: int | dt.datetime | None = None, keep_flows: bool = False, progress: bool = False,
           executor: str = "local", scheduler=None, cache=None) -> VerifyReport:
    """Check ``cluster`` against the Kubernetes network model, as ``pktverify verify`` does.

    ``invariants``: names from :data:`INVARIANTS` (default all four). ``jobs``: worker
    processes (clamped to the CPUs). ``lenient``: unknown matches and targets in given
    dumps become may-match (outcomes inexact) instead of an error. ``at``: when the
    flows are sent, for ``-m time`` rules (a datetime, naive = UTC, or epoch seconds).
    ``keep_flows``: keep every checked flow's paths (for ``write_pcaps(all_flows=True)``).
    ``progress``: a progress line on stderr while it runs (only when stderr is a terminal).
    ``executor="dask"``: run the flow checks on a Dask cluster — ``scheduler`` is its address
    (``tcp://HOST:8786``) or a ``distributed.Client``; the report is the one ``jobs=1`` gives.
    ``cache``: a :class:`pktverify.parse.model_cache.ModelCache` for the given dumps' rule sets.
    """
    from .parse.cluster_nodes import cluster_nodes

    if not isinstance(cluster, ClusterSpec):
        raise InvalidArgument(f"cluster={cluster!r} (type={type(cluster).__name__}): give a cluster from "
                              "pktverify.load_cluster or a pktverify.strategies strategy")
    names = tuple(INVARIANTS) if invariants is None else tuple(invariants)
    if isinstance(invariants, str) or any(name not in INVARIANTS for name in names) or not names:
        raise InvalidArgument(f"invariants={invariants!r}: use some of {', '.join(INVARIANTS)}")
    for what, value in (("jobs", jobs), ("max_branches", max_branches), ("max_paths", max_paths)):
        if type(value) is not int or value < 1:
            raise InvalidArgument(f"{what}={value!r} (type={type(value).__name__}): use an integer >= 1")
    if isinstance(at, dt.datetime):
        at = int((at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)).timestamp())
    elif at is not None and type(at) is not int:
        raise InvalidArgument(f"at={at!r} (type={type(at).__name__}): use a datetime or epoch seconds")
    if executor not in ("local", "dask"):
        raise InvalidArgument(f"executor={executor!r}: use 'local' (--jobs processes) or 'dask'")
    nodes = cluster_nodes(cluster, lenient=lenient, cache=cache)
    walker = ClusterWalker(cluster, nodes, max_branches=max_branches, max_paths=max_paths, at=at)
    jobs = min(jobs, len(os.sched_getaffinity(0)))
    runner = None
    if executor == "dask":
        from .check.distributed import DaskExecutor, WalkerOptions
        options = WalkerOptions(lenient, max_branches, max_paths, at, names)
        runner = DaskExecutor(cluster, options, address=scheduler if isinstance(scheduler, str) else None,
                              client=None if isinstance(scheduler, str) else scheduler)
    try:
        results = check_all(cluster, walker, keep_flows=keep_flows, jobs=jobs, invariants=names,
                            show_progress=progress, executor=runner)
    finally:
        if runner is not None and isinstance(scheduler, str):
            runner.client.close()           # the client pktverify opened (not one the caller gave)
    return VerifyReport(cluster, results, walker)
