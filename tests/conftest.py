"""Shared fixtures: the shared/ data folder and a node builder for small rule sets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PKTVERIFY_SHARED", REPO.parent / "shared"))

STANDARD_ADDRS = """\
1: lo    inet 127.0.0.1/8 scope host lo
2: eth0    inet 192.168.0.2/24 brd 192.168.0.255 scope global eth0
3: cni0    inet 10.0.0.1/8 brd 10.255.255.255 scope global cni0
"""
STANDARD_ROUTES = """\
default via 192.168.0.1 dev eth0
10.0.0.0/8 dev cni0 proto kernel scope link src 10.0.0.1
192.168.0.0/24 dev eth0 proto kernel scope link src 192.168.0.2
"""


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared data folder not found at {SHARED}: CI must have it beside the clone")
        pytest.skip(f"shared data folder not found at {SHARED} (set PKTVERIFY_SHARED)")
    return SHARED


@pytest.fixture
def node_files(tmp_path):
    """Write (iptables, addrs, routes) to files and return their paths."""
    def write(iptables: str, addrs: str = STANDARD_ADDRS, routes: str = STANDARD_ROUTES):
        paths = []
        for name, text in (("iptables-save.txt", iptables), ("ip-addr.txt", addrs), ("ip-route.txt", routes)):
            p = tmp_path / name
            p.write_text(text)
            paths.append(p)
        return tuple(paths)
    return write


def pytest_collection_modifyitems(items) -> None:
    """Mark every Hypothesis test ``property`` (``-m "not property"`` skips them for a quick run):
    they draw many examples and make most of the suite's time outside the kernel tests."""
    for item in items:
        function = getattr(item, "function", None)
        if getattr(function, "is_hypothesis_test", False):
            item.add_marker(pytest.mark.property)
