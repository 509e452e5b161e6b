"""Root causes first: violations grouped by what ended their path, one cause per fault.

One ``:FORWARD DROP`` breaks every flow that crosses that node; a reader wants "node2:
filter/FORWARD policy DROP (iptables-save.txt:3) — 19 flows", not one cause per flow, per
endpoint or per rule the flows passed on the way. Each violation's cause is read from the path
that shows it:

* a path that ended (drop, reject, blackhole, loop, left the cluster) — the forward path, or the
  reply's when the request arrived — is caused by what ended it on the node where it ended:
  the DROP or REJECT rule (its ``file:line``), a chain's policy (the chain's declaration line,
  ``:FORWARD DROP [0:0]``), the ``ip rule`` or the route that refused the packet (their dump
  line), or the route that sent it off the cluster. A rewrite (DNAT, SNAT, MASQUERADE, ...)
  the packet met before is never the cause of a later drop;
* "endpoint X is never reached" carries the branch towards X (see the invariants); when that
  branch ended, the violation joins the cause that ended it, else it is a cause of its own;
* a path that arrived, but not as promised (NAT between pods, a reply from the wrong address,
  a wrong endpoint), is caused by the last rewrite on it; uneven spreading by the statistic rule;
* an address-plan violation by the fact itself.

Violations with one cause are one group, whichever invariant and node they come from; a rule of
a generated rule set that several nodes share is one cause on all of them. Every violation is in
exactly one group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

from .invariants import InvariantResult, Violation, flow_key, violating_flows
from .leftovers import leftover_dnat

__all__ = ["Group", "group_violations", "Cause", "cause_of", "explain", "ending_step", "flow_key", "violating_flows",
           "REWRITES"]

REWRITES = ("DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP")
_STOPS = ("DROP", "REJECT")
_SHARED = "<generated"        # a generated rule set, route or address dump that nodes may share


class Cause(NamedTuple):
    """What explains one violation: ``what`` it is (without the node), ``location``
    (``file:line``, or None for a fact with no line), ``kind`` (``rule``, ``policy``,
    ``ip-rule``, ``route``, ``no-route``, ``rewrite``, ``statistic``, ``endpoint``, ``affinity``,
    ``address-plan`` or ``other``) and the ``node`` where it acts ("" for none)."""
    what: str
    location: str | None
    kind: str
    node: str = ""

    def text(self) -> str:
        return f"{self.node}: {self.what}" if self.node else self.what


@dataclass
class Group:
    """Violations with one cause: ``cause`` says it, ``location`` is ``file:line`` (a rule, a chain's
    declaration for its policy, an ``ip rule``, a route) or None for a fact with no line,
    ``kind`` is the :class:`Cause` kind, ``nodes`` are where it acts, ``members`` are
    (invariant, violation)."""
    cause: str
    location: str | None = None
    members: list[tuple[str, Violation]] = field(default_factory=list)
    kind: str = "other"
    nodes: list[str] = field(default_factory=list)

    @property
    def flows(self) -> int:
        """How many flows the group explains: each violating flow once (however many of its
        outcomes violate), standing for its whole class of equivalent flows."""
        return violating_flows(self.members)

    @property
    def invariants(self) -> list[str]:
        return sorted({inv for inv, _v in self.members})

    def examples(self, limit: int) -> list[tuple[str, Violation]]:
        """Up to ``limit`` members (0: all), one per flow first: a flow that violates in several
        ways (dropped, and so an endpoint never reached) is shown once before any is shown twice."""
        seen: set = set()
        first, again = [], []
        for inv, v in self.members:
            key = flow_key(inv, v)
            (again if key in seen else first).append((inv, v))
            seen.add(key)
        ordered = first + again
        return ordered if limit <= 0 else ordered[:limit]

    def summary(self) -> str:
        where = f" ({self.location})" if self.location else ""
        many = len(self.members)
        return f"{self.cause}{where} — {self.flows} flow(s) ({many} violation(s)): {', '.join(self.invariants)}"


def group_violations(results: list[InvariantResult]) -> list[Group]:
    """Every violation of ``results`` in one group by cause, the biggest groups first."""
    groups: dict[tuple, Group] = {}
    for inv, v, c in _explained(results):
        # A fact with no line of its own (no pod at an address, a service's uneven choice) is one
        # cause wherever its paths pass; the group keeps the most telling location.
        where = None if c.kind in _LOCATED_AFTER else c.location
        shared = where is not None and where.startswith(_SHARED)
        key = (c.what, where, c.kind) if shared else (c.node, c.what, where, c.kind)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(c.text(), c.location, kind=c.kind)
        elif c.location is not None and (group.location is None or _earlier(c.location, group.location)):
            group.location = c.location
        if c.node and c.node not in group.nodes:
            group.nodes.append(c.node)
            if len(group.nodes) > 1:
                group.cause = f"{_node_list(group.nodes)}: {c.what}"
        group.members.append((inv, v))
    return sorted(groups.values(), key=lambda g: (-g.flows, g.cause))


_LOCATED_AFTER = ("no-pod", "statistic")


def _earlier(a: str, b: str) -> bool:
    """``a`` is an earlier line of the same file as ``b`` (a service's first statistic rule)."""
    fa, _, la = a.rpartition(":")
    fb, _, lb = b.rpartition(":")
    return fa == fb and la.isdigit() and lb.isdigit() and int(la) < int(lb)


def _explained(results: list[InvariantResult]):
    """(invariant, violation, cause) for every violation. "Endpoint X is never reached" on a path
    that is itself another violation of the same flow (it reached a wrong endpoint) has that
    violation's cause: what sent the flow elsewhere."""
    out = []
    by_end: dict[tuple, Cause] = {}
    for res in results:
        for v in res.violations:
            c = explain(res.name, v)
            out.append((res.name, v, c))
            if c.kind != "endpoint" and v.end is not None:
                by_end.setdefault((flow_key(res.name, v), id(v.end)), c)
    return [(inv, v, by_end.get((flow_key(inv, v), id(v.end)), c) if c.kind == "endpoint" else c)
            for inv, v, c in out]


def _node_list(nodes: list[str]) -> str:
    return ", ".join(nodes) if len(nodes) <= 3 else f"{', '.join(nodes[:3])} and {len(nodes) - 3} more nodes"


def cause_of(invariant: str, v: Violation) -> tuple[str, str | None]:
    """(cause, location) of one violation (see :func:`explain`)."""
    c = explain(invariant, v)
    return c.text(), c.location


def explain(invariant: str, v: Violation) -> Cause:
    """The :class:`Cause` of one violation (see the module's docstring for the order)."""
    if v.end is None:
        if invariant == "pod-ip-uniqueness":
            return Cause(f"address plan: {v.message}", None, "address-plan")
        return Cause(v.message, None, "other")
    failed = v.end if v.end.kind != "arrived" else next((b for b in v.replies if b.kind != "arrived"), None)
    if failed is not None:
        return _ended(failed)
    if "never reaches endpoint" in v.message:
        endpoint = v.message.split("never reaches endpoint ", 1)[1].split(" (", 1)[0]
        return Cause(f"endpoint {endpoint} is never reached", None, "endpoint")
    if "sessionAffinity: ClientIP, yet" in v.message:
        return Cause(f"session affinity not kept for {v.message.split(' from ', 1)[0]}: a new connection is "
                     "balanced again", None, "affinity")
    if "not the uniform" in v.message:
        node, where = _statistic_step(v)
        return Cause(f"uneven endpoint choice for {v.message.split(' from ', 1)[0]}", where, "statistic", node)
    words = REWRITES
    if "which is not a ready endpoint" in v.message or "which is not one this client may reach" in v.message:
        words = ("DNAT", "REDIRECT", "NETMAP")          # what chose the wrong endpoint
    elif "externalTrafficPolicy: Local, yet" in v.message:
        words = ("SNAT", "MASQUERADE", "NETMAP")        # what hid the client's address
    found = _last_rewrite(v, words)
    if found is not None:
        node, s = found
        return Cause(f"{s.table}/{s.chain} #{s.rule_index} {s.action.split(' ')[0]}", _where(s), "rewrite", node)
    end = v.end
    reason = re.sub(r"\d+\.\d+\.\d+\.\d+(:\d+)?", "<addr>", end.reason)
    return Cause(reason, None, "other", _end_node(end))


def _ended(end) -> Cause:
    """What ended the path ``end`` on the node where it ended."""
    node = _end_node(end)
    last = next((h.outcome for h in reversed(end.hops) if h.outcome is not None), None)
    s = ending_step(last) if end.kind in ("drop", "reject") and last is not None else None
    if s is not None:
        if s.table is not None:
            if s.rule_index is not None:
                return Cause(f"{s.table}/{s.chain} #{s.rule_index} {s.action.split(' ')[0]}", _where(s), "rule", node)
            return Cause(f"{s.table}/{s.chain} policy DROP", _where(s), "policy", node)
        if s.line and s.rule and re.match(r"\d+:", s.rule):
            return Cause(f"ip rule {s.rule}", _where(s), "ip-rule", node)
        if s.line:
            return Cause(f"route {s.rule}", _where(s), "route", node)
        return Cause(s.action[len("route: "):], None, "no-route", node)
    reason = end.reason
    if node and reason.startswith(node):
        reason = reason[len(node):].lstrip(": ")
    reason = re.sub(r"^(drop|reject) on [^:]+: ", "", reason)
    if end.kind == "blackhole":
        s = leftover_dnat(end)           # a node mid-migration: its old mode's stale DNAT
        if s is not None:
            return Cause(f"leftover {s.table}/{s.chain} #{s.rule_index} DNAT of kube-proxy's iptables mode: {reason}",
                         _where(s), "rewrite", node)
        # No pod has the address behind the bridge the packet was sent to: that fact, located at
        # the route that sent it there when one did (a bridged packet passes no route).
        route = _last_route(end)
        return Cause(reason, _where(route) if route is not None else None, "no-pod", node)
    route = _last_route(end) if end.kind in ("left", "loop", "drop", "reject") else None
    if route is not None:
        return Cause(f"{reason} — by route {route.rule}", _where(route), "route", node)
    return Cause(reason, None, "other", node)


def ending_step(outcome):
    """The step that stopped a drop or reject ``outcome`` on its node: the DROP or REJECT rule, a
    chain's DROP policy, or the routing decision (route, ``ip rule``, no route at all) that refused
    the packet; None for another outcome or a stop no step names (a martian address, a TTL)."""
    if outcome.verdict not in ("drop", "reject"):
        return None
    for s in reversed(outcome.steps):
        if s.table is not None:
            if s.rule_index is not None and s.action.split(" ")[0] in _STOPS:
                return s
            if s.rule_index is None and s.action == "policy DROP":
                return s
        elif s.action.startswith("route: ") and "→" not in s.action:
            return s
    return None


def _end_node(end) -> str:
    """The node where ``end``'s path ended: the last hop a node's tables acted on (only those
    carry an outcome, so a node named ``pod`` or ``wire`` is still told apart)."""
    for hop in reversed(end.hops):
        if hop.outcome is not None:
            return hop.point.split(":", 1)[0]
    return ""


def _where(s) -> str | None:
    return f"{s.source}:{s.line}" if s.source and s.line else None


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


def _last_rewrite(v: Violation, words: tuple[str, ...] = REWRITES):
    """(node, step) of the last rule of ``words`` (DNAT, MASQUERADE, ...) that rewrote the packet
    on the violation's paths (forward, then reply): the cause of a flow that arrived, but not as
    it was sent."""
    found = None
    for hop in v.hops:
        if hop.outcome is None:
            continue
        for s in hop.outcome.steps:
            if s.table is not None and s.rule_index is not None and s.action.split(" ")[0] in words:
                found = (hop.point.split(":")[0], s)
    return found


def _statistic_step(v: Violation) -> tuple[str, str | None]:
    """(node, ``file:line``) of the first statistic rule that chose the violation's branch."""
    for hop in v.hops:
        if hop.outcome is None:
            continue
        for s in hop.outcome.steps:
            if s.probability is not None and s.source and s.line:
                return hop.point.split(":")[0], f"{s.source}:{s.line}"
    # The last endpoint's branch passes no statistic rule (it is what the others leave): the
    # choice was made where the first node's tables acted.
    first = next((hop for hop in v.hops if hop.outcome is not None), None)
    return (first.point.split(":")[0] if first is not None else ""), None
