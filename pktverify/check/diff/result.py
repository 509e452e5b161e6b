"""What ``pktverify diff`` finds: the classes of packets whose fate changed (:class:`DiffClass`)
and the whole result (:class:`DiffResult`: complete or where a bound stopped it, exact or not)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...model import rules as m
from ...model.addresses import format_ip
from ...model.packet import Packet

__all__ = ["DiffClass", "DiffResult"]


@dataclass(frozen=True)
class DiffClass:
    """Packets with one change of fate: ``example`` (the packet, its in-interface or None for a
    locally generated one), what OLD and NEW do with it, the rules that decided on each side, and
    ``cells``: how many cells (see :mod:`.compare`) share exactly this change; ``deliberate``: why
    this change is one of kube-proxy's documented mode differences ("" it is not, None: the sides are
    not kube-proxy's two modes)."""
    example: Packet
    in_iface: str | None
    old: tuple[str, ...]
    new: tuple[str, ...]
    old_rules: tuple[str, ...]
    new_rules: tuple[str, ...]
    cells: int = 1
    spans: tuple = ()              # per field (src, dst, proto, sport, dport): the values its cells cover
    interfaces: tuple[str, ...] = ()
    deliberate: str | None = None  # a documented kube-proxy mode difference (.deliberate); "" none; None not asked

    def describe_spans(self) -> list[str]:
        """``source 10.0.0.0-10.255.255.255, ...`` for each field the class does not cover whole."""
        names = ("source", "destination", "protocol", "source port", "destination port")
        tops = (0xFFFFFFFF, 0xFFFFFFFF, 255, 65535, 65535)
        out = []
        for name, span, top in zip(names, self.spans, tops):
            if span == ((0, top),):
                continue
            fmt = format_ip if name in ("source", "destination") else str
            out.append(f"{name} " + ", ".join(fmt(lo) if lo == hi else f"{fmt(lo)}-{fmt(hi)}" for lo, hi in span[:4])
                       + (" ..." if len(span) > 4 else ""))
        return out

    def to_json(self) -> dict:
        return {"example": {**self.example.to_json(), "in_iface": self.in_iface}, "old": list(self.old),
                "new": list(self.new), "old_rules": list(self.old_rules), "new_rules": list(self.new_rules),
                "cells": self.cells, "interfaces": list(self.interfaces),
                "spans": {n: [list(r) for r in span] for n, span in
                          zip(("src", "dst", "proto", "sport", "dport"), self.spans)},
                **({"deliberate": self.deliberate or None} if self.deliberate is not None else {})}


@dataclass
class DiffResult:
    """The classes found; ``cells`` compared and ``work`` done (:class:`.cells.Work`).
    ``complete``: every cell of the region was compared (false: a bound was reached, and
    ``not_compared`` says what was left); ``exact``: complete, and no rule matches on what no
    packet field decides."""
    classes: list[DiffClass]
    changed_old: list[m.Rule]
    changed_new: list[m.Rule]
    cells: int
    exact: bool = True
    notes: list[str] = field(default_factory=list)
    complete: bool = True
    not_compared: str = ""
    work: int = 0
    json_sources: frozenset = frozenset()     # nft JSON dumps: a rule's line is its index in ``nftables``
    modes: str = ""      # "iptables → nftables" (or back) when the sides are kube-proxy's two modes: classes labelled

    @property
    def unexplained(self) -> list[DiffClass]:
        """The classes that are not one of kube-proxy's documented mode differences."""
        return [c for c in self.classes if not c.deliberate]

    def place(self, rule: m.Rule) -> str:
        """``FILE:LINE`` of a rule; ``FILE: nftables[i]`` for a rule of an nft JSON dump."""
        return f"{rule.source}: nftables[{rule.line}]" if rule.source in self.json_sources else rule.location()

    @property
    def same(self) -> bool:
        """No difference, every cell compared, and one packet per cell stood for it exactly (a bound
        reached, or a rule matching on what no packet field decides, is never "same")."""
        return not self.classes and self.complete and self.exact

    @property
    def verdict(self) -> str:
        """``same``, ``different`` (a class found: true whatever was left), or ``inexact`` (none
        found in what was compared, but a bound left some of the region out, or rules match on
        what no packet field decides: packets within a cell may still differ)."""
        return "different" if self.classes else "same" if self.same else "inexact"
