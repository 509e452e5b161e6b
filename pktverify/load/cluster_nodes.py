"""Each node of a cluster description as a NodeState: its real dumps where given, generated ones
for the rest.

A node may give any of its dumps — ``iptables``, ``addrs``, ``routes`` as files or inline text,
plus optional ``ipsets``, ``rules`` and ``nft`` (its nftables ruleset) — and pktverify generates
what a node of the described cluster would have for each of the first three left out (a node with
only its ``iptables-save``, the usual case when linting a proposed change, gets generated addresses
and routes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from ..errors import InputError
from ..generate.node_state import generate_nft, generate_node
from ..model.cluster import DUMP_KINDS, ClusterSpec, NodeSpec
from ..model.nft import NftRuleset
from ..model.node import NodeState
from ..parse.ipaddr import ipv6_note, parse_ip_addr
from ..parse.iproute import parse_routes
from ..parse.iprule import parse_ip_rules
from ..parse.ipset_save import parse_ipset_save
from ..parse.iptables_rule import RuleParser
from ..parse.iptables_save import parse_iptables_save
from ..parse.source import read_text
from ..parse.sysctl import node_sysctls
from .model_cache import ModelCache
from .nft_derive import NftScripts
from .nft_node import load_node_nft, managed_tables, node_nft
from .node import build_node

__all__ = ["cluster_nodes", "DUMP_KINDS"]

_GENERATED = ("iptables", "addrs", "routes")      # the ones pktverify makes when not given


def cluster_nodes(cluster: ClusterSpec, *, lenient: bool = False, cache: ModelCache | None = None) -> dict[str, NodeState]:
    """NodeState per node name. Generated rule sets that are the same text on several nodes
    (kube-proxy's iptables mode writes no node-specific rule) are parsed once and shared;
    their source reads ``<generated iptables of node1, node2, ...>``.  ``cache``: the given
    dumps' parsed rule sets kept between runs (see :mod:`.model_cache`)."""
    made = _GENERATED + (("nft",) if cluster.proxy_mode == "nftables" else ())
    generated = {node.name: generate_node(cluster, node, nft=False) for node in cluster.nodes
                 if not all(node.has_dump(kind) for kind in made)}
    # One parser for every node's dump, so that equal matches, targets and shape plans are shared
    # (a strict one for what pktverify generates itself, which must never need --lenient).
    parser = RuleParser(lenient=lenient)
    strict = parser if not lenient else RuleParser()
    holders: dict[str, list[str]] = {}
    for node in cluster.nodes:
        if not node.has_dump("iptables"):
            holders.setdefault(generated[node.name].iptables, []).append(node.name)
    rulesets = {}
    for text, names in holders.items():
        label = ", ".join(names) if len(names) <= 3 else f"{len(names)} nodes ({names[0]}, ...)"
        with _blamed_on(cluster, cluster.node(names[0])):
            rulesets[text] = parse_iptables_save(text, source=f"<generated iptables of {label}>", parser=strict)
    out: dict[str, NodeState] = {}
    scripts = NftScripts()          # generated nft scripts differ by a set element: read once, derived
    for node in cluster.nodes:
        gen = generated.get(node.name)
        given = {kind: _given(cluster, node, kind) for kind in DUMP_KINDS}
        made_nft = given["nft"] is None and gen is not None and cluster.proxy_mode == "nftables"
        if made_nft:
            # kube-proxy's nftables mode: made here, one node at a time (its text is dropped once read)
            given["nft"] = (generate_nft(cluster, node), f"<generated nft of {node.name}>", 0)
        with _blamed_on(cluster, node, generated=gen is not None):
            if given["iptables"] is not None:
                text, source, offset = given["iptables"]
                with _shifted(source, offset):
                    ruleset = parse_iptables_save(text, source=source, lenient=lenient, cache=cache, parser=parser)
            else:
                ruleset = rulesets[gen.iptables]
            text, source, offset = given["addrs"] or (gen.addrs, f"<generated {node.name} addrs>", 0)
            with _shifted(source, offset):
                addrs = parse_ip_addr(text, source=source)
            notes = ipv6_note(text, source) if given["addrs"] else ()
            text, source, offset = given["routes"] or (gen.routes, f"<generated {node.name} routes>", 0)
            with _shifted(source, offset):
                routes = parse_routes(text, source=source)
            sets = policy = None
            if given["ipsets"] is not None:
                text, source, offset = given["ipsets"]
                with _shifted(source, offset):
                    sets = parse_ipset_save(text, source=source)
            if given["rules"] is not None:
                text, source, offset = given["rules"]
                with _shifted(source, offset):
                    policy = parse_ip_rules(text, source=source)[0]
            nft, nft_notes = _nft(given, node, cache, scripts if made_nft else None)
            out[node.name] = build_node(node.name, addrs, routes.routes, ruleset, legacy_routes=routes.legacy,
                                        ipsets=sets, notes=notes + routes.notes + nft_notes, rules=policy, nft=nft)
            sysctls = node_sysctls(node)        # an optional sysctl.txt beside the node's dumps
            if sysctls is not None:
                out[node.name] = replace(out[node.name], sysctls=sysctls, route_localnet=sysctls.route_localnet)
    return out


def _nft(given: dict[str, tuple[str, str, int] | None], node: NodeSpec, cache: ModelCache | None = None,
         scripts: NftScripts | None = None) -> tuple[NftRuleset | None, tuple[str, ...]]:
    """The node's nftables tables (None: no nft dump) and the notes on what was left out; tables
    iptables-nft wrote are read from the node's own iptables-save when it gives one. An error in
    inline JSON (a JSON path, no line) names the line its text starts on in the cluster file.
    ``scripts`` (given for a ruleset pktverify generated): read it as derived from the one before."""
    if given["nft"] is None:
        return None, ()
    text, source, _offset = given["nft"]
    if scripts is not None:
        return node_nft(scripts.parse(text, source=source), iptables_given=given["iptables"] is not None,
                        managed=managed_tables(text))
    try:
        return load_node_nft(text, source=source, iptables_given=given["iptables"] is not None, cache=cache)
    except InputError as exc:
        start = dict(node.inline_lines).get("nft")
        if exc.line or node.nft is not None or start is None:
            raise
        raise InputError(source, start, f"the nft dump of node {node.name}: {exc.message}", exc.text) from None


def _given(cluster: ClusterSpec, node: NodeSpec, kind: str) -> tuple[str, str, int] | None:
    """(text, source name, line offset) of the dump ``kind`` the node gives, or None. Inline
    text is named after the cluster file, its lines counted from where the text starts there
    (the offset is 0: the text comes padded to its place)."""
    path = getattr(node, kind)
    if path is not None:
        return read_text(path, allow_empty=kind in ("iptables", "ipsets", "nft")), path, 0
    text = node.dump_text(kind)
    if text is None:
        return None
    # The text is read as if it stood where it does in the cluster file: every line number the
    # parsers keep (a rule's, a route's, an error's) is then the cluster file's own.  Each dump
    # reader skips blank lines, so the padding changes nothing else.
    start = dict(node.inline_lines).get(kind)
    if start is None:               # made in Python (with_node_dumps, a strategy): in no file
        return text, f"<{kind} of {node.name} in {cluster.source}>", 0
    return "\n" * max(start - 1, 0) + text, cluster.source, 0


@contextmanager
def _shifted(source: str, offset: int) -> Iterator[None]:
    """Errors in inline text name the line of the cluster file, not of the text."""
    try:
        yield
    except InputError as exc:
        if offset and exc.source == source:
            raise InputError(source, exc.line + offset, exc.message, exc.text) from None
        raise


@contextmanager
def _blamed_on(cluster: ClusterSpec, node: NodeSpec, *, generated: bool = True) -> Iterator[None]:
    """A generated dump the parsers refuse is the description's fault: name the node's line in it."""
    try:
        yield
    except InputError as exc:
        if not generated or not exc.source.startswith("<generated"):
            raise
        raise InputError(cluster.source, node.line,
                         f"node {node.name}: the dumps pktverify generates for it are not valid "
                         f"({exc.message}: {exc.text}); check its addresses, pod CIDR and bridge",
                         f"name: {node.name}") from None
