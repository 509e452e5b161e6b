"""``pktverify diff`` output: the verdict first (same, different, or inexact: a bound reached with
no difference found, saying what was compared and what was not), then each changed class of packets
— the change, an example and the rules responsible on each side — and the invariants that changed
(with --cluster). Every string from input is escaped (:mod:`.safe_text`)."""

from __future__ import annotations

from ..check.diff import DiffRun
from .safe_text import json_text, log_line

__all__ = ["diff_text", "diff_json", "inexact_line"]


def inexact_line(run: DiffRun) -> str:
    """The one line that says a bound was reached: what was compared, what was not (``inexact:``
    when no difference was found, ``incomplete:`` when some were)."""
    r = run.result
    found = (f"incomplete: {len(r.classes)} class(es) of packets treated differently found in" if r.classes
             else "inexact: no difference found in")
    if r.complete:          # every cell compared, but one packet could not stand for its cell
        return log_line(f"inexact: no difference found in the {r.cells:,} cells compared between {run.old} "
                        f"and {run.new}, but some rules match on what no packet field decides (see the notes): "
                        "packets within a cell may still be treated differently")
    return log_line(f"{found} the {r.cells:,} cells compared between {run.old} and {run.new}; "
                    f"not compared: {r.not_compared}")


def diff_text(run: DiffRun) -> str:
    r = run.result
    lines = []
    if not r.complete or run.verdict == "inexact":
        lines.append(inexact_line(run))
    if run.same:
        lines.append(f"no packet is treated differently by {run.new} than by {run.old} "
                     f"({r.cells:,} cells compared)")
    elif not r.classes and r.complete and run.invariants:
        lines.append(f"no packet is treated differently by {run.new} than by {run.old} ({r.cells:,} cells "
                     "compared), but the invariants differ")
    elif r.classes:
        lines.append(f"{len(r.classes)} class(es) of packets treated differently ({r.cells:,} cells compared; "
                     f"{len({r.place(x) for x in r.changed_old})} rule(s) only in {run.old}, "
                     f"{len({r.place(x) for x in r.changed_new})} only in {run.new})")
    if r.modes and r.classes:
        m = len(r.classes) - len(r.unexplained)
        lines.append(f"kube-proxy {r.modes}: {len(r.classes)} class(es) differ, {m} of them deliberate (nftables "
                     f"mode by design), {len(r.unexplained)} not")
    for n, c in enumerate(r.classes, 1):
        lines += ["", f"class {n}: {' | '.join(c.old)}  →  {' | '.join(c.new)}"
                  + (f"  [deliberate: {c.deliberate}]" if c.deliberate else ""),
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
    return "\n".join(log_line(line) for line in lines) + "\n"


def diff_json(run: DiffRun) -> str:
    """``verdict`` (same, different, inexact), ``same``, ``complete`` (every cell compared), ``exact``,
    ``not_compared``, ``cells``, ``work``, the classes, the changed rules, invariants and notes."""
    r = run.result
    return json_text({"verdict": run.verdict, "same": run.same, "complete": r.complete, "exact": r.exact,
                      "not_compared": r.not_compared, "cells": r.cells, "work": r.work,
                      "old": run.old, "new": run.new,
                      "classes": [c.to_json() for c in r.classes],
                      "changed_rules": {"old": list(dict.fromkeys(r.place(x) for x in r.changed_old)),
                                        "new": list(dict.fromkeys(r.place(x) for x in r.changed_new))},
                      "invariants": [{"name": n, "before": list(b), "after": list(a)} for n, b, a in run.invariants],
                      "notes": r.notes, **_modes_json(run)}) + "\n"


def _modes_json(run: DiffRun) -> dict:
    """Between kube-proxy's two modes: ``modes``, how many classes are deliberate and how many not,
    and ``all_deliberate`` (every difference documented: exit 0); nothing otherwise."""
    r = run.result
    if not r.modes:
        return {}
    return {"modes": r.modes, "deliberate_classes": len(r.classes) - len(r.unexplained),
            "unexplained_classes": len(r.unexplained), "all_deliberate": run.all_deliberate}
