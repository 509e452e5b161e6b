"""Command line: argument parsing and exit codes only (0 ok, 1 violation, 2 bad input).

:func:`main` parses the arguments (:mod:`.parser`), runs one command's function (one module per
command: :mod:`.trace`, :mod:`.verify`, :mod:`.generate`, :mod:`.lint`, :mod:`.diff`,
:mod:`.selftest`) and maps what it raises to one line on stderr and an exit status: pktverify's
own errors (:class:`~pktverify.errors.PktverifyError`: bad input, a bad argument, a bound) are the
user's to fix; any other exception, a ``ValueError`` included, is a bug in pktverify and says so.
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from typing import Callable

from ..errors import PktverifyError, one_line
from .common import refuse_empty_paths
from .diff import diff_command
from .generate import generate_command
from .lint import lint_command
from .parser import build_parser
from .selftest import selftest_cluster_command, selftest_kernel_command
from .trace import trace_command
from .verify import verify_command

__all__ = ["main", "run"]

_EPIPE = 141        # 128 + SIGPIPE: what a shell reports for a tool whose reader went away (yes | head)


def run() -> None:
    """The ``pktverify`` command: :func:`main`, then exit at once. The model of a large dump is
    over a million objects; freeing them one by one when the interpreter shuts down took a third
    of a ``trace`` command on a 110k-rule dump (3.6 s → 2.6 s), and nothing is left to do then:
    every file was written and closed, so only the standard streams are flushed."""
    from ..bulk import freeze_what_is_built
    freeze_what_is_built()          # a process that ends with the command: see bulk.py
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:                     # a reader that went away: quietly, as a shell tool would
            code = code or _EPIPE
        except ValueError:                          # a closed stream
            code = code or 1
    os._exit(code)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _commands() -> dict[str, Callable[[argparse.Namespace], int]]:
    """Each command's function, looked up when the command runs (selftest-kernel's probes run :func:`main`)."""
    return {"trace": trace_command, "verify": verify_command, "generate": generate_command, "lint": lint_command,
            "diff": diff_command, "selftest-kernel": partial(selftest_kernel_command, trace=main),
            "selftest-cluster": selftest_cluster_command}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        refuse_empty_paths(args)
        return _commands()[args.command](args)
    except PktverifyError as exc:   # the user's input or arguments (InputError, InvalidArgument, a bound reached)
        print(f"pktverify: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:       # the reader went away (pktverify generate | head): nothing more to say
        _quiet_stdout()
        return _EPIPE
    except OSError as exc:        # a capture or generated file that cannot be written
        print(one_line(f"pktverify: cannot write {exc.filename}: {exc.strerror}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pktverify: interrupted", file=sys.stderr)
        return 130
    except (RecursionError, MemoryError) as exc:
        print(f"pktverify: the input needs more {'nesting' if isinstance(exc, RecursionError) else 'memory'} "
              "than pktverify allows; it is refused (please report the input if it is a real node's)",
              file=sys.stderr)
        return 2
    except Exception as exc:      # a bug (a bare ValueError too): one line, never a traceback
        if os.environ.get("PKTVERIFY_DEBUG"):
            raise
        _say_internal_error(exc)
        return 2


def _say_internal_error(exc: Exception) -> None:
    """One line for a bug: the exception and where it was raised (PKTVERIFY_DEBUG=1 shows the traceback)."""
    where = exc.__traceback__
    while where is not None and where.tb_next is not None:
        where = where.tb_next
    at = f" at {os.path.basename(where.tb_frame.f_code.co_filename)}:{where.tb_lineno}" if where else ""
    print(one_line(f"pktverify: internal error (a bug in pktverify, please report it with the input): "
                   f"{type(exc).__name__}: {str(exc)[:200]}{at}; PKTVERIFY_DEBUG=1 shows the traceback"),
          file=sys.stderr)
