"""ICMP entries of ``hash:ip,port`` sets, as ``ipset save`` (7.x) writes them, against the kernel.

``ipset`` keeps an ICMP entry's type and code where a port would be, and saves it by name
(``icmp:echo-request``) or as ``icmp:TYPE/CODE``. Two namespaces joined by a veth pair: the
sender drops ICMP to the set's members in OUTPUT; an echo request is sent from a raw socket;
pktverify traces the same request on the sender's dumps (``iptables-save``, ``ip -j addr``,
``ip -j route``, ``ipset save`` read back from the namespace) and must agree.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from .conftest import require_lab

pytestmark = pytest.mark.kernel

_PING = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(1)
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b)); t = (t >> 16) + (t & 0xffff); t += t >> 16
    return ~t & 0xffff
head = struct.pack("!BBHHH", 8, 0, 0, 7, 1)
try:
    s.sendto(struct.pack("!BBHHH", 8, 0, csum(head), 7, 1), (sys.argv[1], 0))
    s.recv(100)
    print("answered")
except OSError as exc:
    print("refused" if isinstance(exc, PermissionError) else "silent")
"""


def _ip(*args: str, ns: str | None = None, input: str | None = None) -> str:
    cmd = ["ip", "netns", "exec", ns, *args] if ns else list(args)
    return subprocess.run(cmd, check=True, capture_output=True, text=True, input=input, timeout=30).stdout


@pytest.fixture()
def pair():
    require_lab()
    tag = uuid.uuid4().hex[:6]
    a, b = f"pv-icmp-a-{tag}", f"pv-icmp-b-{tag}"
    try:
        for ns in (a, b):
            _ip("ip", "netns", "add", ns)
        _ip("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0", ns=a)
        _ip("ip", "link", "set", "peer0", "netns", b, ns=a)
        _ip("ip", "link", "set", "peer0", "name", "eth0", ns=b)
        for ns, addr in ((a, "10.99.0.1/24"), (b, "10.99.0.2/24")):
            _ip("ip", "addr", "add", addr, "dev", "eth0", ns=ns)
            _ip("ip", "link", "set", "eth0", "up", ns=ns)
            _ip("ip", "link", "set", "lo", "up", ns=ns)
        yield a
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.mark.parametrize("entry", ["icmp:echo-request", "icmp:ping", "icmp:8/0", "icmp:8/1", "icmp:echo-reply",
                                   "icmp:port-unreachable", "tcp:2048"])
def test_icmp_entries_of_ip_port_sets_agree_with_the_kernel(pair, tmp_path, entry):
    from pktverify import load_node, trace
    from pktverify.model.addresses import parse_ip
    from pktverify.model.packet import ICMP, Packet

    ns = pair
    _ip("ipset", "restore", ns=ns, input=f"create pv-icmp hash:ip,port family inet\nadd pv-icmp 10.99.0.2,{entry}\n")
    _ip("iptables-restore", ns=ns, input="*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                                         "-A OUTPUT -p icmp -m set --match-set pv-icmp dst,dst -j DROP\nCOMMIT\n")
    kernel = _ip(sys.executable, "-c", _PING, "10.99.0.2", ns=ns).strip()
    files = {"iptables": ("iptables-save",), "addrs": ("ip", "-j", "addr", "show"),
             "routes": ("ip", "-j", "route", "show", "table", "all"), "ipsets": ("ipset", "save")}
    paths = {}
    for kind, cmd in files.items():
        paths[kind] = tmp_path / f"{kind}.txt"
        paths[kind].write_text(_ip(*cmd, ns=ns))
    assert entry.split(":")[1] in paths["ipsets"].read_text() or entry in ("icmp:ping", "icmp:8/0")
    node = load_node(**paths)
    echo = Packet(ICMP, parse_ip("10.99.0.1"), parse_ip("10.99.0.2"), 7, 0, icmp_type=8, icmp_code=0)
    [outcome] = trace(node, echo).outcomes
    assert kernel in ("answered", "refused"), kernel
    assert (outcome.verdict == "drop") == (kernel == "refused"), (entry, kernel, outcome.verdict, outcome.reason)
