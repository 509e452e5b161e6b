"""Writing output files without replacing or following anything pktverify did not create.

Every file pktverify writes (captures, generated dumps) goes through here:

* the output folder is opened once and every name inside it is resolved
  relative to that open folder, one path component at a time, never through a
  symlink (``O_NOFOLLOW``), so a planted link cannot redirect a write;
* a name that already exists and is not a regular file (a device such as
  ``/dev/null``, a FIFO, a socket, a symlink, a folder) is refused with one
  line, never replaced;
* data goes to a fresh temporary file made with ``O_CREAT|O_EXCL|O_NOFOLLOW``
  in the same folder and is renamed over the final name only when complete,
  so nothing is ever half-written under the real name;
* names made from input (node, pod, flow names) must be single, plain path
  components: ``..``, ``/`` and NUL are refused, not cleaned up.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from ..errors import OutputError
from ..parse.source import file_kind

__all__ = ["OutputDir", "write_file", "check_component", "refuse_special"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def check_component(name: str, what: str = "file name") -> str:
    """Return ``name`` if it is one plain path component; raise OutputError otherwise."""
    if not name or name in (".", "..") or "/" in name or "\0" in name or len(name.encode()) > 255:
        raise OutputError(f"refusing to use {name!r} as a {what}: it must be one plain path component "
                          "(no '/', not '.' or '..', at most 255 bytes)")
    return name


class OutputDir:
    """A folder opened once; files and sub-folders are created inside it without following links."""

    def __init__(self, path: str | Path, *, create: bool = True, _fd: int | None = None) -> None:
        self.path = Path(path)
        if _fd is not None:
            self._fd = _fd
            return
        if create:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                raise OutputError(f"cannot write into {self.path}: it exists and is not a folder") from None
            except OSError as exc:
                raise OutputError(f"cannot write into {self.path}: cannot create the folder ({exc.strerror})") from None
        try:
            self._fd = os.open(self.path, _DIR_FLAGS)
        except NotADirectoryError:
            raise OutputError(f"cannot write into {self.path}: it is not a folder") from None
        except OSError as exc:
            raise OutputError(f"cannot write into {self.path}: {exc.strerror}") from None

    def __enter__(self) -> "OutputDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def subdir(self, name: str) -> "OutputDir":
        """The folder ``name`` inside this one, created if missing; a link or a file there is refused."""
        check_component(name, "folder name")
        try:
            os.mkdir(name, 0o777, dir_fd=self._fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise OutputError(f"cannot write into {self.path / name}: cannot create the folder ({exc.strerror})") from None
        try:
            fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=self._fd)
        except OSError:
            raise OutputError(f"refusing to write into {self.path / name}: it exists and is not a plain folder "
                              "(a symlink or a file); remove it or choose another output folder") from None
        return OutputDir(self.path / name, _fd=fd)

    def existing(self, name: str) -> os.stat_result | None:
        """``lstat`` of ``name`` in this folder, None when it does not exist."""
        try:
            return os.stat(name, dir_fd=self._fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def read_small(self, name: str, limit: int = 1 << 20) -> bytes | None:
        """The bytes of regular file ``name`` in this folder (at most ``limit``), or None when it is
        missing, not a regular file (a link, a FIFO, ...) or larger."""
        check_component(name)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0),
                         dir_fd=self._fd)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            data = f.read(limit + 1)
        return data if len(data) <= limit else None

    def remove(self, name: str) -> bool:
        """Remove regular file ``name`` from this folder (never a link's target, never a folder);
        whether it was removed."""
        check_component(name)
        found = self.existing(name)
        if found is None or not stat.S_ISREG(found.st_mode):
            return False
        try:
            os.unlink(name, dir_fd=self._fd)
        except OSError:
            return False
        return True

    def write(self, name: str, data: bytes) -> Path:
        """Write ``data`` as ``name`` (replacing a regular file of that name); return its path."""
        check_component(name)
        target = self.path / name
        found = self.existing(name)
        if found is not None and not stat.S_ISREG(found.st_mode):
            raise OutputError(f"refusing to write {target}: it exists and is not a regular file "
                              f"({file_kind(found.st_mode)}); remove it or choose another name")
        tmp = f".{name[:200]}.{secrets.token_hex(6)}.partial"
        try:
            fd = os.open(tmp, _NEW_FILE_FLAGS, 0o644, dir_fd=self._fd)
        except OSError as exc:
            raise OutputError(f"cannot write {target}: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, name, src_dir_fd=self._fd, dst_dir_fd=self._fd)
        except BaseException as exc:
            try:
                os.unlink(tmp, dir_fd=self._fd)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise OutputError(f"cannot write {target}: {exc.strerror}") from None
            raise
        return target


def refuse_special(path: str | Path) -> None:
    """Refuse a path the user named that exists and is not a regular file (even when what is
    written goes to names derived from it, such as ``NAME-1.pcapng``)."""
    try:
        found = os.lstat(path)
    except OSError:
        return
    if not stat.S_ISREG(found.st_mode):
        raise OutputError(f"refusing to write {path}: it exists and is not a regular file ({file_kind(found.st_mode)})")


def write_file(path: str | Path, data: bytes) -> Path:
    """Write one file at a path the user gave; its folder must exist (nothing but the file is made)."""
    path = Path(path)
    if str(path).endswith("/") or path.name in ("", ".", ".."):
        raise OutputError(f"refusing to write {str(path)!r}: give a file name, not a folder")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: the folder {path.parent} does not exist")
    with OutputDir(path.parent, create=False) as folder:
        return folder.write(path.name, data)
