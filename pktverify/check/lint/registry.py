"""The rule table: every check id, the check that finds it, and its documentation.

Ids follow the linters engineers know (ruff, shellcheck, hadolint): ``PV1xx`` structure (what
``iptables-restore`` refuses), ``PV2xx`` reachability of rules, ``PV3xx`` Kubernetes semantics,
``PV4xx`` the cluster invariants. An id never changes meaning; a retired check keeps its id.
``docs/rules.md`` is generated from this table (``python -m pktverify.report.rules_doc``).

As in yamllint's ``rules/__init__.py``, the table is written out: adding a check is its family
module (the :class:`.Check` documentation and the function that finds it) and one line here.
A check runs at one stage: ``file`` while the file is parsed (:func:`.structure.parse_with_findings`),
``rules`` on the parsed rules (a function of a :class:`.Subject`, run by :mod:`.run` in table
order), ``cluster`` on the cluster verified with the proposed rules (:func:`.invariants.invariant_findings`),
``nft`` on an nftables ruleset (:func:`.nft_structure.lint_nft`: ``PV150``-``PV165``, read and checked together).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...errors import InvalidArgument
from . import cluster, invariants, kubernetes, nft_reachability, nft_structure, reachability, structure
from .finding import DOCUMENTATION, SEVERITIES, Check

__all__ = ["REGISTRY", "RULES", "Rule", "rule_checks", "select"]


@dataclass(frozen=True)
class Rule:
    """One line of the table: the check's documentation, the function that finds it, and when it runs."""
    check: Check
    finds: Callable[..., object]
    stage: str = "rules"


RULES: dict[str, Rule] = {
    "PV100": Rule(structure.PV100, structure.parse_with_findings, "file"),
    "PV101": Rule(structure.PV101, structure.parse_with_findings, "file"),
    "PV102": Rule(structure.PV102, structure.parse_with_findings, "file"),
    "PV103": Rule(structure.PV103, structure.parse_with_findings, "file"),
    "PV104": Rule(structure.PV104, structure.unused_chains),
    "PV150": Rule(nft_structure.PV150, nft_structure.lint_nft, "nft"),
    "PV151": Rule(nft_structure.PV151, nft_structure.lint_nft, "nft"),
    "PV152": Rule(nft_structure.PV152, nft_structure.lint_nft, "nft"),
    "PV153": Rule(nft_structure.PV153, nft_structure.lint_nft, "nft"),
    "PV154": Rule(nft_structure.PV154, nft_structure.lint_nft, "nft"),
    "PV155": Rule(nft_structure.PV155, nft_structure.lint_nft, "nft"),
    "PV156": Rule(nft_structure.PV156, nft_structure.lint_nft, "nft"),
    "PV157": Rule(nft_structure.PV157, nft_structure.lint_nft, "nft"),
    "PV158": Rule(nft_structure.PV158, nft_structure.lint_nft, "nft"),
    "PV159": Rule(nft_structure.PV159, nft_structure.lint_nft, "nft"),
    "PV160": Rule(nft_structure.PV160, nft_structure.lint_nft, "nft"),
    "PV161": Rule(nft_structure.PV161, nft_structure.lint_nft, "nft"),
    "PV162": Rule(nft_structure.PV162, nft_structure.lint_nft, "nft"),
    "PV163": Rule(nft_reachability.PV163, nft_structure.lint_nft, "nft"),
    "PV164": Rule(nft_reachability.PV164, nft_structure.lint_nft, "nft"),
    "PV165": Rule(nft_reachability.PV165, nft_structure.lint_nft, "nft"),
    "PV201": Rule(reachability.PV201, reachability.dead_rules),
    "PV202": Rule(reachability.PV202, reachability.dead_rules),
    "PV203": Rule(reachability.PV203, reachability.dead_rules),
    "PV301": Rule(kubernetes.PV301, kubernetes.endpoint_choice),
    "PV302": Rule(kubernetes.PV302, kubernetes.conflicting_nat),
    "PV303": Rule(cluster.PV303, cluster.rule_findings),
    "PV304": Rule(cluster.PV304, cluster.rule_findings),
    "PV305": Rule(cluster.PV305, cluster.rule_findings),
    "PV306": Rule(cluster.PV306, cluster.rule_findings),
    "PV307": Rule(kubernetes.PV307, kubernetes.shared_proxy_ports),
    "PV401": Rule(invariants.PV401, invariants.invariant_findings, "cluster"),
    "PV402": Rule(invariants.PV402, invariants.invariant_findings, "cluster"),
    "PV403": Rule(invariants.PV403, invariants.invariant_findings, "cluster"),
    "PV404": Rule(invariants.PV404, invariants.invariant_findings, "cluster"),
}


def _documentation(rules: dict[str, Rule]) -> dict[str, Check]:
    """Each id's :class:`.Check` (put in :data:`.finding.DOCUMENTATION`, where findings look up
    their name and severity), after checking the table: its key is the check's own id, its
    severity one of :data:`.SEVERITIES`, its stage one the runner knows."""
    for cid, rule in rules.items():
        if rule.check.id != cid:
            raise ValueError(f"table line {cid} documents {rule.check.id}")
        if rule.check.severity not in SEVERITIES:
            raise ValueError(f"{cid}: severity {rule.check.severity!r}")
        if rule.stage not in ("file", "rules", "cluster", "nft"):
            raise ValueError(f"{cid}: stage {rule.stage!r}")
    DOCUMENTATION.update({cid: rule.check for cid, rule in rules.items()})
    return DOCUMENTATION


REGISTRY: dict[str, Check] = _documentation(RULES)


def rule_checks() -> list[Callable[..., object]]:
    """The ``rules``-stage functions, each once, in table order."""
    return list(dict.fromkeys(rule.finds for rule in RULES.values() if rule.stage == "rules"))


def select(ids: list[str] | None, ignore: list[str] | None) -> set[str]:
    """The ids enabled by ``--select`` and ``--ignore`` (each an id or a prefix such as ``PV2``)."""
    for value in (ids or []) + (ignore or []):
        if not any(cid.startswith(value) for cid in REGISTRY):
            raise InvalidArgument(f"{value!r} is no check id or prefix (ids: {', '.join(sorted(REGISTRY))})")
    chosen = {cid for cid in REGISTRY if not ids or any(cid.startswith(p) for p in ids)}
    return {cid for cid in chosen if not any(cid.startswith(p) for p in ignore or [])}
