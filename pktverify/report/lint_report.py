"""``pktverify lint`` output: text grouped by file, JSON, SARIF 2.1.0 and GitHub workflow annotations."""

from __future__ import annotations

import os
from pathlib import Path

from ..check.lint import REGISTRY, Finding, LintResult
from ..errors import one_line
from ..version import __version__
from .safe_text import json_text, log_line, uri_path

__all__ = ["lint_text_report", "lint_json", "lint_sarif", "lint_github"]

_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
_GITHUB_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}
_COLOURS = {"error": "\x1b[31m", "warning": "\x1b[33m", "info": "\x1b[36m"}
_BOLD, _RESET = "\x1b[1m", "\x1b[0m"


def lint_text_report(result: LintResult, *, colour: bool = False) -> str:
    """Findings grouped by file: ``LINE:COL  SEVERITY  ID name  message`` and related places; every
    line from input escaped (:func:`.safe_text.log_line`: no control character, no workflow command)."""
    lines: list[str] = []
    by_file: dict[str, list[Finding]] = {}
    for f in result.findings:
        by_file.setdefault(f.source, []).append(f)
    for source, found in by_file.items():
        lines.append(f"{_BOLD}{log_line(source)}{_RESET}" if colour else log_line(source))
        for f in found:
            sev = f"{_COLOURS[f.severity]}{f.severity:<7}{_RESET}" if colour else f"{f.severity:<7}"
            lines.append(f"  {f.line}:{f.col}  " + sev + log_line(f"  {f.id} {f.check.name}  {f.message}"))
            for src, line, what in f.related:
                lines.append(log_line(f"      {src}:{line}: {what}"))
        lines.append("")
    for note in result.notes:
        lines.append(log_line(f"note: {note}"))
    counts = [f"{result.count(s)} {s}{'s' if result.count(s) != 1 else ''}" for s in ("error", "warning", "info")
              if result.count(s)]
    lines.append(f"{len(result.findings)} finding(s) in {len(result.files)} file(s)" + (f": {', '.join(counts)}"
                                                                                        if counts else ": clean")
                 + ("; the cluster was not verified" if result.unverified else ""))
    return "\n".join(lines) + "\n"


def lint_json(result: LintResult) -> str:
    """``{"findings": [{id, name, severity, message, file, line, col, related}], "notes": [...], "unverified":
    bool (--cluster asked, the file could not be loaded), "summary": {...}}``."""
    return json_text({"findings": [f.to_json() for f in result.findings], "notes": result.notes,
                      "unverified": result.unverified,
                      "summary": {"files": len(result.files), "errors": result.count("error"),
                                  "warnings": result.count("warning"), "info": result.count("info")}}) + "\n"


def _uri(source: str) -> str:
    """A path relative to the working folder (what code scanning expects), else a file:// URI;
    percent-encoded as RFC 3986 says (``a b#c?.rules`` -> ``a%20b%23c%3F.rules``)."""
    path = Path(source)
    try:
        return uri_path(path.resolve().relative_to(Path(os.getcwd()).resolve()).as_posix())
    except ValueError:
        return "file://" + uri_path(path.resolve().as_posix())


def _location(source: str, line: int, col: int = 1) -> dict:
    return {"physicalLocation": {"artifactLocation": {"uri": _uri(source)},
                                 "region": {"startLine": max(line, 1), "startColumn": max(col, 1)}}}


def lint_sarif(result: LintResult) -> str:
    """SARIF 2.1.0 as GitHub code scanning reads it: every check as ``tool.driver.rules`` (id, help,
    default level), every finding as a result with its region and related locations."""
    ids = sorted(REGISTRY)
    rules = []
    for cid in ids:
        c = REGISTRY[cid]
        help_text = f"{c.summary}\n\n{c.why}\n\nFails:\n{c.bad}\n\nPasses:\n{c.good}"
        help_md = (f"**{c.summary}**\n\n{c.why}\n\nFails:\n```\n{c.bad}\n```\n\nPasses:\n```\n{c.good}\n```\n\n"
                   f"(docs/rules.md#{cid.lower()})")
        rules.append({"id": cid, "name": c.name, "shortDescription": {"text": c.summary},
                      "fullDescription": {"text": c.why}, "help": {"text": help_text, "markdown": help_md},
                      "defaultConfiguration": {"level": _SARIF_LEVEL[c.severity]},
                      "properties": {"tags": [c.family or "pktverify"]}})
    results = []
    for f in result.findings:
        item = {"ruleId": f.id, "ruleIndex": ids.index(f.id), "level": _SARIF_LEVEL[f.severity],
                "message": {"text": one_line(f.message)}, "locations": [_location(f.source, f.line, f.col)]}
        if f.related:
            item["relatedLocations"] = [{"id": n, **_location(src, line), "message": {"text": one_line(what)}}
                                        for n, (src, line, what) in enumerate(f.related, 1)]
        results.append(item)
    run = {"tool": {"driver": {"name": "pktverify", "version": __version__, "semanticVersion": __version__,
                               "rules": rules}},
           "results": results, "columnKind": "unicodeCodePoints"}
    if result.notes or result.unverified:      # e.g. the cluster was not verified: say so, not only in text
        run["invocations"] = [{"executionSuccessful": not result.unverified, "toolExecutionNotifications": [
            {"level": "warning", "message": {"text": one_line(note)}} for note in result.notes]}]
    doc = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0", "runs": [run]}
    return json_text(doc) + "\n"


def _escape(text: str, *, prop: bool = False) -> str:
    """GitHub workflow command escaping (data: % CR LF; properties also : and ,); ``text`` has no
    control character left (:func:`.errors.one_line` per line) and the data no workflow command
    (:func:`.safe_text.inert`)."""
    text = "\n".join(log_line(part) for part in text.split("\n"))
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def lint_github(result: LintResult) -> str:
    """One ``::error file=...,line=...,col=...,title=...::message`` line per finding: one
    annotation, its related places (example flows, covering rules) as further lines of its
    message; the notes (a cluster not verified) as ``::warning`` lines without a file."""
    out = []
    for f in result.findings:
        props = (f"file={_escape(f.source, prop=True)},line={max(f.line, 1)},col={max(f.col, 1)},"
                 f"title={_escape(f'{f.id} {f.check.name}', prop=True)}")
        text = "\n".join([f.message] + [f"{src}:{line}: {what}" for src, line, what in f.related])
        out.append(f"::{_GITHUB_LEVEL[f.severity]} {props}::{_escape(text)}")
    out += [f"::warning title=pktverify::{_escape(note)}" for note in result.notes]
    return "\n".join(out) + ("\n" if out else "")
