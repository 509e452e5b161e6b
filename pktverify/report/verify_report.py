"""``pktverify verify`` output: the JSON contract and the text report, root causes first."""

from __future__ import annotations

import json

from ..check.causes import Group, group_violations
from ..check.invariants import InvariantResult, Violation
from ..errors import one_line
from .node_warnings import NodeWarning, node_warnings_json, node_warnings_text

__all__ = ["verify_to_json", "verify_to_text", "hop_json"]


def hop_json(hop) -> dict:
    """One observation point as a structured record: where, the packet there, what acted."""
    node, _, iface = hop.point.partition(":")
    rules = []
    if hop.outcome is not None:
        for s in hop.outcome.steps:
            if s.table is None or s.action.startswith(("jump", "goto")):
                continue
            rules.append({"location": f"{s.source}:{s.line}" if s.source and s.line else None, "table": s.table,
                          "chain": s.chain, "rule": s.rule_index, "action": s.action})
    return {"point": hop.point, "node": node if node not in ("pod", "wire") else None,
            "interface": iface or None, "packet": hop.packet.to_json(), "note": hop.note,
            "verdict": hop.outcome.verdict if hop.outcome is not None else None, "rules": rules}


def _violation_json(v: Violation) -> dict:
    out = v.to_json()
    out["hops"] = [hop_json(h) for h in v.hops]
    return out


def verify_to_json(results: list[InvariantResult], *, captures: dict | None = None,
                   node_warnings: list[NodeWarning] = ()) -> str:
    """``{"invariants": [{"name", "holds", "checked", "violating_flows", "violations": [{"message", "flow",
    "path", "hops", "captures"?}], "notes"}], "groups": [{"cause", "location", "kind", "nodes", "invariants",
    "flows", "violations": [[name, index]]}]}``; ``hops`` are records (point, node, interface, packet, note,
    verdict, rules with ``file:line``). ``checked`` counts flows checked, ``violating_flows`` those of
    them that violate (each flow once, however many of its outcomes do), a group's ``flows`` the
    flows it explains (each once). ``captures``: the capture files each violation's counterexample
    was written to (``(invariant, index) -> [paths]``, see :func:`capture_names`), listed with it.
    ``node_warnings`` (see :func:`.node_warnings.fold_node_warnings`): what the nodes' dumps held
    that pktverify left out, as ``"node_warnings": [{"nodes", "warning"}]`` (no key when none)."""
    index = {(r.name, id(v)): n for r in results for n, v in enumerate(r.violations)}
    groups = [{"cause": g.cause, "location": g.location, "kind": g.kind, "nodes": g.nodes, "invariants": g.invariants,
               "flows": g.flows, "violations": [[inv, index[(inv, id(v))]] for inv, v in g.members]}
              for g in group_violations(results)]
    invariants = []
    for r in results:
        item = r.to_json()
        item["violations"] = [_violation_json(v) for v in r.violations]
        if captures is not None:
            for n, v in enumerate(item["violations"]):
                v["captures"] = [str(p) for p in captures.get((r.name, n), ())]
        invariants.append(item)
    doc = {"invariants": invariants, "groups": groups}
    if node_warnings:
        doc["node_warnings"] = node_warnings_json(node_warnings)
    return json.dumps(doc, indent=2) + "\n"


def verify_to_text(results: list[InvariantResult], *, max_violations: int = 2, captures: dict | None = None,
                   node_warnings: list[NodeWarning] = ()) -> str:
    """One row per invariant (flows checked, and how many of them violate), the notes and the
    ``node_warnings`` (each once), then the causes, biggest first: one line each, then up to
    ``max_violations`` examples with their hop-by-hop paths (0: every one), each naming its
    capture files when ``captures`` are given."""
    width = max(len(r.name) for r in results)
    lines = [f"{'invariant':<{width}}  result  flows checked  violating flows",
             f"{'-' * width}  ------  -------------  ---------------"]
    for r in results:
        lines.append(f"{r.name:<{width}}  {'holds' if r.holds else 'FAILS':<6}  {r.checked:>13}  {r.violating:>15}")
    for r in results:
        for note in r.notes:
            lines += ["", f"note ({r.name}): {note}"]
    lines += node_warnings_text(list(node_warnings))
    groups = group_violations(results)
    if groups:
        lines += ["", f"{len(groups)} cause(s), biggest first:"]
        for n, g in enumerate(groups, 1):
            lines.append(f"  {n}. {g.summary()}")
    index = {(r.name, id(v)): n for r in results for n, v in enumerate(r.violations)}
    for n, g in enumerate(groups, 1):
        lines += _group_text(n, g, max_violations, captures, index)
    # One entry is one row: notes, names, rule text and hostnames from input may hold line breaks,
    # ANSI escapes and other control characters, escaped here so no input writes a row of its own.
    return "\n".join(one_line(line) for line in lines) + "\n"


def _group_text(n: int, g: Group, max_violations: int, captures: dict | None, index: dict) -> list[str]:
    lines = ["", f"cause {n}: {g.summary()}"]
    if len(g.nodes) > 1:
        lines.append(f"  on {len(g.nodes)} nodes: {', '.join(g.nodes)}")
    shown = g.examples(max_violations)
    for inv, v in shown:
        lines.append(f"  {inv}: {v.message}")
        if v.flow:
            lines.append(f"    flow: {v.flow}")
        for hop in v.path:
            lines.append(f"      {hop}")
        if captures is not None:
            names = captures.get((inv, index[(inv, id(v))]), ())
            if names:
                lines.append(f"    capture: {', '.join(str(p) for p in names)}")
    if len(g.members) > len(shown):
        lines.append(f"  ... {len(g.members) - len(shown)} more with this cause (--max-violations 0 shows every one;"
                     " --format json lists all)")
    return lines
