"""``verify --executor dask``: the flow checks on a real Dask cluster (a LocalCluster of worker
processes) give the report ``--jobs 1`` gives, violations and their paths included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pktverify
from pktverify.cli import main
from pktverify.generate.synthetic_cluster import synthetic_cluster

distributed = pytest.importorskip("distributed", reason="pip install 'pktverify[distributed]'")

RULES = Path(__file__).resolve().parents[2] / "rules"


@pytest.fixture(scope="module")
def dask_cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        yield cluster, client


def _summary(report):
    return [(r.name, r.checked, r.notes, [v.message for v in r.violations], [v.path for v in r.violations])
            for r in report.results]


@pytest.mark.parametrize("cluster", [RULES / "broken" / "etp-local-node-without-endpoints.yaml",
                                     RULES / "broken" / "stale-endpoint.yaml",
                                     RULES / "services" / "every-service-type.yaml", "synthetic"])
def test_dask_gives_the_same_report_as_one_process(dask_cluster, cluster):
    spec = synthetic_cluster(12, 40, 60) if cluster == "synthetic" else pktverify.load_cluster(cluster)
    one = pktverify.verify(spec, jobs=1)
    on_dask = pktverify.verify(spec, executor="dask", scheduler=dask_cluster[1])
    assert _summary(on_dask) == _summary(one)
    assert on_dask.to_json() == one.to_json()


def test_the_cli_takes_the_scheduler_address(dask_cluster, capsys):
    path = RULES / "broken" / "nodeport-collision.yaml"
    assert main(["verify", str(path), "--format", "json"]) == 1
    local = capsys.readouterr().out
    assert main(["verify", str(path), "--format", "json", "--executor", "dask",
                 "--scheduler", dask_cluster[0].scheduler_address]) == 1
    assert capsys.readouterr().out == local
    done = subprocess.run([sys.executable, "-m", "pktverify", "verify", str(path), "--format", "json", "--executor",
                           "dask", "--scheduler", dask_cluster[0].scheduler_address, "--timeout", "60"],
                          capture_output=True, text=True, timeout=120)       # a process with no Dask client of its own
    assert (done.returncode, done.stdout) == (1, local), done.stderr


def test_scheduler_mistakes_are_one_line(capsys):
    path = str(RULES / "seed" / "cluster-iptables.yaml")
    assert main(["verify", path, "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "--scheduler goes with --executor dask" in capsys.readouterr().err
    assert main(["verify", path, "--executor", "dask"]) == 2
    assert "needs --scheduler" in capsys.readouterr().err
    assert main(["verify", path, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in capsys.readouterr().err


# --- Misbehaving endpoints and --timeout (issue 21): one line, exit 2, within a bound ---------------------------

import multiprocessing
import re
import signal
import socket
import threading
import time

from pktverify.check.deadline import Deadline, bounded
from pktverify.check.distributed import DaskExecutor, WalkerOptions
from pktverify.check.invariants import check_all
from pktverify.errors import VerificationStopped
from pktverify.eval.cluster_walk import ClusterWalker
from pktverify.load.cluster_nodes import cluster_nodes
from pktverify.report.cluster_yaml import cluster_to_yaml

SEED = str(RULES / "seed" / "cluster-iptables.yaml")


class _Server:
    """A TCP server on 127.0.0.1 that misbehaves as a Dask scheduler: ``silent`` accepts and never
    answers, ``http`` answers as an HTTP server, ``bogus`` sends a frame that is no Dask frame,
    ``close`` hangs up at once."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            if self.mode == "http":
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass
                conn.close()
            elif self.mode == "bogus":
                conn.sendall(b"\xff" * 64 + b"garbage frame\n" * 10)
                self.held.append(conn)
            elif self.mode == "close":
                conn.close()
            else:
                self.held.append(conn)

    def stop(self) -> None:
        self.running = False
        self.thread.join(5)
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.fixture
def server(request):
    srv = _Server(request.param)
    yield srv
    srv.stop()


def _one_line_error(capsys, *needles: str) -> str:
    captured = capsys.readouterr()
    err = captured.err
    assert captured.out == ""
    assert err.count("\n") == 1 and err.startswith("pktverify: "), err
    assert "internal error" not in err and "Traceback" not in err and "memory" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("server", ["silent"], indirect=True)
def test_a_scheduler_that_never_answers_is_bounded(server, capsys):
    start = time.monotonic()
    assert main(["verify", SEED, "--executor", "dask", "--scheduler", server.address, "--timeout", "2"]) == 2
    assert time.monotonic() - start < 6             # --timeout bounds the handshake too, and says how far it got
    _one_line_error(capsys, f"verification stopped after 2 s: while connecting to the Dask scheduler at "
                            f"{server.address} (it accepted the connection and has not answered Dask's handshake), "
                            "before any flow was checked; nothing was judged")
    spec = pktverify.load_cluster(SEED)             # the library's bound, without --timeout
    start = time.monotonic()
    with pytest.raises(pktverify.errors.InvalidArgument, match="did not answer Dask's handshake within 0.5 s"):
        DaskExecutor(spec, WalkerOptions(False, 1, 1, None, ("routing",)), address=server.address,
                     connect_timeout=0.5)
    assert time.monotonic() - start < 3


@pytest.mark.parametrize("server, said", [("http", "not in Dask's protocol (a frame of impossible size)"),
                                          ("bogus", "not in Dask's protocol"),
                                          ("close", "closed the connection")],
                         indirect=["server"])
def test_what_is_no_dask_scheduler_is_one_line(server, said, capsys):
    start = time.monotonic()
    assert main(["verify", SEED, "--executor", "dask", "--scheduler", server.address]) == 2
    assert time.monotonic() - start < 8
    _one_line_error(capsys, server.address, said)


def test_a_worker_address_is_not_a_scheduler(dask_cluster, capsys):
    worker = next(iter(dask_cluster[0].scheduler.workers))
    assert main(["verify", SEED, "--executor", "dask", "--scheduler", worker]) == 2
    _one_line_error(capsys, f"{worker} is a Dask Worker, not a Dask scheduler")


@pytest.mark.parametrize("address, said", [
    ("tls://127.0.0.1:8786", "tls:// needs TLS certificates, and none are configured for Dask"),
    ("ucx://127.0.0.1:8786", "ucx:// needs Dask's UCX transport"),
    ("inproc://10.0.0.1/1/1", "inproc:// lives inside one Python process"),
    ("http://127.0.0.1:8787", "unknown transport http://"),
    ("foo", "not HOST:PORT"),
    ("tcp://", "not HOST:PORT"),
    ("tcp://127.0.0.1:notaport", "not HOST:PORT"),
    ("tcp://127.0.0.1:99999", "not HOST:PORT with a port 1-65535"),
    ("tcp://[::1", "not HOST:PORT"),
    ("tcp://127.0.0.1:1\n##[add-mask]x", "give tcp://HOST:PORT"),
])
def test_addresses_dask_cannot_use_are_one_line(address, said, capsys):
    start = time.monotonic()
    assert main(["verify", SEED, "--executor", "dask", "--scheduler", address]) == 2
    assert time.monotonic() - start < 5                # refused before any connection is tried
    _one_line_error(capsys, said)


@pytest.fixture(scope="module")
def big_cluster():
    """A clean cluster whose checks take seconds even on a quiet machine (~4-7 s in one process):
    every bound below (1 s) is reached, whatever the machine's load."""
    return synthetic_cluster(120, 2400, 2400)


_STOPPED = re.compile(r"verification stopped after 1 s: (\d+) of (\d+) tasks done; nothing was judged")


_STOPPED_ANYWHERE = re.compile(r"verification stopped after 1 s: (\d+ of \d+ tasks done|while (reading the nodes' "
                               r"dumps|planning the flow checks), before any flow was checked); nothing was judged")


@pytest.mark.parametrize("jobs", [1, 2])
def test_timeout_stops_a_local_run_and_its_workers(big_cluster, jobs):
    before = set(multiprocessing.active_children())            # e.g. the Dask fixture's workers
    # The whole run checks flows by class: ~1 s on a quiet machine, so it is given less than it needs.
    start = time.monotonic()
    with pytest.raises(VerificationStopped) as stopped:
        pktverify.verify(big_cluster, jobs=jobs, timeout=0.25)
    assert time.monotonic() - start < 3
    assert _STOPPED_ANYWHERE.fullmatch(str(stopped.value).replace("after 0.25 s", "after 1 s"))
    # The tasks alone, every flow on its own (a minute of work): stopped among them.
    walker = ClusterWalker(big_cluster, cluster_nodes(big_cluster))
    with pytest.raises(VerificationStopped) as stopped, bounded(1) as deadline:
        check_all(big_cluster, walker, jobs=jobs, deadline=deadline, exhaustive=True)
    done, total = map(int, _STOPPED.fullmatch(str(stopped.value)).groups())
    assert 0 <= done < total
    assert set(multiprocessing.active_children()) <= before  # the forked pool's workers are gone
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL


def _verify_in_a_thread(cluster, **options) -> tuple[float, list]:
    """Run pktverify.verify(cluster, **options) in a thread of its own (where no alarm signal can
    be used); the seconds it took and the VerificationStopped it raised, if any."""
    errors: list = []

    def run():
        try:
            pktverify.verify(cluster, **options)
        except VerificationStopped as exc:
            errors.append(exc)

    start = time.monotonic()
    worker = threading.Thread(target=run)
    worker.start()
    worker.join(30)
    return time.monotonic() - start, errors


def test_timeout_outside_the_main_thread_is_checked_between_tasks(big_cluster):
    elapsed, errors = _verify_in_a_thread(big_cluster, jobs=1, timeout=1)
    assert elapsed < 4
    assert len(errors) == 1 and _STOPPED_ANYWHERE.fullmatch(str(errors[0]))


def test_a_dask_run_outside_the_main_thread_is_bounded_too(dask_cluster, big_cluster):
    elapsed, errors = _verify_in_a_thread(big_cluster, executor="dask", scheduler=dask_cluster[1], timeout=1)
    assert elapsed < 4             # as_completed's own bound, no alarm in a thread
    assert len(errors) == 1 and _STOPPED_ANYWHERE.fullmatch(str(errors[0]))


def test_a_run_within_its_timeout_is_the_same_report():
    spec = pktverify.load_cluster(RULES / "broken" / "stale-endpoint.yaml")
    assert pktverify.verify(spec, jobs=1, timeout=60).to_json() == pktverify.verify(spec, jobs=1).to_json()
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    for bad in (0, -1, float("nan"), float("inf"), True, "5"):
        with pytest.raises(pktverify.errors.InvalidArgument, match="timeout="):
            pktverify.verify(spec, timeout=bad)


def test_the_deadline_names_the_phase_it_stopped_in():
    deadline = Deadline(2.5)
    deadline.phase = "connecting to the Dask scheduler at tcp://10.0.0.5:8786"
    assert str(deadline.stopped()) == ("verification stopped after 2.5 s: while connecting to the Dask scheduler at "
                                       "tcp://10.0.0.5:8786, before any flow was checked; nothing was judged")
    with pytest.raises(VerificationStopped, match="while reading the nodes' dumps"):
        with bounded(0.2):
            time.sleep(5)                           # interrupted by the alarm, not waited out
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_cli_timeout_is_one_line_and_writes_nothing(big_cluster, tmp_path, capsys):
    path = tmp_path / "big.yaml"
    path.write_text(cluster_to_yaml(big_cluster))
    html = tmp_path / "report.html"
    before = set(multiprocessing.active_children())
    start = time.monotonic()
    assert main(["verify", str(path), "--timeout", "1", "--html", str(html), "--jobs", "2"]) == 2
    # It stops: exit 2 and the one-line "stopped after 1 s" below prove it. The time only guards against
    # a run that waits for every task anyway (whole runs take minutes here on a loaded CI machine's
    # 2 cores, so the guard is loose: under load, reading the YAML and loading 120 nodes took 9 s once).
    assert time.monotonic() - start < 30
    err = _one_line_error(capsys, "pktverify: verification stopped after 1 s: ", "; nothing was judged")
    assert not html.exists() and set(multiprocessing.active_children()) <= before, err
    with pytest.raises(SystemExit) as refused:
        main(["verify", str(path), "--timeout", "nan"])
    assert refused.value.code == 2 and "is not a number of seconds" in capsys.readouterr().err


def test_timeout_stops_a_dask_run_and_releases_its_tasks(dask_cluster, big_cluster, tmp_path, capsys):
    cluster, client = dask_cluster
    start = time.monotonic()
    with pytest.raises(VerificationStopped) as stopped:
        pktverify.verify(big_cluster, executor="dask", scheduler=client, timeout=1)
    assert time.monotonic() - start < 20             # loose: a loaded CI machine (see the CLI test above)
    assert _STOPPED_ANYWHERE.fullmatch(str(stopped.value).replace("while connecting to the Dask scheduler at "
                                                                  f"{cluster.scheduler_address}", "while planning the "
                                                                  "flow checks"))
    path = tmp_path / "big.yaml"
    path.write_text(cluster_to_yaml(big_cluster))
    clients = set(cluster.scheduler.clients)
    start = time.monotonic()
    assert main(["verify", str(path), "--executor", "dask", "--scheduler", cluster.scheduler_address,
                 "--timeout", "2"]) == 2
    assert time.monotonic() - start < 30             # loose: a loaded CI machine (see the CLI test above)
    err = _one_line_error(capsys)
    assert re.fullmatch(r"pktverify: verification stopped after 2 s: (\d+ of \d+ tasks done|while .+, before any "
                        r"flow was checked); nothing was judged\n", err), err
    for _ in range(50):                             # the scheduler forgets the stopped run's tasks and client
        if not cluster.scheduler.tasks and set(cluster.scheduler.clients) <= clients:
            break
        time.sleep(0.1)
    assert not cluster.scheduler.tasks and set(cluster.scheduler.clients) <= clients
    one = pktverify.load_cluster(RULES / "broken" / "stale-endpoint.yaml")      # the given client still works
    assert pktverify.verify(one, executor="dask", scheduler=client).to_json() == pktverify.verify(one).to_json()


def test_a_scheduler_without_workers_is_one_line(capsys):
    with distributed.LocalCluster(n_workers=0, dashboard_address=None, silence_logs=40) as empty:
        spec = pktverify.load_cluster(SEED)
        runner = DaskExecutor(spec, WalkerOptions(False, 100, 100, None, ("routing",)), address=empty.scheduler_address,
                              connect_timeout=0.5)
        try:
            start = time.monotonic()
            with pytest.raises(pktverify.errors.InvalidArgument,
                               match=f"the Dask scheduler at {empty.scheduler_address} has no workers "
                                     r"\(waited 0.5 s\): start some"):
                runner.run(5)
            assert time.monotonic() - start < 5
        finally:
            runner.close()
