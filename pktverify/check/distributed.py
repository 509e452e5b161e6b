"""Verify's flow checks on a Dask cluster: ``pktverify verify --executor dask --scheduler ADDRESS``.

The cluster description goes to every worker once (scattered); each worker builds the nodes,
the walker and the same list of tasks as the client (:func:`~.invariants.runner.plan_tasks` is
deterministic), keeps them for the run, and runs the chunks of task indexes it is handed. The
client merges the chunks in task order, so the report is the one ``--jobs 1`` prints. Node
dumps given as files must be readable at the same paths on the workers (inline dumps travel
with the description). ``dask.distributed`` is an optional extra: ``pip install
pktverify[distributed]``.

Bounds: the address is checked and probed first (:mod:`.dask_endpoint`), within
:data:`CONNECT_TIMEOUT` or the run's deadline, so a peer that is no scheduler is one line, not a
wait without end or Python's own error; under a deadline (``--timeout``) the run is stopped where
it is, and the futures of a stopped run are let go so the scheduler forgets them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ..errors import InvalidArgument
from ..model.cluster import ClusterSpec
from . import dask_endpoint

__all__ = ["DaskExecutor", "WalkerOptions", "CONNECT_TIMEOUT"]


@dataclass(frozen=True)
class WalkerOptions:
    """What a worker needs besides the cluster to rebuild the walker and the task list."""
    lenient: bool
    max_branches: int
    max_paths: int
    at: int | None
    invariants: tuple[str, ...]
    only_services: tuple[str, ...] | None = None     # verify --only: the services checked (None: all)


CONNECT_TIMEOUT = 10.0     # seconds for the connection and Dask's handshake (or less, within --timeout)


class DaskExecutor:
    """Runs task chunks on the Dask scheduler at ``address`` (or on ``client``, a
    ``distributed.Client`` you made, e.g. on a ``LocalCluster``).

    Connecting is bounded by ``connect_timeout`` seconds (and by ``deadline``, a
    :class:`~.deadline.Deadline`): an address that accepts the connection and never answers,
    answers in another protocol (an HTTP server, a bogus frame), or is a worker rather than a
    scheduler is one :class:`InvalidArgument` line naming the address and what happened, as are
    malformed addresses, ``tls://`` without certificates and transports not installed (``ucx://``).
    """

    def __init__(self, cluster: ClusterSpec, options: WalkerOptions, *, address: str | None = None, client=None,
                 chunks_per_worker: int = 8, connect_timeout: float = CONNECT_TIMEOUT, deadline=None) -> None:
        if deadline is not None:
            deadline.phase = "loading dask.distributed"
        try:
            from distributed import Client
        except ImportError:
            raise InvalidArgument("--executor dask needs dask.distributed: pip install 'pktverify[distributed]'") \
                from None
        self.deadline = deadline
        self.owned = client is None         # a client pktverify opened (closed by close(); one given is not)
        if client is None:
            if not address:
                raise InvalidArgument("--executor dask needs --scheduler tcp://HOST:8786 (dask scheduler's address)")
            connection_args = dask_endpoint.connection_args(address)
            seconds = connect_timeout if deadline is None else min(connect_timeout, deadline.left())
            if deadline is not None:
                deadline.phase = f"connecting to the Dask scheduler at {address}"
            try:
                dask_endpoint.probe(address, seconds, connection_args)
            except dask_endpoint.NoAnswer as exc:
                if seconds < connect_timeout:       # the run's deadline cut the wait short: say so, and how far
                    deadline.phase += f" ({exc.detail})"
                    raise deadline.stopped() from None
                raise
            try:                # a scheduler that just answered: Client's own handshake, which it does not bound
                client = Client(address, timeout=max(seconds, 0.1), set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise InvalidArgument(f"cannot reach the Dask scheduler at {address}: {exc}") from None
            except Exception as exc:          # what the scheduler sent made Dask's client fail
                raise InvalidArgument(f"the Dask scheduler at {address} refused the client: "
                                      f"{type(exc).__name__}: {str(exc)[:200]}") from None
        self.client = client
        self.address = address or client.scheduler_info().get("address") or "the client's scheduler"
        self.cluster = cluster
        self.options = options
        self.chunks_per_worker = chunks_per_worker
        self._connect_timeout = connect_timeout

    def close(self) -> None:
        """Close the client pktverify opened (a client the caller gave stays open); bounded, and
        quiet: what matters was said already (a report, or the error that stopped the run)."""
        if self.owned:
            try:
                self.client.close(timeout=min(self._connect_timeout, 5.0))
            except Exception:
                pass

    def run(self, count: int, progress=None) -> list:
        """Run tasks 0..count-1 on the workers; their results by chunk, in any order. Within the
        deadline (if any); on the way out by an error or the deadline, the futures are released
        so the scheduler forgets them."""
        from distributed import as_completed

        if count == 0:
            return []
        workers = len(self.client.scheduler_info().get("workers", {}))
        if not workers:                             # none yet: give them the time a connection gets
            seconds = self._connect_timeout if self.deadline is None else \
                min(self._connect_timeout, self.deadline.left())
            try:
                self.client.wait_for_workers(1, timeout=seconds)
            except TimeoutError:
                raise InvalidArgument(f"the Dask scheduler at {self.address} has no workers (waited {seconds:.3g} "
                                      f"s): start some (dask worker {self.address}) and run again") from None
            workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        size = max(1, count // (workers * self.chunks_per_worker))
        key = f"pktverify-cluster-{uuid.uuid4().hex}"      # known before scatter returns: cancelled by it
        futures: list = []
        cluster = done = None
        try:
            try:
                cluster = self._scatter(key)
                for i in range(0, count, size):
                    futures.append(self.client.submit(_chunk, cluster, self.options, range(i, min(i + size, count)),
                                                      pure=False))
                done = as_completed(futures, loop=self.client.loop,        # not the default client's: none
                                    timeout=None if self.deadline is None else self.deadline.left())
                parts = []
                for future in done:
                    part = _result(future)
                    parts.append(part)
                    if progress is not None:
                        progress.advance(len(part), sum(item[1] for item in part))
                return parts
            except TimeoutError:                    # as_completed's bound: the deadline (another thread)
                if self.deadline is not None:
                    raise self.deadline.stopped() from None
                raise
        except BaseException:                       # stopped or failed: the chunks left and the cluster
            from distributed import Future  # are cancelled (a scatter cut short never returned
            self._cancel(futures + [Future(key, self.client)])      # its future: the key names it)
            raise
        finally:
            futures.clear()
            done = cluster = None

    def _scatter(self, key: str):
        """The cluster sent to every worker under ``key``. Run on the client's own loop, so that a
        stop arriving meanwhile (the alarm) can let the scatter land, within 5 s, before the key is
        cancelled: cancelled while still in flight, it would land afterwards and stay on the
        scheduler for nobody."""
        import asyncio

        pending = asyncio.run_coroutine_threadsafe(
            self.client.scatter({key: self.cluster}, broadcast=True, asynchronous=True), self.client.loop.asyncio_loop)
        try:
            return pending.result()[key]
        except BaseException:
            try:
                pending.result(timeout=5)
            except BaseException:       # it failed, or is still not there: nothing more to wait for
                pass
            raise

    def _cancel(self, futures: list) -> None:
        """Cancel ``futures`` on the scheduler, waiting at most 5 s for the client's own event loop
        (the scheduler is told without waiting for its answer); as_completed would hold them until
        they finish otherwise, and the workers would run them for nobody."""
        import asyncio

        try:
            pending = asyncio.run_coroutine_threadsafe(self.client.cancel(list(futures), asynchronous=True),
                                                       self.client.loop.asyncio_loop)
            pending.result(timeout=5)
        except Exception:               # a client already closed or broken: nothing more to release
            pass


def _result(future) -> list:
    """A chunk's result; a worker that cannot import pktverify is one line, not a bug of ours."""
    try:
        return future.result()
    except ImportError as exc:
        raise InvalidArgument(f"a Dask worker cannot run pktverify's checks ({type(exc).__name__}: "
                              f"{str(exc)[:200]}): install the same pktverify on every worker") from None


_WORKER_TASKS: dict = {}      # per worker process: (cluster hash, options) -> its task list


def _chunk(cluster: ClusterSpec, options: WalkerOptions, indexes: range) -> list:
    """On a worker: the task list for ``cluster`` (built once per worker), then run ``indexes``."""
    from ..eval.cluster_walk import ClusterWalker
    from ..load.cluster_nodes import cluster_nodes
    from .invariants.runner import plan_tasks, run_task_chunk

    key = (hash(cluster), options)
    tasks = _WORKER_TASKS.get(key)
    if tasks is None:
        _WORKER_TASKS.clear()           # one run at a time per worker: keep memory for this one
        walker = ClusterWalker(cluster, cluster_nodes(cluster, lenient=options.lenient),
                               max_branches=options.max_branches, max_paths=options.max_paths, at=options.at)
        tasks = _WORKER_TASKS[key] = plan_tasks(cluster, walker, set(options.invariants),
                                                           only_services=options.only_services)[1]
    return run_task_chunk(tasks, indexes)
