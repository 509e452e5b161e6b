"""An opt-in cache of parsed rule sets, keyed by the dump's content (``--cache-dir``).

CI runs the same checks on the same dumps again and again; parsing a 110k-rule dump is
most of a ``trace`` command.  With a cache directory, a parsed rule set (an iptables-save
dump's, or an nftables dump's: :meth:`ModelCache.load_nft`) is stored under
the SHA-256 of everything its parse depends on — the text, the name it is reported
under, ``--lenient``, and pktverify's and Python's versions — and the next run with
the same input loads it instead (3-4x faster than parsing).  A changed byte is a
different key: a cache entry can be stale only if it was tampered with.

What is in the folder is treated as hostile, and a bad entry never stops a run:

- The folder is opened once (``O_DIRECTORY|O_NOFOLLOW``; it must be owned by the user and
  writable by nobody else) and every later read, create, rename and unlink is relative to
  that descriptor: swapping the folder's path for a symlink afterwards redirects nothing.
- An entry is looked at without following links (``lstat``), opened only when it is a
  regular file (``O_NOFOLLOW|O_NONBLOCK``, so a FIFO swapped in between cannot block) and
  read only when its descriptor is that same file, owned by the user, writable by nobody
  else and not larger than its dump could make it.
- Its content is a bounded format, not a pickle (see :mod:`.model_codec`, and
  :mod:`.nft_codec` for nftables rulesets): decoding is linear in its size, checks every
  field against the model's annotations and the structure the evaluator relies on
  (:mod:`.model_shape`), and builds model/rules.py's or model/nft.py's records only.
- Anything else — a FIFO, socket, device, folder or symlink in an entry's place, a torn,
  foreign or hollow entry — is a miss: the dump is parsed, the entry replaced, and
  :attr:`ModelCache.warnings` says once what was ignored (the CLI prints it on stderr),
  or that the entry could not be replaced.

Entries are written to a fresh 0600 file and renamed into place, so a run interrupted
half-way leaves no half entry.  Only rule sets that parsed without error are stored;
errors are reported as without a cache.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
import sys
import weakref
from pathlib import Path

from ..errors import InvalidArgument
from ..model.nft import NftRuleset
from ..model.rules import Ruleset
from ..parse.source import file_kind
from .model_codec import BadEntry, decode_ruleset, encode_ruleset
from .nft_codec import decode_nft, encode_nft

__all__ = ["ModelCache"]

_FORMAT = b"pktverify model cache 2"
# An entry is at most this many times its dump's size, plus a little (a 110k-rule dump of 16 MB
# gives a 28 MB entry); a key not computed by this cache allows up to _DEFAULT_LIMIT.
_SIZE_FACTOR = 4
_SIZE_SLACK = 1 << 20
_DEFAULT_LIMIT = 1 << 30
_ENTRY_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class ModelCache:
    """Parsed rule sets stored in ``directory`` (created, mode 0700, if missing).

    The folder stays open until :meth:`close` (or until the cache is collected).
    ``warnings``: one line per entry that was ignored or could not be written, in order."""

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
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):        # swapped for a link or file since the lstat
                raise InvalidArgument(f"--cache-dir {directory}: not a folder (it changed while pktverify "
                                      "looked at it)") from None
            raise InvalidArgument(f"--cache-dir {directory}: {exc.strerror or exc}") from None
        why = _unsafe(os.fstat(fd), "directory")
        if why:
            os.close(fd)
            raise InvalidArgument(f"--cache-dir {directory}: {why}; pktverify loads what it finds there, so "
                                  "only you may write to it")
        self._fd = fd
        self._closer = weakref.finalize(self, os.close, fd)
        self._limits: dict[str, int] = {}
        self._ignored: dict[str, str] = {}
        self._failed: dict[str, str] = {}
        self.hits = self.misses = 0

    def close(self) -> None:
        """Close the folder's descriptor (later loads miss, stores are skipped)."""
        self._closer()

    def __enter__(self) -> ModelCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def warnings(self) -> list[str]:
        """What was ignored or not written, one line per entry (``cache entry NAME ignored: a FIFO``)."""
        lines = []
        for key in dict.fromkeys([*self._ignored, *self._failed]):
            ignored, failed = self._ignored.get(key), self._failed.get(key)
            text = f"cache entry {key} " + (f"ignored: {ignored}" if ignored else "")
            if failed:
                text += f"{'; ' if ignored else ''}could not be {'replaced' if ignored else 'written'}: {failed}"
            lines.append(text)
        return lines

    def key(self, text: str | bytes, source: str, lenient: bool, kind: str = "iptables") -> str:
        """The entry name for parsing ``text`` reported as ``source`` with ``lenient``; ``kind``
        "nft" for an nftables dump (another entry than the same text's as iptables-save)."""
        from ..version import __version__
        digest = hashlib.sha256()
        parts = [_FORMAT, __version__.encode(), sys.version.encode(), source.encode("utf-8", "surrogateescape"),
                 b"lenient" if lenient else b"strict"]
        if kind != "iptables":
            parts.append(kind.encode())
        for part in parts:
            digest.update(len(part).to_bytes(8, "big") + part)
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        digest.update(data)
        name = digest.hexdigest()
        self._limits[name] = _SIZE_FACTOR * len(data) + _SIZE_SLACK
        return name

    def load(self, key: str) -> Ruleset | None:
        """The stored rule set, or None: missing, or ignored (said in :attr:`warnings`)."""
        return self._load(key, decode_ruleset)

    def load_nft(self, key: str) -> NftRuleset | None:
        """The stored nftables ruleset (a key of ``kind`` "nft"), or None: missing, or ignored."""
        return self._load(key, decode_nft)

    def _load(self, key: str, decode):
        why = self._why_not(key)
        if why is None:
            try:
                ruleset = self._read(key, decode)
            except BadEntry as exc:
                why = str(exc)
            else:
                if ruleset is not None:
                    self.hits += 1
                    return ruleset
        if why:
            self._ignored.setdefault(key, why)
        self.misses += 1
        return None

    def _why_not(self, key: str) -> str | None:
        """Why the entry cannot be loaded ('' when simply missing), None when it may be read."""
        if not self._closer.alive or not _is_key(key):
            return ""
        try:
            st = os.stat(key, dir_fd=self._fd, follow_symlinks=False)
        except FileNotFoundError:
            return ""
        except OSError as exc:
            return exc.strerror or str(exc)
        if not stat.S_ISREG(st.st_mode):
            return file_kind(st.st_mode)
        return None

    def _read(self, key: str, decode):
        """Open, check and ``decode`` the entry; raise BadEntry saying why it is not loaded."""
        try:
            fd = os.open(key, _ENTRY_FLAGS, dir_fd=self._fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BadEntry("a symlink" if exc.errno == errno.ELOOP else exc.strerror or str(exc)) from None
        try:
            st = os.fstat(fd)
            why = _unsafe(st, "file")
            limit = self._limits.get(key, _DEFAULT_LIMIT)
            if why:
                raise BadEntry(why)
            if st.st_size > limit:
                raise BadEntry(f"{st.st_size} bytes, more than its dump could need ({limit})")
            data = os.read(fd, st.st_size + 1)      # one read: the size is known and bounded
            if len(data) != st.st_size:
                raise BadEntry("it changed while it was read")
        finally:
            os.close(fd)
        return decode(data)

    def store(self, key: str, ruleset: Ruleset) -> None:
        """Write the entry atomically (a fresh 0600 file renamed into place).  A failure is said in
        :attr:`warnings`: a cache that cannot be written only makes the next run parse again."""
        self._store(key, ruleset, encode_ruleset)

    def store_nft(self, key: str, ruleset: NftRuleset) -> None:
        """Write the entry of an nftables ruleset (a key of ``kind`` "nft"), as :meth:`store`."""
        self._store(key, ruleset, encode_nft)

    def _store(self, key: str, ruleset, encode) -> None:
        if not self._closer.alive or not _is_key(key):
            return
        try:
            data = encode(ruleset)
        except BadEntry as exc:         # a loop the parser would have refused: never from a parse
            self._failed[key] = str(exc)
            return
        tmp = f".tmp-{secrets.token_hex(8)}"
        try:
            fd = os.open(tmp, _NEW_FLAGS, 0o600, dir_fd=self._fd)
        except OSError as exc:
            self._failed[key] = exc.strerror or str(exc)
            return
        try:
            try:
                os.fchmod(fd, 0o600)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(tmp, key, src_dir_fd=self._fd, dst_dir_fd=self._fd)
        except OSError as exc:
            self._failed[key] = exc.strerror or str(exc)
            try:
                os.unlink(tmp, dir_fd=self._fd)
            except OSError:
                pass


def _is_key(name: str) -> bool:
    """A name :meth:`ModelCache.key` gives: 64 lower-case hex digits (no '/', no '..')."""
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _unsafe(st: os.stat_result, what: str) -> str:
    """Why an entry or the directory must not be trusted ('' when it may)."""
    if what == "directory" and not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if what == "file" and not stat.S_ISREG(st.st_mode):
        return file_kind(st.st_mode)
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not by you (uid {os.geteuid()})"
    if st.st_mode & 0o022:
        return "writable by group or others"
    return ""
