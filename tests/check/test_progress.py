"""The progress line: on a terminal only, never in a pipe or on CI."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

from pktverify.progress import Progress

ROOT = Path(__file__).resolve().parents[2]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_and_clears_its_line(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    out = _Tty()
    p = Progress(3, "tasks", stream=out)
    for _ in range(3):
        p.advance(1, 10)
    p.close()
    text = out.getvalue()
    assert "3/3 tasks, 30 flows checked, ETA" in text and text.endswith("\r\x1b[K")


def test_no_progress_when_piped_or_on_ci(monkeypatch):
    piped = io.StringIO()
    p = Progress(3, stream=piped)
    p.advance(3, 5)
    p.close()
    assert piped.getvalue() == ""
    monkeypatch.setenv("CI", "true")
    tty = _Tty()
    p = Progress(3, stream=tty)
    p.advance(3)
    p.close()
    assert tty.getvalue() == ""


def test_verify_on_a_terminal_shows_progress_on_stderr_only():
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    done = subprocess.run([sys.executable, "-m", "pktverify", "verify", str(ROOT / "rules/seed/cluster-iptables.yaml"),
                           "--jobs", "1"], stdout=subprocess.PIPE, stderr=slave, env=env, timeout=120)
    os.close(slave)
    err = b""
    try:
        while True:
            chunk = os.read(master, 4096)
            if not chunk:
                break
            err += chunk
    except OSError:
        pass
    os.close(master)
    # the progress line ("3/3 tasks, 57 flows checked, ETA ...") is redrawn with a carriage return
    assert done.returncode == 0 and b"tasks, " in err and b"flows checked, ETA" in err
    assert b"flows checked, ETA" not in done.stdout and b"\r" not in done.stdout
