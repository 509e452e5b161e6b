"""pytest plugin (on when pktverify is installed): counterexamples as files, and a cluster fixture.

* ``--pktverify-pcap-dir DIR``: for each failed test whose failure came from
  :func:`pktverify.testing.assert_invariants`, the last such failure — under Hypothesis the final,
  shrunk example — is written to ``DIR/<test id>/``: ``cluster.yaml`` (``pktverify verify`` reads
  it; every dump inline, so it stands alone) and ``<invariant>-violation-<n>.pcapng`` per violation. The failure report lists the paths.
* Fixture ``pktverify_cluster``: the cluster at the path given by ``@pytest.mark.pktverify_cluster(
  "path", **load_options)`` or by indirect parametrization (``request.param``).

No temporary file or state is shared between tests, so it works under ``pytest-xdist``.
This module imports nothing of pktverify until a test needs it.
"""

from __future__ import annotations

import hashlib
import re

import pytest

_FAILURES = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pktverify")
    group.addoption("--pktverify-pcap-dir", metavar="DIR", default=None,
                    help="write each failing test's (shrunk) pktverify counterexample to DIR/<test id>/: "
                         "cluster.yaml and one pcapng per violation")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pktverify_cluster(path, **options): the cluster file the "
                                       "pktverify_cluster fixture loads (options as pktverify.load_cluster)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    from .testing import FAILURES

    failures: list = []
    token = FAILURES.set(failures)
    try:
        yield
    finally:
        FAILURES.reset(token)
        item.stash[_FAILURES] = failures


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    folder = item.config.getoption("pktverify_pcap_dir")
    failures = item.stash.get(_FAILURES, None)
    if call.when != "call" or not report.failed or not folder or not failures:
        return
    try:
        written = _write(folder, item.nodeid, failures[-1])
    except Exception as exc:        # the test's own failure matters more than the files
        report.sections.append(("pktverify counterexample", f"not written: {exc}"))
        return
    report.sections.append(("pktverify counterexample",
                            "written (open the pcapng files in Wireshark; `pktverify verify` reads the YAML):\n"
                            + "\n".join(f"  {path}" for path in written)))


def counterexample_folder(nodeid: str) -> str:
    """A safe, unique folder name for a test id (path separators and brackets replaced; a hash of
    the whole id keeps two ids that differ only there apart)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("._")[:100] or "test"
    return f"{slug}-{hashlib.sha256(nodeid.encode()).hexdigest()[:8]}"



def _write(folder: str, nodeid: str, verify_report) -> list:
    from .report.cluster_yaml import cluster_to_yaml
    from .report.files import OutputDir
    from .report.verify_pcaps import write_verify_pcaps

    with OutputDir(folder) as root, root.subdir(counterexample_folder(nodeid)) as out:
        written = [out.write("cluster.yaml", cluster_to_yaml(verify_report.cluster, inline_files=True).encode())]
        written += write_verify_pcaps(verify_report.walker, verify_report.results, out)
    return written


@pytest.fixture
def pktverify_cluster(request: pytest.FixtureRequest):
    """The cluster named by the ``pktverify_cluster`` marker or by ``request.param`` (a path)."""
    from .cluster_api import load_cluster

    marker = request.node.get_closest_marker("pktverify_cluster")
    if marker is not None:
        if len(marker.args) != 1:
            raise pytest.UsageError("@pytest.mark.pktverify_cluster takes one path (and load options)")
        return load_cluster(marker.args[0], **marker.kwargs)
    if hasattr(request, "param"):
        return load_cluster(request.param)
    raise pytest.UsageError("the pktverify_cluster fixture needs @pytest.mark.pktverify_cluster('path') or "
                            "indirect parametrization with the path")
