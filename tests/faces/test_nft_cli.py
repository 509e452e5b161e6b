"""``pktverify trace --nft FILE`` (issue #24): alone (a node with only nft) or beside ``--iptables`` (a
mixed node), any of nft's three forms giving the same answer; bad input and an ``xt`` statement
without iptables-save are refused in one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pktverify.cli import main

from ..load.nft_samples import JSON, MIXED_IPTABLES, MIXED_JSON, SCRIPT, TEXT

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "rules/kube-node"
PACKET = ["--addrs", str(NODE / "ip-addr.json"), "--routes", str(NODE / "ip-route.txt"), "--in-iface", "eth0",
          "--proto", "tcp", "--src", "192.168.1.50", "--dst", "10.0.0.1", "--dport", "443"]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["trace", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _write(folder: Path, name: str, text: str) -> str:
    (folder / name).write_text(text)
    return str(folder / name)


@pytest.mark.parametrize("name,text", [("r.nft", SCRIPT), ("r.txt", TEXT), ("nft-ruleset.json", JSON)])
def test_trace_nft_alone_in_each_form(tmp_path, capsys, name, text):
    path = _write(tmp_path, name, text)
    code, out, err = _run(capsys, "--nft", path, *PACKET, "--format", "json")
    assert code == 0 and out.startswith("{")
    assert f"pktverify: warning: {path}: 2 nftables table(s) of families other than ip and inet skipped " \
           "(ip6 v6, bridge br)" in err


def test_trace_nft_answers_alike_from_each_form(tmp_path, capsys):
    service = [a if a != "10.0.0.1" else "10.96.0.1" for a in PACKET]
    answers = set()
    for name, text in [("r.nft", SCRIPT), ("r.txt", TEXT), ("nft-ruleset.json", JSON)]:
        path = _write(tmp_path, name, text)
        code, out, _err = _run(capsys, "--nft", path, *service)
        assert code == 0 and "DNAT 10.96.0.1:443 → 192.168.1.10:6443" in out
        answers.add(out.replace(path, "FILE"))
    assert len(answers) == 1


def test_trace_mixed_node(tmp_path, capsys):
    nft = _write(tmp_path, "nft-ruleset.json", MIXED_JSON)
    code, _out, err = _run(capsys, "--iptables", _write(tmp_path, "iptables-save.txt", MIXED_IPTABLES), "--nft", nft,
                           *PACKET)
    assert code == 0
    assert f"{nft}: table(s) ip filter written by iptables-nft: read from iptables-save, not from the nft dump" in err


def test_trace_xt_without_iptables_save_is_refused(tmp_path, capsys):
    path = _write(tmp_path, "nft-ruleset.json", MIXED_JSON)
    code, _out, err = _run(capsys, "--nft", path, *PACKET)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"pktverify: {path}: nftables[5].rule: table ip filter was written by iptables-nft")
    assert err.rstrip().endswith("pass the node's iptables-save too (trace --iptables FILE; iptables: in the "
                                 "cluster YAML; iptables-save.txt in the node folder)")


def test_trace_nft_bad_input(tmp_path, capsys):
    path = _write(tmp_path, "r.nft", "add table ip t\n\nadd rule ip t nochain accept\n")
    code, _out, err = _run(capsys, "--nft", path, *PACKET)
    assert (code, err) == (2, f"pktverify: {path}:3: no chain 'nochain' in table ip t: add rule ip t nochain accept\n")


def test_trace_needs_iptables_or_nft(capsys):
    code, _out, err = _run(capsys, *PACKET)
    assert code == 2 and "the following arguments are required: --iptables or --nft" in err


def test_trace_nft_is_a_node_option(tmp_path, capsys):
    code, _out, err = _run(capsys, "--cluster", str(ROOT / "rules/seed/cluster.yaml"), "--from", "node1", "--to",
                           "10.1.20.2:8080", "--nft", _write(tmp_path, "r.json", JSON))
    assert code == 2 and err.startswith("pktverify: --nft goes with one node's trace, not --cluster")


NAMES = """\
add table ip kube-proxy
add chain ip kube-proxy filter-prerouting { type filter hook prerouting priority -110; }
add chain ip kube-proxy "service-ULMVA6XW-ns1/svc1/tcp/p80"
add chain ip kube-proxy "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
add chain ip kube-proxy "a:b.c"
add rule ip kube-proxy filter-prerouting tcp dport 443 jump "service-ULMVA6XW-ns1/svc1/tcp/p80"
add rule ip kube-proxy "service-ULMVA6XW-ns1/svc1/tcp/p80" jump "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
add rule ip kube-proxy "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80" jump "a:b.c"
add rule ip kube-proxy "a:b.c" counter
"""


def test_chain_names_with_slashes_dots_and_colons_are_written_as_they_are(tmp_path, capsys):
    # kube-proxy's nftables mode names chains service-HASH-NS/NAME/PROTO/PORT: shown whole in text, JSON, pcapng
    path = _write(tmp_path, "r.nft", NAMES)
    code, text, _err = _run(capsys, "--nft", path, *PACKET, "--pcap", str(tmp_path / "t.pcapng"))
    assert code == 0
    assert "service-ULMVA6XW-ns1/svc1/tcp/p80 #1 → endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 #1 → a:b.c #1" in text
    code, out, _err = _run(capsys, "--nft", path, *PACKET, "--format", "json")
    chains = [step["chain"] for step in json.loads(out)["outcomes"][0]["steps"] if "chain" in step]
    assert chains[:4] == ["filter-prerouting", "service-ULMVA6XW-ns1/svc1/tcp/p80",
                          "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80", "a:b.c"]
    assert b"ip kube-proxy/a:b.c #1" in (tmp_path / "t.pcapng").read_bytes()
