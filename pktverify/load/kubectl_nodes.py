"""The nodes of kubectl input: each Node object with its dump folder, pod CIDR and dataplane.

kubectl's Node objects say a node's name, address and (when the controller manager allocates them)
its pod CIDR; what the node runs is in its dumps, ``DUMPS/<node>/`` in the layout
``scripts/collect-node`` writes. This module matches folders to nodes (and says which folders match
no node and which nodes have no dumps: a missing dump is generated, i.e. assumed healthy), makes
every dump path absolute (workers elsewhere read them too), takes a node's pod CIDR from its dumps
or ``--pod-cidr NODE=CIDR`` when ``spec.podCIDR`` is empty (Calico and Cilium IPAM), and decides the
kube-proxy mode by what the dumps show, refusing in one line what pktverify does not model. A node in
the middle of a migration (kube-proxy's nftables table beside iptables mode's rules) runs nftables
mode, and a note says so and why (:func:`mixed_notes`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, InvalidArgument, one_line
from ..model.addresses import AddressError, format_ip, format_network, in_network, parse_ip, parse_network
from ..model.cluster import ClusterSpec, NodeSpec
from ..model.kube_proxy import NFT_SCRIPT_FILE, NODE_FILES
from ..model.node import SCOPES, Interface, Route
from ..parse.dataplane import Dataplane, routes_worth_reading
from ..parse.ipaddr import parse_ip_addr
from ..parse.iproute import parse_routes
from ..parse.source import read_text

__all__ = ["NodeInput", "dumps_folder", "match_folders", "parse_pod_cidr_options", "pod_cidr_from_dumps",
           "node_specs", "proxy_mode", "read_dumps", "check_userspace_ports", "mixed_notes"]

# Earlier releases read ip-route.txt and ip-addr.txt; still accepted.
_FALLBACK = {"routes": "ip-route.txt", "addrs": "ip-addr.txt", "nft": NFT_SCRIPT_FILE}
_CORE = ("iptables", "addrs", "routes")
# ASCII digits, at most 5 (\d takes '٣', and int() of 5,000 digits fails with Python's own message):
# anything else is left to the iptables-save parser, which names the line.
_REDIRECT = re.compile(r"^-A KUBE-PORTALS-CONTAINER .*-j REDIRECT --to-ports ([0-9]{1,5})\b", re.M | re.A)


@dataclass
class NodeInput:
    """One Node object as read so far: ``pod_cidr`` None until found; ``paths`` the dumps its
    ``folder`` holds (absolute); ``interfaces``/``routes`` parsed from them (None: not collected)."""
    name: str
    ip: int
    pod_cidr: tuple[int, int] | None
    paths: dict[str, str] = field(default_factory=dict)
    folder: str = ""
    interfaces: dict[str, Interface] | None = None
    routes: tuple[Route, ...] | None = None
    dataplane: Dataplane = field(default_factory=Dataplane)


def dumps_folder(json_path: str | Path, dumps: str | Path | None) -> Path:
    """The absolute folder holding the node folders: ``dumps``, or the JSON's folder. A ``dumps``
    that is no folder is an error (a typo must not turn every node into a generated healthy one)."""
    if dumps is None:
        return Path(json_path).resolve().parent
    base = Path(dumps)
    try:
        is_dir = base.is_dir()
    except OSError as exc:            # e.g. a name too long
        raise InvalidArgument(f"--dumps {dumps}: cannot read folder: {exc.strerror}") from None
    if not is_dir:
        what = "is not a folder" if base.exists() else "does not exist"
        raise InvalidArgument(f"--dumps {dumps} {what}: give the folder holding one folder per node (named after "
                              "the node, as scripts/collect-node DIR/<node> writes it)")
    return base.resolve()


def match_folders(nodes: list[NodeInput], base: Path, *, require: bool, notes: list[str],
                  warnings: list[str]) -> None:
    """Fill each node's ``paths`` from ``base/<node>/``; say which folders match no node (with the
    node they were probably meant for) and which nodes' dumps are missing (generated); with
    ``require``, a node without its iptables, addrs and routes dumps is an error."""
    names = {n.name for n in nodes}
    for node in nodes:
        folder = base / node.name
        node.folder = str(folder)
        for kind, file_name in NODE_FILES.items():
            p = folder / file_name
            if not p.is_file() and kind in _FALLBACK and (folder / _FALLBACK[kind]).is_file():
                p = folder / _FALLBACK[kind]
            if p.is_file():
                node.paths[kind] = str(p)
            if kind == "nft" and p.is_file() and (folder / NFT_SCRIPT_FILE).is_file() and p.name != NFT_SCRIPT_FILE:
                raise InvalidArgument(f"{folder} holds both {file_name} and {NFT_SCRIPT_FILE}: keep the one "
                                      "dump of the node's nft ruleset")
    stray = sorted(entry.name for entry in _subfolders(base)
                   if entry.name not in names and any((entry / f).is_file() for f in (*NODE_FILES.values(),
                                                                                          *_FALLBACK.values())))
    for name in stray:
        guess = _closest_node(name, names)
        warnings.append(f"folder {base / name} holds node dumps but matches no node"
                        + (f" (did you mean {guess}? node folders are named after metadata.name)" if guess else
                           f" (nodes: {', '.join(sorted(names)[:5])}{', ...' if len(names) > 5 else ''})"))
    missing = [n for n in nodes if not all(k in n.paths for k in _CORE)]
    if require and missing:
        node = missing[0]
        lacking = [NODE_FILES[k] for k in _CORE if k not in node.paths]
        more = f" (and {len(missing) - 1} more node(s))" if len(missing) > 1 else ""
        raise InvalidArgument(f"--require-dumps: node {node.name} has no {', '.join(lacking)} in "
                              f"{base / node.name}{more}: run scripts/collect-node {base / node.name} on it"
                              + (f"; {stray[0]} matches no node" if stray else ""))
    if missing and len(missing) == len(nodes):
        warnings.append(f"no node has its dumps in {base} (folders named after the nodes, as "
                        "scripts/collect-node writes them): every node's rules, addresses and routes are generated "
                        "(what kube-proxy and the CNI would set up), not read")
    elif missing:
        warnings.append(f"{len(missing)} of {len(nodes)} nodes have no complete dumps in {base} "
                        f"({', '.join(n.name for n in missing[:5])}{', ...' if len(missing) > 5 else ''}): what is "
                        "missing is generated (assumed healthy); --require-dumps makes this an error")
    warnings[:] = [one_line(w) for w in warnings]      # folder names are the filesystem's: any character
    notes.extend(warnings)


def _subfolders(base: Path) -> list[Path]:
    try:
        return [entry for entry in base.iterdir() if entry.is_dir()]
    except OSError:
        return []


def _closest_node(folder: str, names: set[str]) -> str | None:
    """The node a stray folder was probably meant for: its first DNS label (an FQDN), or the same
    name in another case."""
    for candidate in (folder.split(".")[0], folder.lower(), folder.split(".")[0].lower()):
        if candidate in names:
            return candidate
    hits = [n for n in names if folder.startswith(n + ".") or n.startswith(folder + ".")]
    return hits[0] if len(hits) == 1 else None


def parse_pod_cidr_options(options: Mapping[str, str] | None, names: set[str]) -> dict[str, tuple[int, int]]:
    """``--pod-cidr NODE=CIDR`` values, checked: a known node, a network without host bits."""
    out = {}
    for name, text in (options or {}).items():
        if name not in names:
            raise InvalidArgument(f"--pod-cidr {name}={text}: no node {name!r} in the input (nodes: "
                                  f"{', '.join(sorted(names)[:5])}{', ...' if len(names) > 5 else ''})")
        out[name] = cidr_option(f"--pod-cidr {name}={text}", text)
    return out


def cidr_option(option: str, text: str) -> tuple[int, int]:
    """A command-line network (``--cluster-cidr``, ``--pod-cidr``): CIDR form, no host bits."""
    try:
        net = parse_network(text)
    except AddressError as exc:
        raise InvalidArgument(f"{option}: {exc}") from None
    if "/" not in text or parse_ip(text.split("/")[0]) != net[0]:
        raise InvalidArgument(f"{option} must be a network in CIDR form without host bits "
                              f"(did you mean {format_network(*net)}?)")
    return net


def read_dumps(node: NodeInput) -> None:
    """Parse the node's address and route dumps (what pod CIDR and dataplane detection read); the
    routes only when the pod CIDR is unknown or their text may show an overlay."""
    if "addrs" in node.paths:
        node.interfaces = parse_ip_addr(read_text(node.paths["addrs"]), source=node.paths["addrs"])
    if "routes" in node.paths:
        text = read_text(node.paths["routes"])
        if node.pod_cidr is None or routes_worth_reading(text):
            node.routes = parse_routes(text, source=node.paths["routes"]).routes


def pod_cidr_from_dumps(node: NodeInput, cluster_cidr: tuple[int, int]) -> tuple[tuple[int, int], str] | None:
    """The node's pod CIDR as its dumps show it, and how: the connected route of the bridge pods
    hang on (``10.244.1.0/24 dev cni0 scope link``), else such an address on an interface, else
    the one IPAM block route Calico installs (``blackhole 10.244.1.0/26``). None when none fits."""
    def inside(net: int, mask: int) -> bool:
        return mask >= cluster_cidr[1] and mask != 0xFFFFFFFF and in_network(net, *cluster_cidr)

    for r in node.routes or ():
        if (r.table in ("main", "") and r.kind == "unicast" and r.gateway is None and r.dev
                and r.scope == SCOPES["link"] and inside(r.network, r.mask)):
            return (r.network, r.mask), f"the connected route {format_network(r.network, r.mask)} dev {r.dev}"
    for iface in (node.interfaces or {}).values():
        for a in iface.addresses:
            mask = (0xFFFFFFFF << (32 - a.prefixlen)) & 0xFFFFFFFF
            if not iface.loopback and inside(a.ip & mask, mask):
                return (a.ip & mask, mask), f"the address {format_ip(a.ip)}/{a.prefixlen} on {iface.name}"
    blocks = [r for r in node.routes or () if r.kind == "blackhole" and inside(r.network, r.mask)]
    if len(blocks) == 1:
        r = blocks[0]
        return (r.network, r.mask), f"the IPAM block route blackhole {format_network(r.network, r.mask)}"
    return None


def node_specs(nodes: list[NodeInput], notes: list[str], *, source: str = "",
               with_pods: set[str] = frozenset()) -> tuple[NodeSpec, ...]:
    """NodeSpecs: the node's prefix length and bridge read from its address dump; nodes without
    one get the node network every node's address shares (at most a /24). Missing dumps are noted.
    A node in ``with_pods`` whose address dump shows no bridge (no address in its pod CIDR: pods on
    point-to-point veths, as Calico wires them) is refused: pktverify models pods on a bridge."""
    ips = [n.ip for n in nodes]
    common = 24
    while common > 0 and len({ip >> (32 - common) for ip in ips}) > 1:
        common -= 1
    out = []
    for node in nodes:
        net = node.pod_cidr
        prefixlen, bridge = common, "cbr0"
        if node.interfaces is not None:
            prefixlen = 32
            for iface in node.interfaces.values():
                for a in iface.addresses:
                    if a.ip == node.ip:
                        prefixlen = a.prefixlen
                    if a.ip == net[0] + 1 or (in_network(a.ip, *net) and iface.name != "lo"):
                        bridge = iface.name
            if bridge not in node.interfaces and node.name in with_pods:
                names = list(node.interfaces)
                raise InputError(source, 0, f"node {node.name} has pods but no bridge: no interface holds an address "
                                            f"in its pod CIDR {format_network(*net)} (interfaces: "
                                            f"{', '.join(names[:6])}{', ...' if len(names) > 6 else ''}): pods on "
                                            "point-to-point veths (Calico) are not modelled yet; pktverify models "
                                            "pods on a bridge")
        missing = [k for k in _CORE if k not in node.paths]
        if missing:
            notes.append(one_line(f"node {node.name}: no {', '.join(missing)} dump in {node.folder}: generated (what "
                                  "kube-proxy and the CNI would write)"
                                  + (f"; node network taken as /{common}" if "addrs" in missing else "")))
        p = node.paths
        out.append(NodeSpec(node.name, node.ip, prefixlen, net, bridge, p.get("iptables"), p.get("addrs"),
                            p.get("routes"), ipsets=p.get("ipsets"), rules=p.get("rules"), nft=p.get("nft")))
    return tuple(out)


def proxy_mode(nodes: list[NodeInput], source: str, *, has_services: bool, notes: list[str]) -> str:
    """kube-proxy's mode as the nodes' iptables dumps (and nft dumps: ``table ip kube-proxy`` is
    nftables mode) show it ("iptables" when no node has one: the generated dumps are); a node with
    both runs nftables mode, its iptables rules the leftovers of a migration. Refuses, in one line, a
    node that runs what is not modelled, nodes that disagree, and iptables dumps without any
    kube-proxy rule where no nft dump shows nftables mode."""
    for node in nodes:
        why = node.dataplane.unmodelled()
        if why:
            raise InputError(source, 0, f"node {node.name} {why}")
    with_rules = [n for n in nodes if "iptables" in n.paths or ("nft" in n.paths and n.dataplane.proxy_mode)]
    modes: dict[str, list[str]] = {}
    for n in with_rules:
        modes.setdefault(n.dataplane.proxy_mode or "", []).append(n.name)
    found = sorted(m for m in modes if m)
    mixed = [n for n in with_rules if n.dataplane.mixed]
    if len(found) > 1:
        parts = "; ".join(f"{m} on {', '.join(modes[m][:3])}{', ...' if len(modes[m]) > 3 else ''}" for m in found)
        raise InputError(source, 0, f"the nodes run kube-proxy in different modes ({parts}): pktverify verifies "
                                    "one mode per cluster" + _mixed_hint(mixed))
    notes.extend(mixed_notes(mixed, len(with_rules)))
    bare = modes.get("", [])
    if bare and not found and has_services:
        which = f"{'node' if len(bare) == 1 else 'nodes'} {', '.join(bare[:3])}{', ...' if len(bare) > 3 else ''}"
        nft_given = all("nft" in n.paths for n in with_rules if n.name in bare)
        why = "kube-proxy not running (nor in nftables mode: their nft-ruleset.json has no kube-proxy table)" \
            if nft_given else "kube-proxy in nftables mode (nft -j list ruleset as nft-ruleset.json beside it tells) " \
                              "or not running"
        raise InputError(source, 0, f"no kube-proxy rules found in the iptables-save of {which} (no nat "
                                    f"KUBE-SERVICES, no KUBE-PORTALS-*): {why}; pktverify models the userspace, "
                                    "iptables and nftables modes")
    mode = found[0] if found else "iptables"
    for name in bare:
        notes.append(f"node {name}: no kube-proxy rules found in its iptables-save (is kube-proxy running there?)"
                     if mode != "nftables" else f"node {name}: no kube-proxy table in its nft ruleset dump (or no "
                     "nft-ruleset.json): kube-proxy's nftables-mode table is generated for it when the dump is missing")
    return mode


def _mixed_hint(mixed: list[NodeInput]) -> str:
    """What the refusal of nodes in different modes adds about nodes in the middle of a migration."""
    if not mixed:
        return ""
    names = ", ".join(n.name for n in mixed[:3]) + (", ..." if len(mixed) > 3 else "")
    return (f" (node(s) {names} hold kube-proxy's nftables table beside iptables mode's rules: taken as nftables "
            "mode, the rules as leftovers of a migration)")


def mixed_notes(mixed: list[NodeInput], with_rules: int) -> list[str]:
    """One note per node in the middle of a migration (kube-proxy's nftables table beside iptables
    mode's rules): that both rule sets are verified as the kernel runs them, and why nftables mode was
    taken (the other nodes run it, or every node with rules is mixed: then the table is the running
    kube-proxy's, since either mode deletes the other's rules when it starts and only nftables mode
    writes the table)."""
    why = ("the other nodes run nftables mode" if len(mixed) < with_rules else
           "every node with kube-proxy rules holds both; kube-proxy in either mode deletes the other mode's rules "
           "when it starts, and only nftables mode writes the table: the table is the running kube-proxy's")
    return [f"node {n.name} is in the middle of a migration: kube-proxy's nftables table "
            f"({', '.join(e for e in n.dataplane.proxy_evidence if e.startswith('nft '))}) beside iptables mode's "
            f"rules ({', '.join(n.dataplane.leftovers)}): taken as nftables mode ({why}); both rule sets are "
            "verified as the kernel runs them, and verify names the leftover rules that still act" for n in mixed]


def check_userspace_ports(cluster: ClusterSpec) -> None:
    """Refuse userspace-mode dumps whose KUBE-PORTALS rules redirect to proxy ports other than the
    ones pktverify's model of kube-proxy listens on (it picks them itself, as ``generate`` writes
    them): every service would look unreachable. Reading a real kube-proxy's ports is not modelled."""
    if cluster.proxy_mode != "userspace":
        return
    from ..model.kube_proxy import service_ports, userspace_proxy_ports
    ports = service_ports(cluster)
    for node in cluster.nodes:
        if node.iptables is None:
            continue
        named = {int(p) for p in _REDIRECT.findall(read_text(node.iptables, allow_empty=True))}
        odd = sorted(named - set(userspace_proxy_ports(node, ports).values()))
        if odd:
            raise InputError(cluster.source, 0, f"node {node.name} runs kube-proxy in userspace mode with proxy ports "
                                                f"of its own ({', '.join(map(str, odd[:3]))}"
                                                f"{', ...' if len(odd) > 3 else ''} in KUBE-PORTALS-CONTAINER): not "
                                                "modelled yet; pktverify's userspace proxies listen on the ports it "
                                                "picks itself (pktverify generate writes them)")
