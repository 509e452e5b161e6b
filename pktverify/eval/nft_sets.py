"""nftables sets and maps as lookups: exact keys by hash, one-part intervals and prefixes by
bisection, interface wildcards by scan, concatenations part by part.

:meth:`SetLookup.find` answers ``(True, data)``, ``(False, None)``, or ``(None, None)`` when a part
of the key is unknown (None: no dump holds it) and some element could match it (may-match). A
dynamic set's elements in the dump are state: a flow sees them, and a later connection also what
an earlier one added from the packet path (``add``/``update``: :func:`set_tag` names the set in
the entries a cluster walk carries, as it carries ``-m recent`` lists).
"""

from __future__ import annotations

from bisect import bisect_right

from ..model import nft as n
from ..model.addresses import prefix_mask

__all__ = ["ABSENT", "SetLookup", "compile_lookup", "deleted_tag", "set_tag"]


class _Absent:
    """The expression breaks the rule (a header the packet lacks, no such interface)."""
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()


def _part_test(value: object):
    """A test of one key part against an element's part, or None when equality is enough."""
    if isinstance(value, n.Prefix):
        mask, addr = prefix_mask(value.length), value.addr
        return lambda v: type(v) is int and v & mask == addr
    if isinstance(value, n.Range):
        lo, hi = value.low, value.high
        return lambda v: type(v) is int and lo <= v <= hi
    if isinstance(value, str) and value.endswith("*") and not value.endswith("\\*"):
        stem = value[:-1]
        return lambda v: isinstance(v, str) and v.startswith(stem)
    return None


def set_tag(family: str, table: str, name: str) -> str:
    """How a dynamic set's entries added by earlier connections are named (``TraceMeta.recent``)."""
    return f"nft {family} {table} @{name}"


def deleted_tag(tag: str) -> str:
    """How a key ``delete @set`` took out of a dynamic set is named (``TraceMeta.recent``)."""
    return f"{tag} (deleted)"


def _interval(key: object) -> tuple[int, int] | None:
    """The bounds of a one-part key that is an address prefix or a range (None for any other key,
    and for a prefix with host bits set, which matches nothing and stays with the scan)."""
    if type(key) is n.Range:
        return (key.low, key.high) if key.low <= key.high else None
    if type(key) is n.Prefix:
        mask = prefix_mask(key.length)
        return (key.addr, key.addr | (~mask & 0xFFFFFFFF)) if key.addr & ~mask & 0xFFFFFFFF == 0 else None
    return None


class SetLookup:
    """One set's or map's elements, ready for lookups; ``tag``: a dynamic set's :func:`set_tag`.
    One-part intervals (ranges, prefixes) that do not overlap, as the kernel keeps an interval set's,
    are found by bisection over their sorted starts; overlapping ones are scanned in order."""
    __slots__ = ("exact", "scan", "elements", "tag", "starts", "ends", "idata")

    def __init__(self, elements: tuple, tag: str | None = None) -> None:
        self.elements = elements
        self.tag = tag
        self.exact: dict = {}
        self.scan: list = []
        intervals: list = []
        for e in elements:
            key = e.key
            if type(key) is int:           # the common exact key, without testing its parts
                self.exact.setdefault(key, e.data)
                continue
            bounds = _interval(key)
            if bounds is not None:
                intervals.append((bounds[0], bounds[1], len(intervals), e))
                continue
            self._add_scanned(key, e.data)
        self.starts, self.ends, self.idata = self._index(intervals)

    def _index(self, intervals: list) -> tuple[list, list, list]:
        """Sorted starts, ends and data of disjoint intervals; overlapping ones go to the scan instead
        (in their order, where the first that holds a key answers)."""
        ordered = sorted(intervals)
        if any(b[0] <= a[1] for a, b in zip(ordered, ordered[1:])):
            for *_bounds, e in intervals:
                self._add_scanned(e.key, e.data)
            return [], [], []
        return [i[0] for i in ordered], [i[1] for i in ordered], [i[3].data for i in ordered]

    def _add_scanned(self, key: object, data: object) -> None:
        """An element found by testing it: intervals, wildcards, concatenations."""
        parts = key if isinstance(key, tuple) else (key,)
        tests = [_part_test(p) for p in parts]
        if any(t is not None for t in tests):
            tests = [t if t is not None else (lambda v, p=p: v == p) for t, p in zip(tests, parts)]
            self.scan.append((tuple(tests), isinstance(key, tuple), data))
        else:
            self.exact.setdefault(key, data)

    def find(self, key: object) -> tuple[object, object]:
        """``(True, data)`` when an element holds ``key``, ``(False, None)`` when none does, ``(None,
        None)`` when the key has unknown parts that some element could match."""
        if key is ABSENT:
            return False, None
        if key is None or (type(key) is tuple and None in key):
            return (None, None) if self._could(key) else (False, None)
        try:
            if key in self.exact:
                return True, self.exact[key]
        except TypeError:
            return False, None
        starts = self.starts
        if starts and type(key) is int:
            i = bisect_right(starts, key) - 1
            if i >= 0 and key <= self.ends[i]:
                return True, self.idata[i]
        for tests, is_tuple, data in self.scan:
            if is_tuple:
                if type(key) is tuple and len(key) == len(tests) and all(t(v) for t, v in zip(tests, key)):
                    return True, data
            elif tests[0](key):
                return True, data
        return False, None

    def _could(self, key: object) -> bool:
        """Whether some element matches ``key``'s known parts."""
        return bool(self.candidates(key))

    def candidates(self, key: object) -> list:
        """The data of the elements that match ``key``'s known parts (None parts match any)."""
        if key is None:
            return [e.data for e in self.elements]
        out = []
        for e in self.elements:
            parts = e.key if isinstance(e.key, tuple) else (e.key,)
            if len(parts) == len(key) and all(v is None or (_part_test(p) or (lambda x, p=p: x == p))(v)
                                              for p, v in zip(parts, key)):
                out.append(e.data)
        return out


def compile_lookup(elements: tuple, tag: str | None = None) -> SetLookup:
    """A lookup over ``elements`` (an anonymous set or a named set's)."""
    return SetLookup(elements, tag)
