"""An opt-in cache of parsed rule sets, keyed by the dump's content (``--cache-dir``).

CI runs the same checks on the same dumps again and again; parsing a 110k-rule dump is
most of a ``trace`` command.  With a cache directory, a parsed rule set is stored under
the SHA-256 of everything its parse depends on — the text, the name it is reported
under, ``--lenient``, and pktverify's and Python's versions — and the next run with
the same input loads it instead (3-4x faster than parsing).  A changed byte is a
different key: a cache entry can be stale only if it was tampered with.

Loading is pickle, so the cache is guarded like one's own code: the directory must be
owned by the user running pktverify and writable by nobody else, each entry likewise
(both checked on the open descriptors, symlinks refused), and the unpickler builds only
pktverify's rule classes and plain values — anything else in an entry makes it a miss,
never an import.  Entries are written to a fresh file and renamed into place, so a run
interrupted half-way leaves no half entry.  Only rule sets that parsed without error are
stored; errors are reported as without a cache.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
import tempfile
from pathlib import Path

from ..errors import InvalidArgument
from ..model import rules as m
from ..model.rules import Ruleset
from .source import file_kind

__all__ = ["ModelCache"]

_FORMAT = b"pktverify model cache 1"
_ALLOWED = {(cls.__module__, cls.__qualname__): cls for cls in m.MODEL_CLASSES}


class _ModelUnpickler(pickle.Unpickler):
    """Builds pktverify's rule classes and plain values only."""

    def find_class(self, module: str, name: str) -> type:
        cls = _ALLOWED.get((module, name))
        if cls is None:
            raise pickle.UnpicklingError(f"{module}.{name} is not a pktverify model class")
        return cls


class ModelCache:
    """Parsed rule sets stored in ``directory`` (created, mode 0700, if missing)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        try:
            kind = file_kind(os.lstat(self.directory).st_mode)
        except FileNotFoundError:
            kind = ""
        except OSError as exc:
            raise InvalidArgument(f"--cache-dir {directory}: {exc.strerror or exc}") from None
        if kind and kind != "a folder":
            raise InvalidArgument(f"--cache-dir {directory}: {kind}, not a folder (give a folder of your own; "
                                  "pktverify creates it when it is missing)")
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            raise InvalidArgument(f"--cache-dir {directory}: {exc.strerror or exc}") from None
        try:
            why = _unsafe(os.fstat(fd), "directory")
        finally:
            os.close(fd)
        if why:
            raise InvalidArgument(f"--cache-dir {directory}: {why}; pktverify loads what it finds there, so "
                                  "only you may write to it")
        self.hits = self.misses = 0

    @staticmethod
    def key(text: str | bytes, source: str, lenient: bool) -> str:
        """The entry name for parsing ``text`` reported as ``source`` with ``lenient``."""
        from .. import __version__
        digest = hashlib.sha256()
        for part in (_FORMAT, __version__.encode(), sys.version.encode(), source.encode("utf-8", "surrogateescape"),
                     b"lenient" if lenient else b"strict"):
            digest.update(len(part).to_bytes(8, "big") + part)
        digest.update(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
        return digest.hexdigest()

    def load(self, key: str) -> Ruleset | None:
        """The stored rule set, or None (missing, not safe to load, or not a model)."""
        try:
            fd = os.open(self.directory / key, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            self.misses += 1
            return None
        with os.fdopen(fd, "rb") as handle:
            if _unsafe(os.fstat(handle.fileno()), "file"):
                self.misses += 1
                return None
            try:
                value = _ModelUnpickler(handle).load()
            except Exception:           # a torn, foreign or tampered entry: parse again, overwrite it
                value = None
        if type(value) is not Ruleset:
            self.misses += 1
            return None
        self.hits += 1
        return value

    def store(self, key: str, ruleset: Ruleset) -> None:
        """Write the entry atomically (a fresh 0600 file renamed into place); failures are silent:
        a cache that cannot be written only makes the next run parse again."""
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as handle:
                pickle.dump(ruleset, handle, protocol=5)
            os.replace(tmp, self.directory / key)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _unsafe(st: os.stat_result, what: str) -> str:
    """Why an entry or the directory must not be trusted ('' when it may)."""
    if what == "directory" and not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if what == "file" and not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not by you (uid {os.geteuid()})"
    if st.st_mode & 0o022:
        return "writable by group or others"
    return ""
