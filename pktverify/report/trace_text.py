"""A trace as readable text: one block per outcome, one line per step."""

from __future__ import annotations

from ..errors import one_line
from ..model.addresses import format_ip
from ..model.trace import Trace

__all__ = ["trace_to_text"]


def trace_to_text(trace: Trace) -> str:
    """E.g. ``nat/PREROUTING → KUBE-SERVICES #3 → KUBE-SVC-X (p=0.333) → KUBE-SEP-Y: DNAT ...``."""
    where = f"on {trace.in_iface}" if trace.in_iface else "generated locally"
    lines = [f"{trace.packet.describe()} ({where}): {len(trace.outcomes)} outcome(s)"]
    for n, o in enumerate(trace.outcomes, 1):
        exact = "" if o.exact else " [INEXACT]"
        tail = ""
        if o.verdict == "forward":      # a next hop that is the destination itself: on the link, no gateway
            tail = f" out {o.out_iface} " + (f"via {format_ip(o.next_hop)}" if o.next_hop not in (None, o.packet.dst)
                                             else "on-link (to the destination itself, no gateway)")
        lines.append(f"\n[{n}] p={o.probability:.6g} {o.verdict.upper()}{tail}: {o.packet.describe()}"
                     f"{' (masqueraded)' if o.masquerade else ''}{exact}")
        lines.append(f"    reason: {o.reason}")
        for fld, lo, hi in o.random_ports:
            lines.append(f"    {fld}: drawn by the kernel uniformly from {lo}-{hi} (shown as {lo})")
        for path in _chain_paths(o.steps):
            lines.append(f"    {path}")
    # Rule text and names may hold control characters: each printed line is escaped on its own.
    return "\n".join(one_line(line) for line in "\n".join(lines).split("\n")) + "\n"


def _chain_paths(steps) -> list[str]:
    """One line per table walk (``nat/PREROUTING #1 → KUBE-SERVICES #3 → ...``), one per other step."""
    out: list[str] = []
    parts: list[str] = []
    table = chain = None
    for s in steps:
        if s.table is None:
            if parts:
                out.append(" → ".join(parts))
            parts, table, chain = [], None, None
            out.append(f"· {s.action}")
            continue
        if s.table != table:
            if parts:
                out.append(" → ".join(parts))
            parts, table, chain = [], s.table, None
        prob = f" (p={s.probability:.3g})" if s.probability is not None else ""
        if s.rule_index:
            what = "" if s.action.startswith(("jump ", "goto ")) else f": {s.action}"
            text = f"#{s.rule_index}{prob}{what}"
        else:                        # the chain's policy: its action already says so ("policy ACCEPT")
            text = s.action if s.action.startswith("policy") else f"policy: {s.action}"
        if s.chain != chain:
            parts.append(f"{s.table + '/' if not parts else ''}{s.chain} {text}")
        else:
            parts[-1] += f", {text}"
        chain = s.chain
    if parts:
        out.append(" → ".join(parts))
    return out
