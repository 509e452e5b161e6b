"""Every reader and every command, fed mutated and hostile input: a verdict or one refusal line.

Valid inputs (the bundled node dumps, the seed cluster, kubectl JSON) are mutated the
ways real corruption and attackers do — byte flips, truncation, line duplication, values
of the wrong JSON/YAML type, hostile names — and handed to the real CLI. The only
acceptable results are exit 0/1 with a verdict, or exit 2 with exactly one line that
names the user's file; never a traceback, never "internal error". (Hypothesis keeps
each example small; the bounded-work tests in ``test_safety.py`` cover the large ones.)
"""

from __future__ import annotations

import json
import os
import random

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..hostile import RULES, assert_verdict_or_refusal, run, write_node_dumps
from ..load import nft_samples
from pktverify.parse.cluster_yaml import load_cluster

NODE = RULES / "kube-node"
IPTABLES = (NODE / "iptables-save.txt").read_bytes()
ADDRS_JSON = (NODE / "ip-addr.json").read_bytes()
ROUTES_TEXT = (NODE / "ip-route.txt").read_bytes()
SEED_YAML = (RULES / "seed" / "cluster.yaml").read_text()

# CI runs a fixed, derandomized sample; PKTVERIFY_FUZZ_EXAMPLES=2000 runs a long random campaign.
_LONG = int(os.environ.get("PKTVERIFY_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_LONG or 60, deadline=None, derandomize=not _LONG,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# What attackers and careless users put where names go.
HOSTILE = st.sampled_from(["../x", "/abs/x", "a/b", "..", ".", "", " ", "x\ny", 'a"b', "a\\b", "a'b", "\x00",
                           "-A FORWARD -j DROP", 'x" -j DROP\n-A FORWARD -j DROP #', "é", "\u202e", "\ufffe",
                           "a" * 300, "UPPER", "x;rm -rf /", "$(id)", "*", "node1", "-", "a_b", "1", "0x10"])
JUNK_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                        st.text(max_size=8), st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), HOSTILE)


def _mutate_bytes(data: bytes, rnd: random.Random, edits: int) -> bytes:
    buf = bytearray(data)
    for _ in range(edits):
        if not buf:
            break
        kind = rnd.randrange(5)
        i = rnd.randrange(len(buf))
        if kind == 0:
            buf[i] ^= 1 << rnd.randrange(8)
        elif kind == 1:
            del buf[i:]
        elif kind == 2:
            buf[i:i] = rnd.choice([b"\n", b'"', b"\\", b"!", b" -j ", b"\x00", b"\xff", b"{", b"]", b"\r", b"\t",
                                   b"999999999999", b"-1", b"0x", b"nan", b"\xe2\x80\xae"])
        elif kind == 3:
            j = buf.rfind(b"\n", 0, i) + 1
            k = buf.find(b"\n", i)
            line = buf[j:k if k >= 0 else len(buf)]
            buf[j:j] = line + b"\n"
        else:
            del buf[i:i + rnd.randrange(1, 40)]
    return bytes(buf)


def _json_type_swap(doc, rnd: random.Random, junk: list) -> None:
    """Replace one value somewhere in ``doc`` (in place) by a value of another type."""
    for _ in range(50):
        parent, key, node = None, None, doc
        for _depth in range(rnd.randrange(1, 8)):
            if isinstance(node, dict) and node:
                parent, key = node, rnd.choice(list(node))
            elif isinstance(node, list) and node:
                parent, key = node, rnd.randrange(len(node))
            else:
                break
            node = parent[key]
        if parent is not None:
            parent[key] = junk[rnd.randrange(len(junk))] if junk else None
            return


def _trace_argv(tmp, iptables: bytes, addrs: bytes, routes: bytes) -> list[str]:
    for name, data in (("rules.txt", iptables), ("addrs", addrs), ("routes", routes)):
        (tmp / name).write_bytes(data)
    return ["trace", "--iptables", str(tmp / "rules.txt"), "--addrs", str(tmp / "addrs"), "--routes",
            str(tmp / "routes"), "--in-iface", "cbr0", "--proto", "tcp", "--src", "10.1.10.7",
            "--dst", "10.152.183.164", "--dport", "80"]


@FUZZ
@given(st.integers(0, 2**32), st.integers(1, 6), st.sampled_from(["iptables", "addrs", "routes"]))
def test_trace_survives_corrupted_dumps(tmp_path_factory, seed, edits, which):
    tmp = tmp_path_factory.mktemp("fuzz")
    rnd = random.Random(seed)
    files = {"iptables": IPTABLES, "addrs": ADDRS_JSON, "routes": ROUTES_TEXT}
    files[which] = _mutate_bytes(files[which], rnd, edits)
    result = run(_trace_argv(tmp, files["iptables"], files["addrs"], files["routes"]))
    assert_verdict_or_refusal(result, names=(str(tmp),))


@FUZZ
@given(st.integers(0, 2**32), st.lists(JUNK_VALUES, min_size=1, max_size=4), st.sampled_from(["addrs", "routes"]))
def test_ip_json_with_wrong_types(tmp_path_factory, seed, junk, which):
    tmp = tmp_path_factory.mktemp("fuzz")
    rnd = random.Random(seed)
    addrs = json.loads(ADDRS_JSON)
    routes = [{"dst": "default", "gateway": "192.168.1.1", "dev": "eth0"},
              {"dst": "10.1.10.0/24", "dev": "cbr0", "protocol": "kernel", "scope": "link", "prefsrc": "10.1.10.1"},
              {"dst": "192.168.1.0/24", "dev": "eth0", "scope": "link", "metric": 100}]
    _json_type_swap(addrs if which == "addrs" else routes, rnd, junk)
    result = run(_trace_argv(tmp, IPTABLES, json.dumps(addrs).encode(), json.dumps(routes).encode()))
    assert_verdict_or_refusal(result, names=(str(tmp),))


@FUZZ
@given(st.integers(0, 2**32), st.integers(1, 5))
def test_verify_survives_corrupted_yaml(tmp_path_factory, seed, edits):
    tmp = tmp_path_factory.mktemp("fuzz")
    path = tmp / "cluster.yaml"
    path.write_bytes(_mutate_bytes(SEED_YAML.encode(), random.Random(seed), edits))
    assert_verdict_or_refusal(run(["verify", str(path), "--jobs", "1"]), names=(str(path),))


@FUZZ
@given(st.integers(0, 2**32), st.lists(JUNK_VALUES, min_size=1, max_size=3))
def test_verify_and_generate_with_yaml_values_of_the_wrong_type(tmp_path_factory, seed, junk):
    tmp = tmp_path_factory.mktemp("fuzz")
    doc = yaml.safe_load(SEED_YAML)
    _json_type_swap(doc, random.Random(seed), junk)
    path = tmp / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    assert_verdict_or_refusal(run(["verify", str(path), "--jobs", "1"]), names=(str(path),))
    out = tmp / "out"
    result = run(["generate", str(path), "--out", str(out)])
    assert_verdict_or_refusal(result, names=(str(path),))
    written = {p.relative_to(tmp) for p in tmp.rglob("*")} - {path.relative_to(tmp)}
    assert all(str(p).startswith("out") for p in written), written      # nothing outside the folder


@FUZZ
@given(HOSTILE, st.sampled_from(["node", "pod", "namespace", "service", "port", "label-key", "label-value",
                                 "bridge", "container", "selector"]))
def test_hostile_names_are_refused_or_harmless(tmp_path_factory, name, where):
    tmp = tmp_path_factory.mktemp("names")
    doc = yaml.safe_load(SEED_YAML)
    if where == "node":
        old = doc["nodes"][0]["name"]
        doc["nodes"][0]["name"] = name
        for p in doc["pods"]:
            p["node"] = name if p["node"] == old else p["node"]
    elif where == "pod":
        doc["pods"][0]["name"] = name
    elif where == "namespace":
        doc["services"][0]["namespace"] = name
    elif where == "service":
        doc["services"][1]["name"] = name
    elif where == "port":
        doc["services"][1]["ports"][0]["name"] = name
    elif where == "label-key":
        doc["pods"][0]["labels"] = {name: "web"}
    elif where == "label-value":
        doc["pods"][0]["labels"] = {"app": name}
    elif where == "selector":
        doc["services"][1]["selector"] = {"app": name}
    elif where == "bridge":
        doc["nodes"][0]["bridge"] = name
    else:
        doc["pods"][0]["containers"][0]["name"] = name
    path = tmp / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    out = tmp / "out"
    result = run(["generate", str(path), "--out", str(out)])
    assert_verdict_or_refusal(result, names=(str(path),))
    assert all(str(p).startswith(("out", "cluster.yaml")) for p in (q.relative_to(tmp) for q in tmp.rglob("*")))
    if result.status == 0:
        # Whatever was accepted went into rule text that iptables-restore reads back the same:
        # no line was injected.
        for rules in out.glob("*/iptables-save.txt"):
            text = rules.read_text()
            assert "-A FORWARD -j DROP" not in text.replace('"', "").split("\n")
    assert_verdict_or_refusal(run(["verify", str(path), "--jobs", "1"]), names=(str(path),))


def _kubectl_doc() -> dict:
    cluster = load_cluster(RULES / "seed" / "cluster-iptables.yaml")
    items = [{"kind": "Node", "metadata": {"name": n.name}, "spec": {"podCIDR": "10.1.%d.0/24" % (10 * (i + 1))},
              "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.%d" % (10 * (i + 1))}]}}
             for i, n in enumerate(cluster.nodes)]
    items += [{"kind": "Pod", "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
               "spec": {"nodeName": "node1", "containers": [{"name": "c", "ports": [{"containerPort": 8080}]}]},
               "status": {"podIP": "10.1.10.5", "conditions": [{"type": "Ready", "status": "True"}]}},
              {"kind": "Service", "metadata": {"name": "http-svc", "namespace": "default"},
               "spec": {"clusterIP": "10.152.183.164", "selector": {"app": "web"},
                        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}},
              {"kind": "EndpointSlice", "metadata": {"name": "s", "namespace": "default",
                                                     "labels": {"kubernetes.io/service-name": "http-svc"}},
               "ports": [{"name": "http", "port": 8080}],
               "endpoints": [{"addresses": ["10.1.10.5"], "conditions": {"ready": True},
                              "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"}}]}]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def _kubectl_dumps(tmp) -> None:
    write_node_dumps(load_cluster(RULES / "seed" / "cluster-iptables.yaml"), tmp)


@FUZZ
@given(st.integers(0, 2**32), st.lists(JUNK_VALUES, min_size=1, max_size=4))
def test_kubectl_json_with_wrong_types(tmp_path_factory, seed, junk):
    tmp = tmp_path_factory.mktemp("kubectl")
    _kubectl_dumps(tmp)
    doc = _kubectl_doc()
    _json_type_swap(doc, random.Random(seed), junk)
    path = tmp / "cluster.json"
    path.write_text(json.dumps(doc, indent=1))
    result = run(["verify", str(path), "--cluster-cidr", "10.1.0.0/16", "--service-cidr", "10.152.183.0/24",
                  "--jobs", "1"])
    assert_verdict_or_refusal(result, names=(str(path), str(tmp)))


@FUZZ
@given(st.integers(0, 2**32), st.integers(1, 5))
def test_kubectl_json_corrupted(tmp_path_factory, seed, edits):
    tmp = tmp_path_factory.mktemp("kubectl")
    _kubectl_dumps(tmp)
    path = tmp / "cluster.json"
    path.write_bytes(_mutate_bytes(json.dumps(_kubectl_doc(), indent=1).encode(), random.Random(seed), edits))
    result = run(["verify", str(path), "--cluster-cidr", "10.1.0.0/16", "--service-cidr", "10.152.183.0/24",
                  "--jobs", "1"])
    assert_verdict_or_refusal(result, names=(str(path), str(tmp)))


@FUZZ
@given(st.lists(st.sampled_from(["trace", "verify", "generate", "--jobs", "0", "-1", "99999",
                                 "--sport", "٣", "70000", "--format", "xml", "--pcap", "--pcap-dir", "--all",
                                 "--max-branches", "--max-paths", "x", "--in-iface", "--local", "--proto", "gre",
                                 "--examples", "--seed", "--cluster-cidr", "10.0.0.1/8", "--dumps", "/dev/null"]),
                max_size=8))
def test_usage_errors_are_one_line(argv):
    result = run(argv)
    assert_verdict_or_refusal(result)


IPSETS = (RULES.parent / "tests" / "corpus" / "realworld" / "kube-proxy-ipvs" / "ipset-save.txt").read_bytes()
IP_RULES = (b'[{"priority":0,"src":"all","table":"local"},{"priority":100,"src":"all","fwmark":"0x1",'
            b'"fwmask":"0xff","table":"100"},{"priority":200,"not":null,"src":"10.1.10.0","srclen":24,'
            b'"iif":"cbr0","table":"main"},{"priority":32766,"src":"all","table":"main"}]')
IP_RULES_TEXT = b"0:\tfrom all lookup local\n100:\tfrom all fwmark 0x1/0xff lookup 100\n32766:\tfrom all lookup main\n"


@FUZZ
@given(st.integers(0, 2**32), st.integers(1, 6), st.sampled_from(["ipsets", "rules-json", "rules-text"]))
def test_ipset_and_ip_rule_readers_survive_corruption(tmp_path_factory, seed, edits, which):
    tmp = tmp_path_factory.mktemp("fuzz")
    rnd = random.Random(seed)
    argv = _trace_argv(tmp, IPTABLES, ADDRS_JSON, ROUTES_TEXT)
    source = {"ipsets": IPSETS, "rules-json": IP_RULES, "rules-text": IP_RULES_TEXT}[which]
    (tmp / "extra").write_bytes(_mutate_bytes(source, rnd, edits))
    argv += ["--ipsets" if which == "ipsets" else "--rules", str(tmp / "extra")]
    assert_verdict_or_refusal(run(argv), names=(str(tmp),))


@FUZZ
@given(st.integers(0, 2**32), st.lists(JUNK_VALUES, min_size=1, max_size=3))
def test_ip_rule_json_with_wrong_types(tmp_path_factory, seed, junk):
    tmp = tmp_path_factory.mktemp("fuzz")
    doc = json.loads(IP_RULES)
    _json_type_swap(doc, random.Random(seed), junk)
    argv = _trace_argv(tmp, IPTABLES, ADDRS_JSON, ROUTES_TEXT)
    (tmp / "rules.json").write_text(json.dumps(doc))
    assert_verdict_or_refusal(run([*argv, "--rules", str(tmp / "rules.json")]), names=(str(tmp),))


# nftables rulesets in their three forms: the kernel-listed samples and a real-world script.
NFT_FORMS = {"script": (RULES.parent / "tests" / "corpus" / "nft" / "docker-29" / "ruleset.nft").read_bytes(),
             "text": nft_samples.TEXT.encode(), "json": nft_samples.JSON.encode()}


def _nft_argv(tmp, nft: bytes) -> list[str]:
    argv = _trace_argv(tmp, IPTABLES, ADDRS_JSON, ROUTES_TEXT)
    (tmp / "ruleset.nft").write_bytes(nft)
    at = argv.index("--iptables")
    return argv[:at] + ["--nft", str(tmp / "ruleset.nft")] + argv[at + 2:]


@FUZZ
@given(st.integers(0, 2**32), st.integers(1, 6), st.sampled_from(sorted(NFT_FORMS)))
def test_trace_and_lint_survive_corrupted_nft_rulesets(tmp_path_factory, seed, edits, form):
    """Byte flips, cuts, quotes, braces and NULs in an nft ruleset of any form: a verdict or one line."""
    tmp = tmp_path_factory.mktemp("fuzz")
    nft = _mutate_bytes(NFT_FORMS[form], random.Random(seed), edits)
    assert_verdict_or_refusal(run(_nft_argv(tmp, nft)), names=(str(tmp),))
    result = run(["lint", "--nft", str(tmp / "ruleset.nft")])
    assert result.status in (0, 1, 2) and "Traceback" not in result.err, result.err
    assert "internal error" not in result.err, result.err


@FUZZ
@given(st.integers(0, 2**32), st.lists(JUNK_VALUES, min_size=1, max_size=4))
def test_nft_json_with_wrong_types(tmp_path_factory, seed, junk):
    """A value of another type anywhere in `nft -j list ruleset` output: a verdict or one line."""
    tmp = tmp_path_factory.mktemp("fuzz")
    doc = json.loads(nft_samples.JSON)
    _json_type_swap(doc, random.Random(seed), junk)
    assert_verdict_or_refusal(run(_nft_argv(tmp, json.dumps(doc).encode())), names=(str(tmp),))
