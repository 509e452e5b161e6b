"""Benchmark: parse a kube-proxy-style dump of N services (~11 rules each) and trace flows.

Run:  python benchmarks/bench_node_trace.py [--services 10000] [--traces 20000]
Targets (issue #2): parse >= 50k rules/s; >= 5k traces/s on the 10k-service dump.
"""

from __future__ import annotations

import argparse
import random
import time

from pktverify.eval.node_trace import NodeTracer
from pktverify.generate.kube_proxy_iptables import ServicePort, kube_proxy_iptables_rules
from pktverify.load.node import build_node
from pktverify.model.addresses import parse_ip
from pktverify.model.packet import Packet
from pktverify.parse.ipaddr import parse_ip_addr
from pktverify.parse.iproute import parse_routes
from pktverify.parse.iptables_save import parse_iptables_save

ADDRS = ("1: lo inet 127.0.0.1/8 scope host lo\n2: eth0 inet 192.168.1.10/24 scope global eth0\n"
         "3: cbr0 inet 10.1.10.1/24 scope global cbr0\n")
ROUTES = ("default via 192.168.1.1 dev eth0\n10.1.10.0/24 dev cbr0 proto kernel scope link src 10.1.10.1\n"
          "192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.10\n"
          "10.1.0.0/16 via 192.168.1.20 dev eth0\n")


def services(n: int) -> list[ServicePort]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        ip = f"10.96.{i // 250}.{i % 250 + 1}"
        eps = tuple(f"10.1.{rng.randrange(10, 200)}.{rng.randrange(2, 250)}:8080" for _ in range(3))
        out.append(ServicePort(f"ns{i % 50}/svc{i}:http", ip, 80, "TCP", eps))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--traces", type=int, default=20000)
    args = ap.parse_args()
    svcs = services(args.services)
    text = kube_proxy_iptables_rules(svcs, cluster_cidr="10.1.0.0/16")
    t0 = time.perf_counter()
    ruleset = parse_iptables_save(text, source="generated")
    parse_s = time.perf_counter() - t0
    rules = ruleset.rule_count()
    print(f"parse: {rules} rules in {parse_s:.2f} s = {rules / parse_s:,.0f} rules/s")
    dump = parse_routes(ROUTES)
    node = build_node("bench", parse_ip_addr(ADDRS), dump.routes, ruleset)
    t0 = time.perf_counter()
    tracer = NodeTracer(node, compile_all=True)
    print(f"compile: {time.perf_counter() - t0:.2f} s")
    rng = random.Random(2)
    packets = [Packet(6, parse_ip(f"10.1.10.{rng.randrange(2, 250)}"), parse_ip(rng.choice(svcs).cluster_ip),
                      rng.randrange(1024, 65535), 80) for _ in range(args.traces)]
    t0 = time.perf_counter()
    outcomes = 0
    for p in packets:
        outcomes += len(tracer.trace(p, in_iface="cbr0").outcomes)
    trace_s = time.perf_counter() - t0
    print(f"trace: {len(packets)} flows ({outcomes} outcomes) in {trace_s:.2f} s = {len(packets) / trace_s:,.0f} traces/s")


if __name__ == "__main__":
    main()
