"""nftables sets and maps as lookups: exact keys by hash, intervals, prefixes and interface
wildcards by scan, concatenations part by part.

:meth:`SetLookup.find` answers ``(True, data)``, ``(False, None)``, or ``(None, None)`` when a part
of the key is unknown (None: no dump holds it) and some element could match it (may-match). A
dynamic set's elements in the dump are state: a flow sees them, and a later connection also what
an earlier one added from the packet path (``add``/``update``: :func:`set_tag` names the set in
the entries a cluster walk carries, as it carries ``-m recent`` lists).
"""

from __future__ import annotations

from ..model import nft as n
from ..model.addresses import prefix_mask

__all__ = ["ABSENT", "SetLookup", "compile_lookup", "set_tag"]


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


class SetLookup:
    """One set's or map's elements, ready for lookups; ``tag``: a dynamic set's :func:`set_tag`."""
    __slots__ = ("exact", "scan", "elements", "tag")

    def __init__(self, elements: tuple, tag: str | None = None) -> None:
        self.elements = elements
        self.tag = tag
        self.exact: dict = {}
        self.scan: list = []
        for e in elements:
            key = e.key
            if type(key) is int:           # the common exact key, without testing its parts
                self.exact.setdefault(key, e.data)
                continue
            parts = key if isinstance(key, tuple) else (key,)
            tests = [_part_test(p) for p in parts]
            if any(t is not None for t in tests):
                tests = [t if t is not None else (lambda v, p=p: v == p) for t, p in zip(tests, parts)]
                self.scan.append((tuple(tests), isinstance(key, tuple), e.data))
            else:
                self.exact.setdefault(key, e.data)

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
