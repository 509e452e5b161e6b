"""``pktverify trace --cluster``: one flow and its reply across a cluster, judged as verify judges it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pktverify
from pktverify.cli import main
from pktverify.model.addresses import format_ip

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "rules/seed/cluster-iptables.yaml"
SEED_USERSPACE = ROOT / "rules/seed/cluster.yaml"
SERVICES = ROOT / "rules/services/every-service-type.yaml"
STALE = ROOT / "rules/broken/stale-endpoint.yaml"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["trace", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_pod_to_service_reaches_both_endpoints_with_their_probabilities(capsys):
    code, out, _err = run(capsys, "--cluster", SEED, "--from", "default/web-1", "--to", "default/http-svc:80",
                          "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["holds"] and doc["judged"]
    got = sorted((o["at"], o["probability"]) for o in doc["outcomes"])
    assert got == [("pod default/web-1", 0.5), ("pod default/web-2", 0.5)]
    for o in doc["outcomes"]:
        assert [r["answers_client"] for r in o["replies"]] == [True]
        assert o["replies"][0]["packet"]["src"] == "10.152.183.164"      # the reply comes from the ClusterIP
        assert o["hops"][0]["point"] == "pod:default/web-1:eth0"


def test_a_port_name_a_one_port_service_and_the_protocol_in_any_case(capsys):
    by_name = pktverify.trace_flow(pktverify.load_cluster(SEED), source="default/web-1", to="default/http-svc:http",
                                   proto="TCP")
    alone = pktverify.trace_flow(pktverify.load_cluster(SEED), source="default/web-1", to="default/http-svc")
    assert by_name.packet == alone.packet and by_name.holds and alone.holds
    assert (format_ip(alone.packet.dst), alone.packet.dport) == ("10.152.183.164", 80)


def test_userspace_mode_backends_see_the_node_address(capsys):
    report = pktverify.trace_flow(pktverify.load_cluster(SEED_USERSPACE), source="default/backend-1",
                                  to="default/http-svc:80")
    assert report.holds
    nodes = {n.name: n.ip for n in report.walker.cluster.nodes}
    for end, _replies in report.outcomes:
        assert end.kind == "arrived" and end.packet.src == nodes["node3"]      # the proxy on the client's node


def test_pod_to_pod_is_checked_for_nat(capsys):
    code, out, _err = run(capsys, "--cluster", SEED, "--from", "default/web-1", "--to", "default/web-2:8080")
    assert code == 0
    assert out.splitlines()[0] == "pod default/web-1 → pod default/web-2 (10.1.20.5:8080)"
    assert "answer: HOLDS: arrives at pod default/web-2 with its source and destination unchanged" in out


def test_a_stale_endpoint_fails_with_each_outcome_and_exit_1(capsys, tmp_path):
    pcap = tmp_path / "flow.pcapng"
    code, out, err = run(capsys, "--cluster", STALE, "--from", "default/client", "--to", "default/http-svc",
                         "--pcap", pcap)
    assert code == 1
    assert "answer: FAILS" in out
    assert "1. p=0.5  blackhole: no pod with IP 10.1.20.99 behind node2:cbr0" in out
    assert "2. p=0.5  arrived at pod default/web-1" in out
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["flow-1.pcapng", "flow-2.pcapng"]
    assert f"capture: {tmp_path / 'flow-1.pcapng'}" in out and "wrote" in err


def test_the_answer_is_verifys_for_that_flow():
    """Every pod's flow to every ClusterIP port of the broken examples: trace --cluster reports
    exactly the violations verify reports for that client and packet (flows checked one by one)."""
    from pktverify.check.invariants import check_all
    from pktverify.eval.cluster_walk import ClusterWalker
    from pktverify.load.cluster_nodes import cluster_nodes

    compared = 0
    for path in sorted((ROOT / "rules/broken").glob("*.yaml")) + [STALE, SEED_USERSPACE]:
        cluster = pktverify.load_cluster(path)
        walker = ClusterWalker(cluster, cluster_nodes(cluster))
        results = check_all(cluster, walker, exhaustive=True, invariants=("service-reachability",))
        seen = {}
        for v in results[0].violations:
            if v.client is not None and v.packet is not None:
                seen.setdefault((v.client, v.packet.dst, v.packet.dport), set()).add(v.message)
        for pod in cluster.pods:
            for svc in cluster.services:
                for sp in svc.ports:
                    report = pktverify.trace_flow(cluster, source=pod.key, to=f"{svc.key}:{sp.port}",
                                                  proto=sp.protocol)
                    client = report.answer.client
                    want = seen.get((client, svc.cluster_ip, sp.port), set())
                    assert {v.message for v in report.violations} == want, (path.name, pod.key, svc.key)
                    compared += 1
    assert compared > 20


def test_nodeport_and_load_balancer_addresses_are_taken_as_the_services_doors(capsys):
    cluster = pktverify.load_cluster(SERVICES)
    node1 = next(n for n in cluster.nodes if n.name == "node1")
    report = pktverify.trace_flow(cluster, source="outside@node1", to=f"{format_ip(node1.ip)}:30080")
    assert report.judged and report.holds
    assert "service default/web-nodeport:80 (NodePort on node1 192.168.1.10:30080/tcp)" in report.question
    assert sorted(end.at.label() for end, _r in report.outcomes) == ["pod default/web-1", "pod default/web-2"]
    # The off-cluster client is inside loadBalancerSourceRanges: the load-balancer IP takes it in.
    lb = pktverify.trace_flow(cluster, source="outside@node2", to="198.51.100.20:443")
    assert "service default/web-lb:443 (load-balancer IP 198.51.100.20:443/tcp)" in lb.question
    assert lb.judged and lb.holds and {end.kind for end, _r in lb.outcomes} == {"arrived"}
    # From a pod, the load-balancer IP is no door verify sends through: shown, not judged.
    pod = pktverify.trace_flow(cluster, source="default/client", to="198.51.100.20:443")
    assert not pod.judged and pod.holds


def test_an_address_nobody_holds_is_walked_and_not_judged(capsys):
    code, out, _err = run(capsys, "--cluster", SEED, "--from", "node1", "--to", "10.1.20.99:80")
    assert code == 0
    assert "answer: no promise applies (not judged)" in out
    assert "blackhole" in out


@pytest.mark.parametrize("argv, message", [
    (["--from", "default/web1", "--to", "default/http-svc"], "--from default/web1: no pod default/web1 (did you mean "
                                                              "default/web-1"),
    (["--from", "nodeX", "--to", "default/http-svc"], "--from nodeX: no node 'nodeX'"),
    (["--from", "outside@nowhere", "--to", "default/http-svc"], "no node 'nowhere'"),
    (["--from", "node1", "--to", "default/http-sv:80"], "no service or pod default/http-sv (did you mean "
                                                        "default/http-svc"),
    (["--from", "node1", "--to", "default/http-svc:81"], "service default/http-svc has no port 81 (it has 80/tcp (http))"),
    (["--from", "node1", "--to", "default/http-svc:80", "--proto", "udp"], "has no port 80/udp"),
    (["--from", "node1", "--to", "default/web-1"], "give the pod's port, default/web-1:PORT (it declares 8080, 9090)"),
    (["--from", "node1", "--to", "10.1.10.5:70000"], "'70000' is not a port number"),
    (["--from", "node1", "--to", "web:80"], "is neither a namespace/name nor an IPv4 address"),
    (["--from", "node1"], "--cluster needs --to"),
    (["--from", "node1", "--to", "default/http-svc", "--iptables", "x"], "--iptables goes with one node's trace"),
])
def test_names_that_do_not_resolve_are_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, "--cluster", SEED, *argv)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


def test_a_node_trace_still_says_what_it_needs(capsys):
    code, _out, err = run(capsys, "--iptables", "x")
    assert code == 2
    assert "required: --addrs, --routes, --proto, --src, --dst, --in-iface or --local" in err
    code, _out, err = run(capsys, "--iptables", "a", "--addrs", "b", "--routes", "c", "--local", "--proto", "tcp",
                          "--src", "1.2.3.4", "--dst", "1.2.3.5", "--from", "node1")
    assert code == 2 and "--from goes with --cluster" in err


def test_a_service_and_a_pod_of_one_name_must_be_told_apart(tmp_path, capsys):
    text = SEED.read_text().replace("name: web-2, namespace: default", "name: http-svc, namespace: default")
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    code, _out, err = run(capsys, "--cluster", path, "--from", "default/web-1", "--to", "default/http-svc:8080")
    assert code == 2 and "write service/default/http-svc:8080 or pod/default/http-svc:8080" in err
    code, out, _err = run(capsys, "--cluster", path, "--from", "default/web-1", "--to", "pod/default/http-svc:8080")
    assert code == 0 and out.startswith("pod default/web-1 → pod default/http-svc (10.1.20.5:8080)")


def test_the_html_page_draws_each_outcome_and_escapes(tmp_path, capsys):
    page = tmp_path / "flow.html"
    code, _out, _err = run(capsys, "--cluster", STALE, "--from", "default/client", "--to", "default/http-svc",
                           "--html", page)
    html = page.read_text()
    assert code == 1
    assert html.count('class="group') == 2 and 'id="outcome-1"' in html and 'id="outcome-2"' in html
    assert "FAILS (2 problem(s))" in html and "<script" not in html


def test_verify_only_narrows_to_the_services_named_and_says_so(capsys):
    code = main(["verify", str(STALE), "--only", "default/http-svc", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [r["name"] for r in doc["invariants"]] == ["service-reachability"]
    notes = doc["invariants"][0]["notes"]
    assert any("narrowed to default/http-svc (--only)" in n and "no-nat, routing were not checked" in n for n in notes)
    assert all("http-svc" in v["message"] for v in doc["invariants"][0]["violations"])
    # The same violations as the full run's for that service (the narrowing hides nothing of it).
    main(["verify", str(STALE), "--format", "json"])
    full = json.loads(capsys.readouterr().out)
    reach = next(r for r in full["invariants"] if r["name"] == "service-reachability")
    assert sorted(v["message"] for v in reach["violations"] if "http-svc" in v["message"]) == \
        sorted(v["message"] for v in doc["invariants"][0]["violations"])


def test_verify_only_leaves_other_services_out():
    cluster = pktverify.load_cluster(SEED)
    narrowed = pktverify.verify(cluster, only=["default/kubernetes"])
    full = pktverify.verify(cluster, invariants=["service-reachability"])
    assert 0 < narrowed["service-reachability"].checked < full["service-reachability"].checked


def test_verify_only_names_an_unknown_service(capsys):
    code = main(["verify", str(SEED), "--only", "default/http"])
    err = capsys.readouterr().err
    assert code == 2 and "--only: no service default/http (did you mean default/http-svc" in err


def test_kubectl_input_with_its_dump_options(capsys, tmp_path):
    import shutil
    real = tmp_path / "rc"
    shutil.copytree(ROOT / "tests/corpus/realcluster", real)
    kubectl = ["--cluster", real / "cluster.json", "--cluster-cidr", "10.244.0.0/16", "--service-cidr", "10.96.0.0/12",
               "--from", "worker-2", "--to", "kube-system/kube-dns:53", "--proto", "UDP"]
    code, out, _err = run(capsys, *kubectl)
    assert code == 0 and out.startswith("node worker-2 → service kube-system/kube-dns:dns (ClusterIP 10.96.0.10:53/udp)")
    (real / "worker-2").rename(real / "worker-2.example.com")
    code, _out, err = run(capsys, *kubectl)
    assert code == 0 and "did you mean worker-2?" in err            # said, and the rest generated
    code, out, err = run(capsys, *kubectl, "--require-dumps")
    assert code == 2 and out == "" and "--require-dumps: node worker-2 has no iptables-save.txt" in err
