"""Is this address a Dask scheduler that answers? Told in one line, within a bound, before any work.

``distributed.Client`` waits without bound for the answer to its handshake (a server that
accepts the connection and says nothing keeps ``pktverify verify`` waiting forever), reads an
HTTP reply as a 3-EiB frame (MemoryError), and fails with Python's own TypeError on ``tls://``
without certificates or on ``ucx://`` when UCX is not installed. So before a Client is made, the
address is checked here (its form, its transport, its certificates) and probed once: connect
(one attempt), Dask's handshake, then ``identity``, the whole exchange within ``seconds``; the
peer must say it is a ``Scheduler`` (a worker's or nanny's address says otherwise).
"""

from __future__ import annotations

import asyncio
import re
import threading

from ..errors import InvalidArgument

__all__ = ["connection_args", "probe", "NoAnswer"]


class NoAnswer(InvalidArgument):
    """The peer did not answer within the probe's time; ``detail`` says how far it got (for a
    run's deadline, which may be what cut the probe short)."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail

_HOST_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.]+(?:%[\w.-]+)?\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})")
_HOST_SCHEMES = ("tcp", "tls", "ws", "wss")
_FORM = "give tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786"


def connection_args(address: str) -> dict:
    """The Dask connection arguments for ``address`` (TLS from the Dask configuration), after
    checking its form and transport; :class:`InvalidArgument` naming the address otherwise."""
    from distributed import Security
    from distributed.comm import registry

    if not isinstance(address, str) or not address.isprintable():
        raise InvalidArgument(f"Dask scheduler address {address!r}: {_FORM}")
    scheme, sep, loc = address.partition("://")
    if not sep:
        scheme, loc = "tcp", address            # Dask's own default, as Client takes it
    scheme = scheme.lower()
    if scheme == "inproc":
        raise InvalidArgument(f"Dask scheduler address {address}: inproc:// lives inside one Python process; "
                              "pass that process's Client (pktverify.verify(..., scheduler=client)) or "
                              f"{_FORM}")
    if scheme == "ucx":
        try:
            registry.get_backend(scheme).get_connector()
        except Exception:
            raise InvalidArgument(f"Dask scheduler address {address}: ucx:// needs Dask's UCX transport "
                                  "(pip install distributed-ucxx), which is not installed here") from None
    elif scheme not in _HOST_SCHEMES:
        raise InvalidArgument(f"Dask scheduler address {address}: unknown transport {scheme}:// "
                              f"(Dask's are tcp://, tls://, ws://, wss://, ucx://); {_FORM}")
    if scheme in _HOST_SCHEMES:
        match = _HOST_PORT.fullmatch(loc)
        if match is None or not 0 < int(match["port"]) < 65536:
            raise InvalidArgument(f"Dask scheduler address {address}: not HOST:PORT with a port 1-65535; {_FORM}")
    try:
        args = Security().get_connection_args("client")
    except Exception as exc:                 # a Dask configuration naming certificates it cannot read
        raise InvalidArgument(f"Dask scheduler address {address}: Dask's TLS configuration cannot be used: "
                              f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if scheme in ("tls", "wss") and args.get("ssl_context") is None:
        raise InvalidArgument(f"Dask scheduler address {address}: {scheme}:// needs TLS certificates, and none "
                              "are configured for Dask (distributed.comm.tls.ca-file, .client.cert and "
                              ".client.key, e.g. in DASK_DISTRIBUTED__COMM__TLS__CA_FILE and friends)")
    if args.get("require_encryption") and scheme not in ("tls", "wss"):
        raise InvalidArgument(f"Dask scheduler address {address}: Dask's configuration requires encryption; "
                              "use the scheduler's tls:// address")
    return args


def probe(address: str, seconds: float, args: dict) -> None:
    """Connect to ``address`` once, do Dask's handshake and ask ``identity``, all within
    ``seconds``; :class:`InvalidArgument` saying what went wrong unless a scheduler answered.
    Runs in a thread of its own (its own event loop, whatever the caller's thread runs)."""
    from .deadline import _TimeUp

    outcome: list = []
    ended = threading.Event()       # not Thread.join: a join interrupted by a signal marks the thread ended

    def run() -> None:
        try:
            outcome.append(_run(address, seconds, args))
        finally:
            ended.set()

    threading.Thread(target=run, name="pktverify-dask-probe", daemon=True).start()
    try:
        ended.wait()                # within ``seconds``: every step of the probe is bounded
    except _TimeUp:                 # the run's deadline, as the probe ends: say what the peer did
        ended.wait(1.0)
        if not (outcome and isinstance(outcome[0], NoAnswer)):
            raise
    if outcome and outcome[0] is not None:
        raise outcome[0]


def _run(address: str, seconds: float, args: dict) -> InvalidArgument | None:
    """What is wrong with ``address`` as a Dask scheduler (None: nothing)."""
    try:
        return asyncio.run(_exchange(address, seconds, args))
    except Exception as exc:        # what the peer sent: told, never taken for a bug of ours
        what = "a frame of impossible size" if isinstance(exc, MemoryError) else \
            f"{type(exc).__name__}: {str(exc)[:120]}"
        return InvalidArgument(f"{address} answered, but not in Dask's protocol ({what}): it is "
                "no Dask scheduler (an HTTP server such as Dask's dashboard answers so; the scheduler's port "
                "is usually 8786)")


async def _exchange(address: str, seconds: float, args: dict) -> InvalidArgument | None:
    from distributed.comm import registry
    from distributed.comm.core import CommClosedError

    end = asyncio.get_running_loop().time() + seconds

    def within(step):
        return asyncio.wait_for(step, max(0.0, end - asyncio.get_running_loop().time()))

    scheme, sep, loc = address.partition("://")
    scheme, loc = (scheme.lower(), loc) if sep else ("tcp", address)
    try:
        comm = await within(registry.get_backend(scheme).get_connector().connect(loc, deserialize=True, **args))
    except (asyncio.TimeoutError, TimeoutError):
        return NoAnswer(f"cannot reach the Dask scheduler at {address}: no connection within {seconds:.3g} s",
                        "no connection yet")
    except OSError as exc:
        reason = str(exc).rpartition(": ")[2]
        if not reason and isinstance(exc, CommClosedError):      # accepted, then closed before Dask saw it
            return InvalidArgument(f"{address} closed the connection at once: it is no Dask scheduler, or it "
                                   "refused this client")
        return InvalidArgument(f"cannot reach the Dask scheduler at {address}: {reason or type(exc).__name__}")
    try:
        await within(comm.write(comm.handshake_info()))
        await within(comm.read())
        await within(comm.write({"op": "identity", "reply": True}))
        reply = await within(comm.read())
    except (asyncio.TimeoutError, TimeoutError):
        return NoAnswer(f"the Dask scheduler at {address} accepted the connection but did not answer Dask's "
                        f"handshake within {seconds:.3g} s: it is no Dask scheduler (an HTTP server such as Dask's "
                        "dashboard, port 8787, waits so), or a stuck one",
                        "it accepted the connection and has not answered Dask's handshake")
    except CommClosedError:
        return InvalidArgument(f"{address} closed the connection during Dask's handshake: it is no Dask scheduler, "
                               "or it refused this client")
    finally:
        comm.abort()
    kind = reply.get("type") if isinstance(reply, dict) else None
    if kind != "Scheduler":
        known = isinstance(kind, str) and kind.isidentifier() and len(kind) <= 40
        return InvalidArgument(f"{address} is {f'a Dask {kind}' if known else 'something else'}, not a Dask "
                               "scheduler: give the scheduler's address (port 8786 by default)")
    return None
