"""The ``pktverify trace`` JSON contract."""

from __future__ import annotations

import json

from ..model.addresses import format_ip
from ..model.trace import Outcome, Trace

__all__ = ["trace_to_json", "outcome_to_json"]


def outcome_to_json(o: Outcome) -> dict:
    """One outcome: the contract's keys, plus ``reason``, ``in_iface`` and ``conntrack``."""
    return {
        "probability": o.probability,
        "verdict": o.verdict,
        "exact": o.exact,
        "packet": o.packet.to_json(),
        "out_iface": o.out_iface,
        "next_hop": format_ip(o.next_hop) if o.next_hop is not None else None,
        "masquerade": o.masquerade,
        "steps": [s.to_json() for s in o.steps if s.table is not None],
        "reason": o.reason,
        "in_iface": o.in_iface,
        "path": [_path_entry(s) for s in o.steps],
        "conntrack": o.connection.to_json() if o.connection else None,
        "random_ports": {fld: [lo, hi] for fld, lo, hi in o.random_ports},
    }


def _path_entry(step) -> str:
    if step.table is None:
        return step.action
    where = f"{step.table}/{step.chain}" + (f" #{step.rule_index}" if step.rule_index else "")
    return f"{where}: {step.action}"


def trace_to_json(trace: Trace, *, notes: tuple[str, ...] = ()) -> str:
    """``{"outcomes": [...]}`` as stable, indented JSON."""
    doc: dict = {"outcomes": [outcome_to_json(o) for o in trace.outcomes]}
    if notes:
        doc["notes"] = list(notes)     # what was skipped or may-match (IPv6 routes, sets without contents)
    return json.dumps(doc, indent=2)
