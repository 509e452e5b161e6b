"""A whole cluster built in network namespaces, to ask Linux what ``pktverify verify`` claims.

Given a cluster (iptables or userspace proxy mode; in userspace mode each node's agent is its
kube-proxy, relaying the proxy ports the generated KUBE-PORTALS rules redirect to), :class:`ClusterLab` builds, with nothing linked to the
root namespace and every name starting with one prefix unique to the run:

* ``<p>L``: the LAN, a bridge ``br0`` (bridge-nf-call-iptables off: a plain switch);
* ``<p>X``: the off-cluster client on the LAN, holding each node network's gateway address
  (the ``default via`` the generated routes name) and the client address ``verify`` uses;
  it does not forward, so what a node sends out of the cluster dies there, as "left" says;
* ``<p>nI`` per node: its uplink (the interface holding the node address) as a veth on the
  LAN, the pod bridge and every other interface of its address dump (bridges for the pod
  and docker bridges, dummies otherwise) with their addresses, every route of its route dump
  in its table, the sysctls its ``sysctl.txt`` gives or pktverify assumes without one
  (``ip_forward=1``, ``rp_filter=0``, ``arp_ignore=0``, ``bridge-nf-call-iptables=1``...), its ``ipset save`` and ``iptables-save`` dumps loaded with ``ipset restore`` and
  ``iptables-restore`` as ``pktverify generate`` (or the cluster file) gives them;
* ``<p>pI`` per pod: ``eth0``, a veth whose other end is a port of its node's bridge with
  hairpin on (as kubelet sets it), the pod address with its node's pod-CIDR prefix, the
  connected route and ``default via`` the bridge address (``onlink`` when the bridge address
  is outside the pod's subnet). A host-network pod is its node's namespace.

Each namespace runs an agent (:mod:`.cluster_agent`) listening on every port the flows may
reach and sending the lab's probes; conntrack runs in every namespace (a passive nft table
``pvlab`` keeps it on), so the connections each one received, answered or not, can be read.

:meth:`ClusterLab.readback` reads back every namespace's ``ip -j addr`` and ``ip -j route``
(and the rule count ``iptables-save`` shows) and compares it with what the dumps say, so a
lab that built something else cannot pass for agreement.

The namespaces are deleted by :meth:`close` (a context manager), and by an ``atexit`` hook and
SIGTERM/SIGHUP handler as well, so an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
import weakref
from dataclasses import dataclass, field

from ..model.addresses import format_ip, prefix_mask
from ..model.cluster import ClusterSpec, NodeSpec, PodSpec
from ..model.node import NodeState
from .cluster_dumps import (
    Unemulable,
    ip_json,
    node_dump_text,
    node_sysctls,
    pod_prefixlen,
    readback,
    route_command,
    route_key,
    route_keys,
    run,
    unemulable_reasons,
)

__all__ = ["ClusterLab", "EPHEMERAL_PORTS", "PROBE_PORTS"]

# The probes bind their source ports from PROBE_PORTS; the kernel's own ephemeral ports (a
# userspace proxy's connections to its endpoints, the agents' relays) come from below them, so a
# probe never finds its port taken by a connection the lab itself opened (CI saw bind EADDRINUSE
# on a node whose proxy had just connected from the port the next probe wanted).
PROBE_PORTS = range(41000, 65000)
EPHEMERAL_PORTS = f"net.ipv4.ip_local_port_range=20000 {PROBE_PORTS.start - 1}"

_AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cluster_agent.py")
_LIVE: "weakref.WeakSet[ClusterLab]" = weakref.WeakSet()

# Conntrack runs in a namespace only while something needs it. A kube-proxy node always has it
# (and the model assumes it); in every namespace it also tells who received a connection whose
# answer never came back (the agent's ``drain``). A passive table keeps it on.
_KEEP_CONNTRACK = """table ip pvlab {
  chain pre { type filter hook prerouting priority -500; ct state new counter; }
  chain out { type filter hook output priority -500; ct state new counter; }
}
"""


@dataclass
class _Agent:
    ns: str
    ident: str
    proc: subprocess.Popen
    buf: str = ""
    events: list = field(default_factory=list)


class ClusterLab:
    """Context manager owning the namespaces of one cluster (see the module docstring).

    ``states``: the nodes as pktverify parsed them (``report.walker.states``); ``ports``: the
    TCP and UDP ports every agent listens on; ``external``: the off-cluster client's address;
    ``proxies``: userspace mode's proxy ports (``report.walker.proxy_ports``)."""

    def __init__(self, cluster: ClusterSpec, states: dict[str, NodeState], *, ports: tuple[set, set],
                 external: int, proxies: dict | None = None) -> None:
        reasons = unemulable_reasons(cluster, states)
        if reasons:
            raise Unemulable("; ".join(reasons))
        self.cluster, self.states, self.ports, self.external = cluster, states, ports, external
        # userspace mode: node -> [[proxy port, proto, [[endpoint ip, port], ...]], ...]
        self.proxies: dict[str, list] = {}
        for (node, port), (_name, proto, eps) in (proxies or {}).items():
            self.proxies.setdefault(node, []).append([port, proto, [[format_ip(ip), p] for _l, ip, p in eps]])
        self.prefix = "pv" + uuid.uuid4().hex[:6]
        self.lan, self.ext = f"{self.prefix}L", f"{self.prefix}X"
        self.node_ns = {n.name: f"{self.prefix}n{i}" for i, n in enumerate(cluster.nodes)}
        self.pod_ns = {p.key: f"{self.prefix}p{i}" for i, p in enumerate(cluster.pods)}
        self.namespaces: list[str] = []
        self.agents: dict[str, _Agent] = {}          # by identity: pod key, "node:NAME", "external"
        self._next_id = 0

    # ------------------------------------------------------------ life cycle
    def __enter__(self) -> "ClusterLab":
        _LIVE.add(self)
        _install_handlers()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the agents and delete every namespace this lab made (idempotent)."""
        for agent in self.agents.values():
            if agent.proc.poll() is None:
                agent.proc.kill()
            agent.proc.wait()
            for stream in (agent.proc.stdin, agent.proc.stdout):
                if stream:
                    stream.close()
        self.agents.clear()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()
        _LIVE.discard(self)

    # ------------------------------------------------------------ building
    def _netns(self, ns: str) -> None:
        run("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        run("ip", "-n", ns, "link", "set", "lo", "up")

    def _sysctl(self, ns: str, *keys: str) -> None:
        run("ip", "netns", "exec", ns, "sysctl", "-qw", *keys)

    def _build(self) -> None:
        cluster = self.cluster
        self._netns(self.lan)
        self._netns(self.ext)
        for ns in (self.lan, self.ext):
            self._sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        batch = ["link add br0 type bridge", "link set br0 up"]
        run("ip", "-n", self.lan, "-batch", "-", input="\n".join(batch) + "\n")
        self._sysctl(self.lan, "net.bridge.bridge-nf-call-iptables=0")
        # The off-cluster client: every node network's gateway (unless a node holds it) and its own address.
        run("ip", "-n", self.ext, "link", "add", "eth0", "type", "veth", "peer", "name", "ux", "netns", self.lan)
        ext = ["link set eth0 up", f"addr add {format_ip(self.external)}/32 dev lo"]
        node_ips = {n.ip for n in cluster.nodes}
        seen = set()
        for n in cluster.nodes:
            net = n.ip & prefix_mask(n.prefixlen)
            gw = net + 1
            if (net, n.prefixlen) in seen:
                continue
            seen.add((net, n.prefixlen))
            if gw not in node_ips:
                ext.append(f"addr add {format_ip(gw)}/{n.prefixlen} dev eth0")
            else:
                ext.append(f"route add {format_ip(net)}/{n.prefixlen} dev eth0")
        run("ip", "-n", self.ext, "-batch", "-", input="\n".join(ext) + "\n")
        run("ip", "-n", self.lan, "link", "set", "ux", "master", "br0", "up")
        for i, node in enumerate(cluster.nodes):
            self._build_node(i, node)
        for i, pod in enumerate(cluster.pods):
            self._build_pod(i, pod)
        for node in cluster.nodes:
            self._load_rules(node)
        self._start_agents()

    def _build_node(self, index: int, node: NodeSpec) -> None:
        ns, state = self.node_ns[node.name], self.states[node.name]
        self._netns(ns)
        self._sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
                     "net.ipv4.icmp_ratelimit=0", EPHEMERAL_PORTS,
                     *(f"{k}={v}" for k, v in node_sysctls(state, interfaces=False)))
        uplink = next(i.name for i in state.interfaces.values() if any(a.ip == node.ip for a in i.addresses))
        run("ip", "-n", ns, "link", "add", uplink, "type", "veth", "peer", "name", f"u{index}", "netns", self.lan)
        run("ip", "-n", self.lan, "link", "set", f"u{index}", "master", "br0", "up")
        batch = []
        bridges = {node.bridge} | ({"docker0"} if node.docker else set())
        for iface in state.interfaces.values():
            if iface.loopback or iface.name == "lo":
                extra = [a for a in iface.addresses if (a.ip, a.prefixlen) != (0x7F000001, 8)]
                batch += [f"addr add {a} scope host dev lo" for a in extra]
                continue
            if iface.name != uplink:
                kind = "bridge" if iface.name in bridges else "dummy"
                batch.append(f"link add {iface.name} type {kind}")
            for a in iface.addresses:
                scope = {0: "global", 200: "site", 253: "link", 254: "host"}.get(a.scope, str(a.scope))
                brd = f" broadcast {format_ip(a.broadcast)}" if a.broadcast is not None else ""
                batch.append(f"addr add {a}{brd} scope {scope} dev {iface.name}")
            if iface.up:
                batch.append(f"link set {iface.name} up")
        run("ip", "-n", ns, "-batch", "-", input="\n".join(batch) + "\n")
        per_interface = node_sysctls(state, interfaces=True)
        if per_interface:
            self._sysctl(ns, *(f"{k}={v}" for k, v in per_interface))
        present = route_keys(ip_json(ns, "route", "show", "table", "all"))
        batch = [route_command(r) for r in state.routes if route_key(r) not in present]
        if batch:
            run("ip", "-n", ns, "-batch", "-", input="\n".join(batch) + "\n")
        run("ip", "netns", "exec", ns, "nft", "-f", "-", input=_KEEP_CONNTRACK)

    def _build_pod(self, index: int, pod: PodSpec) -> None:
        ns, node = self.pod_ns[pod.key], self.cluster.node(pod.node)
        node_ns, state = self.node_ns[node.name], self.states[node.name]
        self._netns(ns)
        self._sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
                     EPHEMERAL_PORTS)
        port = f"vp{index}"
        run("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", node_ns)
        run("ip", "-n", node_ns, "-batch", "-", input=f"link set {port} master {node.bridge}\n"
             f"link set {port} up\nlink set dev {port} type bridge_slave hairpin on\n")
        plen = pod_prefixlen(pod, node)
        gateway = next((a for a in state.interfaces[node.bridge].addresses), None)
        cmds = [f"addr add {format_ip(pod.ip)}/{plen} dev eth0", "link set eth0 up"]
        if gateway is not None:
            onlink = "" if (gateway.ip & prefix_mask(plen)) == (pod.ip & prefix_mask(plen)) else " onlink"
            cmds.append(f"route add default via {format_ip(gateway.ip)} dev eth0{onlink}")
        run("ip", "-n", ns, "-batch", "-", input="\n".join(cmds) + "\n")
        run("ip", "netns", "exec", ns, "nft", "-f", "-", input=_KEEP_CONNTRACK)

    def _load_rules(self, node: NodeSpec) -> None:
        ns = self.node_ns[node.name]
        ipsets = node_dump_text(self.cluster, node, "ipsets")
        if ipsets:
            run("ip", "netns", "exec", ns, "ipset", "restore", input=ipsets)
        run("ip", "netns", "exec", ns, "iptables-restore", input=node_dump_text(self.cluster, node, "iptables"))
        nft = node_dump_text(self.cluster, node, "nft")
        if nft and nft.strip():         # kube-proxy's nftables mode (generated or given), or a given nft dump
            json_form = nft.lstrip().startswith("{")
            run("ip", "netns", "exec", ns, "nft", *(("-j",) if json_form else ()), "-f", "-", input=nft)

    def _start_agents(self) -> None:
        ports = json.dumps([sorted(self.ports[0]), sorted(self.ports[1])])
        where = [(ns, f"node:{name}", sorted({format_ip(a.ip) for i in self.states[name].interfaces.values()
                                                for a in i.addresses})) for name, ns in self.node_ns.items()]
        where += [(ns, key, [format_ip(self.cluster.pods_by_key[key].ip)]) for key, ns in self.pod_ns.items()]
        where.append((self.ext, "external", [format_ip(self.external)]))
        for ns, ident, local in where:
            proxies = json.dumps(self.proxies.get(ident[5:], []) if ident.startswith("node:") else [])
            proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-u", _AGENT, ident, ports,
                                     json.dumps(local), proxies],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, bufsize=1)
            self.agents[ident] = _Agent(ns, ident, proc)
        for agent in self.agents.values():
            rec = self._read(agent, lambda r: r.get("ev") == "ready", timeout=10)
            if rec is None:
                raise RuntimeError(f"agent in {agent.ident} did not start: {agent.proc.stderr.read()[:400]}")

    # ------------------------------------------------------------ talking to agents
    def _read(self, agent: _Agent, want, timeout: float):
        """The first line of ``agent`` for which ``want`` holds (events kept aside), or None."""
        deadline = time.monotonic() + timeout
        while True:
            while "\n" in agent.buf:
                line, agent.buf = agent.buf.split("\n", 1)
                rec = json.loads(line)
                if want(rec):
                    return rec
                if rec.get("ev") == "got":
                    agent.events.append(rec)
            left = deadline - time.monotonic()
            if left <= 0 or agent.proc.poll() is not None:
                return None
            if select.select([agent.proc.stdout], [], [], left)[0]:
                chunk = os.read(agent.proc.stdout.fileno(), 65536).decode()
                if not chunk:
                    return None
                agent.buf += chunk

    def ask(self, idents, op: str, *, wait: float = 10.0, **args) -> dict:
        """Send ``op`` to the agents ``idents`` at once; their answers by identity."""
        sent = {}
        for ident in idents:
            self._next_id += 1
            sent[ident] = self._next_id
            self.agents[ident].proc.stdin.write(json.dumps({"op": op, "id": self._next_id, **args}) + "\n")
            self.agents[ident].proc.stdin.flush()
        out = {}
        for ident, rid in sent.items():
            rec = self._read(self.agents[ident], lambda r, rid=rid: r.get("re") == rid, wait)
            if rec is None:
                raise RuntimeError(f"agent {ident} did not answer {op}: {self.agents[ident].proc.stderr.read()[:400]}")
            out[ident] = rec
        return out

    def events(self, token: str, wait: float = 0.0) -> list[dict]:
        """Receipt events carrying ``token`` (from every agent), after ``wait`` seconds for late ones."""
        if wait:
            time.sleep(wait)
        out = []
        for agent in self.agents.values():
            self._read(agent, lambda r: False, 0)
            keep = []
            for rec in agent.events:
                (out if rec["token"] == token else keep).append(rec)
            agent.events = keep
        return out

    def route_external(self, dst: int, via_node: str) -> None:
        """The off-cluster client reaches ``dst`` through ``via_node`` (as a flow arriving there)."""
        run("ip", "-n", self.ext, "route", "replace", f"{format_ip(dst)}/32", "via",
            format_ip(self.cluster.node(via_node).ip))

    # ------------------------------------------------------------ reading back
    def readback(self) -> list[str]:
        """Where what the lab built differs from the dumps (empty: it built them)."""
        return readback(self.cluster, self.states, self.node_ns, self.pod_ns)


# ------------------------------------------------------------ cleanup when interrupted
_HANDLERS = False


def _cleanup_all() -> None:
    for lab in list(_LIVE):
        lab.close()


def _on_signal(signum, frame) -> None:
    _cleanup_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    global _HANDLERS
    if _HANDLERS:
        return
    _HANDLERS = True
    atexit.register(_cleanup_all)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)
        except ValueError:          # not the main thread: atexit and close() still apply
            pass
