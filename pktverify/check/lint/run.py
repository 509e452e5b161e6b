"""``pktverify lint``: run the rule table's checks on rule files (and, with a cluster, the invariants).

Findings are filtered by ``--select``/``--ignore`` (ids or prefixes) and by inline suppressions:
a rule whose comment says ``pktverify: ignore[PV203]`` (ids or prefixes, comma-separated;
``pktverify: ignore`` alone for all) silences the findings on its line (in an nft ruleset, a
``# pktverify: ignore[PV160]`` comment on the line). A file is read as nftables when ``nft_paths``
names it or its content is an nft ruleset (:func:`.nft_structure.looks_like_nft`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputError
from ...model.cluster import ClusterSpec
from ...parse.source import read_text
from . import cluster as cluster_checks
from . import invariants, nft_structure, structure
from .finding import SEVERITIES, Finding, Subject
from .registry import rule_checks, select

__all__ = ["LintResult", "lint_text", "lint_files"]

_SUPPRESS = re.compile(r"pktverify:\s*ignore(?:\[([A-Za-z0-9,\s]*)\])?")


@dataclass
class LintResult:
    """The findings (sorted by file, line, id) and the files read. ``unverified``: the cluster
    verification asked for (``--cluster``) could not run, because the file does not load or
    pktverify cannot read it (``notes`` says which line)."""
    findings: list[Finding]
    files: list[str]
    notes: list[str] = field(default_factory=list)
    unverified: bool = False

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def fails(self, fail_on: str) -> bool:
        """Whether a finding is at or above ``fail_on`` (error, warning, info), or the cluster
        verification asked for could not run (a gate that checked nothing must not pass)."""
        floor = SEVERITIES.index(fail_on)
        return self.unverified or any(SEVERITIES.index(f.severity) >= floor for f in self.findings)


def lint_text(text: str, source: str, *, lenient: bool = False, cluster: ClusterSpec | None = None,
              node: str | None = None, notes: list[str] | None = None, nft: bool = False) -> list[Finding]:
    """Every rule-set check on one iptables-save ``text`` (no suppression or selection); with
    ``cluster`` (and ``node``, the node the rules are for) the checks against its facts too.
    ``notes`` receives what was not analysed (rules past the shadowing check's work bound).
    An nft ruleset (``nft``, or told by content) gets the nft checks (PV150-PV165; with ``cluster``,
    PV303 and PV304) instead."""
    if nft or nft_structure.looks_like_nft(text):
        return nft_structure.lint_nft(text, source, notes, cluster)
    ruleset, findings = structure.parse_with_findings(text, source, lenient=lenient)
    if ruleset is None:
        return findings
    subject = Subject(ruleset, cluster, node)
    for check in rule_checks():
        findings += check(subject)
    if notes is not None and subject.work.note():
        notes.append(f"{source}: {subject.work.note()}")
    return findings

def lint_files(paths: list[str | Path], *, select_ids: list[str] | None = None, ignore_ids: list[str] | None = None,
               cluster: ClusterSpec | None = None, node: str | None = None, lenient: bool = False,
               nft_paths: list[str | Path] = ()) -> LintResult:
    """Lint ``paths`` and ``nft_paths`` (read as nftables whatever their content); with ``cluster``
    (one path: the proposed rules of ``node``, its iptables-save or its nft ruleset) also verify the
    cluster with them in place of the node's and report each violation at the rule responsible."""
    enabled = select(select_ids, ignore_ids)
    texts = {str(p): read_text(p, allow_empty=True) for p in [*paths, *nft_paths]}
    nft = {str(p) for p in nft_paths} | {s for s, text in texts.items() if nft_structure.looks_like_nft(text)}
    findings: list[Finding] = []
    notes: list[str] = []
    for source, text in texts.items():
        found: list[str] = []
        findings += lint_text(text, source, lenient=lenient, cluster=cluster, node=node, notes=found,
                              nft=source in nft)
        notes += found if ("PV165" if source in nft else "PV203") in enabled else []
    unverified = False
    if cluster is not None:
        proposed = str([*paths, *nft_paths][0])
        more = _with_cluster(cluster, node, proposed, findings, lenient, enabled, notes,
                             nft=texts[proposed] if proposed in nft else None)
        unverified = more is None
        findings += more or []
    lines = {source: text.split("\n") for source, text in texts.items()}
    kept = [f for f in findings if f.id in enabled and not _suppressed(f, lines)]
    kept.sort(key=lambda f: (f.source, f.line, f.col, f.id))
    return LintResult(kept, list(texts), notes, unverified)


def _with_cluster(cluster: ClusterSpec, node: str | None, path: str, findings: list[Finding], lenient: bool,
                  enabled: set[str], notes: list[str], nft: str | None = None) -> list[Finding] | None:
    """PV401-PV404 for the cluster with ``path`` as ``node``'s rules (its iptables-save, or with
    ``nft``, the file's text, its nft ruleset); None (and a note) when the file cannot be loaded:
    only a finding that stops the load skips the verification."""
    from ..verify_run import verify

    if not any(cid.startswith("PV4") for cid in enabled):
        return []
    proposed, node_name = cluster_checks.proposed_cluster(cluster, node, path,     # a bad --node first
                                                          "iptables" if nft is None else "nft")
    if nft is not None:
        _refuse_unmodelled(nft, path, cluster, node_name)
    note = _blocked(path, findings) if nft is None else _nft_blocked(path, findings)
    if note:
        notes.append(note)
        return None
    report = verify(proposed, lenient=lenient)
    return invariants.invariant_findings(proposed, node_name, path, report)


def _blocked(path: str, findings: list[Finding]) -> str:
    """Why iptables-save ``path`` cannot be loaded (a finding that stops it), '' when it can."""
    blockers = [(f, why) for f in findings if f.source == path
                for why in (structure.load_blocker(f),) if why is not None]
    if not blockers:
        return ""
    if all(why == "unreadable" for _f, why in blockers):
        first = blockers[0][0]
        return (f"pktverify cannot read {path} (line {first.line}, {first.id}: {first.message}), so the "
                "cluster was not verified with it (--lenient reads what pktverify does not model as may-match)")
    first = next(f for f, why in blockers if why == "refused")
    return (f"iptables-restore would refuse {path} (line {first.line}, {first.id}), so the cluster was "
            "not verified with it: fix the PV1xx errors first")


# What nft -f refuses (the structure errors, each checked against nft -f in a namespace); the
# warnings (PV159, PV160, PV162) are about rulesets it loads.
_NFT_REFUSED = frozenset({"PV150", "PV151", "PV152", "PV153", "PV154", "PV155", "PV156", "PV157", "PV158", "PV161"})


def _nft_blocked(path: str, findings: list[Finding]) -> str:
    """Why nft ruleset ``path`` cannot be loaded (a finding nft -f refuses), '' when it can."""
    first = next((f for f in findings if f.source == path and f.id in _NFT_REFUSED), None)
    if first is None:
        return ""
    where = f"line {first.line}, " if first.line else ""
    if first.id == "PV150":
        return (f"{path} does not read as an nft ruleset ({where}PV150: {first.message}): nft -f refuses it, or "
                "pktverify cannot read it, so the cluster was not verified with it")
    return (f"nft -f would refuse {path} ({where}{first.id}: {first.message}), so the cluster was not verified "
            "with it: fix the nft errors (PV150-PV161) first")


def _refuse_unmodelled(text: str, path: str, cluster: ClusterSpec, node: str) -> None:
    """A proposed ruleset holding kube-proxy's own nftables tables is judged as the cluster file
    judges a node's nft dump (:func:`.dataplane.detect_dataplane`): refused in one line when that
    mode is not modelled across a cluster, or is not the cluster's ``proxy_mode``, as ``verify``
    refuses such a node (the node's own iptables-save, when it gives one, is read too)."""
    from ...parse.dataplane import detect_dataplane, nft_tables

    if not nft_tables(text):
        return
    spec = cluster.node(node)
    iptables = read_text(spec.iptables, allow_empty=True) if spec.iptables else spec.dump_text("iptables")
    seen = detect_dataplane(iptables=iptables, nft=text)
    why = seen.unmodelled()
    if not why and seen.proxy_mode and seen.proxy_mode != cluster.proxy_mode:
        why = (f"runs kube-proxy in {seen.proxy_mode} mode ({', '.join(seen.proxy_evidence)}), but the cluster "
               f"says proxy_mode: {cluster.proxy_mode}")
    if why:
        raise InputError(path, 0, f"with it, node {node} {why}; lint {path} without --cluster checks its structure")


def _suppressed(finding: Finding, lines: dict[str, list[str]]) -> bool:
    text = lines.get(finding.source)
    if text is None or not 0 < finding.line <= len(text):
        return False
    hit = _SUPPRESS.search(text[finding.line - 1])
    if hit is None:
        return False
    if hit.group(1) is None:
        return True
    wanted = [w.strip() for w in hit.group(1).split(",") if w.strip()]
    return any(finding.id.startswith(w) for w in wanted)
