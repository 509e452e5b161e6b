"""Root causes first: violations grouped by the rule, route or address fact that explains them.

One missing route breaks every flow that needs it; a reader wants "node1: no route to
10.1.20.0/24 — 22 flows", not 22 paths with the cause last. Each violation's cause is read from its
path: the step that ended or rewrote the packet on the node where it happened — a rule
(``file:line``), a chain policy, a routing decision — or, for the address plan and for endpoints
never reached, the fact itself. Every violation is in exactly one group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .invariants import InvariantResult, Violation

__all__ = ["Group", "group_violations"]

REWRITES = ("DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP")
_STOPS = ("DROP", "REJECT")


@dataclass
class Group:
    """Violations with one cause: ``cause`` says it, ``location`` is ``file:line`` when a rule (or a
    chain's declaration, for its policy) is the cause, ``members`` are (invariant, violation)."""
    cause: str
    location: str | None = None
    members: list[tuple[str, Violation]] = field(default_factory=list)

    @property
    def flows(self) -> int:
        """How many flows the group's violations stand for (a class violation counts its class)."""
        return sum(v.covers for _i, v in self.members)

    @property
    def invariants(self) -> list[str]:
        return sorted({inv for inv, _v in self.members})

    def summary(self) -> str:
        where = f" ({self.location})" if self.location else ""
        return f"{self.cause}{where} — {len(self.members)} violation(s), {self.flows} flow(s): {', '.join(self.invariants)}"


def group_violations(results: list[InvariantResult]) -> list[Group]:
    """Every violation of ``results`` in one group by cause, the biggest groups first."""
    groups: dict[tuple, Group] = {}
    for res in results:
        for v in res.violations:
            cause, location = cause_of(res.name, v)
            group = groups.setdefault((cause, location), Group(cause, location))
            group.members.append((res.name, v))
    return sorted(groups.values(), key=lambda g: (-g.flows, g.cause))


def cause_of(invariant: str, v: Violation) -> tuple[str, str | None]:
    """(cause, location) of one violation."""
    if v.end is None:
        if invariant == "pod-ip-uniqueness":
            return f"address plan: {v.message}", None
        return v.message, None
    if "never reaches endpoint" in v.message:
        endpoint = v.message.split("never reaches endpoint ", 1)[1].split(" (", 1)[0]
        return f"endpoint {endpoint} is never reached", None
    if "sessionAffinity: ClientIP, yet" in v.message:
        return (f"session affinity not kept for {v.message.split(' from ', 1)[0]}: a new connection is "
                "balanced again", None)
    if "not the uniform" in v.message:
        return f"uneven endpoint choice for {v.message.split(' from ', 1)[0]}", _statistic_step(v)
    step = _deciding_step(v)
    if step is not None:
        node, s = step
        where = f"{s.source}:{s.line}" if s.source and s.line else None
        if s.table is None:                       # a route (blackhole, unreachable, ...)
            return f"{node}: {s.action}", where
        if s.rule_index is None:
            return f"{node}: {s.table}/{s.chain} {s.action}", where
        return f"{node}: {s.table}/{s.chain} #{s.rule_index} {s.action.split(' ')[0]}", where
    end = v.end
    failed = next((back for back in v.replies if back.kind != "arrived"), None)
    if failed is not None:                        # the request arrived; its reply did not
        end = failed
    reason = re.sub(r"\d+\.\d+\.\d+\.\d+(:\d+)?", "<addr>", end.reason) if end.kind == "arrived" else end.reason
    node = end.hops[-1].point.split(":")[0] if end.hops else ""
    text = (f"{node}: {reason}" if node and not reason.startswith(node) else reason)
    if failed is not None:
        text = f"the reply: {text}"
    route = _last_route(end) if end.kind in ("left", "blackhole", "loop", "drop", "reject") else None
    if route is not None:
        return f"{text} — by route {route.rule}", f"{route.source}:{route.line}"
    return text, None


def _last_route(end):
    """The last routing decision on ``end``'s path that names its dump line (the route that sent
    the packet where it failed)."""
    for hop in reversed(end.hops):
        if hop.outcome is None:
            continue
        for s in reversed(hop.outcome.steps):
            if s.table is None and s.source and s.line and s.action.startswith("route"):
                return s
    return None


def _deciding_step(v: Violation):
    """(node, step) of the last rule or policy that stopped or rewrote the packet on its path."""
    found = None
    for hop in v.hops:
        outcome = hop.outcome
        if outcome is None:
            continue
        node = hop.point.split(":")[0]
        for s in outcome.steps:
            if s.table is None:
                continue
            word = s.action.split(" ")[0]
            if s.rule_index is not None and (word in _STOPS or word in REWRITES):
                found = (node, s)
            elif s.rule_index is None and s.action in ("policy DROP",):
                found = (node, s)
        if outcome.verdict in ("drop", "reject"):
            # A route that refuses the packet (blackhole, unreachable, prohibit) is the cause,
            # whatever rewrote it before.
            refused = next((s for s in outcome.steps if s.table is None and s.source and s.line
                            and s.action.startswith("route: ") and "→" not in s.action), None)
            if refused is not None:
                return (node, refused)
        if outcome.verdict in ("drop", "reject") and found is None:
            return None        # a routing or martian drop: no rule (the end's reason says it)
    return found


def _statistic_step(v: Violation) -> str | None:
    for hop in v.hops:
        if hop.outcome is None:
            continue
        for s in hop.outcome.steps:
            if s.probability is not None and s.source and s.line:
                return f"{s.source}:{s.line}"
    return None
