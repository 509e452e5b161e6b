"""The kernel lab fixture: skips with a reason off CI, fails on CI when the kernel is not usable."""

from __future__ import annotations

import os

import pytest

from pktverify.oracle.kernel_lab import KernelLab, lab_available


def pytest_addoption(parser):
    parser.addoption("--kernel-examples", type=int, default=12,
                     help="random rule sets to check against the kernel (default 12)")
    parser.addoption("--kernel-seed", default="2026",
                     help="seed of the random kernel campaign (default 2026, so CI is reproducible;"
                          " 'random' draws a new one)")


@pytest.fixture(scope="session")
def kernel_examples(request) -> int:
    return request.config.getoption("--kernel-examples")


@pytest.fixture(scope="session")
def kernel_seed(request) -> int | None:
    seed = request.config.getoption("--kernel-seed")
    return None if seed == "random" else int(seed)


def require_lab(what: str = "kernel lab") -> None:
    """Skip with the reason when namespaces, iptables or root are missing; on CI, fail instead
    (CI installs and runs everything: a missing capability there is a broken CI)."""
    reason = lab_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{what} unavailable on CI: {reason}")
        pytest.skip(f"{what} unavailable: {reason}")


@pytest.fixture()
def lab():
    """A fresh lab for every test (~0.1 s to build): no rule, connection or socket of one test
    can leak into the next."""
    require_lab()
    with KernelLab() as kernel_lab:
        yield kernel_lab
