"""Reading input files: UTF-8 text only, with line numbers, CRLF tolerated."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError

__all__ = ["read_lines", "read_text"]


def read_text(path: str | Path, *, name: str | None = None) -> str:
    """Return the file's text; raise InputError for a missing, empty, binary or non-UTF-8 file."""
    label = name or str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(label, 0, "cannot read file", exc.strerror or str(exc)) from None
    return decode_text(data, label)


def decode_text(data: bytes, label: str) -> str:
    """Decode ``data`` as UTF-8 text, rejecting NUL bytes and empty input with the line they are on."""
    if not data.strip():
        raise InputError(label, 1, "empty input", "")
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise InputError(label, line, "binary data (NUL byte), expected text", _snippet(data, nul))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(label, line, "not UTF-8 text", _snippet(data, exc.start)) from None


def read_lines(path: str | Path, *, name: str | None = None) -> list[str]:
    """Return the file's lines without line endings (``\\r\\n`` and ``\\n``)."""
    return [line.rstrip("\r") for line in read_text(path, name=name).split("\n")]


def _snippet(data: bytes, at: int) -> str:
    start = data.rfind(b"\n", 0, at) + 1
    return repr(data[start:at + 16])
