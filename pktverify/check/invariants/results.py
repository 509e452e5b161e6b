"""What the invariants report: a broken promise with its counterexample, and one result per invariant.

:class:`Violation` carries the flow, its hops as text and as records (for captures);
:class:`InvariantResult` counts the flows checked and lists the violations and notes;
:func:`flow_key` and :func:`violating_flows` say which violations are the same flow, so a
flow with several violating outcomes is counted once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...model.packet import Packet
from ...model.path import Endpoint, Hop, PathEnd

__all__ = ["Violation", "InvariantResult", "CheckedFlow", "flow_key", "violating_flows"]


@dataclass(frozen=True)
class Violation:
    """A broken promise with its counterexample: the flow, its hops as text, and (for
    captures) the structured path: the client, the forward PathEnd and its replies."""
    message: str
    flow: str = ""
    path: tuple[str, ...] = ()
    client: Endpoint | None = field(default=None, compare=False)
    end: PathEnd | None = field(default=None, compare=False)
    replies: tuple[PathEnd, ...] = field(default=(), compare=False)
    covers: int = 1                                   # flows of the same class this stands for
    members: tuple = field(default=(), compare=False)  # (client group, server group) of the class
    packet: Packet | None = field(default=None, compare=False)   # the flow's first packet, as sent
    invariant: str = field(default="", compare=False)           # the invariant it breaks

    @property
    def hops(self) -> tuple[Hop, ...]:
        """The counterexample hop by hop as records (``point``, ``packet`` there, ``note``): the
        forward path, then the reply's. Empty for an address-plan violation (no flow)."""
        out: tuple[Hop, ...] = self.end.hops if self.end is not None else ()
        for back in self.replies:
            out += back.hops
        return out

    @property
    def probability(self) -> float:
        """How likely the flow takes the violating path (1.0 for an address-plan violation)."""
        return self.end.probability if self.end is not None else 1.0

    def to_json(self) -> dict:
        return {"message": self.message, "flow": self.flow, "path": list(self.path)}


def flow_key(invariant: str, v: Violation) -> tuple:
    """What makes two violations the same flow: the invariant, the client and the packet it sent
    (its source port aside: a session-affinity check's second connection is the same flow).
    Address-plan violations have no flow: each is its own."""
    if v.client is None or v.packet is None:
        return (invariant, id(v))
    p = v.packet
    return (invariant, v.client, p.proto, p.src, p.dst, p.dport)


def violating_flows(members) -> int:
    """How many flows ``members`` ((invariant, violation) pairs) stand for: each flow once, however
    many of its outcomes violate, counted for its whole class of equivalent flows (as ``checked``
    counts them)."""
    weights: dict[tuple, int] = {}
    for inv, v in members:
        key = flow_key(inv, v)
        weights[key] = max(weights.get(key, 0), v.covers)
    return sum(weights.values())


@dataclass(frozen=True)
class CheckedFlow:
    """One flow an invariant checked, with every way it ended (kept for ``--all`` captures)."""
    label: str
    client: Endpoint
    ends: tuple[tuple[PathEnd, tuple[PathEnd, ...]], ...]     # (forward end, its replies)


@dataclass
class InvariantResult:
    """One invariant's result: how many flows (or address facts) were ``checked``, the
    ``violations`` found, ``notes`` (what was assumed or left out) and, when
    ``check_all(keep_flows=True)``, every checked flow."""
    name: str
    checked: int = 0
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    flows: list[CheckedFlow] | None = None       # filled when check_all(keep_flows=True)

    def keep(self, label: str, client: Endpoint, ends: list[tuple[PathEnd, tuple[PathEnd, ...]]]) -> None:
        """Record a checked flow and its ends (when flows are kept, for ``--all`` captures)."""
        if self.flows is not None:
            self.flows.append(CheckedFlow(label, client, tuple(ends)))

    @property
    def holds(self) -> bool:
        return not self.violations

    @property
    def violating(self) -> int:
        """How many of the ``checked`` flows violate (a flow with several violating outcomes once;
        for pod-ip-uniqueness, the address facts that do not hold)."""
        return violating_flows((self.name, v) for v in self.violations)

    def to_json(self) -> dict:
        return {"name": self.name, "holds": self.holds, "checked": self.checked, "violating_flows": self.violating,
                "violations": [v.to_json() for v in self.violations], "notes": self.notes}
