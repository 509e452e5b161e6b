"""A ruleset under construction, for the nft readers: ``add``, ``flush`` and ``delete`` as an
``nft -f`` script applies them (the JSON and listing readers only add), then frozen into the
immutable :mod:`pktverify.model.nft` records.

Objects keep the order they were created in, which is the order the kernel lists them in, so
that a script and the listing of what it loaded give equal models.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..model import nft as m
from .nft_values import ValueProblem, sort_elements

__all__ = ["RulesetBuilder", "TableBuilder", "ChainBuilder", "SetBuilder", "FAMILIES"]

FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
_DYNAMIC_SIZE = 65535          # the size nft gives a dynamic set that states none (listed as "size 65535")


@dataclass
class ChainBuilder:
    name: str
    line: int = 0
    handle: int = 0
    base: dict = field(default_factory=dict)        # type, hook, priority, policy, devices, comment
    rules: list = field(default_factory=list)

    def freeze(self) -> m.NftChain:
        b = self.base
        return m.NftChain(self.name, tuple(self.rules), b.get("type"), b.get("hook"), b.get("priority"),
                          b.get("policy", "accept") if b.get("hook") else None, tuple(b.get("devices", ())),
                          b.get("comment"), self.handle, self.line)


@dataclass
class SetBuilder:
    name: str
    key_type: tuple
    data: tuple | None = None
    flags: set = field(default_factory=set)
    timeout: int | None = None
    size: int | None = None
    comment: str | None = None
    handle: int = 0
    line: int = 0
    elements: dict = field(default_factory=dict)      # key -> Element

    def add(self, elements) -> None:
        for element in elements:
            self.elements[element.key] = element

    def freeze(self, dynamic: bool) -> m.NftSet:
        flags = set(self.flags) | ({"dynamic"} if dynamic else set())
        size = None if "dynamic" in flags and self.size == _DYNAMIC_SIZE else self.size
        elements = sort_elements(list(self.elements.values()), self.key_type)
        return m.NftSet(self.name, tuple(self.key_type), tuple(self.data) if self.data else None,
                        tuple(sorted(flags)), self.timeout, size, elements, self.comment, self.handle, self.line)


@dataclass
class TableBuilder:
    family: str
    name: str
    line: int = 0
    handle: int = 0
    comment: str | None = None
    chains: dict = field(default_factory=dict)
    sets: dict = field(default_factory=dict)
    flowtables: dict = field(default_factory=dict)
    objects: dict = field(default_factory=dict)

    def chain(self, name: str, line: int = 0) -> ChainBuilder:
        """The chain ``name``, created (at ``line``) when new."""
        found = self.chains.get(name)
        if found is None:
            found = self.chains[name] = ChainBuilder(name, line)
        return found

    def need_chain(self, name: str) -> ChainBuilder:
        found = self.chains.get(name)
        if found is None:
            raise ValueProblem(f"no chain {name!r} in table {self.family} {self.name}")
        return found

    def need_set(self, name: str) -> SetBuilder:
        found = self.sets.get(name)
        if found is None:
            raise ValueProblem(f"no set or map {name!r} in table {self.family} {self.name}")
        return found

    def flush(self) -> None:
        for chain in self.chains.values():
            chain.rules.clear()
        for one in self.sets.values():
            one.elements.clear()

    def freeze(self) -> m.NftTable:
        updated = {s.set for c in self.chains.values() for r in c.rules for s in r.exprs if isinstance(s, m.SetUpdate)}
        sets = [s.freeze(s.name in updated) for s in self.sets.values()]
        return m.NftTable(self.family, self.name, tuple(c.freeze() for c in self.chains.values()),
                        tuple(s for s in sets if not s.is_map), tuple(s for s in sets if s.is_map),
                        tuple(self.flowtables.values()), tuple(self.objects.values()), self.comment, self.handle,
                        self.line)


class RulesetBuilder:
    """Tables by (family, name), in creation order."""

    def __init__(self) -> None:
        self.tables: dict[tuple[str, str], TableBuilder] = {}

    def table(self, family: str, name: str, line: int = 0) -> TableBuilder:
        if family not in FAMILIES:
            raise ValueProblem(f"unknown family {family!r} (nft has {', '.join(FAMILIES)})")
        key = (family, name)
        found = self.tables.get(key)
        if found is None:
            found = self.tables[key] = TableBuilder(family, name, line)
        return found

    def need_table(self, family: str, name: str) -> TableBuilder:
        found = self.tables.get((family, name))
        if found is None:
            raise ValueProblem(f"no table {family} {name}")
        return found

    def delete_table(self, family: str, name: str) -> None:
        self.need_table(family, name)
        del self.tables[(family, name)]

    def freeze(self, source: str, form: str) -> m.NftRuleset:
        return m.NftRuleset(source, form, tuple(t.freeze() for t in self.tables.values()))


def add_rule(chain: ChainBuilder, rule: m.NftRule, *, position: str = "add", handle: int = 0) -> None:
    """Append (``add``), prepend (``insert``) or, with ``handle``, place after / before / instead
    of the rule with that handle (``add``/``insert``/``replace ... handle N``)."""
    if not handle:
        if position == "insert":
            chain.rules.insert(0, rule)
        else:
            chain.rules.append(rule)
        return
    for i, old in enumerate(chain.rules):
        if old.handle == handle:
            if position == "replace":
                chain.rules[i] = replace(rule, handle=handle)
            else:
                chain.rules.insert(i + (position == "add"), rule)
            return
    raise ValueProblem(f"no rule with handle {handle} in chain {chain.name!r}")


def new_flowtable(name: str, hook: str, priority: int, devices: tuple, handle: int, line: int) -> m.Flowtable:
    return m.Flowtable(name, hook, priority, tuple(devices), handle, line)


def new_object(kind: str, name: str, line: int) -> m.NamedObject:
    return m.NamedObject(kind, name, line)

