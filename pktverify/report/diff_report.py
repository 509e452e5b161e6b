"""``pktverify diff`` output: each changed class of packets — the change first, then an example and
the rules responsible on each side — and the invariants that changed (with --cluster)."""

from __future__ import annotations

import json

from ..check.diff_run import DiffRun
from ..errors import one_line

__all__ = ["diff_text", "diff_json"]


def diff_text(run: DiffRun) -> str:
    r = run.result
    lines = []
    if run.same:
        lines.append(f"no packet is treated differently by {run.new} than by {run.old} "
                     f"({r.cells:,} cells compared{'' if r.exact else ', inexact: see notes'})")
    else:
        lines.append(f"{len(r.classes)} class(es) of packets treated differently ({r.cells:,} cells compared; "
                     f"{len(r.changed_old)} rule(s) only in {run.old}, {len(r.changed_new)} only in {run.new})")
    for n, c in enumerate(r.classes, 1):
        lines += ["", f"class {n}: {' | '.join(c.old)}  →  {' | '.join(c.new)}",
                  f"  packets: {'; '.join(c.describe_spans()) or 'every address and port'}; arriving on "
                  f"{', '.join(c.interfaces)} ({c.cells} cell(s))",
                  f"  example: {c.example.describe()} "
                  f"{f'arriving on {c.in_iface}' if c.in_iface else 'generated locally'}",
                  f"  {run.old}:"] + [f"    {s}" for s in c.old_rules or ("(no rule: policies and routes)",)] + \
                 [f"  {run.new}:"] + [f"    {s}" for s in c.new_rules or ("(no rule: policies and routes)",)]
    for name, before, after in run.invariants:
        lines += ["", f"invariant {name}: {len(before)} violation(s) before, {len(after)} after"]
        lines += [f"  new: {m}" for m in after if m not in before][:10]
        lines += [f"  gone: {m}" for m in before if m not in after][:10]
    for note in r.notes:
        lines += ["", f"note: {note}"]
    return "\n".join(one_line(line) for line in lines) + "\n"


def diff_json(run: DiffRun) -> str:
    r = run.result
    return json.dumps({"same": run.same, "exact": r.exact, "cells": r.cells, "old": run.old, "new": run.new,
                       "classes": [c.to_json() for c in r.classes],
                       "changed_rules": {"old": [f"{x.source}:{x.line}" for x in r.changed_old],
                                         "new": [f"{x.source}:{x.line}" for x in r.changed_new]},
                       "invariants": [{"name": n, "before": list(b), "after": list(a)} for n, b, a in run.invariants],
                       "notes": r.notes}, indent=2) + "\n"
