"""Every ruleset pktverify's nftables-mode generator writes for the kube-proxy-nft corpus loads in
the kernel.

The 12 rulesets generated from the transcribed Services of upstream's ruleset-asserting tests and
the 37 generated from the flow files' inputs (IPv4 and IPv6) are each loaded with ``nft -f`` in a
network namespace of the test's own (deleted afterwards; the host's ruleset is never touched),
and listed back as JSON: the kernel must hold every chain, set and map the script declares, and as
many rules and elements.

Then the flow files' packets go through the kernel lab (:mod:`pktverify.oracle.kernel_lab`) on
the IPv4 rulesets generated for the lab's node (192.168.0.2 on eth0, 10.0.0.1 on cni0): each
upstream flow becomes the lab client of its source's kind (a pod, the LAN routed through the
node, the node itself) sending to the flow's destination (TCP and UDP: the lab sends no SCTP;
188 probes), and the kernel's verdict, NAT and outgoing interface must be among pktverify's
outcomes (the nft campaign's comparison, on the dump the kernel lists and on the script).
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from pktverify.cli import main
from pktverify.oracle.nft_campaign import NftProbe, run_nft_probe

from ..corpus.kube_proxy_nft_cases import TRANSCRIBED, corpus_files, generate, generate_transcribed, load, ports_of
from .nft_netns import netns_fixture
from .nft_netns import nft as _nft

pytestmark = pytest.mark.kernel


def _rulesets() -> list:
    out = [pytest.param(stem, id=stem) for stem in sorted(TRANSCRIBED)]
    for path in corpus_files():
        if load(path.stem)["nft_ruleset"] is None:
            out.append(pytest.param(path.stem, id=path.stem))
    return out


def _script(stem: str) -> str:
    if stem in TRANSCRIBED:
        return generate_transcribed(stem)
    case = load(stem)
    return generate(case, ports_of(case["inputs"]))


netns = netns_fixture("pv-kpnft", lab=False)          # a fresh namespace for each ruleset


def test_there_are_rulesets_to_load(shared):
    assert len(_rulesets()) == 12 + 37


@pytest.mark.parametrize("stem", _rulesets())
def test_generated_ruleset_loads(shared, netns, stem):
    script = _script(stem)
    loaded = _nft(netns, "-f", "-", script=script)
    assert loaded.returncode == 0, loaded.stderr
    family = "ip6" if " ip6 kube-proxy " in script else "ip"
    listing = _nft(netns, "-j", "list", "table", family, "kube-proxy")
    assert listing.returncode == 0, listing.stderr
    objects = [next(iter(o.items())) for o in json.loads(listing.stdout)["nftables"]]
    for kind in ("chain", "set", "map"):
        declared = re.findall(rf"^add {kind} {family} kube-proxy (\S+)", script, re.MULTILINE)
        assert sorted(body["name"] for k, body in objects if k == kind) == sorted(declared), kind
    assert sum(k == "rule" for k, _ in objects) == script.count(f"add rule {family} kube-proxy ")
    elements = sum(len(body.get("elem", ())) for k, body in objects if k in ("set", "map"))
    assert elements == script.count(f"add element {family} kube-proxy ")


def _flow_files() -> list:
    return [pytest.param(p.stem, id=p.stem) for p in corpus_files()
            if load(p.stem)["nft_ruleset"] is None and load(p.stem)["ip_family"] == "ipv4"]


def _client(case: dict, src: str) -> str:
    return "node" if src in case["node_ips"] else "pod" if src.startswith("10.") else "lan"


@pytest.mark.parametrize("stem", _flow_files())
def test_generated_ruleset_flows_agree_with_kernel(lab, stem):
    case = load(stem)
    script = generate(dict(case, node_ips=["192.168.0.2", "10.0.0.1"]), ports_of(case["inputs"]))
    probes = sorted({(_client(case, f["source_ip"]), f["protocol"], f["dest_ip"], f["dest_port"])
                     for f in case["flows"] if f["protocol"] in ("tcp", "udp")})     # the lab sends TCP or UDP
    # The lab's LAN peer routes only its own subnet and the pods' through the node; upstream's
    # external clients reach LoadBalancer and external IPs anywhere through the node.
    subprocess.run(["ip", "-n", lab.lan, "route", "replace", "default", "via", "192.168.0.2"], check=True,
                   capture_output=True)
    for i, (client, proto, dst, dport) in enumerate(probes):
        res = run_nft_probe(lab, NftProbe(script, None, client, proto, 44000 + i, dst, dport), main)
        assert res.kernel is not None, f"the kernel refused the ruleset: {res.kernel_error}"
        assert res.agrees, f"{stem} {client} -> {proto} {dst}:{dport}: {res.explanation}\n{res.probe.reproducer()}"
