"""``verify --timeout SECONDS``: the whole verification bounded in time, and said so when it runs out.

A run stopped by its bound judged nothing: it ends with :class:`VerificationStopped` (one line:
``verification stopped after 5 s: 12 of 340 tasks done; nothing was judged``), never with a report
of the tasks that happened to finish, which would read as complete.

How the bound is kept: in the main thread a one-shot ``SIGALRM`` (``setitimer``) interrupts
whatever runs when the time is up (parsing dumps, one long task, a wait on forked workers or on a
Dask scheduler); forked pool workers do not inherit the timer and are terminated by their pool on
the way out. The handler raises :class:`_TimeUp`, a ``BaseException`` like ``KeyboardInterrupt``,
so no ``except Exception`` on the way (a cache that re-parses on any error, a library's retry
loop) can swallow it and carry on; :func:`bounded` turns it into the public error. Where signals
cannot be used (another thread, or a ``SIGALRM`` timer someone else has set), the bound is
checked each time a task or chunk of tasks finishes, so one long task can outlast it.
"""

from __future__ import annotations

import math
import signal
import threading
import time
import traceback

from ..errors import InvalidArgument, VerificationStopped

__all__ = ["Deadline", "bounded", "MAX_TIMEOUT"]

MAX_TIMEOUT = 10_000_000.0        # seconds (about 115 days): more is a typo, not a bound


class _TimeUp(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` swallows it."""


class Deadline:
    """``seconds`` from now: what is left, where the run is (``phase``, tasks ``done`` of
    ``total``), and the error that says so when the time is up."""

    def __init__(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
                or not 0 < seconds <= MAX_TIMEOUT:
            raise InvalidArgument(f"timeout={seconds!r} (type={type(seconds).__name__}): use seconds > 0 "
                                  f"and at most {MAX_TIMEOUT:,.0f}")
        self.seconds = float(seconds)
        self.end = time.monotonic() + self.seconds
        self.phase = "reading the nodes' dumps"
        self.done = 0
        self.total: int | None = None

    def left(self) -> float:
        """Seconds left (0 when the time is up)."""
        return max(0.0, self.end - time.monotonic())

    def check(self) -> None:
        """Raise :class:`VerificationStopped` if the time is up."""
        if time.monotonic() >= self.end:
            raise self.stopped()

    def stopped(self) -> VerificationStopped:
        """The one-line error for a run stopped now."""
        where = (f"{self.done} of {self.total} tasks done" if self.total is not None
                 else f"while {self.phase}, before any flow was checked")
        return VerificationStopped(f"verification stopped after {self.seconds:g} s: {where}; nothing was judged")

    def tasks(self, total: int, progress=None) -> "TaskCounter":
        """A progress sink for ``total`` tasks that counts them for :meth:`stopped`, checks the
        time after each (the bound where no alarm can be used), and passes them on to ``progress``."""
        self.total, self.done = total, 0
        return TaskCounter(self, progress)


class TaskCounter:
    """What :func:`pktverify.check.invariants.check_all` reports progress to under a deadline."""

    def __init__(self, deadline: Deadline, progress=None) -> None:
        self.deadline = deadline
        self.progress = progress

    def advance(self, tasks: int = 1, flows: int = 0) -> None:
        self.deadline.done += tasks
        if self.progress is not None:
            self.progress.advance(tasks, flows)
        if self.deadline.done < (self.deadline.total or 0):
            self.deadline.check()       # the last task done: the run is complete, whatever the clock says

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()


def bounded(seconds: "float | Deadline | None") -> "_Bounded":
    """``with bounded(seconds) as deadline:`` runs the block within ``seconds`` (None: no bound,
    ``deadline`` is None; a :class:`Deadline`: the time it has left, e.g. inside an outer
    ``bounded`` that already counts the time since the cluster file was read); past it,
    :class:`VerificationStopped` is raised from wherever the block was."""
    return _Bounded(seconds if seconds is None or isinstance(seconds, Deadline) else Deadline(seconds))


class _Bounded:
    """The context manager of :func:`bounded`: arms the alarm on entry, disarms it first thing on exit."""

    def __init__(self, deadline: Deadline | None) -> None:
        self.deadline = deadline
        self.previous = None

    def __enter__(self) -> Deadline | None:
        if self.deadline is not None:
            self.previous = _arm(self.deadline)
        return self.deadline

    def __exit__(self, kind, exc, tb) -> None:
        try:
            if self.previous is not None:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, self.previous)
        except _TimeUp:                 # the alarm went off just as the block ended
            kind = _TimeUp
        if kind is _TimeUp:
            if tb is not None:      # what the stopped frames held is let go now, not when the caller
                traceback.clear_frames(tb)      # drops the error
            raise self.deadline.stopped() from None


def _arm(deadline: Deadline):
    """Set a one-shot SIGALRM for ``deadline``; the previous handler (None: not armed, because
    this is not the main thread or a SIGALRM timer is already running)."""
    if threading.current_thread() is not threading.main_thread() or signal.getitimer(signal.ITIMER_REAL)[0]:
        return None

    def alarm(signum, frame):
        raise _TimeUp()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, max(deadline.left(), 1e-6))
    return previous if previous is not None else signal.SIG_DFL
