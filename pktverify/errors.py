"""The exceptions pktverify raises.

One root (:class:`PktverifyError`) so callers can catch everything the tool
reports on purpose; :class:`InputError` carries the ``file:line`` and the
offending text so the CLI can print one line and exit 2 without a traceback.
Every error a public call raises on purpose is defined here and exported by
``pktverify``.
"""

from __future__ import annotations

__all__ = ["PktverifyError", "InputError", "InvalidArgument", "LimitExceeded", "OutputError", "VerificationStopped",
           "one_line", "suggest"]


def one_line(text: str) -> str:
    """``text`` safe to print as part of one terminal line: line breaks, control characters and
    other unprintable characters (which could end the line or drive the terminal) escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] if c != "'" else c for c in text)


class PktverifyError(Exception):
    """Root of every error pktverify raises deliberately."""


class InputError(PktverifyError):
    """Input text that pktverify does not understand or that the kernel would reject.

    ``str(err)`` is the one-line report ``FILE:LINE: what is wrong: the offending text`` (``FILE: ...``
    for what concerns the whole file, line 0).
    """

    def __init__(self, source: str, line: int, message: str, text: str = "") -> None:
        self.source = source
        self.line = line
        self.message = message
        self.text = text
        super().__init__(str(self))

    def __str__(self) -> str:
        text = self.text if len(self.text) <= 200 else self.text[:200] + "..."
        where = f"{self.source}:{self.line}" if self.line else self.source      # 0: the whole file
        return one_line(f"{where}: {self.message}: {text}" if text else f"{where}: {self.message}")


class InvalidArgument(PktverifyError, TypeError):
    """A library or CLI argument is out of range; the message echoes it and says what is valid."""


class LimitExceeded(PktverifyError):
    """A bound on the work for one packet or flow was reached (``max_branches``, ``max_paths``);
    the message names it and how to raise it."""


class OutputError(PktverifyError):
    """An output path pktverify refuses to write (one line for the CLI, exit 2)."""


class VerificationStopped(PktverifyError):
    """The run reached its ``timeout``: nothing was judged (the message says how far it got)."""


def suggest(word: str, choices: list[str]) -> str:
    """What to say after "no X named ``word``": the closest of ``choices`` (" (did you mean a, b?)"),
    else the first few of them, so that a typo never reads as "not there"."""
    import difflib
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    if close:
        return f" (did you mean {', '.join(close)}?)"
    shown = ", ".join(sorted(choices)[:8]) + (", ..." if len(choices) > 8 else "")
    return f" (there are: {shown})" if choices else " (there are none)"
