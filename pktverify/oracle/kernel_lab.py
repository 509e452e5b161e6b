"""A throwaway three-namespace lab to ask the real Linux kernel what netfilter does.

``node`` has eth0 (192.168.0.2/24, towards ``lan`` 192.168.0.9) and cni0
(10.0.0.1/24, towards ``pod`` 10.0.0.9). Nothing is linked to the root
namespace; names are unique per lab, and the namespaces are deleted on exit,
also when a probe fails or the run is interrupted.

Each peer namespace owns the upper part of its subnet as local addresses
(192.168.0.16-255 and 10.0.0.16-255, the "AnyIP" ``local`` route), so a
packet the node forwards there is answered instead of dying in ARP.

A probe loads a rule set with ``iptables-restore``, an ``nft -f`` script, or both
(the script after the text: a node where iptables-nft and native tables share the
hooks), sends one TCP SYN or UDP datagram from a bound socket in ``pod``, ``lan`` or
the node itself, and observes what the kernel did, without adding any rule of its own
(the lab's own nft tables only count packets, at priorities -500 and 500):

* the post-NAT tuple, from conntrack *events* (``conntrack -E -e NEW``; an
  entry exists only once the packet has passed every hook, so its presence
  also says "not dropped" -- except for a packet the node sends itself, which
  conntrack confirms at POSTROUTING, before lo brings it back through
  PREROUTING and INPUT, where a rule can still drop it);
* local delivery, from a counter on the input hook after every iptables table;
* where the packet went, from raw packet sockets on the peers' interfaces
  (the peer that receives it tells the node's outgoing interface);
* DROP versus REJECT, from what the client receives (an ICMP unreachable or
  a TCP RST, versus nothing), or for a local client from the socket's error.

:mod:`.kernel_observe` reads these into one :class:`KernelObservation`.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
import uuid
from typing import NamedTuple

from ..model.rules import TABLE_CHAINS
from .kernel_observe import SNIFFER, KernelObservation, classify, post_nat_of

__all__ = ["KernelLab", "KernelObservation", "NodeDump", "lab_available", "CLIENT_ADDRESSES", "LAB_ADDRS",
           "LAB_ROUTES"]

# The address each client sends from, and the node interface it arrives on (None: local).
CLIENT_ADDRESSES = {"pod": ("10.0.0.9", "cni0"), "lan": ("192.168.0.9", "eth0"),
                    "node": ("192.168.0.2", None)}

# The node namespace as `ip -o addr` and `ip route` print it (for reproducers without the lab).
LAB_ADDRS = ("1: lo    inet 127.0.0.1/8 scope host lo\n"
             "2: eth0    inet 192.168.0.2/24 brd 192.168.0.255 scope global eth0\n"
             "3: cni0    inet 10.0.0.1/24 brd 10.0.0.255 scope global cni0\n")
LAB_ROUTES = ("default via 192.168.0.9 dev eth0\n"
              "10.0.0.0/24 dev cni0 proto kernel scope link src 10.0.0.1\n"
              "192.168.0.0/24 dev eth0 proto kernel scope link src 192.168.0.2\n")


class NodeDump(NamedTuple):
    """The node namespace's state as the tools print it."""
    iptables_save: str
    ip_addr_json: str
    ip_route_json: str
    ipset_save: str = ""
    ip_rule_json: str = ""
    nft_json: str = ""          # ``nft -j list ruleset`` without the lab's own tables


def lab_available() -> str:
    """Empty string if the lab can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "iptables-restore", "iptables-save", "conntrack", "nft", "ipset"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return ""


def _run(*cmd: str, check: bool = True, input: str | None = None) -> str:
    res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()}")
    return res.stdout


# Runs in the client namespace: send one SYN / datagram from a bound socket, report the error.
_CLIENT = r"""
import errno, socket, sys, time
proto, src, sport, dst, dport = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((src, sport))
s.setblocking(False)
immediate = ""
try:
    if proto == "tcp":
        s.connect((dst, dport))
    else:
        s.connect((dst, dport)); s.send(b"pktverify")
except OSError as e:
    # EINPROGRESS; EPERM when a local hook dropped it (DROP and REJECT alike). A routing refusal
    # (an unreachable or prohibit route, or none) fails connect() itself: that is the answer.
    if e.errno not in (errno.EINPROGRESS, errno.EPERM):
        immediate = errno.errorcode.get(e.errno, str(e.errno))
time.sleep(0.3)
# The error that arrives later tells REJECT (its ICMP or RST) from DROP (nothing).
err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
print(immediate or (errno.errorcode.get(err, str(err)) if err else "none"), flush=True)
"""


_KEEP_CONNTRACK = """table inet pktverify_lab {
  chain pre { type filter hook prerouting priority -500; ct state new counter; }
  chain out { type filter hook output priority -500; ct state new counter; }
}
"""


class KernelLab:
    """Context manager owning the lab's namespaces (see the module docstring)."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.node, self.pod, self.lan = f"pv{tag}node", f"pv{tag}pod", f"pv{tag}lan"
        self._ns_of = {"node": self.node, "pod": self.pod, "lan": self.lan}
        self._nft_loaded = False

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
        """Delete the namespaces (their interfaces, rules and conntrack go with them)."""
        for ns in (self.node, self.pod, self.lan):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def _ns(self, ns: str, *cmd: str, **kw) -> str:
        return _run("ip", "netns", "exec", ns, *cmd, **kw)

    def _build(self) -> None:
        for ns in (self.node, self.pod, self.lan):
            _run("ip", "netns", "add", ns)
            self._ns(ns, "ip", "link", "set", "lo", "up")
            # Quiet links (no IPv6 router solicitations); a kernel without IPv6 is just as quiet.
            self._ns(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", check=False)
            self._ns(ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", check=False)
        for dev, peer_ns, node_ip, peer_ip, anyip in (
                ("eth0", self.lan, "192.168.0.2/24", "192.168.0.9/24", "192.168.0.{}"),
                ("cni0", self.pod, "10.0.0.1/24", "10.0.0.9/24", "10.0.0.{}")):
            _run("ip", "-n", self.node, "link", "add", dev, "type", "veth", "peer", "name", "peer0",
                 "netns", peer_ns)
            _run("ip", "-n", self.node, "addr", "add", node_ip, "brd", "+", "dev", dev)
            _run("ip", "-n", self.node, "link", "set", dev, "up")
            _run("ip", "-n", peer_ns, "addr", "add", peer_ip, "dev", "peer0")
            _run("ip", "-n", peer_ns, "link", "set", "peer0", "up")
            for net in ("16/28", "32/27", "64/26", "128/25"):     # .16-.255 answer as the peer
                low, plen = net.split("/")
                _run("ip", "-n", peer_ns, "route", "add", "local", f"{anyip.format(low)}/{plen}", "dev", "lo")
        _run("ip", "-n", self.pod, "route", "add", "default", "via", "10.0.0.1")
        _run("ip", "-n", self.lan, "route", "add", "10.0.0.0/8", "via", "192.168.0.2")   # lan does not forward: no ping-pong
        _run("ip", "-n", self.node, "route", "add", "default", "via", "192.168.0.9")
        # No ICMP rate limit: REJECT answers to the same client come in quick succession.
        # (icmp_msgs_per_sec is per namespace only on recent kernels; elsewhere the
        # per-destination limit, icmp_ratelimit, is the one that bites.)
        for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0", "net.ipv4.icmp_ratelimit=0"):
            self._ns(self.node, "sysctl", "-qw", key)
        self._ns(self.node, "sysctl", "-qw", "net.ipv4.icmp_msgs_per_sec=100000", check=False)
        # Conntrack runs in a namespace only while something needs it; a kube-proxy node
        # always has it, and so does pktverify's model. A passive nft table in its own
        # family keeps it on whatever rule set is loaded (iptables-save does not show it).
        self._ns(self.node, "nft", "-f", "-", input=_KEEP_CONNTRACK)

    # ------------------------------------------------------------ state
    def route(self, *commands: tuple[str, ...]) -> None:
        """Policy routing for the next probe: ``ip`` commands run in the node (``("rule", "add", ...)``,
        ``("route", "add", ..., "table", "100")``); undone by the next :meth:`load`."""
        for cmd in commands:
            _run("ip", "-n", self.node, *cmd)
        self._routed = True

    def load(self, rules: str | None, ipsets: str = "", nft: str = "") -> None:
        """Replace the node's whole rule set (and its ipsets, ``ipset restore`` input) and forget
        connections.

        ``iptables-restore`` replaces only the tables its input names (and keeps built-in
        policies it does not declare), so every table the input leaves out is reset to
        empty with ACCEPT policies first: no rule or policy of an earlier probe survives
        into the next one, whatever the order or number of probes.

        ``nft``: an ``nft -f`` script loaded after the iptables text (``rules`` None or "":
        no iptables table at all). Loading one, or the first load after one, starts from
        ``nft flush ruleset`` (iptables-nft's tables go with it) plus the lab's own table."""
        if nft or self._nft_loaded:
            self._ns(self.node, "nft", "flush", "ruleset")
            self._ns(self.node, "nft", "-f", "-", input=_KEEP_CONNTRACK)
            self._nft_loaded = False
        if nft and not rules:
            self._load_rest(None, ipsets, nft)
            return
        reset = "".join(f"*{table}\n" + "".join(f":{chain} ACCEPT [0:0]\n" for chain in chains) + "COMMIT\n"
                        for table, chains in TABLE_CHAINS.items())
        self._ns(self.node, "iptables-restore", input=reset)
        self._load_rest(rules, ipsets, nft)

    def _unroute(self) -> None:
        """Back to the kernel's three routing rules and no extra table (after :meth:`route`)."""
        if getattr(self, "_routed", False):
            for pref in _run("ip", "-n", self.node, "rule", "show").split("\n"):
                head = pref.split(":")[0].strip()
                if head.isdigit() and head not in ("0", "32766", "32767"):
                    _run("ip", "-n", self.node, "rule", "del", "pref", head)
            for table in ("100", "101", "102"):
                _run("ip", "-n", self.node, "route", "flush", "table", table, check=False)
            self._routed = False

    def _load_rest(self, rules: str | None, ipsets: str, nft: str) -> None:
        """Ipsets, then the iptables text, then the nft script (its chains register last: among
        base chains of equal hook and priority, the kernel runs the last registered first)."""
        self._unroute()
        self._ns(self.node, "ipset", "destroy", check=False)
        if ipsets:
            self._ns(self.node, "ipset", "restore", input=ipsets)
        if rules:
            self._ns(self.node, "iptables-restore", input=rules)
        if nft:
            self._nft_loaded = True
            self._ns(self.node, "nft", "-f", "-", input=nft)
        self._ns(self.node, "conntrack", "-F", check=False)

    def dump(self) -> NodeDump:
        """The node as ``iptables-save``, ``ip -j addr`` and ``ip -j route`` print it."""
        return NodeDump(self._ns(self.node, "iptables-save"),
                        _run("ip", "-n", self.node, "-j", "addr", "show"),
                        _run("ip", "-n", self.node, "-j", "route", "show", "table", "all"),
                        self._ns(self.node, "ipset", "save", check=False),
                        _run("ip", "-n", self.node, "-j", "rule", "show"),
                        self._nft_json())

    def _nft_json(self) -> str:
        """``nft -j list ruleset`` without the lab's tables (``inet pktverify_lab``, ``ip pktverify_seen``:
        counters only, the first keeping conntrack on, which pktverify's model assumes anyway)."""
        out = json.loads(self._ns(self.node, "nft", "-j", "list", "ruleset"))
        items = [item for item in out.get("nftables", [])
                 if not any(isinstance(body, dict) and (body.get("table") or body.get("name", "")).startswith(
                     "pktverify_") and (kind == "table" or "table" in body) for kind, body in item.items())]
        return json.dumps({"nftables": items})

    def misprinted(self, saved: str) -> str:
        """Why ``saved`` (the node's ``iptables-save`` text) is not the rule set the kernel runs, or "".

        iptables-nft keeps most matches as native nftables expressions and prints them back
        as iptables matches; two matches on one field merge into one and print as another
        (``-m tcp ! --sport 53 -m tcp --sport 8000:9000`` saves as ``-m tcp ! --sport 8000:9000``,
        found by the kernel campaign, seed 424242). pktverify can only read the text, so such a
        probe tests iptables-save, not pktverify. Checked by loading the text back and comparing
        the kernel's rules (``nft -s list table``) before and after; this replaces the loaded
        rule set, so call it after the probe."""
        tables = list(TABLE_CHAINS)

        def listing() -> dict[tuple[str, str], list[str]]:
            """Each chain's lines (the order of chains in a table is the order they were made)."""
            chains: dict[tuple[str, str], list[str]] = {}
            for t in tables:
                lines: list[str] = []
                for line in self._ns(self.node, "nft", "-s", "list", "table", "ip", t, check=False).splitlines():
                    line = line.strip()
                    if line.startswith("chain ") and line.endswith("{"):
                        lines = chains.setdefault((t, line[6:-1].strip()), [])
                    elif line and line != "}":
                        lines.append(line)
            # iptables-nft makes a built-in chain only when a rule set names it; iptables-save
            # prints every built-in chain: an empty one with policy accept is one never made.
            return {key: lines for key, lines in chains.items()
                    if not (len(lines) == 1 and lines[0].startswith("type ") and lines[0].endswith("policy accept;"))}
        before = listing()
        self._ns(self.node, "iptables-restore", input=saved)
        after = listing()
        for (t, chain) in sorted(set(before) | set(after)):
            was, now = before.get((t, chain), []), after.get((t, chain), [])
            if was != now:
                lost = [line for line in was if line not in now] or ["?"]
                made = [line for line in now if line not in was] or ["?"]
                return (f"iptables-save does not print what the kernel runs in table {t}: {chain}'s "
                        f"'{lost[0]}' reloads from the saved text as '{made[0]}'")
        return ""

    # ------------------------------------------------------------ probes
    def probe(self, rules: str | None, *, client: str, proto: str, sport: int, dst: str, dport: int,
              src: str | None = None, ipsets: str = "", routing: tuple = (), nft: str = "",
              reload: bool = True) -> KernelObservation:
        """Load ``rules`` (and ``ipsets``, ``nft``: an ``nft -f`` script, and ``routing``: ip commands,
        see :meth:`route`), send one packet from ``client`` (pod, lan or node), observe the kernel.
        ``reload=False``: keep what is loaded and what earlier packets left (dynamic sets, connections)."""
        src = src or CLIENT_ADDRESSES[client][0]
        if reload:
            self.load(rules, ipsets, nft)
        if routing:
            self.route(*routing)
        self._watch_input(proto, src, sport)
        events = self._start_events(proto)
        sniffers = {peer: self._start_sniffer(peer) for peer in ("pod", "lan")}
        try:
            errname = self._ns(self._ns_of[client], sys.executable, "-c", _CLIENT,
                               proto, src, str(sport), dst, str(dport)).strip()
            time.sleep(0.15)
        finally:
            seen = {peer: _stop(proc) for peer, proc in sniffers.items()}
            event_text = _stop(events)
        post_nat = post_nat_of(event_text, src, sport)
        delivered = (src, sport, dst, dport) if self._input_count() else None     # the pre-NAT tuple
        return classify(proto, client, src, sport, post_nat, seen, errname, delivered)

    def _watch_input(self, proto: str, src: str, sport: int) -> None:
        """Count the probe where the node delivers it to a local socket: an nft chain on the
        input hook after every iptables table (priority 500). A packet without a conntrack
        entry (NOTRACK) leaves no conntrack event, and a local port without a listener answers
        it as a REJECT would (port unreachable, reset): only this tells the two apart.
        A tracked packet is counted by its connection's original tuple (NAT may have changed
        its own): the node's own packet has a confirmed entry before it comes back through lo,
        where a PREROUTING or INPUT rule can still drop it (found by the kernel campaign,
        seeds 20261207 and 99991). Only in the original direction: REJECT's TCP reset to the
        node's own SYN carries that SYN's connection too (as its reply)."""
        self._ns(self.node, "nft", "-f", "-", input=(
            "table ip pktverify_seen\ndelete table ip pktverify_seen\n"
            "table ip pktverify_seen {\n chain input {\n  type filter hook input priority 500;\n"
            f"  ip saddr {src} {proto} sport {sport} counter\n"
            f"  meta l4proto {proto} ct direction original ct original ip saddr {src} ct original proto-src {sport}"
            " counter\n }\n}\n"))

    def _input_count(self) -> int:
        out = json.loads(self._ns(self.node, "nft", "-j", "list", "table", "ip", "pktverify_seen"))
        return sum(item["rule"]["expr"][-1]["counter"]["packets"] for item in out.get("nftables", [])
                   if "rule" in item and "counter" in item["rule"]["expr"][-1])

    def post_nat_many(self, rules: str | None, *, client: str, proto: str, sports: list[int], dst: str,
                      dport: int, nft: str = "") -> list[tuple[str, int, str, int] | None]:
        """Load ``rules`` (and ``nft``) once and send one new connection per source port, in order;
        their post-NAT tuples."""
        src = CLIENT_ADDRESSES[client][0]
        self.load(rules, nft=nft)
        events = self._start_events(proto)
        code = ("import socket,sys,time\n"
                f"for p in {sports!r}:\n"
                f"    s=socket.socket(socket.AF_INET, socket.SOCK_STREAM if {proto!r}=='tcp' else socket.SOCK_DGRAM)\n"
                f"    s.bind(({src!r}, p)); s.setblocking(False)\n"
                f"    try: s.connect(({dst!r}, {dport}))\n"
                "    except OSError: pass\n"
                f"    if {proto!r} == 'udp': s.send(b'x')\n"
                "    time.sleep(0.002)\n"
                "time.sleep(0.3)\n")
        try:
            self._ns(self._ns_of[client], sys.executable, "-c", code)
            time.sleep(0.2)
        finally:
            text = _stop(events)
        # Events can be lost under a burst (netlink buffer); entries still listed fill the gaps.
        listed = self._ns(self.node, "conntrack", "-L", "-p", proto, check=False)
        out = []
        for p in sports:
            out.append(post_nat_of(text, src, p) or post_nat_of(listed, src, p))
        return out

    def _start_events(self, proto: str) -> subprocess.Popen:
        """Start ``conntrack -E`` and return once it is subscribed (it says nothing when ready:
        insert a sentinel entry until its NEW event shows up, then delete it)."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.node, "conntrack", "-E", "-e", "NEW", "-p", proto],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        sentinel = ["-p", proto, "-s", "198.51.100.1", "-d", "198.51.100.2", "--sport", "9", "--dport", "9",
                    "-t", "30", *(["--state", "ESTABLISHED"] if proto == "tcp" else [])]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            self._ns(self.node, "conntrack", "-I", *sentinel, check=False)
            if select.select([proc.stdout], [], [], 0.1)[0] and "198.51.100.1" in proc.stdout.readline():
                self._ns(self.node, "conntrack", "-D", "-p", proto, "-s", "198.51.100.1", check=False)
                return proc
            self._ns(self.node, "conntrack", "-D", "-p", proto, "-s", "198.51.100.1", check=False)
        proc.kill()
        raise RuntimeError("conntrack -E did not report events within 5 s")

    def _start_sniffer(self, peer: str) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", self._ns_of[peer], sys.executable, "-u", "-c", SNIFFER],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        if line.strip() != "ready":
            proc.kill()
            raise RuntimeError(f"packet sniffer in {peer} did not start: {proc.stderr.read().strip()}")
        return proc


def _stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""
