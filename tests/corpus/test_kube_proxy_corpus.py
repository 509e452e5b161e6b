"""kube-proxy's own packet-tracer expectations, run through ``pktverify trace``.

Each dump in shared/corpus/kube-proxy is completed as its README says (the
nat jumps from built-in chains, and the filter jumps kube-proxy installs with
EnsureRule), loaded on a node with eth0 192.168.0.2/24 and cni0 10.0.0.1/8,
and every flow is traced with the CLI. Where kube-proxy's simplified tracer
and the kernel legitimately differ, the kernel's answer is asserted (see
``KERNEL_DIFFERS``).
"""

from __future__ import annotations

import json

import pytest

from pktverify.cli import main

from ..conftest import SHARED

CORPUS = SHARED / "corpus" / "kube-proxy"

# kube-proxy (v1.27 iptablesJumpChains) jumps in the filter table, installed outside the dump.
FILTER_JUMPS = [
    ("KUBE-EXTERNAL-SERVICES", "INPUT", "-m conntrack --ctstate NEW", "kubernetes externally-visible service portals"),
    ("KUBE-EXTERNAL-SERVICES", "FORWARD", "-m conntrack --ctstate NEW", "kubernetes externally-visible service portals"),
    ("KUBE-NODEPORTS", "INPUT", "", "kubernetes health check service ports"),
    ("KUBE-SERVICES", "FORWARD", "-m conntrack --ctstate NEW", "kubernetes service portals"),
    ("KUBE-SERVICES", "OUTPUT", "-m conntrack --ctstate NEW", "kubernetes service portals"),
    ("KUBE-FORWARD", "FORWARD", "", "kubernetes forwarding rules"),
    ("KUBE-PROXY-FIREWALL", "INPUT", "-m conntrack --ctstate NEW", "kubernetes load balancer firewall"),
    ("KUBE-PROXY-FIREWALL", "OUTPUT", "-m conntrack --ctstate NEW", "kubernetes load balancer firewall"),
    ("KUBE-PROXY-FIREWALL", "FORWARD", "-m conntrack --ctstate NEW", "kubernetes load balancer firewall"),
]

# Flows where kube-proxy's tracer and Linux disagree; the kernel wins (corpus README).
KERNEL_DIFFERS = {
    ("TestNodePort", "localhost to nodePort gets masqueraded"):
        "a 127.0.0.1 source routed out of a non-loopback device is a martian (route_localnet=0)",
}


def complete_dump(case: dict) -> str:
    """The dump plus the built-in-chain jumps kube-proxy installs separately."""
    text = case["iptables_save"]
    if not case["base_chain_jumps_not_in_dump"]:
        return text
    filter_part, nat_part = text.split("*nat\n", 1)
    declared = {line.split()[0][1:] for line in filter_part.splitlines() if line.startswith(":")}
    jumps = [f'-A {hook} {extra} -m comment --comment "{comment}" -j {chain}'.replace("  ", " ")
             for chain, hook, extra, comment in FILTER_JUMPS if chain in declared]
    filter_part = filter_part.replace("COMMIT\n", "\n".join(jumps) + "\nCOMMIT\n", 1)
    nat_part = nat_part.replace("COMMIT\n", "\n".join(case["base_chain_jumps_not_in_dump"]) + "\nCOMMIT\n", 1)
    return filter_part + "*nat\n" + nat_part


def _cases():
    if not CORPUS.is_dir():
        return []
    out = []
    for path in sorted(CORPUS.glob("*.json")):
        case = json.loads(path.read_text())
        for flow in case["flows"]:
            out.append(pytest.param(path.stem, case, flow, id=f"{path.stem}:{flow['name']}"))
    return out


def run_trace(node_files, capsys, case, flow, *extra) -> list[dict]:
    rules, addrs, routes = node_files(complete_dump(case))
    src = flow["src"]
    if src in case["node_ips"] or src == "127.0.0.1":
        where = ["--local"]
    elif src.startswith("10."):
        where = ["--in-iface", "cni0"]
    else:
        where = ["--in-iface", "eth0"]
    status = main(["trace", "--iptables", str(rules), "--addrs", str(addrs), "--routes", str(routes),
                   *where, "--proto", flow["protocol"], "--src", src, "--dst", flow["dst"],
                   "--dport", str(flow["dport"]), "--format", "json", *extra])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)["outcomes"]


def test_corpus_is_complete(shared):
    """All 25 dumps and 71 flows are present (nothing silently skipped)."""
    assert CORPUS.is_dir(), f"{CORPUS} is missing"
    cases = _cases()
    assert len({c.values[0] for c in cases}) == 25
    assert len(cases) == 71


@pytest.mark.parametrize("name,case,flow", _cases())
def test_flow_matches_kube_proxy(shared, node_files, capsys, name, case, flow):
    outcomes = run_trace(node_files, capsys, case, flow)
    assert abs(sum(o["probability"] for o in outcomes) - 1.0) < 1e-9
    assert all(o["exact"] for o in outcomes)
    expected = flow["expected_output"]
    if (name, flow["name"]) in KERNEL_DIFFERS:
        assert [o["verdict"] for o in outcomes] == ["drop"]
        assert "martian" in outcomes[0]["reason"]
        # With route_localnet=1 (what kube-proxy sets for localhost NodePorts) it works as kube-proxy says.
        outcomes = run_trace(node_files, capsys, case, flow, "--route-localnet")
    verdicts = {o["verdict"] for o in outcomes}
    if expected in ("DROP", "REJECT"):
        assert verdicts == {expected.lower()}
    elif expected == "ACCEPT":
        assert verdicts == {"local"}
    elif expected == "":
        assert all(o["packet"]["dst"] == flow["dst"] and o["packet"]["dport"] == flow["dport"] for o in outcomes)
    else:
        assert verdicts <= {"forward", "local"}, outcomes
        reached = {f"{o['packet']['dst']}:{o['packet']['dport']}" for o in outcomes}
        assert reached == set(expected.split(", "))
    assert any(o["masquerade"] for o in outcomes) == flow["expected_masq"]
