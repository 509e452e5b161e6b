"""The records lint's checks share: a check's documentation (:class:`Check`), what a check found
(:class:`Finding`), and what a rule-set check reads (:class:`Subject`).

A finding names its check by id only; its name and severity come from the check's documentation,
which :mod:`.registry` puts in :data:`DOCUMENTATION` from its table when the package loads (the
checks import this module, so it cannot import the table).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...model import rules as m
from ...model.cluster import ClusterSpec
from .cover_index import ShadowWork

__all__ = ["Check", "DOCUMENTATION", "Finding", "SEVERITIES", "Subject"]

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


DOCUMENTATION: dict[str, Check] = {}       # id -> Check, filled by .registry from its table


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
        return DOCUMENTATION[self.id]

    @property
    def severity(self) -> str:
        return DOCUMENTATION[self.id].severity

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.check.name, "severity": self.severity, "message": self.message,
                "file": self.source, "line": self.line, "col": self.col,
                "related": [{"file": s, "line": n, "message": what} for s, n, what in self.related]}


@dataclass
class Subject:
    """What a rule-set check reads: the parsed ``ruleset`` of one file; with ``lint --cluster``
    the ``cluster`` and the ``node`` the rules are for (None: not known); ``work``: the shadowing
    check's work bound and the rules past it."""
    ruleset: m.Ruleset
    cluster: ClusterSpec | None = None
    node: str | None = None
    work: ShadowWork = field(default_factory=ShadowWork)
