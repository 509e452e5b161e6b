"""The body of ``pktverify verify``: check the arguments, read the nodes, run the invariants.

:func:`verify` returns a :class:`VerifyReport` record (the cluster, one result per invariant,
the walker that traced them); ``lint`` and ``diff`` call it from here, and the library's
:func:`pktverify.verify` wraps it with the renderings (text, JSON, HTML, pcaps), which belong to
the report stage above this one.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import InvalidArgument, suggest
from ..eval.cluster_walk import ClusterWalker
from ..limits import MAX_BRANCHES, MAX_PATHS
from ..model.cluster import ClusterSpec
from .invariants import INVARIANTS, InvariantResult, Violation, check_all

if TYPE_CHECKING:
    from ..load.model_cache import ModelCache

__all__ = ["VerifyReport", "verify"]


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

    @property
    def groups(self):
        """The violations grouped by cause (rule, route or address fact), biggest first."""
        from .causes import group_violations
        return group_violations(self.results)


def verify(cluster: ClusterSpec, *, invariants: Iterable[str] | None = None, jobs: int = 1,
           lenient: bool = False, max_branches: int = MAX_BRANCHES, max_paths: int = MAX_PATHS,
           at: int | dt.datetime | None = None, keep_flows: bool = False, progress: bool = False,
           executor: str = "local", scheduler=None, cache: ModelCache | None = None, only: Iterable[str] | None = None,
           timeout: float | None = None) -> VerifyReport:
    """Check ``cluster`` against the Kubernetes network model: the body of :func:`pktverify.verify`,
    which documents the arguments; this returns the record without its renderings."""
    from .deadline import bounded

    only_services, names, at = _checked_arguments(cluster, invariants, jobs, max_branches, max_paths, at,
                                                  executor, only)
    with bounded(timeout) as deadline:
        results, walker = _run(cluster, names, only_services, jobs=jobs, lenient=lenient,
                               max_branches=max_branches, max_paths=max_paths, at=at, keep_flows=keep_flows,
                               progress=progress, executor=executor, scheduler=scheduler, cache=cache,
                               deadline=deadline)
    if only_services is not None:
        left = len(cluster.services) - len(only_services)
        results[0].notes.append(f"narrowed to {', '.join(only_services)} (--only): {left} other service(s) and the "
                                f"invariants {', '.join(n for n in INVARIANTS if n not in names) or 'none'} were not "
                                "checked")
    return VerifyReport(cluster, results, walker)


def _checked_arguments(cluster, invariants, jobs, max_branches, max_paths, at, executor, only
                       ) -> tuple[tuple[str, ...] | None, tuple[str, ...], int | None]:
    """:func:`verify`'s arguments checked (:class:`InvalidArgument` for a bad one), in the order the
    library has always checked them: the services ``only`` names, the invariants' names, ``at``
    as epoch seconds."""
    if not isinstance(cluster, ClusterSpec):
        raise InvalidArgument(f"cluster={cluster!r} (type={type(cluster).__name__}): give a cluster from "
                              "pktverify.load_cluster or a pktverify.strategies strategy")
    only_services = _only_services(cluster, only)
    if only_services is not None and invariants is None:
        invariants = ("service-reachability",)
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
    return only_services, names, at


def _run(cluster: ClusterSpec, names: tuple[str, ...], only_services: tuple[str, ...] | None, *, jobs: int,
         lenient: bool, max_branches: int, max_paths: int, at: int | None, keep_flows: bool, progress: bool,
         executor: str, scheduler, cache, deadline) -> tuple[list[InvariantResult], ClusterWalker]:
    """Read the nodes, then run the invariants ``names`` (locally on ``jobs`` processes, or on Dask),
    within ``deadline``; the results and the walker that traced them."""
    from ..load.cluster_nodes import cluster_nodes

    if deadline is not None:
        deadline.phase = "reading the nodes' dumps"
    nodes = cluster_nodes(cluster, lenient=lenient, cache=cache)
    walker = ClusterWalker(cluster, nodes, max_branches=max_branches, max_paths=max_paths, at=at)
    jobs = min(jobs, len(os.sched_getaffinity(0)))
    runner = None
    if executor == "dask":
        from .distributed import DaskExecutor, WalkerOptions
        options = WalkerOptions(lenient, max_branches, max_paths, at, names, only_services)
        runner = DaskExecutor(cluster, options, address=scheduler if isinstance(scheduler, str) else None,
                              client=None if isinstance(scheduler, str) else scheduler, deadline=deadline)
    try:
        if deadline is not None:
            deadline.phase = "planning the flow checks"
        results = check_all(cluster, walker, keep_flows=keep_flows, jobs=jobs, invariants=names,
                            show_progress=progress, executor=runner, only_services=only_services,
                            deadline=deadline)
    finally:
        if runner is not None:
            runner.close()              # the client pktverify opened (not one the caller gave)
    from .leftovers import add_leftover_warnings
    add_leftover_warnings(cluster, walker, results)     # nodes in the middle of a migration: what still acts
    return results, walker


def _only_services(cluster: ClusterSpec, only) -> tuple[str, ...] | None:
    """``only`` checked against the cluster's services (each named once, in the cluster's order)."""
    if only is None:
        return None
    if isinstance(only, str) or not all(isinstance(k, str) for k in only):
        raise InvalidArgument(f"only={only!r}: give a list of service keys such as ['default/web']")
    keys = [s.key for s in cluster.services]
    wanted = set(only)
    unknown = sorted(wanted - set(keys))
    if unknown or not wanted:
        hint = "; ".join(k + suggest(k, keys) for k in unknown)
        raise InvalidArgument(f"--only: no service {hint} in {cluster.source} (services are NS/NAME)" if unknown
                              else "--only: name at least one service, NS/NAME")
    return tuple(k for k in keys if k in wanted)
