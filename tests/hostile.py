"""Helpers for the hostile-input suites: run the CLI in-process and judge what it did.

The only acceptable results of any input are a verdict (exit 0 or 1) or a refusal
(exit 2 with exactly one line on stderr, no traceback, no "internal error").
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from pktverify.cli import main

RULES = Path(__file__).resolve().parent.parent / "rules"


@dataclass
class Run:
    status: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if not line.startswith("pktverify: warning:")
                and not line.startswith("pktverify: wrote ")]


def run(argv: list[str]) -> Run:
    """``pktverify ARGV`` in this process (an exception escaping ``main`` fails the test)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:        # argparse's usage errors
            status = exc.code if isinstance(exc.code, int) else 2
    return Run(status, out.getvalue(), err.getvalue())


def assert_verdict_or_refusal(result: Run, *, names: tuple[str, ...] = ()) -> None:
    """A verdict, or one refusal line (naming one of ``names`` when given: the user's input file)."""
    assert "Traceback" not in result.err, result.err
    if result.status in (0, 1):
        return
    assert result.status == 2, (result.status, result.err)
    lines = result.err_lines
    assert len(lines) == 1, result.err
    assert lines[0].startswith("pktverify: "), lines[0]
    assert "internal error" not in lines[0], lines[0]
    if names:
        assert any(name in lines[0] for name in names), lines[0]


def write_node_dumps(cluster, folder: Path) -> None:
    """Each node's generated dumps under ``folder/<node>/`` with the file names kubectl input reads."""
    from pktverify.generate.node_state import generate_node
    from pktverify.report.node_folder import node_files

    for node in cluster.nodes:
        (folder / node.name).mkdir(parents=True, exist_ok=True)
        for name, text in node_files(generate_node(cluster, node)).items():
            (folder / node.name / name).write_text(text)


def tree(folder: Path) -> set[str]:
    """Every path below ``folder`` (relative), to see what a command wrote."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}
