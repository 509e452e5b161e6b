"""Benchmark: trace flows through a kube-proxy-nftables-shaped ruleset of N services (issue #24).

Each service is kube-proxy's shape: a ``service-ips`` verdict map entry on ``daddr . l4proto .
dport``, a service chain with its masquerade rule and a ``numgen random mod 3`` vmap to three
endpoint chains, each with its hairpin rule and a ``dnat``; ``filter-forward`` checks
``no-endpoint-services``; ``nat-postrouting`` jumps to ``masquerading``. Compare with
bench_node_trace.py (the same number of services as an iptables dump).

Side by side (issue #24's "parsing the JSON dump within 2x of ``nft -c -f``"): the same script is
checked with ``nft -c -f``, loaded with ``nft -f`` and listed with ``nft -j list ruleset`` inside a
network namespace this benchmark creates and deletes (the host's ruleset is never touched; needs
root), and pktverify reads that JSON dump; best of three runs each, ``nft`` timed as the whole
process (its start-up included, a few ms).

Run:  python benchmarks/bench_nft_trace.py [services] [traces]     (defaults 10000 20000)
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import subprocess
import sys
import time
import uuid

from pktverify.eval.node_trace import NodeTracer
from pktverify.load.node import build_node
from pktverify.model.addresses import parse_ip
from pktverify.model.packet import Packet
from pktverify.parse.ipaddr import parse_ip_addr
from pktverify.parse.iproute import parse_routes
from pktverify.parse.iptables_save import parse_iptables_save
from pktverify.parse.nft_json import parse_nft_json
from pktverify.parse.nft_text import parse_nft_text

ADDRS = ("1: lo inet 127.0.0.1/8 scope host lo\n2: eth0 inet 192.168.1.10/24 scope global eth0\n"
         "3: cbr0 inet 10.1.10.1/24 scope global cbr0\n")
ROUTES = ("default via 192.168.1.1 dev eth0\n10.1.10.0/24 dev cbr0 proto kernel scope link src 10.1.10.1\n"
          "192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.10\n10.1.0.0/16 via 192.168.1.20 dev eth0\n")

def ruleset(n):
    L = ["add table ip kube-proxy",
         "add chain ip kube-proxy mark-for-masquerade", "add chain ip kube-proxy masquerading", "add chain ip kube-proxy services",
         "add chain ip kube-proxy filter-forward { type filter hook forward priority 0 ; }",
         "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }",
         "add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }",
         "add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }",
         "add chain ip kube-proxy endpoints-check",
         "add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }",
         "add map ip kube-proxy no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; }",
         "add rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000",
         "add rule ip kube-proxy masquerading mark and 0x4000 == 0 return",
         "add rule ip kube-proxy masquerading mark set mark xor 0x4000",
         "add rule ip kube-proxy masquerading masquerade fully-random",
         "add rule ip kube-proxy filter-forward ct state new jump endpoints-check",
         "add rule ip kube-proxy endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
         "add rule ip kube-proxy nat-prerouting jump services", "add rule ip kube-proxy nat-output jump services",
         "add rule ip kube-proxy nat-postrouting jump masquerading",
         "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips"]
    for i in range(n):
        vip = f"10.96.{i // 250}.{i % 250 + 1}"
        eps = [f"10.1.{(i * 3 + k) % 200 + 10}.{k + 2}" for k in range(3)]
        svc = f"service-{i}-ns/svc{i}/tcp/p80"
        L.append(f"add chain ip kube-proxy {svc}")
        L.append(f"add rule ip kube-proxy {svc} ip daddr {vip} tcp dport 80 ip saddr != 10.1.0.0/16 jump mark-for-masquerade")
        vm = []
        for k, ep in enumerate(eps):
            ec = f"endpoint-{i}-{k}-ns/svc{i}/tcp/p80__{ep}/8080"
            L.append(f"add chain ip kube-proxy {ec}")
            L.append(f"add rule ip kube-proxy {ec} ip saddr {ep} jump mark-for-masquerade")
            L.append(f"add rule ip kube-proxy {ec} meta l4proto tcp dnat to {ep}:8080")
            vm.append(f"{k} : goto {ec}")
        L.append(f"add rule ip kube-proxy {svc} numgen random mod 3 vmap {{ {', '.join(vm)} }}")
        L.append(f"add element ip kube-proxy service-ips {{ {vip} . tcp . 80 : goto {svc} }}")
    return "\n".join(L) + "\n"

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
k = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
t0 = time.perf_counter(); text = ruleset(n); rs = parse_nft_text(text, "kp.nft"); t1 = time.perf_counter()
dump = parse_routes(ROUTES)
node = build_node("node", parse_ip_addr(ADDRS), dump.routes, parse_iptables_save("*filter\nCOMMIT\n", source="r"), legacy_routes=dump.legacy)
tc = time.perf_counter()
tr = NodeTracer(dataclasses.replace(node, nft=rs), compile_all=True)     # as bench_node_trace.py
tc = time.perf_counter() - tc
rng = random.Random(1)
flows = [Packet(6, parse_ip(f"10.1.10.{rng.randint(2, 200)}"), parse_ip(f"10.96.{(i := rng.randrange(n)) // 250}.{i % 250 + 1}"), rng.randint(1024, 65535), 80) for _ in range(k)]
t2 = time.perf_counter(); outs = 0
for p in flows:
    outs += len(tr.trace(p, in_iface="cbr0").outcomes)
t3 = time.perf_counter()
print(f"nft parse {n} services ({sum(len(c.rules) for c in rs.tables[0].chains)} rules): {t1 - t0:.2f} s")
print(f"nft compile: {tc:.2f} s")
print(f"nft trace: {k} flows ({outs} outcomes) in {t3 - t2:.2f} s = {k / (t3 - t2):,.0f} traces/s")


def best_of(runs, fn):
    """The fastest of ``runs`` calls of ``fn`` (seconds) and its last result."""
    best, out = float("inf"), None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def parse_vs_nft_check(script, runs=3):
    """pktverify reading the JSON dump (and the script) against ``nft -c -f`` on the same script,
    nft run in a network namespace made for it and deleted after (never the host's ruleset)."""
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"):
        print("parse vs nft -c -f: skipped (needs root, ip and nft: nft runs in a network namespace of its own)")
        return
    ns = f"pvbench{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        def nft(*args, stdin=None):
            return subprocess.run(["ip", "netns", "exec", ns, "nft", *args], input=stdin, capture_output=True,
                                  text=True, check=True).stdout
        check_s, _ = best_of(runs, lambda: nft("-c", "-f", "-", stdin=script))
        load_s, _ = best_of(1, lambda: nft("-f", "-", stdin=script))
        dump = nft("-j", "list", "ruleset")
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    json_s, _ = best_of(runs, lambda: parse_nft_json(dump, "nft-ruleset.json"))
    text_s, _ = best_of(runs, lambda: parse_nft_text(script, "kp.nft"))
    print(f"nft -c -f (script, {len(script) / 1e6:.1f} MB): {check_s:.2f} s; nft -f: {load_s:.2f} s")
    print(f"pktverify reads nft -j list ruleset ({len(dump) / 1e6:.1f} MB): {json_s:.2f} s = "
          f"{json_s / check_s:.2f}x nft -c -f; the script itself: {text_s:.2f} s = {text_s / check_s:.2f}x")


parse_vs_nft_check(text)
