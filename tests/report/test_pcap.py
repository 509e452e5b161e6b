"""Captures read back with tshark (Wireshark's dissectors): names, comments, checksums, tuples, handshake."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pktverify.cli import main

RULES = Path(__file__).resolve().parents[2] / "rules"
SEED = RULES / "seed" / "cluster-iptables.yaml"


@pytest.fixture(scope="module")
def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("tshark is not installed on CI (./scripts/test installs it as root)")
        pytest.skip("tshark is not installed")
    return path


def fields(tshark: str, pcap: Path, *names: str, read_filter: str = "") -> list[list[str]]:
    cmd = [tshark, "-r", str(pcap), "-2", "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
           "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=;"]
    if read_filter:
        cmd += ["-Y", read_filter]
    for name in names:
        cmd += ["-e", name]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return [line.split("|") for line in res.stdout.splitlines()]


def only_at(tshark: str, pcap: Path, point: str, tmp_path: Path) -> Path:
    """The packets of one observation point as their own file (Wireshark's TCP analysis is
    per file: one file holding the same segment at seven points counts six retransmissions)."""
    out = tmp_path / (point.replace("/", "_").replace(":", "_") + ".pcapng")
    subprocess.run([tshark, "-r", str(pcap), "-Y", f'frame.interface_name == "{point}"', "-w", str(out)],
                   check=True, capture_output=True, timeout=60)
    return out


@pytest.fixture(scope="module")
def seed_pcaps(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pcaps")
    assert main(["verify", str(SEED), "--pcap-dir", str(out), "--all"]) == 0
    return out


def _flow_file(directory: Path, fragment: str, tshark: str = "", reaching: str = "") -> Path:
    paths = [p for p in directory.iterdir() if fragment in p.name]
    if reaching:
        paths = [p for p in paths if [reaching] in fields(tshark, p, "frame.interface_name")]
    (path,) = paths
    return path


def test_service_flow_hop_by_hop(tshark, seed_pcaps, tmp_path):
    # web-1 (node1) → http-svc, the outcome that lands on web-2 (node2).
    pcap = _flow_file(seed_pcaps, "pod_default_web_1_tcp_10.1.10.5_40000_10.152.183.164_80-p", tshark,
                      reaching="pod:default/web-2:eth0")
    rows = fields(tshark, pcap, "frame.interface_name", "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport",
                  "tcp.flags.str", "ip.ttl", "ip.checksum.status", "tcp.checksum.status", "frame.comment")
    points = [r[0] for r in rows]
    assert points[:7] == ["pod:default/web-1:eth0", "node1:cbr0", "node1:eth0", "wire", "node2:eth0", "node2:cbr0",
                          "pod:default/web-2:eth0"]
    syn = {r[0]: (r[1], r[2], r[3], r[4], r[6]) for r in rows[:7]}
    assert syn["pod:default/web-1:eth0"] == ("10.1.10.5", "40000", "10.152.183.164", "80", "64")
    assert syn["node1:eth0"] == ("10.1.10.5", "40000", "10.1.20.5", "8080", "63")     # DNAT'd, TTL-1
    assert syn["pod:default/web-2:eth0"] == ("10.1.10.5", "40000", "10.1.20.5", "8080", "62")
    # The reply is un-NATed on node1: the client sees it from the ClusterIP.
    reply_at_client = [r for r in rows if r[0] == "pod:default/web-1:eth0" and "A" in r[5] and "S" in r[5]]
    assert [(r[1], r[2]) for r in reply_at_client] == [("10.152.183.164", "80")]
    assert all(r[7] == "1" and r[8] == "1" for r in rows), "every IP and TCP checksum is valid"
    dnat = rows[2][9]
    assert "nat/KUBE-SEP-" in dnat and "(line " in dnat and "DNAT 10.152.183.164:80 → 10.1.20.5:8080" in dnat
    assert "p=0.5" in rows[0][9]


def test_handshake_is_complete_and_clean_at_every_point(tshark, seed_pcaps, tmp_path):
    pcap = _flow_file(seed_pcaps, "flow-no-nat-1-pod_default_web_1_tcp_10.1.10.5_40000_10.1.20.5_8080.")
    points = {r[0] for r in fields(tshark, pcap, "frame.interface_name")}
    assert points == {"pod:default/web-1:eth0", "node1:cbr0", "node1:eth0", "wire", "node2:eth0", "node2:cbr0",
                      "pod:default/web-2:eth0"}
    for point in points:
        rows = fields(tshark, only_at(tshark, pcap, point, tmp_path), "tcp.flags.str", "tcp.analysis.flags",
                      "tcp.completeness")
        assert [r[0].replace("·", "") for r in rows] == ["S", "AS", "A"], point
        assert all(r[1] == "" for r in rows), f"tcp.analysis flags a problem at {point}: {rows}"
        assert rows[-1][2] == "7", f"handshake not recognised at {point}"   # SYN + SYN-ACK + ACK


def test_violation_capture_names_the_invariant(tshark, tmp_path):
    out = tmp_path / "v"
    assert main(["verify", str(RULES / "broken" / "hairpin-without-masquerade" / "cluster.yaml"),
                 "--pcap-dir", str(out)]) == 1
    names = sorted(p.name for p in out.glob("*.pcapng"))
    assert names == ["service-reachability-violation-1.pcapng", "service-reachability-violation-2.pcapng"]
    rows = fields(tshark, out / names[0], "frame.interface_name", "ip.src", "tcp.srcport", "ip.dst", "frame.comment")
    assert "invariant service-reachability violated" in " ".join(r[4] for r in rows)
    last = rows[-1]      # the hairpinned SYN reaches web-1 from its own address (a martian it drops): no answer
    assert last[:4] == ["pod:default/web-1:eth0", "10.1.10.5", "40000", "10.1.10.5"]


KUBE_NODE = {"iptables": str(RULES / "kube-node" / "iptables-save.txt"),
             "addrs": str(RULES / "kube-node" / "ip-addr.json"), "routes": str(RULES / "kube-node" / "ip-route.txt")}


def test_trace_pcap_single_node_and_deterministic(tshark, tmp_path):
    files = KUBE_NODE
    args = ["trace", "--iptables", files["iptables"], "--addrs", files["addrs"], "--routes", files["routes"],
            "--in-iface", "cbr0", "--proto", "tcp", "--src", "10.1.10.7", "--sport", "40000",
            "--dst", "10.152.183.1", "--dport", "443"]
    assert main([*args, "--pcap", str(tmp_path / "a.pcapng")]) == 0
    assert main([*args, "--pcap", str(tmp_path / "b.pcapng")]) == 0
    assert (tmp_path / "a.pcapng").read_bytes() == (tmp_path / "b.pcapng").read_bytes()
    rows = fields(tshark, tmp_path / "a.pcapng", "frame.interface_name", "ip.dst", "tcp.flags.str", "frame.comment")
    assert [r[0] for r in rows[:2]] == ["node:cbr0", "node:local"]     # the apiserver endpoint is the node
    assert rows[0][1] == "10.152.183.1" and rows[1][1] != "10.152.183.1"     # DNAT visible between the points


def test_probabilistic_trace_writes_one_file_per_outcome(tshark, tmp_path):
    files = KUBE_NODE
    assert main(["trace", "--iptables", files["iptables"], "--addrs", files["addrs"], "--routes", files["routes"],
                 "--in-iface", "cbr0", "--proto", "tcp", "--src", "10.1.10.7", "--sport", "40000",
                 "--dst", "10.152.183.164", "--dport", "80", "--pcap", str(tmp_path / "svc.pcapng")]) == 0
    written = sorted(p.name for p in tmp_path.glob("svc-*.pcapng"))
    assert written == ["svc-1.pcapng", "svc-2.pcapng", "svc-3.pcapng"]
    comments = fields(tshark, tmp_path / "svc-2.pcapng", "frame.comment")
    assert "outcome 2/3 (p=0.333333)" in comments[0][0]


def test_unwritable_capture_directory_is_one_line_and_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["verify", str(SEED), "--pcap-dir", str(blocker / "pcaps"), "--all"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pktverify: cannot write ") and str(blocker) in err[0]


REJECTING = """cluster: {cidr: 10.1.0.0/16, service_cidr: 10.152.183.0/24, proxy_mode: iptables, routing: direct}
nodes:
  - name: node1
    ip: 192.168.1.10/24
    pod_cidr: 10.1.10.0/24
    dumps:
      iptables: |
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -d 10.1.10.5/32 -p tcp -j REJECT --reject-with %s
        COMMIT
  - {name: node2, ip: 192.168.1.20/24, pod_cidr: 10.1.20.0/24}
pods:
  - {name: web-1, node: node1, ip: 10.1.10.5, containers: [{name: nginx, ports: [8080]}]}
  - {name: client, node: node2, ip: 10.1.20.5, containers: [{name: curl, ports: [8080]}]}
"""


@pytest.mark.parametrize("with_,shown", [("tcp-reset", "tcp.flags.reset == 1"),
                                         ("icmp-port-unreachable", "icmp.type == 3 && icmp.code == 3")])
def test_a_rejected_flow_shows_the_answer_the_client_gets(tshark, tmp_path, with_, shown):
    """The RST or ICMP error REJECT sends, from node1 across the wire to the client's namespace."""
    cluster = tmp_path / "c.yaml"
    cluster.write_text(REJECTING % with_)
    out = tmp_path / "p"
    assert main(["verify", str(cluster), "--pcap-dir", str(out)]) == 1
    rejected = [p for p in out.glob("no-nat-violation-*.pcapng")
                if ["pod:default/client:eth0"] in fields(tshark, p, "frame.interface_name", read_filter=shown)]
    assert rejected, sorted(p.name for p in out.iterdir())
    rows = fields(tshark, rejected[0], "frame.interface_name", "ip.src", "ip.dst", read_filter=shown)
    assert [r[0] for r in rows] == ["node1:local", "node1:eth0", "wire", "node2:eth0", "node2:cbr0",
                                    "pod:default/client:eth0"]
    assert rows[-1][2] == "10.1.20.5"          # addressed to the client


def test_split_by_point_writes_each_segment_once_per_file(tshark, tmp_path):
    out = tmp_path / "p"
    assert main(["verify", str(SEED), "--pcap-dir", str(out), "--all", "--pcap-split", "point"]) == 0
    parts = sorted(out.glob("flow-no-nat-1-pod_default_web_1_tcp_10.1.10.5_40000_10.1.20.5_8080-at-*.pcapng"))
    assert [p.name.rsplit("-at-", 1)[1] for p in parts] == sorted(
        f"{s}.pcapng" for s in ("pod_default_web_1_eth0", "node1_cbr0", "node1_eth0", "wire", "node2_eth0",
                                "node2_cbr0", "pod_default_web_2_eth0"))
    for part in parts:
        rows = fields(tshark, part, "frame.interface_name", "tcp.flags.str", "tcp.analysis.flags")
        assert len({r[0] for r in rows}) == 1                      # one observation point per file
        assert [r[1].replace("·", "") for r in rows] == ["S", "AS", "A"], part.name
        assert all(r[2] == "" for r in rows), f"tcp.analysis flags a problem in {part.name}: {rows}"
    # A later run without the split removes the per-point files the earlier run wrote.
    assert main(["verify", str(SEED), "--pcap-dir", str(out)]) == 0
    assert not list(out.glob("*-at-*.pcapng"))
