"""A node in the middle of a migration (#25) against the kernel: iptables mode's leftovers (in
iptables-nft's ``table ip nat``) beside kube-proxy's nftables table, whose nat chains share the
priority dstnat. The kernel runs nat chains of equal priority newest first and stops at the first that
translates, so which rule set DNATs a new connection depends on which table was made last; the nft dump
lists tables in the order they were made. Each probe goes through the kernel lab in both orders, and
``pktverify trace`` on the lab's own dumps must give the kernel's translation. Then a whole cluster
(tests/check/test_mixed_migration.py's: node1 keeps a stale KUBE-SEP DNAT to a pod that is gone) is
built in the cluster lab, which loads the leftovers before kube-proxy's table: every flow verify
checks is sent for real, and the kernel's outcome must be among verify's, flow by flow."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

import pktverify
from pktverify.cli import main
from pktverify.oracle.cluster_selftest import run_cluster
from pktverify.oracle.nft_campaign import NftProbe, _disagreement, predict_nft, trace_argv, write_dumps

from ..check.test_mixed_migration import _mixed_folder
from ..parse.test_input_parity import _yaml
from .conftest import require_lab

pytestmark = pytest.mark.kernel

# kube-proxy's iptables mode as it left the node: 10.96.0.10:80 to an endpoint that is gone (10.0.0.20),
# and 10.96.0.11:80, a service deleted since, to 10.0.0.22.
LEFTOVERS = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-STALE - [0:0]
:KUBE-SEP-GONE - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-WEB - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -j MASQUERADE --random-fully
-A KUBE-SEP-STALE -s 10.0.0.20/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-STALE -p tcp -m tcp -j DNAT --to-destination 10.0.0.20:80
-A KUBE-SEP-GONE -p tcp -m tcp -j DNAT --to-destination 10.0.0.22:80
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-WEB
-A KUBE-SERVICES -d 10.96.0.11/32 -p tcp -m tcp --dport 80 -j KUBE-SEP-GONE
-A KUBE-SVC-WEB -j KUBE-SEP-STALE
COMMIT
"""

# kube-proxy's nftables mode now: 10.96.0.10:80 to its live endpoint 10.0.0.21.
KUBE_PROXY = """add table ip kube-proxy { comment "rules for kube-proxy" ; }
add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority dstnat ; }
add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }
add chain ip kube-proxy services
add chain ip kube-proxy endpoint-web
add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }
add rule ip kube-proxy nat-prerouting jump services
add rule ip kube-proxy nat-output jump services
add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip kube-proxy endpoint-web meta l4proto tcp dnat to 10.0.0.21:80
add element ip kube-proxy service-ips { 10.96.0.10 . tcp . 80 : goto endpoint-web }
"""

# (client, destination, the endpoint with the leftovers made first, with ip nat re-made after kube-proxy's table)
CASES = [("lan", "10.96.0.10", "10.0.0.21", "10.0.0.20"),
         ("node", "10.96.0.10", "10.0.0.21", "10.0.0.20"),
         ("lan", "10.96.0.11", "10.0.0.22", "10.0.0.22")]


@pytest.mark.parametrize("remade", [False, True], ids=["leftovers-first", "ip-nat-remade-after"])
@pytest.mark.parametrize("client,dst,first,after", CASES, ids=[f"{c}-{d}" for c, d, _f, _a in CASES])
def test_mixed_node_nat_order_agrees_with_kernel(lab, client, dst, first, after, remade):
    probe = NftProbe(KUBE_PROXY, LEFTOVERS, client, "tcp", 41000, dst, 80)
    lab.load(LEFTOVERS, nft=KUBE_PROXY)                  # the leftovers' tables, then kube-proxy's
    if remade:           # iptables-restore without --noflush deletes and re-makes table ip nat: now the newest
        subprocess.run(["ip", "netns", "exec", lab.node, "iptables-restore"], input=LEFTOVERS, text=True, check=True)
    with tempfile.TemporaryDirectory(prefix="pktverify-mixed-") as tmp:
        write_dumps(lab, Path(tmp), probe)
        tables = [line for line in (Path(tmp) / "nft-ruleset.json").read_text().split('"table"')[1:]]
        names = [t.split('"name": "')[1].split('"')[0] for t in tables if '"name": "' in t]
        assert (names.index("nat") > names.index("kube-proxy")) is remade, names
        prediction = predict_nft(trace_argv(probe, Path(tmp)), main)
    obs = lab.probe(None, client=client, proto="tcp", sport=41000, dst=dst, dport=80, reload=False)
    assert obs.post_nat is not None and obs.post_nat[2:] == ((after if remade else first), 80), obs
    assert _disagreement(obs, prediction) == "", _disagreement(obs, prediction)


def test_mixed_cluster_agrees_with_the_cluster_lab_flow_by_flow(tmp_path):
    require_lab("cluster lab")
    now, _leftovers = _mixed_folder(tmp_path, stale=True, nat_after=False)
    cluster = pktverify.load_cluster(_yaml(now, tmp_path))
    report = pktverify.verify(cluster)
    assert report.holds, [v.message for v in report.violations]      # kube-proxy's table translates first
    assert any("no leftover rule acts" in text for _nodes, text in report.node_warnings)
    run = run_cluster(cluster, name="mixed", minimum=3)
    assert not run.skipped and not run.lab_errors, run.lab_errors
    assert run.verdicts and run.agreed == len(run.verdicts), \
        "\n".join(f"{v.expectation.label}: {v.problems}" for v in run.disagreements)
