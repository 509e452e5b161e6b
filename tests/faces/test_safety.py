"""Safety: what pktverify writes (only what was asked, never through a link, never over a
device or FIFO), what it refuses to read, and bounded work on adversarial but valid input.

Bounded work is asserted by what the evaluator did (branches created, outcomes, steps), never by
wall-clock time; the README's Safety section quotes the times.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pktverify.errors import InputError
from pktverify.eval.chains import CompiledTable
from pktverify.eval.state import Budget, WalkState
from pktverify.generate.rule_text import quote
from pktverify.model.packet import TCP, Packet
from pktverify.parse import k8s_names
from pktverify.parse.iptables_save import parse_iptables_save
from pktverify.parse.source import read_text
from pktverify.parse.tokens import split_args

from ..helpers import tracer
from ..hostile import RULES, assert_verdict_or_refusal, run, tree

NODE = RULES / "kube-node"
SEED = RULES / "seed" / "cluster.yaml"


def _trace_argv(*extra: str, dst: str = "10.152.183.164") -> list[str]:
    """A trace on the bundled node: to the ClusterIP (three outcomes), or with ``dst`` a pod (one)."""
    return ["trace", "--iptables", str(NODE / "iptables-save.txt"), "--addrs", str(NODE / "ip-addr.json"),
            "--routes", str(NODE / "ip-route.txt"), "--in-iface", "cbr0", "--proto", "tcp", "--src", "10.1.10.7",
            "--dst", dst, "--dport", "80", *extra]


# ---------------------------------------------------------------------------------------- output
@pytest.fixture()
def device(tmp_path) -> Path:
    """A private character device (the same as /dev/null: major 1, minor 3); needs root."""
    path = tmp_path / "dev-null"
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root")
    return path


def test_pcap_onto_a_device_is_refused_and_the_device_stays(device):
    result = run(_trace_argv("--pcap", str(device)))
    assert result.status == 2 and len(result.err_lines) == 1, result.err
    assert "not a regular file" in result.err and "character device" in result.err
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert tree(device.parent) == {device.name}          # no temp file left behind


def test_pcap_onto_a_fifo_is_refused(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = run(_trace_argv("--pcap", str(fifo)))
    assert result.status == 2 and "FIFO" in result.err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_pcap_onto_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    (tmp_path / "out").mkdir()
    link = tmp_path / "out" / "x.pcapng"
    link.symlink_to(outside)
    result = run(_trace_argv("--pcap", str(link)))
    assert result.status == 2 and "symlink" in result.err
    assert outside.read_text() == "precious" and link.is_symlink()


def test_planted_partial_symlinks_in_the_capture_folder_are_not_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    pcaps = tmp_path / "pcaps"
    pcaps.mkdir()
    for name in ("service-reachability-violation-1.pcapng.partial", ".service-reachability-violation-1.pcapng.partial"):
        (pcaps / name).symlink_to(outside)
    broken = RULES / "broken" / "stale-endpoint.yaml"
    result = run(["verify", str(broken), "--pcap-dir", str(pcaps), "--jobs", "1"])
    assert result.status == 1, result.err
    assert outside.read_text() == "precious"
    written = {p.name for p in pcaps.iterdir() if not p.is_symlink()}
    assert written and all(name.endswith(".pcapng") for name in written - {".pktverify-verify-captures"})


def test_a_symlinked_node_folder_under_generate_out_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "node1").symlink_to(elsewhere)
    result = run(["generate", str(SEED), "--out", str(out)])
    assert result.status == 2 and "node1" in result.err and len(result.err_lines) == 1
    assert not any(elsewhere.iterdir())


def test_pcap_rewrites_its_own_regular_file(tmp_path):
    target = tmp_path / "flow.pcapng"
    target.write_bytes(b"old")
    assert run(_trace_argv("--pcap", str(target), dst="10.1.20.5")).status == 0
    assert target.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"         # a pcapng section header
    assert tree(tmp_path) == {"flow.pcapng"}


def test_nothing_but_the_asked_output_is_written(tmp_path):
    """A fresh HOME stays empty: scapy's ~/.cache/scapy and ~/.config are not created."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env["HOME"] = str(home)
    out = tmp_path / "flow.pcapng"
    proc = subprocess.run([sys.executable, "-m", "pktverify.cli", *_trace_argv("--pcap", str(out), dst="10.1.20.5")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and tree(home) == set()
    assert tree(tmp_path) == {"home", "flow.pcapng"}


# ---------------------------------------------------------------------------------------- names
@pytest.mark.parametrize("check,good,bad", [
    (k8s_names.dns1123_subdomain, ["node1", "ip-10-0-0-1.ec2.internal", "a" * 253], ["../x", "/abs/x", "Node1",
                                                                                   "a_b", "-a", "a.", "a" * 254, ""]),
    (k8s_names.dns1123_label, ["default", "kube-system", "a" * 63], ["a.b", "a" * 64, "A", "a-", ""]),
    (k8s_names.dns1035_label, ["http-svc", "a1"], ["1abc", "a_b", "a.b", ""]),
    (k8s_names.iana_svc_name, ["http", "h2c", "a-b"], ["a--b", "-a", "a-", "123", "abcdefghijklmnop", "A"]),
    (k8s_names.label_key, ["app", "app.kubernetes.io/name", "a_b.c-d"], ["/x", "a/", "-a", "a b", "x/y/z"]),
    (k8s_names.label_value, ["", "web", "v1.2_3"], ["-web", "a b", 'x"', "a" * 64]),
    (k8s_names.interface_name, ["cbr0", "docker0", "br-1.2_x"], ["", ".", "..", "a/b", "a b", "a" * 16]),
])
def test_kubernetes_name_rules(check, good, bad):
    assert [n for n in good if check(n)] == []
    assert [n for n in bad if not check(n)] == []


def test_injected_rule_text_is_refused_at_the_yaml_line(tmp_path):
    text = SEED.read_text().replace("name: http, port: 80", 'name: "x\\" -j DROP\\n-A FORWARD -j DROP #", port: 80')
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    result = run(["generate", str(path), "--out", str(tmp_path / "out")])
    line = next(n for n, t in enumerate(text.split("\n"), 1) if "FORWARD" in t)
    assert result.status == 2 and result.err.startswith(f"pktverify: {path}:{line}: service port name"), result.err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ['a "b" c', "back\\slash", "it's", "default/http-svc:http cluster IP", "plain-word_1"])
def test_quote_round_trips_through_the_rule_tokenizer(value):
    assert split_args(f"-m comment --comment {quote(value)} -j ACCEPT")[3] == value


def test_quote_refuses_line_breaks():
    with pytest.raises(ValueError):
        quote("a\n-A FORWARD -j DROP")


# ---------------------------------------------------------------------------------------- reading
@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "folder"])
def test_special_files_are_refused_as_input(tmp_path, special):
    if special == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)        # opened without a writer: reading would block forever
    elif special == "folder":
        path = tmp_path
    else:
        path = Path(special)
    with pytest.raises(InputError, match="not a regular file"):
        read_text(path)
    result = run(["verify", str(path)])
    assert result.status == 2 and "not a regular file" in result.err and len(result.err_lines) == 1


def test_an_unrelated_file_as_a_dump_is_not_echoed(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("root:$6$SECRETHASH:19000:0:99999:7:::\n")
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(SEED.read_text().replace(
        "pod_cidr: 10.1.10.0/24, bridge: cbr0}",
        f"pod_cidr: 10.1.10.0/24, bridge: cbr0, iptables: {secret}, addrs: {secret}, routes: {secret}}}"))
    result = run(["verify", str(cluster)])
    assert result.status == 2 and "SECRETHASH" not in result.err and str(secret) in result.err, result.err


@pytest.mark.parametrize("text,fragment", [
    ("a: &a [*a]\n", "recursive alias"),
    ("".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else 'x'}]\n" for i in range(12)), "alias bomb"),
    ("a: " + "[" * 200 + "]" * 200 + "\n", "nest"),
    ("cluster: {cidr: x}\ncluster: {cidr: y}\n", "duplicate key 'cluster'"),
    ("? [a, b]\n: 1\n", "plain word"),
    ("cluster: \x07\n", "not allowed"),
    ("cluster: \ufffe\n", "not allowed"),
    ("cluster: !!python/object:os.system {}\n", "invalid YAML"),
    ("- just\n- a list\n", "mapping"),
])
def test_hostile_yaml(tmp_path, text, fragment):
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    result = run(["verify", str(path)])
    assert_verdict_or_refusal(result, names=(str(path),))
    assert result.status == 2 and fragment in result.err, result.err


def test_duplicate_pods_and_services_name_the_yaml_line(tmp_path):
    text = SEED.read_text() + ("  - {name: http-svc, namespace: default, cluster_ip: 10.152.183.165,\n"
                               "     ports: [{name: http, port: 80}], selector: {app: web}}\n")
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    result = run(["verify", str(path)])
    assert result.status == 2 and f"{path}:{len(text.splitlines()) - 1}: service default/http-svc is described twice" \
        in result.err, result.err


def test_nodes_on_two_subnets_name_the_yaml_line(tmp_path):
    text = SEED.read_text().replace("ip: 192.168.1.30/24", "ip: 192.168.2.30/24")
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    result = run(["verify", str(path)])
    line = next(n for n, t in enumerate(text.split("\n"), 1) if "192.168.2.30" in t)
    assert result.status == 2 and result.err.startswith(f"pktverify: {path}:{line}: node node3"), result.err


@pytest.mark.parametrize("routes", ["# only a comment\n", "\n\n# two\n#\n"])
def test_route_file_of_only_comments(tmp_path, routes):
    (tmp_path / "routes").write_text(routes)
    argv = _trace_argv()
    argv[argv.index("--routes") + 1] = str(tmp_path / "routes")
    result = run(argv)
    assert result.status == 2 and "no routes" in result.err and len(result.err_lines) == 1


@pytest.mark.parametrize("doc,fragment", [
    ('[{"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": Infinity}]}]', "Infinity"),
    ('[{"ifname": "lo", "addr_info": [{"family": "inet", "local": null, "prefixlen": 8}]}]', "local"),
    ('[{"ifname": ["lo"]}]', "ifname"),
    ('[{"ifname": "lo", "addr_info": {"family": "inet"}}]', "addr_info"),
    ('[{"ifname": "lo", "ifname": "eth0"}]', "twice"),
    ("[" * 100000 + "]" * 100000, "deeply"),
])
def test_hostile_ip_json(tmp_path, doc, fragment):
    (tmp_path / "addrs").write_text(doc)
    argv = _trace_argv()
    argv[argv.index("--addrs") + 1] = str(tmp_path / "addrs")
    result = run(argv)
    assert result.status == 2 and fragment in result.err and len(result.err_lines) == 1, result.err


# ---------------------------------------------------------------------------------------- bounded work
_ADDRS = ("1: lo    inet 127.0.0.1/8 scope host lo\n"
          "2: eth0    inet 192.168.1.10/24 brd 192.168.1.255 scope global eth0\n"
          "3: cbr0    inet 10.1.10.1/24 scope global cbr0\n")
_ROUTES = ("default via 192.168.1.1 dev eth0\n192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.10\n"
           "10.1.10.0/24 dev cbr0 proto kernel scope link src 10.1.10.1\n")
_PKT = Packet(TCP, 0x0A010A05, 0x08080808, 40000, 80, 0x02)


def _walk(rules: str, table: str, hook: str, budget: Budget):
    from pktverify.eval.fib import Fib
    from pktverify.load.node import build_node
    from pktverify.parse.ipaddr import parse_ip_addr
    from pktverify.parse.iproute import parse_routes

    ruleset = parse_iptables_save(rules)
    node = build_node("n", parse_ip_addr(_ADDRS), parse_routes(_ROUTES).routes, ruleset)
    compiled = CompiledTable(ruleset.tables[table], Fib(node))
    return compiled.walk(hook, WalkState(_PKT, "cbr0", "", 0, 8, 1.0, True, ()), None, budget)


@pytest.mark.parametrize("n", [10, 20, 60])
def test_probabilistic_rules_that_continue_cost_linear_work(n):
    """n statistic rules whose target continues (LOG): 2^n paths, one future; the walk merges
    them where they meet, so it creates O(n) branches, and the one outcome is certain."""
    rules = "*filter\n" + "".join("-A FORWARD -m statistic --mode random --probability 0.5 -j LOG\n"
                                  for _ in range(n)) + "COMMIT\n"
    budget = Budget(10**9)
    results = _walk(rules, "filter", "FORWARD", budget)
    assert len(results) <= 2 and {r.verdict for r in results} == {"ACCEPT"}    # the policy, reached twice at most
    assert sum(r.state.prob for r in results) == pytest.approx(1.0)
    assert budget.limit - budget.left <= 3 * n + 2


def test_a_thousand_nested_probabilistic_chains_do_not_recurse():
    chains = "".join(f":C{i} - [0:0]\n" for i in range(1000))
    rules = "*filter\n" + chains + "-A FORWARD -j C0\n" + "".join(
        f"-A C{i} -m statistic --mode random --probability 0.5 -j C{i + 1}\n" for i in range(999)) + "COMMIT\n"
    results = _walk(rules, "filter", "FORWARD", Budget())
    assert [r.verdict for r in results] == ["ACCEPT"] and results[0].state.prob == pytest.approx(1.0)


def test_many_matching_log_rules_keep_every_step():
    n = 20000
    rules = "*filter\n" + "-A FORWARD -j LOG\n" * n + "COMMIT\n"
    trace = tracer(rules).trace(_PKT, in_iface="cni0")
    (outcome,) = trace.outcomes
    assert sum(1 for s in outcome.steps if s.action == "LOG") == n


def test_distinct_branches_past_the_limit_stop_with_one_line(tmp_path):
    rules = "*mangle\n" + "".join(f"-A PREROUTING -m statistic --mode random --probability 0.5 -j MARK --or-mark "
                                  f"{1 << i:#x}\n" for i in range(12)) + "COMMIT\n"
    (tmp_path / "rules").write_text(rules)
    (tmp_path / "addrs").write_text(_ADDRS)
    (tmp_path / "routes").write_text(_ROUTES)
    argv = ["trace", "--iptables", str(tmp_path / "rules"), "--addrs", str(tmp_path / "addrs"), "--routes",
            str(tmp_path / "routes"), "--in-iface", "cbr0", "--proto", "tcp", "--src", "10.1.10.5", "--dst",
            "8.8.8.8", "--dport", "80", "--format", "json"]
    limited = run([*argv, "--max-branches", "1000"])
    assert limited.status == 2 and len(limited.err_lines) == 1 and "--max-branches" in limited.err
    assert run([*argv, "--max-branches", "100000"]).status == 0      # 4096 marks fit under a larger limit


def _loop_cluster(tmp_path: Path, k: int) -> Path:
    """Two nodes that DNAT every pod packet, at random among k addresses, to pods of the other."""
    base = ("cluster: {cidr: 10.1.0.0/16, service_cidr: 10.152.183.0/24, proxy_mode: iptables}\n"
            "nodes:\n  - {name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24}\n"
            "  - {name: node2, ip: 192.168.1.20/24, pod_cidr: 10.1.20.0/24}\n"
            "pods:\n  - {name: a, node: node1, ip: 10.1.10.5, containers: [{name: c, ports: [80]}]}\n"
            "  - {name: b, node: node2, ip: 10.1.20.5, containers: [{name: c, ports: [80]}]}\n")
    (tmp_path / "plain.yaml").write_text(base)
    assert run(["generate", str(tmp_path / "plain.yaml"), "--out", str(tmp_path / "gen")]).status == 0
    text = base
    for node, other in (("node1", "10.1.20"), ("node2", "10.1.10")):
        path = tmp_path / "gen" / node / "iptables-save.txt"
        dnat = "".join(f"-A PREROUTING -p tcp -m statistic --mode random --probability {1 / (k - i):.11f} "
                       f"-j DNAT --to-destination {other}.{100 + i}\n" for i in range(k - 1))
        dnat += f"-A PREROUTING -p tcp -j DNAT --to-destination {other}.{100 + k - 1}\n"
        path.write_text(path.read_text().replace(":POSTROUTING ACCEPT [0:0]\n", ":POSTROUTING ACCEPT [0:0]\n" + dnat, 1))
        text = text.replace(f"{{name: {node}, ", f"{{name: {node}, iptables: gen/{node}/iptables-save.txt, "
                                                 f"addrs: gen/{node}/ip-addr.json, routes: gen/{node}/ip-route.json, ")
    (tmp_path / "loop.yaml").write_text(text)
    return tmp_path / "loop.yaml"


def test_a_routing_loop_with_random_dnat_ends_each_path_once(tmp_path):
    result = run(["verify", str(_loop_cluster(tmp_path, 3)), "--format", "json", "--jobs", "1"])
    assert result.status == 1, result.err
    assert "routing loop: the packet came back to" in result.out


def test_paths_past_the_limit_stop_with_one_line(tmp_path):
    result = run(["verify", str(_loop_cluster(tmp_path, 3)), "--jobs", "1", "--max-paths", "20"])
    assert result.status == 2 and len(result.err_lines) == 1 and "--max-paths" in result.err, result.err


def test_text_reports_keep_their_line_breaks():
    """Escaping control characters must not escape the reports' own line breaks."""
    out = run(_trace_argv()).out
    assert "\\n" not in out and out.count("\n") > 5
    verify = run(["verify", str(RULES / "broken" / "stale-endpoint.yaml"), "--jobs", "1"]).out
    assert "\\n" not in verify and "cause(s), biggest first:" in verify.split("\n")[7]


def test_pcap_into_a_missing_folder_creates_nothing(tmp_path):
    target = tmp_path / "no" / "such" / "flow.pcapng"
    result = run(_trace_argv("--pcap", str(target), dst="10.1.20.5"))
    assert result.status == 2 and "does not exist" in result.err and len(result.err_lines) == 1
    assert tree(tmp_path) == set()


def test_a_cluster_yaml_over_its_size_limit_is_refused_before_parsing(tmp_path):
    from pktverify.parse.source import MAX_YAML_BYTES
    path = tmp_path / "cluster.yaml"
    with open(path, "wb") as out:
        out.write(b"cluster: {}\n")
        out.truncate(MAX_YAML_BYTES + 1)          # sparse: NULs past the limit, never read
    result = run(["verify", str(path)])
    assert result.status == 2 and "32 MiB" in result.err and len(result.err_lines) == 1
