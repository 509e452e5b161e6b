"""nft scripts that differ from one read before only in set elements, read without parsing them again.

kube-proxy's nftables-mode ruleset is the same on every node but for the node's own addresses in
its ``nodeport-ips`` set (unless a traffic policy keeps traffic on the node). Parsing each node's
generated script of a 1,000-service cluster costs about a second and 8 MB; across 100 nodes that is
most of a verify. :class:`NftScripts` parses the first script, and reads each later one that has the
same lines but for ``add element`` lines of some sets as the first one's ruleset with those sets'
elements read again (from a small script of the set's definition and its element lines): the same
ruleset a full parse gives (lines, handles and texts included; a test checks it), sharing the
unchanged chains and sets with the first. Any other difference, a ``flush``/``delete`` of a changed
set, or a set element line that does not read, and the script is parsed in full.
"""

from __future__ import annotations

import re
from dataclasses import replace

from ..model.nft import NftRuleset, NftSet, NftTable
from .nft_node import parse_nft

__all__ = ["NftScripts"]

_ELEMENT = re.compile(r"add element (ip|inet|ip6|arp|bridge|netdev) (\S+) (\S+) \{ .* \}\Z")


class NftScripts:
    """Parses nft scripts, deriving each from the one parsed before when they differ only in set
    elements (see module)."""

    def __init__(self) -> None:
        self._text = ""
        self._lines: list[str] | None = None
        self._ruleset: NftRuleset | None = None
        self.derived = 0            # how many scripts were derived rather than parsed

    def parse(self, text: str, *, source: str) -> NftRuleset:
        if self._ruleset is not None and self._lines is not None:
            lines = _lines_like(self._text, self._lines, text)
            derived = _derive(self._lines, self._ruleset, lines, source)
            if derived is not None:
                self.derived += 1
                return derived
        ruleset = parse_nft(text, source=source)
        if ruleset.form == "script":
            self._text, self._lines, self._ruleset = text, text.split("\n"), ruleset
        return ruleset


def _lines_like(old: str, old_lines: list[str], text: str) -> list[str]:
    """``text.split("\n")``, sharing ``old_lines``' strings outside the part where the texts
    differ (found by comparing in large slices: a 16 MB script is compared in milliseconds)."""
    if len(old) == len(text) and old == text:
        return old_lines
    i = _common_prefix(old, text)
    j = _common_prefix(old[::-1], text[::-1], min(len(old), len(text)) - i)
    start = old.rfind("\n", 0, i) + 1
    end_old = old.find("\n", len(old) - j)
    end_new = text.find("\n", len(text) - j)
    end_old, end_new = (len(old) if end_old < 0 else end_old), (len(text) if end_new < 0 else end_new)
    first = old.count("\n", 0, start)
    count = old.count("\n", start, end_old) + 1
    return old_lines[:first] + text[start:end_new].split("\n") + old_lines[first + count:]


def _common_prefix(a: str, b: str, limit: int | None = None) -> int:
    """The length of the longest common prefix of ``a`` and ``b`` (at most ``limit``)."""
    n = min(len(a), len(b), limit if limit is not None else len(a))
    lo, step = 0, 1 << 15
    while lo + step <= n and a[lo:lo + step] == b[lo:lo + step]:
        lo += step
    hi = min(lo + step, n)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _derive(old: list[str], ruleset: NftRuleset, lines: list[str], source: str) -> NftRuleset | None:
    """``ruleset`` (parsed from ``old``) with the sets whose element lines differ in ``lines`` read
    again; None when ``lines`` differ otherwise."""
    if len(old) != len(lines):
        return None
    changed: set[tuple[str, str, str]] = set()
    for a, b in zip(old, lines):
        if a != b:
            ma, mb = _ELEMENT.match(a), _ELEMENT.match(b)
            if ma is None or mb is None or ma.groups() != mb.groups():
                return None
            changed.add(mb.groups())
    if not changed:
        return replace(ruleset, source=source)
    tables = list(ruleset.tables)
    for family, table_name, set_name in sorted(changed):
        at = next((i for i, t in enumerate(tables) if (t.family, t.name) == (family, table_name)), None)
        if at is None:
            return None
        new_table = _with_set_read_again(tables[at], set_name, lines, source)
        if new_table is None:
            return None
        tables[at] = new_table
    return replace(ruleset, source=source, tables=tuple(tables))


def _with_set_read_again(table: NftTable, name: str, lines: list[str], source: str) -> NftTable | None:
    """``table`` with set (or map) ``name``'s elements read from ``lines`` (None: cannot be done
    safely: the set is flushed, deleted or redefined, or its lines do not read)."""
    old = table.set(name)
    if old is None or not old.line or old.line > len(lines):
        return None
    ident = f"{table.family} {table.name} {name}"
    definition = lines[old.line - 1]
    kind = "map" if old.is_map else "set"
    if not definition.startswith(f"add {kind} {ident} "):
        return None
    picked = [definition]
    named = re.compile(rf"(?<!\S){re.escape(ident)}(?!\S)")
    for line in lines:
        if ident not in line or line is definition or not named.search(line):
            continue
        element = _ELEMENT.match(line)
        if element is None or element.groups() != (table.family, table.name, name):
            return None                         # flushed, deleted, redefined: parse it all
        picked.append(line)
    try:
        mini = parse_nft(f"add table {table.family} {table.name}\n" + "\n".join(picked) + "\n", source=source)
    except Exception:                           # noqa: BLE001 -- anything odd: the full parse says it
        return None
    got = mini.tables[0].set(name) if mini.tables else None
    if got is None:
        return None
    new: NftSet = replace(old, elements=got.elements)
    if old.is_map:
        return replace(table, maps=tuple(new if s is old else s for s in table.maps))
    return replace(table, sets=tuple(new if s is old else s for s in table.sets))
