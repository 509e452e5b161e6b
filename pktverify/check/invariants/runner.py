"""Run the invariants: plan their flow checks as independent tasks, run them, merge in order.

:func:`check_all` checks the address plan, then plans the flow checks (one class of equivalent
flows per task where :mod:`.address_classes` and :mod:`.node_symmetry` allow it) and runs them
in this process, in forked workers (``jobs``) or on a Dask cluster; the results are the same,
in the same order, either way.
"""

from __future__ import annotations

from dataclasses import replace

from ...eval.cluster_walk import ClusterWalker
from ...model.cluster import ClusterSpec
from ...progress import Progress
from .address_classes import AddressClasses
from .flows import FLOW_PORTS
from .no_nat import no_nat_tasks
from .node_symmetry import NodeSymmetry
from .pod_ip_uniqueness import pod_ip_uniqueness
from .results import InvariantResult, Violation
from .routing import routing_tasks
from .service_reachability import mode_notes, service_tasks

__all__ = ["INVARIANTS", "check_all", "plan_tasks", "run_task_chunk"]

INVARIANTS = ("pod-ip-uniqueness", "no-nat", "service-reachability", "routing")


def check_all(cluster: ClusterSpec, walker: ClusterWalker, *, keep_flows: bool = False,
              exhaustive: bool = False, jobs: int = 1, invariants: tuple[str, ...] = INVARIANTS,
              show_progress: bool = False, executor=None,
              only_services: tuple[str, ...] | None = None, deadline=None) -> list[InvariantResult]:
    """Run the four invariants; each result lists its violations with flows and paths.

    Flows are checked once per class of equivalent flows (see
    :mod:`pktverify.check.invariants.address_classes` for why that is sound; with
    :mod:`pktverify.check.invariants.node_symmetry`, flows from interchangeable nodes are one class too)
    unless ``exhaustive``, or unless the rule sets make the classes unsound; ``checked``
    counts every flow either way. ``keep_flows`` keeps each checked flow's
    paths (for ``--all`` captures) and implies ``exhaustive``. ``jobs`` > 1 spreads
    the flows over that many forked processes; ``executor`` (a
    :class:`pktverify.check.distributed.DaskExecutor`) over a Dask cluster's workers instead;
    the results are the same, in the same order. ``invariants``: the ones to check (results
    come in :data:`INVARIANTS` order); every violation records the invariant it breaks.
    ``only_services``: service keys (``ns/name``) whose reachability is checked (None: every one).
    ``deadline``: a :class:`pktverify.check.deadline.Deadline` that counts the tasks done.
    """
    results = [InvariantResult(name, flows=[] if keep_flows else None) for name in INVARIANTS]
    wanted = set(invariants)
    if "pod-ip-uniqueness" in wanted:
        pod_ip_uniqueness(cluster, results[0])
        results[0].notes += list(cluster.extras.get("notes", ()))      # what the input had that is not modelled
    notes, tasks = plan_tasks(cluster, walker, wanted, exhaustive=exhaustive or keep_flows, only_services=only_services)
    results[1].notes += notes
    results[2].notes += mode_notes(cluster) if "service-reachability" in wanted else []
    progress = Progress(len(tasks), "tasks") if show_progress else None
    if deadline is not None:            # counts the tasks done, for the message if the time runs out
        progress = deadline.tasks(len(tasks), progress)
    if executor is not None and not keep_flows:
        _merge(executor.run(len(tasks), progress), tasks, results)
    elif jobs > 1 and not keep_flows and len(tasks) >= _MIN_PARALLEL_TASKS:
        _run_parallel(tasks, results, jobs, progress)
    else:
        for index, task in tasks:
            before = results[index].checked
            task(results[index])
            if progress is not None:
                progress.advance(1, results[index].checked - before)
    if progress is not None:
        progress.close()
    for res in results:
        res.violations = [replace(v, invariant=res.name) for v in res.violations]
    return [res for res in results if res.name in wanted]


def plan_tasks(cluster: ClusterSpec, walker: ClusterWalker, wanted: set[str], *,
               exhaustive: bool = False, only_services: tuple[str, ...] | None = None) -> tuple[list[str], list]:
    """The flow checks as independent tasks (invariant index, task), and notes for no-nat. The
    same cluster and walker options give the same tasks in the same order, in any process."""
    notes: list[str] = []
    classes = None
    if not exhaustive and wanted & {"no-nat", "service-reachability"}:
        classes = AddressClasses(cluster, walker.states)
        if not classes.sound:
            notes.append(f"every flow checked one by one: {classes.unsound_reason}")
            classes = None
    sym = NodeSymmetry(cluster, walker.states, classes, walker.proxy_ports, FLOW_PORTS) if classes is not None else None
    sym = sym if sym is not None and sym.usable else None
    tasks = [(1, t) for t in no_nat_tasks(cluster, walker, classes, sym)] if "no-nat" in wanted else []
    if "service-reachability" in wanted:
        tasks += [(2, t) for t in service_tasks(cluster, walker, classes, sym, only=only_services)]
    tasks += [(3, t) for t in routing_tasks(cluster, walker, sym)] if "routing" in wanted else []
    return notes, tasks


def run_task_chunk(tasks: list, indexes) -> list[tuple[int, int, list, list[str]]]:
    """Run tasks ``indexes`` of ``tasks``: (index, flows checked, violations, notes) each."""
    out = []
    for index in indexes:
        res = InvariantResult("")
        tasks[index][1](res)
        out.append((index, res.checked, res.violations, res.notes))
    return out


def _merge(parts, tasks: list, results: list[InvariantResult]) -> None:
    """Results of task chunks (in any order) into ``results``, in task order."""
    for index, checked, violations, notes in sorted((item for part in parts for item in part), key=lambda x: x[0]):
        res = results[tasks[index][0]]
        res.checked += checked
        res.violations += violations
        res.notes += notes


_MIN_PARALLEL_TASKS = 64      # below this, forking costs more than it saves
_PARALLEL_TASKS: list = []    # what forked workers run (inherited, not pickled)


def _run_parallel(tasks: list, results: list[InvariantResult], jobs: int, progress=None) -> None:
    """Run ``tasks`` in ``jobs`` forked workers, handed out in small chunks as workers free up;
    merge the results in task order (the same output as one process)."""
    import multiprocessing

    global _PARALLEL_TASKS
    _PARALLEL_TASKS = tasks
    size = max(1, len(tasks) // (jobs * 16))
    chunks = [range(i, min(i + size, len(tasks))) for i in range(0, len(tasks), size)]
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            parts = []
            for part in pool.imap_unordered(_run_chunk, chunks):
                parts.append(part)
                if progress is not None:
                    progress.advance(len(part), sum(item[1] for item in part))
    finally:
        _PARALLEL_TASKS = []
    _merge(parts, tasks, results)


def _run_chunk(indexes: range) -> list[tuple[int, int, list[Violation], list[str]]]:
    return run_task_chunk(_PARALLEL_TASKS, indexes)
