"""A progress line on stderr for long runs: only on a terminal (never in CI logs or when piped)."""

from __future__ import annotations

import os
import sys
import time

__all__ = ["Progress"]


class Progress:
    """``done/total`` tasks, flows checked so far and an ETA, redrawn at most 5 times a second on
    one line of a terminal; nothing at all when ``stream`` is not a terminal or ``CI`` is set."""

    def __init__(self, total: int, what: str = "checks", stream=None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(total) and self.stream.isatty() and not os.environ.get("CI")
        self.total, self.what = total, what
        self.done = self.flows = 0
        self.start = self.last = time.monotonic()

    def advance(self, tasks: int = 1, flows: int = 0) -> None:
        self.done += tasks
        self.flows += flows
        now = time.monotonic()
        if self.enabled and (now - self.last >= 0.2 or self.done == self.total):
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / rate if rate else 0.0
            self.stream.write(f"\r{self.done}/{self.total} {self.what}, {self.flows:,} flows checked, "
                              f"ETA {eta:4.0f} s ")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
