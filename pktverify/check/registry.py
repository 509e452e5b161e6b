"""One registry of checks: every lint check and every cluster invariant, with a stable id.

Ids follow the linters engineers know (ruff, shellcheck, hadolint): ``PV1xx`` structure (what
``iptables-restore`` refuses), ``PV2xx`` reachability of rules, ``PV3xx`` Kubernetes semantics,
``PV4xx`` the cluster invariants. An id never changes meaning; a retired check keeps its id.
``docs/rules.md`` is generated from this registry (``python -m pktverify.report.rules_doc``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Check", "Finding", "REGISTRY", "SEVERITIES", "register", "select"]

SEVERITIES = ("info", "warning", "error")


@dataclass(frozen=True)
class Check:
    """A check's documentation: what it finds, why it matters, a failing and a passing example."""
    id: str
    name: str
    severity: str
    summary: str
    why: str
    bad: str
    good: str
    family: str = ""


@dataclass(frozen=True)
class Finding:
    """One finding: the check ``id``, where (``source:line:col``), what, and the other places
    that explain it (``related``: (source, line, what))."""
    id: str
    message: str
    source: str
    line: int
    col: int = 1
    related: tuple[tuple[str, int, str], ...] = field(default=())

    @property
    def check(self) -> Check:
        return REGISTRY[self.id]

    @property
    def severity(self) -> str:
        return REGISTRY[self.id].severity

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.check.name, "severity": self.severity, "message": self.message,
                "file": self.source, "line": self.line, "col": self.col,
                "related": [{"file": s, "line": n, "message": what} for s, n, what in self.related]}


REGISTRY: dict[str, Check] = {}


def register(check: Check) -> Check:
    if check.id in REGISTRY:
        raise ValueError(f"check id {check.id} registered twice")
    if check.severity not in SEVERITIES:
        raise ValueError(f"{check.id}: severity {check.severity!r}")
    REGISTRY[check.id] = check
    return check


def select(ids: list[str] | None, ignore: list[str] | None) -> set[str]:
    """The ids enabled by ``--select`` and ``--ignore`` (each an id or a prefix such as ``PV2``)."""
    from ..errors import InvalidArgument
    for value in (ids or []) + (ignore or []):
        if not any(cid.startswith(value) for cid in REGISTRY):
            raise InvalidArgument(f"{value!r} is no check id or prefix (ids: {', '.join(sorted(REGISTRY))})")
    chosen = {cid for cid in REGISTRY if not ids or any(cid.startswith(p) for p in ids)}
    return {cid for cid in chosen if not any(cid.startswith(p) for p in ignore or [])}
