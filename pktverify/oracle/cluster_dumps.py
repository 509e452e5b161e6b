"""A cluster's dumps as the cluster lab (:mod:`.cluster_lab`) builds them, and the check that it did.

The text of each node dump (given, or what ``pktverify generate`` writes), what of a cluster
the lab cannot build (:class:`Unemulable`), the sysctls it sets on a node, each route as an
``ip route add`` command, and :func:`readback`: every namespace's addresses, routes, sysctls and
rule count read back and compared with the dumps, so a lab that built something else cannot pass
for agreement.
"""

from __future__ import annotations

import json
import subprocess

from ..generate.node_state import generate_node
from ..model.addresses import format_ip, mask_length, prefix_mask
from ..model.cluster import ClusterSpec, NodeSpec, PodSpec
from ..model.node import NodeState, Route
from ..parse.source import read_text

__all__ = ["Unemulable", "run", "node_dump_text", "unemulable_reasons", "pod_prefixlen", "node_sysctls",
           "ip_json", "route_key", "route_keys", "route_command", "readback"]

_ROUTE_KINDS = ("unicast", "blackhole", "unreachable", "prohibit", "throw", "local", "broadcast")



class Unemulable(Exception):
    """The cluster (or part of it) holds something the lab cannot build; the message says what."""


def run(*cmd: str, input: str | None = None, check: bool = True) -> str:
    res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=60)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()[:400]}")
    return res.stdout


def node_dump_text(cluster: ClusterSpec, node: NodeSpec, kind: str) -> str | None:
    """The text of ``node``'s dump ``kind`` as the node has it: given (a file or inline), else
    what ``pktverify generate`` writes for it (iptables, addrs, routes; nft in kube-proxy's
    nftables mode), else None."""
    path = getattr(node, kind)
    if path is not None:
        return read_text(path, allow_empty=kind in ("iptables", "ipsets", "nft"))
    text = node.dump_text(kind)
    if text is not None:
        return text
    if kind in ("iptables", "addrs", "routes", "nft"):
        return getattr(generate_node(cluster, node), kind)
    return None


def unemulable_reasons(cluster: ClusterSpec, states: dict[str, NodeState]) -> list[str]:
    """What of ``cluster`` the lab cannot build (empty: all of it)."""
    out = []
    if cluster.proxy_mode not in ("iptables", "userspace", "nftables"):
        out.append(f"proxy mode {cluster.proxy_mode}")
    for node in cluster.nodes:
        state = states[node.name]
        if state.rules is not None:
            out.append(f"node {node.name}: ip rules (policy routing is not built)")
        if not any(a.ip == node.ip for i in state.interfaces.values() for a in i.addresses):
            out.append(f"node {node.name}: no interface holds the node address {format_ip(node.ip)}")
        if any(r.nexthops for r in state.routes):
            out.append(f"node {node.name}: multipath routes")
        if any(r.kind not in _ROUTE_KINDS for r in state.routes):
            out.append(f"node {node.name}: route kinds the lab does not add")
        if any(p.node == node.name for p in cluster.pods) and node.bridge not in state.interfaces:
            out.append(f"node {node.name}: its pods' bridge {node.bridge} is in none of its dumps")
    names = [n.name for n in cluster.nodes]
    if len(set(names)) != len(names):
        out.append("two nodes share a name")
    return out


def pod_prefixlen(pod: PodSpec, node: NodeSpec) -> int:
    """The prefix of the pod's address on eth0: the node's ``pod_prefix`` when the cluster states
    it, else its pod CIDR's (what the bridge CNI and kubenet give)."""
    own = getattr(node, "pod_prefixlen", None)
    return int(own) if own is not None else mask_length(node.pod_cidr[1])


def node_sysctls(state: NodeState, *, interfaces: bool) -> list[tuple[str, int]]:
    """The sysctls the lab sets on a node: the namespace-wide ones (ip_forward, ``all`` and
    ``default`` conf keys, bridge-nf-call-iptables: as the node's sysctl.txt says, else the values
    pktverify assumes), or (``interfaces``) the per-interface ones its sysctl.txt names."""
    from ..model.sysctls import ASSUMED

    sysctls = getattr(state, "sysctls", None)
    values = dict(ASSUMED)
    values.update(dict(sysctls.values) if sysctls is not None else {})
    wide = [(k, v) for k, v in values.items()
            if not k.startswith("net.ipv4.conf.") or k.split(".")[3] in ("all", "default")]
    per_iface = [(k, v) for k, v in values.items() if k.startswith("net.ipv4.conf.")
                 and k.split(".")[3] not in ("all", "default") and k.split(".")[3] in state.interfaces]
    return sorted(per_iface if interfaces else wide)


def ip_json(ns: str, *args: str) -> list:
    return json.loads(run("ip", "-n", ns, "-j", *args) or "[]")


def addr_set(data: list) -> set[tuple[str, str]]:
    return {(i["ifname"], f"{a['local']}/{a['prefixlen']}") for i in data for a in i.get("addr_info", [])
            if a.get("family") == "inet"}


def route_key(r: Route) -> tuple:
    dst = "default" if r.mask == 0 and r.network == 0 else \
        (f"{format_ip(r.network)}/{mask_length(r.mask)}" if r.mask != 0xFFFFFFFF else format_ip(r.network))
    table = {"254": "main", "255": "local"}.get(r.table, r.table)
    gateway = format_ip(r.gateway) if r.gateway is not None else None
    return (table, r.kind, dst, gateway, r.dev if r.kind == "unicast" else None, r.metric or 0)


def route_keys(data: list) -> set[tuple]:
    out = set()
    for r in data:
        table = str(r.get("table", "main"))
        kind = r.get("type", "unicast")
        out.add((table, kind, r["dst"], r.get("gateway"), r.get("dev") if kind == "unicast" else None,
                 r.get("metric", 0)))
    return out


def route_command(r: Route) -> str:
    key = route_key(r)
    words = ["route", "add"] + ([] if r.kind == "unicast" else [r.kind]) + [key[2]]
    if r.gateway is not None:
        words += ["via", format_ip(r.gateway)]
    if r.dev and r.kind == "unicast":
        words += ["dev", r.dev]
    if r.onlink:
        words.append("onlink")
    if r.prefsrc is not None:
        words += ["src", format_ip(r.prefsrc)]
    if r.metric:
        words += ["metric", str(r.metric)]
    if r.scope == 253 and r.gateway is None and r.kind == "unicast":
        words += ["scope", "link"]
    if key[0] != "main":
        words += ["table", key[0]]
    return " ".join(words)


def readback(cluster: ClusterSpec, states: dict[str, NodeState], node_ns: dict[str, str],
             pod_ns: dict[str, str]) -> list[str]:
    """Where what the lab built in the namespaces ``node_ns`` and ``pod_ns`` (name -> namespace)
    differs from the dumps (empty: it built them)."""
    out = []
    for node in cluster.nodes:
        ns, state = node_ns[node.name], states[node.name]
        built = addr_set(ip_json(ns, "addr", "show"))
        want = {(i.name, str(a)) for i in state.interfaces.values() for a in i.addresses}
        want |= {("lo", "127.0.0.1/8")}
        out += [f"node {node.name}: {what} address {i} {a}" for what, diff in
                (("missing", want - built), ("extra", built - want)) for i, a in sorted(diff)]
        routes = route_keys(ip_json(ns, "route", "show", "table", "all"))
        routes = {r for r in routes if r[0] not in ("local", "255")}
        want_routes = {route_key(r) for r in state.routes}
        out += [f"node {node.name}: {what} route {r}" for what, diff in
                (("missing", want_routes - routes), ("extra", routes - want_routes)) for r in sorted(diff, key=str)]
        for key, value in node_sysctls(state, interfaces=False) + node_sysctls(state, interfaces=True):
            got = run("ip", "netns", "exec", ns, "sysctl", "-n", key, check=False).strip()
            if got != str(value):
                out.append(f"node {node.name}: {key} is {got or 'missing'}, the node has {value}")
        rules = run("ip", "netns", "exec", ns, "iptables-save")
        given = node_dump_text(cluster, node, "iptables") or ""
        count = sum(line.startswith("-A ") for line in rules.splitlines())
        wanted = sum(line.startswith("-A ") for line in given.splitlines())
        if count != wanted:
            out.append(f"node {node.name}: iptables-save shows {count} rules, the dump has {wanted}")
        out += _nft_readback(node.name, ns, state)
    for pod in cluster.pods:
        ns, node = pod_ns[pod.key], cluster.node(pod.node)
        plen = pod_prefixlen(pod, node)
        built = addr_set(ip_json(ns, "addr", "show"))
        want = {("lo", "127.0.0.1/8"), ("eth0", f"{format_ip(pod.ip)}/{plen}")}
        if built != want:
            out.append(f"pod {pod.key}: addresses {sorted(built)}, expected {sorted(want)}")
        routes = {(r.get("dst"), r.get("gateway")) for r in ip_json(ns, "route", "show")}
        gateway = next((a for a in states[node.name].interfaces[node.bridge].addresses), None)
        net = f"{format_ip(pod.ip & prefix_mask(plen))}/{plen}" if plen < 32 else format_ip(pod.ip)
        want_r = {(net, None)} | ({("default", format_ip(gateway.ip))} if gateway else set())
        if routes != want_r:
            out.append(f"pod {pod.key}: routes {sorted(routes, key=str)}, expected {sorted(want_r, key=str)}")
    return out


def _nft_readback(name: str, ns: str, state: NodeState) -> list[str]:
    """Where the node's nft tables in namespace ``ns`` differ from its nft dump: a table of the
    dump missing, or one with another number of rules (the lab's own passive ``pvlab`` table and
    the tables iptables-nft keeps for the iptables dump are not the dump's)."""
    if state.nft is None:
        return []
    listed = json.loads(run("ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset") or "{}").get("nftables", [])
    counts: dict[tuple[str, str], int] = {}
    for item in listed:
        if "table" in item:
            counts.setdefault((item["table"]["family"], item["table"]["name"]), 0)
        elif "rule" in item:
            key = (item["rule"]["family"], item["rule"]["table"])
            counts[key] = counts.get(key, 0) + 1
    out = []
    for table in state.nft.tables:
        got = counts.get((table.family, table.name))
        wanted = sum(len(chain.rules) for chain in table.chains)
        if got is None:
            out.append(f"node {name}: nft table {table.family} {table.name} is missing")
        elif got != wanted:
            out.append(f"node {name}: nft table {table.family} {table.name} has {got} rules, the dump has {wanted}")
    return out
