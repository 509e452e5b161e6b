"""Reading input files: regular files of bounded size, UTF-8 text only, with line numbers, CRLF tolerated.

A path from a cluster description may name anything the user can open, so
reading refuses what is not a regular file (``/dev/zero`` would never end, a
FIFO would block, a folder has no text) and files larger than
``MAX_INPUT_BYTES``, before reading a byte of them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import InputError
from ..limits import MAX_INPUT_BYTES, MAX_YAML_BYTES

__all__ = ["read_lines", "read_text", "read_bytes", "file_kind", "MAX_INPUT_BYTES", "MAX_YAML_BYTES"]


def read_bytes(path: str | Path, *, name: str | None = None, limit: int = MAX_INPUT_BYTES,
               head: bool = False) -> bytes:
    """The content of the regular file ``path`` (at most ``limit`` bytes); InputError otherwise.
    With ``head``, just its first ``limit`` bytes, whatever its size (to tell formats apart)."""
    label = name or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError) as exc:      # ValueError: a NUL byte in the path
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(label, 0, "cannot read file", why) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(label, 0, "not a regular file (pktverify reads files, not devices, FIFOs or "
                             "folders)", file_kind(info.st_mode))
        if head:
            return os.read(fd, limit)
        if info.st_size > limit:
            raise InputError(label, 0, f"file larger than the {limit // 2**20} MiB input limit",
                             f"{info.st_size:,} bytes")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise InputError(label, 0, f"file larger than the {limit // 2**20} MiB input limit", "")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise InputError(label, 0, "cannot read file", exc.strerror or str(exc)) from None
    finally:
        os.close(fd)


def read_text(path: str | Path, *, name: str | None = None, allow_empty: bool = False,
              limit: int = MAX_INPUT_BYTES) -> str:
    """Return the file's text; raise InputError for a missing, binary, non-UTF-8 or non-regular
    file, one over ``limit`` bytes, and an empty one unless ``allow_empty`` (an empty
    iptables-save: a node without rules)."""
    label = name or str(path)
    return decode_text(read_bytes(path, name=label, limit=limit), label, allow_empty=allow_empty)


def file_kind(mode: int) -> str:
    """What a path is, from its ``st_mode``, in the words of an error message (``a FIFO``)."""
    for test, kind in ((stat.S_ISREG, "a regular file"), (stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def decode_text(data: bytes, label: str, *, allow_empty: bool = False) -> str:
    """Decode ``data`` as UTF-8 text, rejecting NUL bytes and empty input with the line they are on."""
    if not data.strip() and not allow_empty:
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
