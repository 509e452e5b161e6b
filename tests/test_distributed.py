"""``verify --executor dask``: the flow checks on a real Dask cluster (a LocalCluster of worker
processes) give the report ``--jobs 1`` gives, violations and their paths included."""

from __future__ import annotations

from pathlib import Path

import pytest

import pktverify
from pktverify.cli import main
from pktverify.generate.synthetic_cluster import synthetic_cluster

distributed = pytest.importorskip("distributed", reason="pip install 'pktverify[distributed]'")

RULES = Path(__file__).resolve().parent.parent / "rules"


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


def test_scheduler_mistakes_are_one_line(capsys):
    path = str(RULES / "seed" / "cluster-iptables.yaml")
    assert main(["verify", path, "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "--scheduler goes with --executor dask" in capsys.readouterr().err
    assert main(["verify", path, "--executor", "dask"]) == 2
    assert "needs --scheduler" in capsys.readouterr().err
    assert main(["verify", path, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in capsys.readouterr().err
