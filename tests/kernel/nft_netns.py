"""A network namespace of a test's own for loading rulesets with ``nft -f`` (and iptables-restore),
shared by the kernel tests that need no lab around it: nft runs only through ``ip netns exec`` in
it, so the host's ruleset is never touched, and the namespace is deleted afterwards.

``netns_fixture(prefix, scope=...)`` makes a module's ``netns`` fixture; :func:`nft` and
:func:`run_in` run a command in the namespace (never raising: the test reads the return code).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from .conftest import require_lab


@contextmanager
def namespace(prefix: str, *, lab: bool = True) -> Iterator[str]:
    """A fresh namespace ``PREFIX-<hex>``, deleted on exit. When this machine cannot make one:
    with ``lab``, the kernel lab's rule (:func:`.conftest.require_lab`: skip here, fail on CI);
    without, a skip (no root, no ``ip`` or ``nft``)."""
    if lab:
        require_lab("nft namespace")
    else:
        if os.geteuid() != 0:
            pytest.skip("needs root (network namespaces)")
        for tool in ("ip", "nft"):
            if shutil.which(tool) is None:
                pytest.skip(f"{tool} is not installed")
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


def netns_fixture(prefix: str, *, scope: str = "function", lab: bool = True):
    """A ``netns`` fixture of ``scope`` yielding a :func:`namespace`'s name."""
    @pytest.fixture(scope=scope, name="netns")
    def _netns() -> Iterator[str]:
        with namespace(prefix, lab=lab) as name:
            yield name
    return _netns


def run_in(ns: str, *cmd: str, text: str | None = None, timeout: int = 60) -> subprocess.CompletedProcess:
    """``cmd`` run in namespace ``ns`` with ``text`` on its stdin (text out, not checked)."""
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], input=text, capture_output=True, text=True,
                          timeout=timeout, check=False)


def nft(ns: str, *args: str, script: str | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    """``nft ARGS`` in namespace ``ns`` (``script`` on its stdin, for ``-f -``)."""
    return run_in(ns, "nft", *args, text=script, timeout=timeout)
