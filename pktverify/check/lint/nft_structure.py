"""PV150-PV162: nftables structure — what ``nft -f`` (or the kernel behind it) refuses, and dead chains.

A file is read as nftables when ``--nft`` names it or its content is an nft ruleset (``nft -j list
ruleset`` JSON, an ``nft list ruleset`` listing, an ``nft -f`` script); a reader's refusal is one
PV150 finding (the readers stop at the first error). Each check's documentation says what the
kernel does with it, as seen with ``nft -f`` in a network namespace (nft 1.0.6, kernel 6.18): an
error is a ruleset the kernel refuses as a whole (the node keeps its old rules); a warning is one it
loads. The kernel validates only what a base chain reaches: a chain nothing reaches is never
refused for what it holds (a loop, a misplaced NAT or reject): it is an unused chain (PV160).
JSON findings are at line 1 (``nft -j`` writes one line); their message names ``nftables[i]``.
"""

from __future__ import annotations

from ...errors import InputError
from ...model import nft as n
from ...model.cluster import ClusterSpec
from ...parse.nft_json import looks_like_nft_json, parse_nft_json
from ...parse.nft_text import looks_like_nft_text, parse_nft_text
from . import nft_cluster
from .finding import Check, Finding
from .nft_graph import TableGraph, element_problem, match_problem, script_order
from .nft_reachability import nft_dead_rules

__all__ = ["NFT_CHECKS", "lint_nft", "looks_like_nft", "nft_findings", "parse_nft_with_findings"]

_BASE = "table ip t {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n{}  }}\n{}}}"


def _ex(rules: str, more: str = "") -> str:
    return _BASE.format("".join(f"    {r}\n" for r in rules.split("\n") if r), more)


PV150 = Check(
    "PV150", "nft-parse-error", "error", "nft -f refuses this line (or pktverify cannot read it)",
    "nft commits nothing of a ruleset with an error, so the node keeps its old rules. The readers stop at the "
    "first error: fix it and lint again.",
    _ex("ip saddr 10.0.0.300 drop"), _ex("ip saddr 10.0.0.30 drop"), "structure")
PV151 = Check(
    "PV151", "nft-undefined-chain", "error", "a jump, goto or verdict map element to a chain the table does not have",
    "The kernel refuses the rule or element (`Could not process rule: No such file or directory`), and with it "
    "the whole ruleset; a misspelt chain name is the usual cause. In an nft -f script of commands, a chain "
    "added only by a later command is missing too (nft runs the commands in order; a table block may name "
    "a chain it declares further down).",
    _ex("jump nochain"), _ex("jump svc", "  chain svc {\n    accept\n  }\n"), "structure")
PV152 = Check(
    "PV152", "nft-undefined-set", "error", "a reference (@name) to a set, map or flowtable the table does not have",
    "nft refuses the rule (`No such file or directory`) and loads nothing of the ruleset; in a script of "
    "commands, also a set added only by a later command.",
    _ex("ip saddr @blocked drop"), _ex("ip saddr @blocked drop", "  set blocked {\n    type ipv4_addr\n    elements = { 10.9.9.9 }\n  }\n"),
    "structure")
PV153 = Check(
    "PV153", "nft-chain-loop", "error", "chains a base chain reaches jump or go to each other in a loop",
    "The kernel refuses a loop a base chain reaches (`Could not process rule: Too many links`, its jump-depth "
    "limit); a loop no base chain reaches loads (no packet enters it: PV160).",
    _ex("jump a", "  chain a {\n    jump b\n  }\n  chain b {\n    jump a\n  }\n"),
    _ex("jump a", "  chain a {\n    jump b\n  }\n  chain b {\n    return\n  }\n"), "structure")
PV154 = Check(
    "PV154", "nft-jumps-too-deep", "error", "a chain 16 or more jumps or gotos deep from a base chain",
    "The kernel follows at most 15 nested jumps or gotos from a base chain (NFT_JUMP_STACK_SIZE, 16 levels "
    "with the base chain's) and refuses a deeper path (`Too many links`) when the ruleset is loaded.",
    _ex("jump c0", "".join(f"  chain c{i} {{\n    jump c{i + 1}\n  }}\n" for i in range(15)) + "  chain c15 {\n  }\n"),
    _ex("jump c0", "".join(f"  chain c{i} {{\n    jump c{i + 1}\n  }}\n" for i in range(14)) + "  chain c14 {\n  }\n"),
    "structure")
PV155 = Check(
    "PV155", "nft-nat-not-allowed-here", "error",
    "NAT reached from a base chain that is not type nat, or on a hook where the kernel refuses it",
    "The kernel refuses (`Operation not supported`) dnat, snat, masquerade and redirect reached from a filter or "
    "route chain, dnat and redirect outside prerouting and output, snat outside postrouting and input, "
    "masquerade outside postrouting, and a nat chain on the forward hook. NAT in a chain no base chain reaches "
    "loads (PV160).",
    _ex("tcp dport 80 dnat to 10.0.0.1"),
    "table ip t {\n  chain pre {\n    type nat hook prerouting priority dstnat; policy accept;\n"
    "    tcp dport 80 dnat to 10.0.0.1\n  }\n}", "structure")
PV156 = Check(
    "PV156", "nft-reject-not-allowed-here", "error", "reject reached from a postrouting base chain",
    "The kernel refuses reject on the postrouting hook (`Operation not supported`); it takes it on prerouting, "
    "input, forward and output (kernel 6.18; kernels before 5.x refused prerouting too).",
    "table ip t {\n  chain post {\n    type filter hook postrouting priority 0; policy accept;\n    reject\n  }\n}",
    "table ip t {\n  chain forwarding {\n    type filter hook forward priority 0; policy accept;\n    reject\n  }\n}",
    "structure")
PV157 = Check(
    "PV157", "nft-jump-to-base-chain", "error", "a jump, goto or verdict map element to a base chain",
    "Base chains are entered from their hook only: the kernel refuses a verdict naming one "
    "(`Could not process rule: Operation not supported`).",
    "table ip t {\n  chain inbound {\n    type filter hook input priority 0; policy accept;\n  }\n"
    "  chain outbound {\n    type filter hook output priority 0; policy accept;\n    jump inbound\n  }\n}",
    "table ip t {\n  chain common {\n    accept\n  }\n  chain inbound {\n    type filter hook input priority 0; "
    "policy accept;\n    jump common\n  }\n}", "structure")
PV158 = Check(
    "PV158", "nft-element-type", "error", "a set or map element that does not fit the declared type",
    "nft refuses the element (a port over 65535 or an address in an inet_service set, a concatenation with "
    "too few or too many parts, a verdict in a data map, data in a set) and loads nothing of the ruleset.",
    "table ip t {\n  set ports {\n    type inet_service\n    elements = { 70000 }\n  }\n}",
    "table ip t {\n  set ports {\n    type inet_service\n    elements = { 7000 }\n  }\n}", "structure")
PV159 = Check(
    "PV159", "nft-nat-policy-drop", "warning", "a nat base chain with policy drop",
    "The kernel loads it; a nat chain sees the first packet of each connection only, so the policy drops every "
    "new connection that no rule of the chain accepts or translates (seen in the kernel lab). Filter in a "
    "filter chain instead.",
    "table ip t {\n  chain pre {\n    type nat hook prerouting priority dstnat; policy drop;\n  }\n}",
    "table ip t {\n  chain pre {\n    type nat hook prerouting priority dstnat; policy accept;\n  }\n}",
    "structure")
PV160 = Check(
    "PV160", "nft-unused-chain", "warning",
    "a regular chain nothing jumps, goes or maps to (or only a loop of chains nothing else enters)",
    "The kernel loads it, but its rules never see a packet (and are not validated: a misplaced NAT or reject "
    "in it is refused only once something jumps to it). Usually a jump was removed or misspelt. kube-proxy's "
    "reject-chain (in table kube-proxy, there for services without endpoints) is not a finding.",
    _ex("", "  chain unused {\n    drop\n  }\n"), _ex("jump used", "  chain used {\n    drop\n  }\n"), "structure")

# Chains a program always creates for the day a map names them: kube-proxy's nftables mode keeps
# reject-chain for the services without endpoints (its no-endpoint maps goto it when there is one).
STANDBY_CHAINS = frozenset({("kube-proxy", "reject-chain")})

PV161 = Check(
    "PV161", "nft-value-out-of-range", "error", "a match compares a field with a value it cannot hold",
    "nft refuses the rule (`Service out of range`, `Value 300 exceeds valid range 0-255`) and loads nothing of "
    "the ruleset: a port over 65535, a ttl or protocol over 255, a mark over 32 bits, in a value, range or "
    "anonymous set.",
    _ex("tcp dport { 80, 8080, 80800 } accept"), _ex("tcp dport { 80, 8080, 8088 } accept"), "structure")
PV162 = Check(
    "PV162", "nft-not-read", "warning", "a statement or expression pktverify does not read",
    "pktverify keeps it as written and treats it as may-match. nft refuses it when nft does not know it either "
    "(a typo such as `acept` makes the whole ruleset fail to load); a statement nft knows (socket, osf, ...) "
    "loads. Check the word; suppress the finding on its line when it is what you meant.",
    _ex("tcp dport 22 socket transparent 1 accept"), _ex("tcp dport 22 accept"), "structure")

NFT_CHECKS = (PV150, PV151, PV152, PV153, PV154, PV155, PV156, PV157, PV158, PV159, PV160, PV161, PV162)


def looks_like_nft(text: str) -> bool:
    """Whether ``text`` is an nft ruleset: ``nft -j`` JSON, a listing (``table ... {``) or a script of commands."""
    return looks_like_nft_json(text) or looks_like_nft_text(text)


def parse_nft_with_findings(text: str, source: str) -> tuple[n.NftRuleset | None, list[Finding]]:
    """Read ``text`` (JSON or nft's language, told by content); a refusal is one PV150 finding."""
    try:
        if looks_like_nft_json(text):
            return parse_nft_json(text, source), []
        return parse_nft_text(text, source), []
    except InputError as exc:
        message = f"{exc.message}: {exc.text}" if exc.text else exc.message
        return None, [Finding("PV150", message, source, exc.line)]


def lint_nft(text: str, source: str, notes: list[str] | None = None,
             cluster: ClusterSpec | None = None) -> list[Finding]:
    """Every nft check on one ruleset ``text`` (no suppression or selection): the structure checks,
    then PV163-PV165 (:mod:`.nft_reachability`); ``notes`` receives what was not analysed. With the
    ``cluster`` the ruleset is proposed for, PV303 and PV304 too (:mod:`.nft_cluster`)."""
    ruleset, findings = parse_nft_with_findings(text, source)
    if ruleset is None:
        return findings
    findings += nft_findings(ruleset, text)
    more = nft_cluster.cluster_findings(ruleset, cluster, findings) if cluster is not None else []
    return findings + nft_dead_rules(ruleset, findings, notes) + more


def nft_findings(ruleset: n.NftRuleset, text: str = "") -> list[Finding]:
    """PV151-PV162 on a parsed ruleset, table by table (chains, sets and jumps are per table);
    with the script's ``text``, also what one of its commands names before a later command adds it."""
    out: list[Finding] = []
    lines = text.split("\n") if ruleset.form == "script" else []
    for table in ruleset.tables:
        graph = TableGraph(table)
        where = _Where(ruleset)
        out += _references(table, graph, where)
        out += script_order(table, graph, lines, where.finding)
        out += _walks(table, graph, where)
        out += _placement(table, graph, where)
        out += _elements(table, where)
        out += _values(table, where)
    return out


class _Where:
    """Finding locations: the line in a text or script; line 1 and ``nftables[i]`` in JSON."""

    def __init__(self, ruleset: n.NftRuleset) -> None:
        self.source = ruleset.source
        self.json = ruleset.form == "json"

    def finding(self, cid: str, message: str, line: int, related: tuple = ()) -> Finding:
        if self.json:
            return Finding(cid, f"nftables[{line}]: {message}", self.source, 1,
                           related=tuple((s, 1, f"nftables[{n_}]: {w}") for s, n_, w in related))
        return Finding(cid, message, self.source, line, related=related)

    def related(self, what: str, line: int) -> tuple[str, int, str]:
        return (self.source, line, what)


def _references(table: n.NftTable, graph: TableGraph, where: _Where) -> list[Finding]:
    """PV151, PV152, PV157: verdicts naming a missing or base chain; @names the table lacks."""
    out = []
    tname = f"table {table.family} {table.name}"
    for edge in graph.edges:
        target = graph.chains.get(edge.target)
        if target is None:
            out.append(where.finding("PV151", f"{edge.kind} {edge.target} in {edge.origin}: {tname} has no chain "
                                              f"{edge.target}", edge.line))
        elif target.is_base:
            out.append(where.finding("PV157", f"{edge.kind} {edge.target} in {edge.origin}: {edge.target} is a base "
                                              f"chain (hook {target.hook}), entered from its hook only", edge.line,
                                     (where.related(f"base chain {edge.target}", target.line),)))
    names = {s.name for s in (*table.sets, *table.maps)} | {f.name for f in table.flowtables}
    for ref, line, origin in graph.set_refs:
        if ref not in names:
            out.append(where.finding("PV152", f"@{ref} in {origin}: {tname} has no set, map or flowtable {ref}", line))
    return out


def _walks(table: n.NftTable, graph: TableGraph, where: _Where) -> list[Finding]:
    """PV153 loops, PV154 paths too deep, PV160 chains nothing reaches."""
    out = []
    for cycle, line in graph.loops():
        names = " -> ".join(cycle + [cycle[0]])
        out.append(where.finding("PV153", f"loop of jumps {names} in table {table.family} {table.name}, reached from "
                                          f"base chain {graph.reached_from(cycle[0])[0].name}", line,
                                 tuple(where.related(f"chain {c}", graph.chains[c].line) for c in cycle)))
    for base, path, line in graph.too_deep():
        out.append(where.finding("PV154", f"chain {path[-1]} is {len(path) - 1} jumps deep from base chain "
                                          f"{base.name} (the kernel allows 15): {' -> '.join(path)}", line))
    for chain in table.chains:
        why = graph.unused(chain)
        if why is not None and (table.name, chain.name) not in STANDBY_CHAINS:
            out.append(where.finding("PV160", f"chain {chain.name} in table {table.family} {table.name}: {why}, "
                                              "so its rules never see a packet", chain.line))
    return out


_NAT_HOOKS = {"dnat": ("prerouting", "output"), "redirect": ("prerouting", "output"),
              "snat": ("postrouting", "input"), "masquerade": ("postrouting",)}


def _placement(table: n.NftTable, graph: TableGraph, where: _Where) -> list[Finding]:
    """PV155 NAT and PV156 reject where the kernel refuses them; PV159 nat chains with policy drop."""
    out = []
    for chain in table.chains:
        if chain.type == "nat" and chain.hook == "forward":
            out.append(where.finding("PV155", f"nat chain {chain.name} on the forward hook: the kernel takes nat "
                                              "chains on prerouting, input, output and postrouting only", chain.line))
        if chain.type == "nat" and chain.policy == "drop":
            out.append(where.finding("PV159", f"nat chain {chain.name} has policy drop: every new connection no "
                                              "rule accepts or translates is dropped", chain.line))
        bases = graph.reached_from(chain.name)
        for rule in chain.rules:
            for stmt in rule.exprs:
                bad = _misplaced(stmt, bases)
                if bad is not None:
                    cid, why, base = bad
                    via = "" if base.name == chain.name else f" (chain {chain.name}, reached from {base.name})"
                    out.append(where.finding(cid, why + via, rule.line,
                                             (where.related(f"base chain {base.name}", base.line),)))
                    break
    return out


def _misplaced(stmt: object, bases: list[n.NftChain]) -> tuple[str, str, n.NftChain] | None:
    for base in bases:
        if isinstance(stmt, n.Nat):
            if base.type != "nat":
                return "PV155", f"{stmt.kind} in a {base.type} chain: the kernel takes NAT in nat chains only", base
            if base.hook not in _NAT_HOOKS.get(stmt.kind, (base.hook,)):
                hooks = " and ".join(_NAT_HOOKS[stmt.kind])
                return "PV155", f"{stmt.kind} on the {base.hook} hook: the kernel takes it on {hooks} only", base
        if isinstance(stmt, n.Reject) and base.hook == "postrouting":
            return "PV156", "reject on the postrouting hook: the kernel refuses it there", base
    return None


def _elements(table: n.NftTable, where: _Where) -> list[Finding]:
    """PV158: each set's and map's elements against its declared types (the first misfit of each)."""
    out = []
    for s in (*table.sets, *table.maps):
        for element in s.elements:
            why = element_problem(s, element)
            if why is not None:
                out.append(where.finding("PV158", f"{'map' if s.is_map else 'set'} {s.name}: {why}", s.line))
                break
    return out


def _values(table: n.NftTable, where: _Where) -> list[Finding]:
    """PV161 values a field cannot hold and PV162 what pktverify does not read, the first of each rule."""
    out = []
    for chain in table.chains:
        for rule in chain.rules:
            problem = next((p for stmt in rule.exprs if (p := match_problem(stmt)) is not None), None)
            if problem is not None:
                out.append(where.finding("PV161", f"{problem} (chain {chain.name})", rule.line))
            unread = next((stmt.raw for stmt in rule.exprs if isinstance(stmt, n.NftUnknown)), None)
            if unread is not None:
                out.append(where.finding("PV162", f"pktverify does not read {unread!r} (chain {chain.name}): a typo "
                                                  "makes nft refuse the ruleset; otherwise it is may-match here",
                                         rule.line))
    return out
