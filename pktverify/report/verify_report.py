"""``pktverify verify`` output: the JSON contract and the text table."""

from __future__ import annotations

import json

from ..check.invariants import InvariantResult
from ..errors import one_line

__all__ = ["verify_to_json", "verify_to_text"]


def verify_to_json(results: list[InvariantResult]) -> str:
    """``{"invariants": [{"name", "holds", "checked", "violations": [{"message", "flow", "path"}]}]}``."""
    return json.dumps({"invariants": [r.to_json() for r in results]}, indent=2) + "\n"


def verify_to_text(results: list[InvariantResult], *, max_violations: int = 20) -> str:
    """One row per invariant, then each violation with its hop-by-hop path."""
    width = max(len(r.name) for r in results)
    lines = [f"{'invariant':<{width}}  result  checked  violations",
             f"{'-' * width}  ------  -------  ----------"]
    for r in results:
        lines.append(f"{r.name:<{width}}  {'holds' if r.holds else 'FAILS':<6}  {r.checked:>7}  {len(r.violations):>10}")
    for r in results:
        for note in r.notes:
            lines.append(f"\nnote ({r.name}): {note}")
        for n, v in enumerate(r.violations[:max_violations], 1):
            lines.append(f"\n{r.name} violation {n}: {v.message}")
            if v.flow:
                lines.append(f"  flow: {v.flow}")
            for hop in v.path:
                lines.append(f"    {hop}")
        if len(r.violations) > max_violations:
            lines.append(f"\n{r.name}: {len(r.violations) - max_violations} more violation(s); --format json lists all")
    # Rule text and names may hold control characters: each printed line is escaped on its own.
    return "\n".join(one_line(line) for line in "\n".join(lines).split("\n")) + "\n"
