"""What the API server refuses is refused in kubectl input and in the cluster YAML alike, in one
FILE:LINE line (exit 2); what it accepts but means something odd (an external IP that is a node's
address or another service's ClusterIP) is kept and said in a note. Numbers are ASCII and short,
a full node port range is an error, loading is linear in addresses and ports (work counted, not
timed), and every note is one row of the text report."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from pktverify.cli import main
from pktverify.errors import InputError, InvalidArgument
from pktverify.load import cluster_kubectl
from pktverify.load.cluster_kubectl import load_kubectl_cluster
from pktverify.model.addresses import format_ip, parse_ip
from pktverify.parse import cluster_yaml, k8s_values
from pktverify.parse.cluster_yaml import allocate_node_ports, parse_cluster

NETS = ["--cluster-cidr", "10.1.0.0/16", "--service-cidr", "10.152.183.0/24"]


# ---------------------------------------------------------------- kubectl input

def _kubectl(tmp_path, spec=None, status=None, items=(), name="web"):
    """kubectl JSON (one object member a line, as kubectl prints it) for one node and one service."""
    service = {"kind": "Service", "metadata": {"name": name, "namespace": "default"},
               "spec": {"clusterIP": "10.152.183.10", "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                        **(spec or {})}}
    if status is not None:
        service["status"] = status
    doc = {"apiVersion": "v1", "kind": "List", "items": [
        {"kind": "Node", "metadata": {"name": "node1"}, "spec": {"podCIDR": "10.1.10.0/24"},
         "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.10"}]}},
        service, *items]}
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False))
    return path


def _load(path):
    return load_kubectl_cluster(path, cluster_cidr="10.1.0.0/16", service_cidr="10.152.183.0/24")


def _line(path, needle):
    """The line of ``path`` that holds ``needle`` (exactly one)."""
    hits = [n for n, text in enumerate(path.read_text().split("\n"), 1) if needle in text]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def _affinity(timeout):
    return {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": timeout}}}


def _slice(address):
    return {"kind": "EndpointSlice", "metadata": {"name": "web-x", "namespace": "default",
                                                  "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}]}


KUBECTL_REFUSED = [
    # (spec, status, extra items, the text on the offending line, what the message says)
    (_affinity(-5), None, (), '"timeoutSeconds": -5', "must be greater than 0 and at most 86400"),
    (_affinity(86401), None, (), '"timeoutSeconds": 86401', "must be greater than 0 and at most 86400"),
    (_affinity(0), None, (), '"timeoutSeconds": 0', "must be greater than 0 and at most 86400"),
    ({"sessionAffinity": "Sticky"}, None, (), '"Sticky"', "sessionAffinity must be None or ClientIP"),
    ({"sessionAffinity": "None", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}, None, (),
     '"sessionAffinityConfig"', "must not be set when sessionAffinity is None"),
    ({"externalIPs": ["192.0.2.1", "127.0.0.1"]}, None, (), '"127.0.0.1"', "loopback range (127.0.0.0/8"),
    ({"externalIPs": ["0.0.0.0"]}, None, (), '"0.0.0.0"', "may not be unspecified"),
    ({"externalIPs": ["169.254.169.254"]}, None, (), '"169.254.169.254"', "link-local range (169.254.0.0/16"),
    ({"externalIPs": ["224.0.0.251"]}, None, (), '"224.0.0.251"', "link-local multicast range (224.0.0.0/24"),
    ({"externalIPs": ["::1"]}, None, (), '"::1"', "loopback range"),
    ({"externalIPs": ["::"]}, None, (), '"::"', "may not be unspecified"),
    ({"externalIPs": ["fe80::1"]}, None, (), '"fe80::1"', "link-local range"),
    ({"externalIPs": ["ff02::fb"]}, None, (), '"ff02::fb"', "link-local multicast range"),
    ({"externalIPs": ["1:2:3"]}, None, (), '"1:2:3"', "'1:2:3' is not a valid IP address"),
    ({"externalIPs": ["fe80::1%eth0"]}, None, (), '"fe80::1%eth0"', "is not a valid IP address"),
    ({"externalIPs": ["2001:db8::g"]}, None, (), '"2001:db8::g"', "is not a valid IP address"),
    ({"externalIPs": ["::ffff:192.0.2.1"]}, None, (), '"::ffff:192.0.2.1"', "IPv4-mapped IPv6 address"),
    ({"externalIPs": ["192.0.2.300"]}, None, (), '"192.0.2.300"', "octet 300 out of range"),
    ({"clusterIP": "fd00::zz"}, None, (), '"fd00::zz"', "clusterIP 'fd00::zz' is not a valid IP address"),
    ({"type": "LoadBalancer"}, {"loadBalancer": {"ingress": [{"hostname": "lb.example.com\nnote (forged): ok"}]}},
     (), '"hostname"', "must be a DNS-1123 subdomain"),
    ({"type": "LoadBalancer"}, {"loadBalancer": {"ingress": [{"hostname": "lb\x1b[31m.example.com"}]}},
     (), '"hostname"', "must be a DNS-1123 subdomain"),
    ({"type": "LoadBalancer"}, {"loadBalancer": {"ingress": [{"hostname": "192.0.2.9"}]}},
     (), '"hostname"', "must be a DNS name, not an IP address"),
    ({"type": "LoadBalancer"}, {"loadBalancer": {"ingress": [{"ip": "fd00::1::2"}]}},
     (), '"ip"', "is not a valid IP address"),
    ({"selector": None}, None, (_slice("127.0.0.5"),), '"127.0.0.5"', "endpoint address: 127.0.0.5 may not be in "
                                                                    "the loopback range"),
]


@pytest.mark.parametrize("spec, status, items, needle, message", KUBECTL_REFUSED)
def test_kubectl_values_the_api_server_refuses_are_one_line_at_their_line(tmp_path, spec, status, items, needle,
                                                                          message):
    path = _kubectl(tmp_path, spec, status, items)
    with pytest.raises(InputError) as caught:
        _load(path)
    assert caught.value.line == _line(path, needle) and message in caught.value.message, str(caught.value)
    assert "\n" not in str(caught.value).replace("\\n", "")


def test_kubectl_refusal_is_one_stderr_line_and_exit_2(tmp_path, capsys):
    path = _kubectl(tmp_path, _affinity(86401))
    assert main(["verify", str(path), *NETS]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pktverify: {path}:{_line(path, '86401')}: service default/web")


def test_kubectl_accepts_what_the_api_server_accepts(tmp_path):
    """Multicast outside 224.0.0.0/24 passes the API server (kept); IPv6 is noted; duplicates are one
    address; ClientIP without a config defaults to 10,800 s and 86,400 s is the largest allowed."""
    path = _kubectl(tmp_path, {"externalIPs": ["239.1.2.3", "2001:db8::1", "192.0.2.1", "192.0.2.1"],
                               **_affinity(86400)})
    cluster = _load(path)
    svc = cluster.services[0]
    assert [format_ip(ip) for ip in svc.external_ips] == ["239.1.2.3", "192.0.2.1"] and svc.affinity_timeout == 86400
    assert any("2001:db8::1" in n and "IPv6" in n for n in cluster.extras["notes"])
    assert _load(_kubectl(tmp_path, {"sessionAffinity": "ClientIP"})).services[0].affinity_timeout == 10800
    assert _load(_kubectl(tmp_path, {"sessionAffinity": ""})).services[0].affinity_timeout == 0


def test_kubectl_external_ip_of_a_node_or_another_service_is_kept_and_noted(tmp_path):
    """The API server accepts both (it knows no node addresses): verified as written, and a note
    says kube-proxy captures that address on the service's ports."""
    other = {"kind": "Service", "metadata": {"name": "db", "namespace": "default"},
             "spec": {"clusterIP": "10.152.183.20", "ports": [{"name": "sql", "port": 5432}]}}
    path = _kubectl(tmp_path, {"externalIPs": ["192.168.1.10", "10.152.183.20"]}, items=(other,))
    cluster = _load(path)
    web = next(s for s in cluster.services if s.name == "web")
    assert [format_ip(ip) for ip in web.external_ips] == ["192.168.1.10", "10.152.183.20"]
    notes = cluster.extras["notes"]
    assert any("external IP 192.168.1.10 is node node1's address" in n and "80/tcp" in n for n in notes), notes
    assert any("external IP 10.152.183.20 is the ClusterIP of service default/db" in n for n in notes), notes


def test_kubectl_numbers_of_thousands_of_digits_are_one_line(tmp_path):
    path = _kubectl(tmp_path)
    doc = json.loads(path.read_text())
    doc["items"][0]["spec"]["podCIDR"] = "10.1.10.0/" + "2" * 5000
    path.write_text(json.dumps(doc, indent=2))
    with pytest.raises(InputError) as caught:
        _load(path)
    assert caught.value.line == _line(path, '"podCIDR"') and "out of range 0-32" in caught.value.message
    assert "sys.set_int_max_str_digits" not in str(caught.value)
    with pytest.raises(InvalidArgument, match="out of range 0-32"):
        load_kubectl_cluster(path, cluster_cidr="10.1.0.0/" + "1" * 5000, service_cidr="10.152.183.0/24")


@pytest.mark.parametrize("port", ["3" * 5000, "\u0663\u0663\u0663"], ids=["5000-digits", "arabic-indic"])
def test_userspace_proxy_ports_are_read_in_ascii_digits_only(tmp_path, port):
    """A KUBE-PORTALS REDIRECT port of 5,000 digits or of Arabic-Indic digits is no proxy port
    (int() would fail with Python's own message, or read '٣٣٣' as 333 and refuse the node for a
    proxy port it does not have): such a line is left to the iptables-save parser."""
    from dataclasses import replace

    from pktverify.load.kubectl_nodes import check_userspace_ports
    cluster = parse_cluster(YAML_HEAD.replace("iptables}", "userspace}") + YAML_POD + YAML_SVC, source="c.yaml")
    dump = tmp_path / "iptables-save.txt"
    dump.write_text("*nat\n:KUBE-PORTALS-CONTAINER - [0:0]\n-A KUBE-PORTALS-CONTAINER -d 10.152.183.10/32 -p tcp -m "
                    f"tcp --dport 80 -j REDIRECT --to-ports {port}\nCOMMIT\n")
    node = replace(cluster.nodes[0], iptables=str(dump))
    assert check_userspace_ports(replace(cluster, nodes=(node,))) is None


# ---------------------------------------------------------------- cluster YAML

YAML_HEAD = """cluster: {cidr: 10.1.0.0/16, service_cidr: 10.152.183.0/24, proxy_mode: iptables}
nodes:
  - {name: node1, ip: 192.168.1.10/24, pod_cidr: 10.1.10.0/24}
"""
YAML_POD = """pods:
  - {name: a, node: node1, ip: 10.1.10.5, labels: {app: web}, containers: [{name: c, ports: [8080]}]}
"""
YAML_SVC = """services:
  - {name: web, cluster_ip: 10.152.183.10, selector: {app: web}, ports: [{name: http, port: 80, target_port: 8080}]}
"""


def _yaml_service(extra: str, port_extra: str = "") -> str:
    return YAML_HEAD + YAML_POD + ("services:\n  - {name: web, type: NodePort, cluster_ip: 10.152.183.10, selector: "
                                   "{app: web},\n     ports: [{name: http, port: 80, target_port: 8080" + port_extra
                                   + "}],\n     " + extra + "}\n")


YAML_REFUSED = [
    # (service keys, the port's extra keys, the line, what the message says)
    ("external_ips: [192.0.2.1, 127.0.0.1]", "", 9, "external_ips: 127.0.0.1 may not be in the loopback range"),
    ("external_ips: [0.0.0.0]", "", 9, "may not be unspecified"),
    ("external_ips: [169.254.1.1]", "", 9, "link-local range"),
    ("external_ips: [224.0.0.1]", "", 9, "link-local multicast range"),
    ("external_ips: ['::1']", "", 9, "loopback range"),
    ("external_ips: ['1:2:3']", "", 9, "'1:2:3' is not a valid IP address"),
    ("external_ips: ['::ffff:192.0.2.1']", "", 9, "IPv4-mapped"),
    ("endpoint_ips: [127.0.0.1]", "", 9, "endpoint_ips: 127.0.0.1 may not be in the loopback range"),
    ("load_balancer_ips: ['fd00::1::2']", "", 9, "is not a valid IP address"),
    ("session_affinity: Sticky", "", 9, "session_affinity must be None or ClientIP"),
    ("session_affinity: ClientIP, session_affinity_timeout: 86401", "", 9, "session_affinity_timeout is 1-86400"),
    ("session_affinity: ClientIP, session_affinity_timeout: -5", "", 9, "session_affinity_timeout is 1-86400"),
    ("session_affinity: ClientIP, session_affinity_timeout: 0", "", 9, "session_affinity_timeout is 1-86400"),
    ("session_affinity: ClientIP, session_affinity_timeout: " + "9" * 5000, "", 9,
     "a number of 5,000 characters (at most 40 are read)"),
    ("session_affinity: None", ", node_port: " + "3" * 5000, 8, "a number of 5,000 characters"),
    ("session_affinity: None", ", node_port: 0x" + "3" * 5000, 8, "a number of 5,002 characters"),
]


@pytest.mark.parametrize("extra, port_extra, line, message", YAML_REFUSED, ids=lambda v: str(v)[:40])
def test_yaml_values_the_api_server_refuses_are_one_line_at_their_line(extra, port_extra, line, message):
    with pytest.raises(InputError) as caught:
        parse_cluster(_yaml_service(extra, port_extra), source="c.yaml")
    assert (caught.value.source, caught.value.line) == ("c.yaml", line) and message in caught.value.message, \
        str(caught.value)[:300]
    assert "sys.set_int_max_str_digits" not in str(caught.value)


def test_yaml_external_ip_of_a_node_or_another_service_is_kept_and_noted():
    text = _yaml_service("external_ips: [192.168.1.10, 10.152.183.20, 239.1.1.1, '2001:db8::1']").replace(
        "services:\n", "services:\n  - {name: db, cluster_ip: 10.152.183.20, endpoint_ips: [10.1.10.5], ports: "
                       "[{port: 5432}]}\n")
    cluster = parse_cluster(text, source="c.yaml")
    web = next(s for s in cluster.services if s.name == "web")
    assert [format_ip(ip) for ip in web.external_ips] == ["192.168.1.10", "10.152.183.20", "239.1.1.1"]
    notes = cluster.extras["notes"]
    assert any("external IP 192.168.1.10 is node node1's address" in n for n in notes), notes
    assert any("external IP 10.152.183.20 is the ClusterIP of service default/db" in n for n in notes), notes
    assert any("2001:db8::1" in n and "IPv6" in n for n in notes), notes


@pytest.mark.parametrize("text", ["\u00b3-5", "\u0663\u0660\u0660\u0660\u0660-\u0663\u0662\u0667\u0666\u0667",
                                  "30000-" + "9" * 5000, "1-65536", "30000"],
                         ids=["superscript", "arabic-indic", "5000-digits", "too-high", "no-dash"])
def test_node_port_range_is_ascii_digits_in_one_line(text, capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(_yaml_service("").replace("proxy_mode: iptables}", f"proxy_mode: iptables, node_port_range: "
                                                                       f"'{text}'}}"))
    assert main(["verify", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pktverify: {path}:1: node_port_range must be LOW-HIGH"), err
    assert "invalid literal" not in err and "sys.set_int_max_str_digits" not in err


def test_a_full_node_port_range_is_an_error_at_the_service_line(tmp_path, capsys):
    """The API server refuses a service it finds no node port for ('range is full'): so does the
    YAML, at the service that found none (it was left without one and the cluster 'held')."""
    text = _yaml_service("").replace("proxy_mode: iptables}", "proxy_mode: iptables, node_port_range: 30000-30000}")
    text += "  - {name: api, type: NodePort, cluster_ip: 10.152.183.11, selector: {app: web}, ports: [{port: 81}]}\n"
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert main(["verify", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pktverify: {path}:10: service default/api port 81/TCP: no node "
                                                   "port left in node_port_range 30000-30000"), err
    # one port more in the range and both services have theirs
    cluster = parse_cluster(text.replace("30000-30000", "30000-30001"), source="c.yaml")
    assert [p.node_port for s in cluster.services for p in s.ports] == [30000, 30001]


# ---------------------------------------------------------------- linear work

class _CountingInt(int):
    """An address that counts the comparisons made with it (a list's 'in' compares with each)."""
    compared = 0

    def __eq__(self, other):
        _CountingInt.compared += 1
        return int.__eq__(self, other)

    __hash__ = int.__hash__


def _count_comparisons(monkeypatch, *modules):
    real = parse_ip.__wrapped__ if hasattr(parse_ip, "__wrapped__") else parse_ip
    for module in modules:
        if hasattr(module, "parse_ip"):
            monkeypatch.setattr(module, "parse_ip", lambda text: _CountingInt(real(text)))
    _CountingInt.compared = 0


N_ADDRESSES = 3000


def test_kubectl_external_ips_and_endpoints_are_read_in_linear_work(tmp_path, monkeypatch):
    """Each address is compared with a bounded number of others (a list's 'in' compares with all:
    200,000 external IPs did not load in 60 s)."""
    ips = [f"11.0.{i >> 8}.{i & 255}" for i in range(N_ADDRESSES)]
    items = [{**_slice("10.1.10.5"), "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}
                                                   for ip in ips]}]
    path = _kubectl(tmp_path, {"externalIPs": ips + ips[:10], "selector": None}, items=items)
    _count_comparisons(monkeypatch, cluster_kubectl, k8s_values)
    svc = _load(path).services[0]
    assert len(svc.external_ips) == N_ADDRESSES and len(svc.endpoint_ips) == N_ADDRESSES
    assert _CountingInt.compared <= 4 * N_ADDRESSES, _CountingInt.compared


def test_yaml_external_ips_are_read_in_linear_work(monkeypatch):
    listed = ", ".join(f"11.0.{i >> 8}.{i & 255}" for i in range(N_ADDRESSES))
    _count_comparisons(monkeypatch, cluster_yaml, k8s_values)
    cluster = parse_cluster(_yaml_service(f"external_ips: [{listed}], endpoint_ips: [{listed}]"), source="c.yaml")
    assert len(cluster.services[0].external_ips) == N_ADDRESSES
    assert _CountingInt.compared <= 4 * N_ADDRESSES, _CountingInt.compared


class _CountingProtocol(str):
    """A protocol name that counts how often it is hashed: each node port tried costs one."""
    hashed = 0

    def __hash__(self):
        _CountingProtocol.hashed += 1
        return str.__hash__(self)


def test_node_port_allocation_is_linear_in_ports():
    """Each port's node port is found without scanning the range again from its start (3,000 ports
    of one LoadBalancer took ~4.5 million tries)."""
    from dataclasses import replace
    cluster = parse_cluster(_yaml_service(""), source="c.yaml")
    svc = cluster.services[0]
    tcp = _CountingProtocol("tcp")
    ports = tuple(replace(svc.ports[0], name=f"p{i}", port=1000 + i, protocol=tcp, node_port=None)
                  for i in range(3000))
    taken = replace(svc, name="taken", ports=tuple(replace(svc.ports[0], name=f"t{i}", protocol="tcp",
                                                           node_port=20000 + 2 * i) for i in range(500)))
    _CountingProtocol.hashed = 0
    (_, got) = allocate_node_ports((taken, replace(svc, ports=ports)), (20000, 32767))
    numbers = [p.node_port for p in got.ports]
    assert len(set(numbers)) == 3000 and numbers == sorted(numbers) and not set(numbers) & set(range(20000, 21000, 2))
    assert numbers[0] == 20001 and numbers[-1] == 23499       # the lowest free ones, as before
    assert _CountingProtocol.hashed <= 5 * (3000 + 500), _CountingProtocol.hashed      # was ~4.5 million


def test_200000_kubectl_external_ips_load_in_bounded_time(tmp_path):
    """End to end on the size the issue reports (did not load in 60 s)."""
    path = tmp_path / "big.json"
    script = textwrap.dedent(f"""
        import json, sys
        from pktverify.load.cluster_kubectl import load_kubectl_cluster
        ips = [f"11.{{i >> 16}}.{{(i >> 8) & 255}}.{{i & 255}}" for i in range(200_000)]
        doc = {{"kind": "List", "items": [
            {{"kind": "Node", "metadata": {{"name": "node1"}}, "spec": {{"podCIDR": "10.1.10.0/24"}},
             "status": {{"addresses": [{{"type": "InternalIP", "address": "192.168.1.10"}}]}}}},
            {{"kind": "Service", "metadata": {{"name": "web"}}, "spec": {{"clusterIP": "10.152.183.10",
             "ports": [{{"port": 80}}], "externalIPs": ips}}}}]}}
        open({str(path)!r}, "w").write(json.dumps(doc, indent=1))
        c = load_kubectl_cluster({str(path)!r}, cluster_cidr="10.1.0.0/16", service_cidr="10.152.183.0/24")
        print(len(c.services[0].external_ips))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "200000", done.stderr[-500:]


def test_a_load_balancer_of_3000_ports_loads_with_a_node_port_each():
    ports = "".join(f"      - {{name: p{i}, port: {1000 + i}, target_port: 8080}}\n" for i in range(3000))
    text = (YAML_HEAD.replace("iptables}", "iptables, node_port_range: 20000-32767}") + YAML_POD
            + "services:\n  - name: web\n    type: LoadBalancer\n    cluster_ip: 10.152.183.10\n    selector: {app: web}\n"
            "    load_balancer_ips: [198.51.100.7]\n    ports:\n" + ports)
    numbers = [p.node_port for p in parse_cluster(text, source="c.yaml").services[0].ports]
    assert numbers == list(range(20000, 23000))


# ---------------------------------------------------------------- text report

def test_every_note_is_one_row_of_the_text_report_and_json_and_html_keep_it():
    """A note holding a line break or an ANSI escape (a hostname, a folder name) is escaped in its
    row: it cannot write a row of its own ('note (...)', a forged 'holds')."""
    from pktverify.check.invariants import InvariantResult
    from pktverify.report.verify_html import verify_to_html
    from pktverify.report.verify_report import verify_to_json, verify_to_text
    hostile = "lb.example.com\nservice-reachability  holds  1  0\x1b[2J\x07\u2028x<img src=x>"
    results = [InvariantResult("service-reachability", checked=3, notes=[hostile, "plain"])]
    text = verify_to_text(results)
    rows = text.split("\n")
    assert [r for r in rows if r.startswith("note")] == [
        "note (service-reachability): lb.example.com\\nservice-reachability  holds  1  0\\x1b[2J\\x07\\u2028x<img src=x>",
        "note (service-reachability): plain"]
    assert sum(1 for r in rows if "holds" in r) == 2 and not any(c in text for c in "\x1b\x07\u2028")
    assert json.loads(verify_to_json(results))["invariants"][0]["notes"][0] == hostile
    cluster = parse_cluster(YAML_HEAD + YAML_POD + YAML_SVC, source="c.yaml")
    page = verify_to_html(cluster, results)
    assert "&lt;img src=x&gt;" in page and "<img src=x>" not in page


def test_kubectl_named_target_ports_are_resolved_in_linear_work(tmp_path, monkeypatch):
    """A port's named target is looked up in a map of the slices' ports made once (it scanned every
    slice port for each service port: 3,000 ports, 9 million reads)."""
    from pktverify.parse.json_input import JsonNode
    n = 1000
    ports = [{"name": f"p{i}", "port": 1000 + i, "targetPort": f"t{i}"} for i in range(n)]
    slice_ = {**_slice("10.1.10.5"), "ports": [{"name": f"p{i}", "port": 8000 + i} for i in range(n)]}
    path = _kubectl(tmp_path, {"ports": ports, "selector": None}, items=(slice_,))
    reads = {"n": 0}
    real = JsonNode.get

    def counting(self, *args, **kw):
        reads["n"] += 1
        return real(self, *args, **kw)
    monkeypatch.setattr(JsonNode, "get", counting)
    svc = _load(path).services[0]
    assert [p.target_port for p in svc.ports] == [8000 + i for i in range(n)]
    assert reads["n"] <= 30 * n, reads


def test_kubectl_kinds_in_notes_are_one_line(tmp_path):
    path = _kubectl(tmp_path, items=({"kind": "Foo\nnote (service-reachability): forged", "metadata": {"name": "x"}},))
    notes = _load(path).extras["notes"]
    assert any("Foo\\nnote (service-reachability): forged object(s) not modelled" in n for n in notes), notes
    assert not any("\n" in n for n in notes)
