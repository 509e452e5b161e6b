"""Verify's flow checks on a Dask cluster: ``pktverify verify --executor dask --scheduler ADDRESS``.

The cluster description goes to every worker once (scattered); each worker builds the nodes,
the walker and the same list of tasks as the client (:func:`~.invariants.plan_tasks` is
deterministic), keeps them for the run, and runs the chunks of task indexes it is handed. The
client merges the chunks in task order, so the report is the one ``--jobs 1`` prints. Node
dumps given as files must be readable at the same paths on the workers (inline dumps travel
with the description). ``dask.distributed`` is an optional extra: ``pip install
pktverify[distributed]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidArgument
from ..model.cluster import ClusterSpec

__all__ = ["DaskExecutor", "WalkerOptions"]


@dataclass(frozen=True)
class WalkerOptions:
    """What a worker needs besides the cluster to rebuild the walker and the task list."""
    lenient: bool
    max_branches: int
    max_paths: int
    at: int | None
    invariants: tuple[str, ...]
    only_services: tuple[str, ...] | None = None     # verify --only: the services checked (None: all)


class DaskExecutor:
    """Runs task chunks on the Dask scheduler at ``address`` (or on ``client``, a
    ``distributed.Client`` you made, e.g. on a ``LocalCluster``)."""

    def __init__(self, cluster: ClusterSpec, options: WalkerOptions, *, address: str | None = None, client=None,
                 chunks_per_worker: int = 8) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise InvalidArgument("--executor dask needs dask.distributed: pip install 'pktverify[distributed]'") \
                from None
        if client is None:
            if not address:
                raise InvalidArgument("--executor dask needs --scheduler tcp://HOST:8786 (dask scheduler's address)")
            try:
                client = Client(address, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise InvalidArgument(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self.client = client
        self.cluster = cluster
        self.options = options
        self.chunks_per_worker = chunks_per_worker

    def run(self, count: int, progress=None) -> list:
        """Run tasks 0..count-1 on the workers; their results by chunk, in any order."""
        from distributed import as_completed

        if count == 0:
            return []
        workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        size = max(1, count // (workers * self.chunks_per_worker))
        cluster = self.client.scatter(self.cluster, broadcast=True)
        futures = [self.client.submit(_chunk, cluster, self.options, range(i, min(i + size, count)), pure=False)
                   for i in range(0, count, size)]
        parts = []
        for future in as_completed(futures):
            part = future.result()
            parts.append(part)
            if progress is not None:
                progress.advance(len(part), sum(item[1] for item in part))
        return parts


_WORKER_TASKS: dict = {}      # per worker process: (cluster hash, options) -> its task list


def _chunk(cluster: ClusterSpec, options: WalkerOptions, indexes: range) -> list:
    """On a worker: the task list for ``cluster`` (built once per worker), then run ``indexes``."""
    from ..eval.cluster_walk import ClusterWalker
    from ..parse.cluster_nodes import cluster_nodes
    from .invariants import plan_tasks, run_task_chunk

    key = (hash(cluster), options)
    tasks = _WORKER_TASKS.get(key)
    if tasks is None:
        _WORKER_TASKS.clear()           # one run at a time per worker: keep memory for this one
        walker = ClusterWalker(cluster, cluster_nodes(cluster, lenient=options.lenient),
                               max_branches=options.max_branches, max_paths=options.max_paths, at=options.at)
        tasks = _WORKER_TASKS[key] = plan_tasks(cluster, walker, set(options.invariants),
                                                           only_services=options.only_services)[1]
    return run_task_chunk(tasks, indexes)
