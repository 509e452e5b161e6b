"""A node in the middle of a migration (#25): kube-proxy's nftables table beside its iptables mode's
leftovers. A generated nftables-mode cluster whose node1 also carries the iptables-mode rules generated
for it earlier, when a pod (pod3, an endpoint of svc1 on node1) still existed, is verified from the
cluster YAML and from kubectl input, as the kernel runs the node (tests/kernel/test_mixed_migration_kernel.py
checks the order against the kernel):

* kube-proxy's table made last (the usual migration): its nat chains translate first, a stale leftover
  DNAT never acts, the cluster holds, and the warning says no leftover acts;
* iptables-nft's ``table ip nat`` made after it (re-made by an iptables-restore): the leftovers translate
  first; the stale DNAT to pod3 breaks service-reachability, its cause is that leftover rule, and the
  warning lists the leftovers that act; leftovers that agree with the nft rules act without a violation.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pktverify.cli import main
from pktverify.generate.node_state import generate_node
from pktverify.generate.synthetic_cluster import synthetic_cluster
from pktverify.model.addresses import format_network
from pktverify.model.kube_proxy import NFT_SCRIPT_FILE

from ..hostile import write_node_dumps
from ..parse.test_input_parity import _kubectl, _yaml

# What iptables-nft's table ip nat looks like in an nft dump, listed after kube-proxy's table.
IP_NAT_AFTER = ("add table ip nat\n"
                "add chain ip nat PREROUTING { type nat hook prerouting priority -100 ; }\n"
                "add chain ip nat OUTPUT { type nat hook output priority -100 ; }\n"
                "add chain ip nat POSTROUTING { type nat hook postrouting priority 100 ; }\n")


def _mixed_folder(folder: Path, *, stale: bool, nat_after: bool):
    before = synthetic_cluster(2, 2, 4)                      # iptables mode, pod3 (svc1, on node1) alive
    leftovers = generate_node(before, before.nodes[1]).iptables
    pods = tuple(p for p in before.pods if not (stale and p.key == "default/pod3"))
    now = dataclasses.replace(before, pods=pods, proxy_mode="nftables")
    write_node_dumps(now, folder)
    node1 = folder / "node1"
    (node1 / "iptables-save.txt").write_text(leftovers)
    if nat_after:
        (node1 / NFT_SCRIPT_FILE).write_text((node1 / NFT_SCRIPT_FILE).read_text() + IP_NAT_AFTER)
    return now, leftovers


def _verify(capsys, now, folder: Path, source: str, fmt: str = "json"):
    path = _yaml(now, folder) if source == "yaml" else _kubectl(now, folder)
    extra = [] if source == "yaml" else ["--cluster-cidr", format_network(*now.cidr), "--service-cidr",
                                         format_network(*now.service_cidr)]
    status = main(["verify", str(path), *extra, "--format", fmt, "--jobs", "1"])
    out = capsys.readouterr()
    assert status in (0, 1), out.err
    return status, (json.loads(out.out) if fmt == "json" else out.out)


def _mixed_warning(doc: dict) -> str:
    found = [w["warning"] for w in doc.get("node_warnings", ()) if w["nodes"] == ["node1"]
             and w["warning"].startswith("in the middle of a migration")]
    assert len(found) == 1, doc.get("node_warnings")
    return found[0]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.split("\n"), 1) if needle in line)


@pytest.mark.parametrize("source", ["yaml", "kubectl"])
def test_stale_leftover_dnat_is_the_cause_when_ip_nat_was_made_last(tmp_path, capsys, source):
    now, leftovers = _mixed_folder(tmp_path, stale=True, nat_after=True)
    status, doc = _verify(capsys, now, tmp_path, source)
    assert status == 1
    sr = next(r for r in doc["invariants"] if r["name"] == "service-reachability")
    assert not sr["holds"]
    stale_line = _line_of(leftovers, "-j DNAT --to-destination 10.1.1.3:8080")      # pod3's address
    blackholed = {i for i, v in enumerate(sr["violations"]) if "no pod with IP 10.1.1.3" in v["message"]}
    assert blackholed, sr["violations"]
    group = next(g for g in doc["groups"] if ["service-reachability", min(blackholed)] in g["violations"])
    assert {i for _name, i in group["violations"]} == blackholed
    assert group["cause"].startswith("node1: leftover nat/KUBE-SEP-") and "DNAT of kube-proxy's iptables mode" \
        in group["cause"], group["cause"]
    assert group["location"] == f"{tmp_path / 'node1' / 'iptables-save.txt'}:{stale_line}", group["location"]
    warning = _mixed_warning(doc)
    assert "iptables-nft's table ip nat is listed after kube-proxy's table" in warning
    assert f"iptables-save.txt:{stale_line}) DNAT 10.152.0.2:80 → 10.1.1.3:8080" in warning, warning


@pytest.mark.parametrize("source", ["yaml", "kubectl"])
def test_agreeing_leftovers_act_without_a_violation_and_are_listed(tmp_path, capsys, source):
    now, leftovers = _mixed_folder(tmp_path, stale=False, nat_after=True)
    status, doc = _verify(capsys, now, tmp_path, source)
    assert status == 0, [v["message"] for r in doc["invariants"] for v in r["violations"]]
    warning = _mixed_warning(doc)
    assert "leftover iptables rule(s) of kube-proxy's iptables mode still act" in warning
    dnat_line = _line_of(leftovers, "-j DNAT --to-destination 10.1.0.2:8080")        # svc0's first endpoint
    assert f"iptables-save.txt:{dnat_line}) DNAT 10.152.0.1:80 → 10.1.0.2:8080" in warning, warning


@pytest.mark.parametrize("source", ["yaml", "kubectl"])
def test_kube_proxy_table_made_last_translates_first_and_the_stale_leftover_never_acts(tmp_path, capsys, source):
    now, _leftovers = _mixed_folder(tmp_path, stale=True, nat_after=False)
    status, doc = _verify(capsys, now, tmp_path, source)
    assert status == 0, [v["message"] for r in doc["invariants"] for v in r["violations"]]
    warning = _mixed_warning(doc)
    assert "kube-proxy's nft nat chains run first" in warning and warning.endswith(
        "no leftover rule acts on the verified flows"), warning
    _status, text = _verify(capsys, now, tmp_path, source, fmt="text")
    assert "node1: in the middle of a migration: kube-proxy's nftables table beside its iptables mode's rules" in text


def test_kubectl_input_notes_the_mixed_node_and_why_nftables_mode(tmp_path):
    from pktverify.load.cluster import load_cluster
    now, _leftovers = _mixed_folder(tmp_path, stale=False, nat_after=False)
    cluster = load_cluster(_kubectl(now, tmp_path), cluster_cidr=format_network(*now.cidr),
                           service_cidr=format_network(*now.service_cidr))
    assert cluster.proxy_mode == "nftables"
    notes = [n for n in cluster.extras["notes"] if n.startswith("node node1 is in the middle of a migration")]
    assert len(notes) == 1 and "taken as nftables mode (the other nodes run nftables mode)" in notes[0], notes


def test_every_node_mixed_is_nftables_mode_with_the_reason(tmp_path):
    from pktverify.load.cluster import load_cluster
    now, leftovers = _mixed_folder(tmp_path, stale=False, nat_after=False)
    (tmp_path / "node0" / "iptables-save.txt").write_text(generate_node(dataplane_iptables(now), now.nodes[0]).iptables)
    cluster = load_cluster(_kubectl(now, tmp_path), cluster_cidr=format_network(*now.cidr),
                           service_cidr=format_network(*now.service_cidr))
    assert cluster.proxy_mode == "nftables"
    notes = [n for n in cluster.extras["notes"] if "in the middle of a migration" in n]
    assert len(notes) == 2 and all("every node with kube-proxy rules holds both" in n for n in notes), notes


def dataplane_iptables(cluster):
    return dataclasses.replace(cluster, proxy_mode="iptables")


def test_yaml_saying_iptables_mode_refuses_the_mixed_node_in_one_line(tmp_path, capsys):
    now, _leftovers = _mixed_folder(tmp_path, stale=False, nat_after=False)
    (tmp_path / "node0" / NFT_SCRIPT_FILE).unlink()          # node0 in iptables mode: node1 is the odd one
    (tmp_path / "node0" / "iptables-save.txt").write_text(generate_node(dataplane_iptables(now), now.nodes[0]).iptables)
    path = _yaml(now, tmp_path)
    path.write_text(path.read_text().replace("proxy_mode: nftables", "proxy_mode: iptables"))
    assert main(["verify", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{path}:4: node node1 runs kube-proxy in nftables mode (nft table ip kube-proxy, beside iptables " \
           "mode's rules (chain nat/KUBE-SERVICES, chains KUBE-SEP-*, chains KUBE-SVC-*): leftovers of a migration), " \
           "but the cluster says proxy_mode: iptables: - {name: node1," in err, err
    assert len(err.split("\n")) == 1
