"""Bridged traffic (br_netfilter) against the kernel: two pods behind one bridge on one node.

A node namespace holds bridge ``br0`` (10.0.0.1/24) with two veth ports, ``vetha`` to pod A
(10.0.0.9) and ``vethb`` to pod B (10.0.0.10), and ``bridge-nf-call-iptables=1`` as kube nodes set
it. Each probe loads a filter/nat rule set, sends one UDP datagram with TTL 64 from A to B (or to
an address DNATed to B) and records whether B received it and with which TTL; ``pktverify trace``
with ``--in-iface br0 --physdev-in vetha --physdev-out vethb`` must agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from pktverify.eval.node_trace import NodeTracer
from pktverify.load.node import load_node
from pktverify.model.addresses import format_ip, parse_ip
from pktverify.model.packet import Packet
from pktverify.oracle.kernel_lab import lab_available

pytestmark = pytest.mark.kernel

_SEND = ("import socket,sys\n"
         "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.setsockopt(socket.IPPROTO_IP,socket.IP_TTL,64)\n"
         "s.bind(('10.0.0.9',40000)); s.sendto(b'x',(sys.argv[1],5000))\n")
_RECV = ("import socket\n"
         "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.setsockopt(socket.IPPROTO_IP,12,1)\n"
         "s.bind(('0.0.0.0',5000)); s.settimeout(1.0); print('ready',flush=True)\n"
         "try:\n"
         "    data,anc,flags,addr=s.recvmsg(64,64)\n"
         "    print('ttl',int.from_bytes(anc[0][2],'little'),'from',addr[0])\n"
         "except socket.timeout:\n"
         "    print('none')\n")


def _run(*cmd: str, input: str | None = None) -> str:
    done = subprocess.run(cmd, input=input, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
    return done.stdout


@pytest.fixture()
def bridge_lab():
    reason = lab_available()
    if not reason and not os.path.isdir("/proc/sys/net/bridge"):
        reason = "the kernel has no br_netfilter (/proc/sys/net/bridge is missing)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"bridge lab unavailable on CI: {reason}")
        pytest.skip(f"bridge lab unavailable: {reason}")
    tag = uuid.uuid4().hex[:6]
    names = {"node": f"pv{tag}bn", "a": f"pv{tag}ba", "b": f"pv{tag}bb"}
    try:
        for ns in names.values():
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        node = names["node"]
        _run("ip", "-n", node, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", node, "addr", "add", "10.0.0.1/24", "dev", "br0")
        _run("ip", "-n", node, "link", "set", "br0", "up")
        for pod, port, ip in (("a", "vetha", "10.0.0.9/24"), ("b", "vethb", "10.0.0.10/24")):
            _run("ip", "-n", node, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", names[pod])
            _run("ip", "-n", node, "link", "set", port, "master", "br0", "up")
            _run("ip", "-n", names[pod], "addr", "add", ip, "dev", "eth0")
            _run("ip", "-n", names[pod], "link", "set", "eth0", "up")
            _run("ip", "-n", names[pod], "route", "add", "default", "via", "10.0.0.1")
        # Pod A sends frames for 10.0.0.20 (a DNATed "service" address) to pod B's MAC, as it would
        # to a router: the frame still crosses the bridge from port to port.
        mac_b = json.loads(_run("ip", "-n", names["b"], "-j", "link", "show", "eth0"))[0]["address"]
        _run("ip", "-n", names["a"], "neigh", "add", "10.0.0.20", "lladdr", mac_b, "dev", "eth0")
        _run("ip", "netns", "exec", node, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
        _run("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield names
    finally:
        for ns in names.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _kernel(names: dict, rules: str, dst: str) -> str:
    """Load ``rules`` in the node, send A → ``dst``; "received ttl N" or "not received"."""
    node = names["node"]
    _run("ip", "netns", "exec", node, "iptables-restore", input=rules)
    _run("ip", "netns", "exec", node, "conntrack", "-F")
    recv = subprocess.Popen(["ip", "netns", "exec", names["b"], sys.executable, "-u", "-c", _RECV],
                            stdout=subprocess.PIPE, text=True)
    assert recv.stdout.readline().strip() == "ready"
    _run("ip", "netns", "exec", names["a"], sys.executable, "-c", _SEND, dst)
    out, _ = recv.communicate(timeout=10)
    word = out.split()
    return f"received ttl {word[1]} from {word[3]}" if word[0] == "ttl" else "not received"


def _model(names: dict, folder, dst: str) -> str:
    """``pktverify trace`` of the same datagram on the node's own dumps."""
    node = names["node"]
    files = {"iptables": ("ip", "netns", "exec", node, "iptables-save"),
             "addrs": ("ip", "-n", node, "-j", "addr", "show"),
             "routes": ("ip", "-n", node, "-j", "route", "show", "table", "all")}
    for key, cmd in files.items():
        (folder / key).write_text(_run(*cmd))
    model = load_node(**{key: folder / key for key in files}, name="node")
    pkt = Packet(17, parse_ip("10.0.0.9"), parse_ip(dst), 40000, 5000, ttl=64)
    trace = NodeTracer(model).trace(pkt, in_iface="br0", physdev_in="vetha", physdev_out="vethb")
    [outcome] = trace.outcomes
    if outcome.verdict == "forward" and outcome.out_iface == "br0" and outcome.packet.dst == 0x0A00000A:
        return f"received ttl {outcome.packet.ttl} from {format_ip(outcome.packet.src)}"
    return "not received"


FILTER = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{}COMMIT\n"
NAT = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n{}COMMIT\n"

DNAT_TO_B = "-A PREROUTING -d 10.0.0.20 -p udp -j DNAT --to-destination 10.0.0.10\n"

CASES = [
    # (filter rules, nat rules, destination, what the kernel does)
    ("", "", "10.0.0.10", "received ttl 64 from 10.0.0.9"),                                    # bridged: TTL unchanged
    ("-A FORWARD -m ttl --ttl-eq 64 -j DROP\n", "", "10.0.0.10", "not received"),  # FORWARD sees TTL 64
    ("-A FORWARD -m ttl --ttl-eq 63 -j DROP\n", "", "10.0.0.10", "received ttl 64 from 10.0.0.9"),
    ("-A FORWARD -i br0 -o br0 -m physdev --physdev-in vetha --physdev-out vethb --physdev-is-bridged -j DROP\n",
     "", "10.0.0.10", "not received"),
    ("-A FORWARD -m physdev --physdev-out vetha -j DROP\n", "", "10.0.0.10", "received ttl 64 from 10.0.0.9"),
    ("-A FORWARD -m physdev ! --physdev-is-bridged -j DROP\n", "", "10.0.0.10", "received ttl 64 from 10.0.0.9"),
    # POSTROUTING sees a bridged frame too, leaving by the bridge
    ("", "-A POSTROUTING -o br0 -m physdev --physdev-is-bridged -j MASQUERADE\n", "10.0.0.10",
     "received ttl 64 from 10.0.0.1"),
    # a DNATed frame whose new destination is behind the same bridge is bridged on (bridged_dnat)
    ("", DNAT_TO_B, "10.0.0.20", "received ttl 64 from 10.0.0.9"),
    ("-A FORWARD -m physdev --physdev-is-bridged -j DROP\n", DNAT_TO_B, "10.0.0.20", "not received"),
    ("-A FORWARD -m physdev --physdev-is-out -j DROP\n", DNAT_TO_B, "10.0.0.20", "not received"),
    ("-A FORWARD -m ttl --ttl-lt 64 -j DROP\n", DNAT_TO_B, "10.0.0.20", "received ttl 64 from 10.0.0.9"),
]


@pytest.mark.parametrize("filter_rules,nat_rules,dst,expected", CASES)
def test_bridged_pod_to_pod_agrees_with_the_kernel(bridge_lab, tmp_path, filter_rules, nat_rules, dst, expected):
    rules = FILTER.format(filter_rules) + NAT.format(nat_rules)
    kernel = _kernel(bridge_lab, rules, dst)
    assert kernel == expected, f"the kernel changed its mind: {kernel}"
    assert _model(bridge_lab, tmp_path, dst) == kernel
