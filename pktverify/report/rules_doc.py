"""``docs/rules.md`` from the check registry: ``python -m pktverify.report.rules_doc > docs/rules.md``.

A test fails when the committed file differs from what this writes (the registry is the source).
"""

from __future__ import annotations

import sys

from ..check.lint import REGISTRY

__all__ = ["render"]

_FAMILIES = {"PV1": "Structure (what iptables-restore or nft -f refuses)", "PV2": "Reachability of rules",
             "PV3": "Kubernetes semantics", "PV4": "Cluster invariants (lint --cluster, verify)"}


def render() -> str:
    """The whole rules page."""
    out = ["# pktverify checks", "",
           "Generated from the registry (`pktverify/check/lint/registry.py`) by "
           "`python -m pktverify.report.rules_doc > docs/rules.md`; do not edit by hand.", "",
           "Select or ignore by id or prefix (`pktverify lint --select PV2 --ignore PV203`), or silence one rule with "
           "its comment: `-m comment --comment \"pktverify: ignore[PV203]\"`.", "",
           "| id | name | severity | finds |", "|---|---|---|---|"]
    for cid in sorted(REGISTRY):
        c = REGISTRY[cid]
        out.append(f"| [{cid}](#{cid.lower()}) | {c.name} | {c.severity} | {c.summary} |")
    family = None
    for cid in sorted(REGISTRY):
        c = REGISTRY[cid]
        if cid[:3] != family:
            family = cid[:3]
            out += ["", f"## {_FAMILIES[family]}"]
        out += ["", f"### {cid}", "", f"**{c.name}** ({c.severity}): {c.summary}.", "", c.why, "",
                "Fails:", "", "```", c.bad, "```", "", "Passes:", "", "```", c.good, "```"]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
