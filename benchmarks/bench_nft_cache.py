"""Benchmark: ``pktverify verify`` of a cluster whose nodes carry nftables dumps, without the model
cache, filling it (``--cache-dir``, cold) and from it (warm) (issue #24).

Each node gives ``nft-ruleset.json`` as ``nft -j list ruleset`` writes it: a host firewall of
``--rules`` rules in ``table inet filter`` (established traffic accepted first; then blocks of
addresses of TEST-NET-3 and ports, some with anonymous sets, counters and comments; one rule naming
the node's own address, so that no two dumps are the same text), which no pod traffic meets: the
cluster holds, and the time is the nodes' reading and the flows' walks. The rulesets are parsed once
here to check they read.

Run:  python benchmarks/bench_nft_cache.py [--nodes 50] [--rules 2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pktverify.load.nft_node import parse_nft

_IP = {"payload": {"protocol": "ip", "field": "saddr"}}
_DPORT = {"payload": {"protocol": "tcp", "field": "dport"}}


def _rule(handle: int, expr: list, comment: str | None = None) -> dict:
    body = {"family": "inet", "table": "filter", "chain": "forward", "handle": handle, "expr": expr}
    if comment:
        body["comment"] = comment
    return {"rule": body}


def node_ruleset(node: int, node_ip: str, rules: int) -> str:
    """``nft -j list ruleset`` of one node's firewall: ``rules`` rules in inet filter forward."""
    out: list[dict] = [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
                       {"table": {"family": "inet", "name": "filter", "handle": 1}},
                       {"chain": {"family": "inet", "table": "filter", "name": "forward", "handle": 1, "type": "filter",
                                  "hook": "forward", "prio": 0, "policy": "accept"}}]
    out.append(_rule(2, [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
                         {"accept": None}]))
    out.append(_rule(3, [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                                    "right": node_ip}}, {"match": {"op": "==", "left": _DPORT, "right": 10255}},
                         {"drop": None}], f"node {node}: read-only kubelet port"))
    for i in range(rules - 2):
        source = f"203.0.113.{i % 250 + 1}"
        match = {"match": {"op": "==", "left": _IP, "right": source}}
        if i % 3 == 0:
            port = {"match": {"op": "==", "left": _DPORT, "right": {"set": [22, 80 + i % 50, 443]}}}
            out.append(_rule(4 + i, [match, port, {"counter": {"packets": 0, "bytes": 0}}, {"drop": None}]))
        elif i % 3 == 1:
            port = {"match": {"op": "==", "left": _DPORT, "right": {"range": [1000 + i % 1000, 2000 + i % 1000]}}}
            out.append(_rule(4 + i, [match, port, {"reject": None}], f"block {i}"))
        else:
            out.append(_rule(4 + i, [match, {"match": {"op": "==", "left": _DPORT, "right": 1024 + i}},
                                     {"accept": None}]))
    return json.dumps({"nftables": out})


def write_cluster(folder: Path, nodes: int, rules: int) -> Path:
    """A cluster of ``nodes`` nodes (one pod each, one service over all) with an nft dump each."""
    lines = ["cluster: {cidr: 10.1.0.0/16, service_cidr: 10.152.183.0/24, proxy_mode: iptables, routing: direct}",
             "nodes:"]
    for k in range(1, nodes + 1):
        ip = f"192.168.1.{k + 10}"
        dump = folder / f"node{k}" / "nft-ruleset.json"
        dump.parent.mkdir(parents=True)
        dump.write_text(node_ruleset(k, ip, rules))
        lines.append(f"  - {{name: node{k}, ip: {ip}/24, pod_cidr: 10.1.{k}.0/24, bridge: cbr0, nft: {dump}}}")
    lines.append("pods:")
    lines += [f"  - {{name: web-{k}, namespace: default, node: node{k}, ip: 10.1.{k}.5, labels: {{app: web}}, "
              "containers: [{name: web, ports: [8080]}]}" for k in (1, 2)]
    lines += ["services:", "  - {name: web, namespace: default, cluster_ip: 10.152.183.10, "
              "ports: [{name: http, port: 80, target_port: 8080, protocol: TCP}], selector: {app: web}}"]
    path = folder / "cluster.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _time(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip() or done.stdout[-400:]}")
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--rules", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not 1 <= args.nodes <= 240:
        raise SystemExit("--nodes: 1 to 240 (one /24 of node addresses)")
    script = Path(sys.executable).parent / "pktverify"
    command = [str(script) if script.exists() else (shutil.which("pktverify") or "pktverify"), "verify"]
    with tempfile.TemporaryDirectory() as tmp:
        cluster = write_cluster(Path(tmp), args.nodes, args.rules)
        one = (Path(tmp) / "node1" / "nft-ruleset.json").read_text()
        t0 = time.perf_counter()
        rules = sum(len(c.rules) for t in parse_nft(one, source="node1").tables for c in t.chains)
        parse_s = time.perf_counter() - t0
        print(f"{args.nodes} nodes, each nft-ruleset.json of {rules} rules ({len(one) / 1e6:.2f} MB; one parsed in "
              f"{parse_s:.2f} s)", flush=True)
        plain = _time([*command, str(cluster)], args.runs)
        print(f"pktverify verify, no cache: {plain:.2f} s (median of {args.runs})", flush=True)
        cache = Path(tmp) / "cache"
        first = _time([*command, str(cluster), "--cache-dir", str(cache)], 1)
        warm = _time([*command, str(cluster), "--cache-dir", str(cache)], args.runs)
        size = sum(p.stat().st_size for p in cache.iterdir())
        print(f"pktverify verify --cache-dir: {first:.2f} s filling it (cold), then {warm:.2f} s warm (median of "
              f"{args.runs}); {plain / warm:.1f}x faster than without; the cache holds {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
