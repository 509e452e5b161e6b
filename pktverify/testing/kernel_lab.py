"""A throwaway three-namespace lab to ask the real Linux kernel what netfilter does.

``node`` has eth0 (192.168.0.2/24, towards ``lan`` 192.168.0.9) and cni0
(10.0.0.1/24, towards ``pod`` 10.0.0.9). Nothing is linked to the root
namespace; names are unique per lab and the namespaces are deleted on exit,
also when a probe fails. A probe loads a rule set with ``iptables-restore``,
sends one TCP SYN from a client namespace with a bound socket and reads the
post-NAT tuple from conntrack events (``conntrack -E -e NEW``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from typing import NamedTuple

__all__ = ["KernelLab", "KernelProbe", "lab_available", "LAB_ADDRS", "LAB_ROUTES"]

LAB_ADDRS = ("1: lo inet 127.0.0.1/8 scope host lo\n"
             "2: eth0 inet 192.168.0.2/24 brd 192.168.0.255 scope global eth0\n"
             "3: cni0 inet 10.0.0.1/24 brd 10.0.0.255 scope global cni0\n")
LAB_ROUTES = ("default via 192.168.0.9 dev eth0\n"
              "10.0.0.0/24 dev cni0 proto kernel scope link src 10.0.0.1\n"
              "192.168.0.0/24 dev eth0 proto kernel scope link src 192.168.0.2\n")

_EVENT = re.compile(r"src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+).*?src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)")


class KernelProbe(NamedTuple):
    """What the kernel did to one SYN: post-NAT (src, sport, dst, dport), or None if untracked."""
    post_nat: tuple[str, int, str, int] | None


def lab_available() -> str:
    """Empty string if the lab can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "iptables-restore", "conntrack"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return ""


def _run(*cmd: str, check: bool = True, input: str | None = None) -> str:
    res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()}")
    return res.stdout


class KernelLab:
    """Context manager owning the lab's namespaces."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.node, self.pod, self.lan = f"pv{tag}node", f"pv{tag}pod", f"pv{tag}lan"

    def __enter__(self) -> "KernelLab":
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for ns in (self.node, self.pod, self.lan):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def _ns(self, ns: str, *cmd: str, **kw) -> str:
        return _run("ip", "netns", "exec", ns, *cmd, **kw)

    def _build(self) -> None:
        for ns in (self.node, self.pod, self.lan):
            _run("ip", "netns", "add", ns)
            self._ns(ns, "ip", "link", "set", "lo", "up")
        for dev, peer_ns, node_ip, peer_ip in (("eth0", self.lan, "192.168.0.2/24", "192.168.0.9/24"),
                                               ("cni0", self.pod, "10.0.0.1/24", "10.0.0.9/24")):
            _run("ip", "-n", self.node, "link", "add", dev, "type", "veth", "peer", "name", "peer0",
                 "netns", peer_ns)
            _run("ip", "-n", self.node, "addr", "add", node_ip, "brd", "+", "dev", dev)
            _run("ip", "-n", self.node, "link", "set", dev, "up")
            _run("ip", "-n", peer_ns, "addr", "add", peer_ip, "dev", "peer0")
            _run("ip", "-n", peer_ns, "link", "set", "peer0", "up")
        _run("ip", "-n", self.pod, "route", "add", "default", "via", "10.0.0.1")
        _run("ip", "-n", self.lan, "route", "add", "10.0.0.0/8", "via", "192.168.0.2")
        _run("ip", "-n", self.node, "route", "add", "default", "via", "192.168.0.9")
        for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0"):
            self._ns(self.node, "sysctl", "-qw", key)

    def probe(self, rules: str, *, client: str, src: str, sport: int, dst: str, dport: int) -> KernelProbe:
        """Load ``rules`` on the node, send one TCP SYN from ``client`` ("pod" or "lan")."""
        self._ns(self.node, "iptables-restore", input=rules)
        self._ns(self.node, "conntrack", "-F", check=False)
        events = subprocess.Popen(["ip", "netns", "exec", self.node, "conntrack", "-E", "-e", "NEW", "-p", "tcp"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            time.sleep(0.2)
            ns = self.pod if client == "pod" else self.lan
            code = ("import socket;s=socket.socket();s.setblocking(False);"
                    f"s.bind(('{src}',{sport}))\ntry: s.connect(('{dst}',{dport}))\nexcept OSError: pass\n"
                    "import time;time.sleep(0.3)")
            self._ns(ns, "python3", "-c", code)
            time.sleep(0.2)
        finally:
            events.terminate()
            out, _ = events.communicate(timeout=5)
        for line in out.splitlines():
            m = _EVENT.search(line)
            if m and m.group(1) == src and int(m.group(3)) == sport:
                # The reply tuple's source is the post-DNAT destination, its destination the post-SNAT source.
                return KernelProbe((m.group(6), int(m.group(8)), m.group(5), int(m.group(7))))
        return KernelProbe(None)
