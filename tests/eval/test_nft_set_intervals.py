"""nft interval sets: bisection over sorted disjoint intervals gives the linear scan's answers.

:class:`pktverify.eval.nft_sets.SetLookup` finds one-part ranges and prefixes by bisection when they
do not overlap (as the kernel keeps an interval set's) and scans them in order otherwise. A reference
lookup here scans every element in order, first match answering, as the lookup did before; random
sets of ranges, prefixes (some with host bits, which match nothing), exact keys and map data must
give the same answer for every probed key, at the bounds and beside them.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pktverify.eval.nft_sets import SetLookup
from pktverify.model import nft as n
from pktverify.model.addresses import prefix_mask

pytestmark = pytest.mark.property

_TOP = 2 ** 12          # a small space, so intervals touch, overlap and hold the probed keys


def _linear(elements: tuple, key: int) -> tuple[bool, object]:
    """The reference: exact keys first (the first element of a key wins), then every interval in order."""
    for e in elements:
        if type(e.key) is int and e.key == key:
            return True, e.data
    for e in elements:
        k = e.key
        if type(k) is n.Range and k.low <= key <= k.high:
            return True, e.data
        if type(k) is n.Prefix and key & prefix_mask(k.length) == k.addr:
            return True, e.data
    return False, None


_keys = st.one_of(
    st.integers(0, _TOP),
    st.tuples(st.integers(0, _TOP), st.integers(0, 300)).map(lambda t: n.Range(t[0], t[0] + t[1])),
    st.tuples(st.integers(0, _TOP), st.integers(20, 32)).map(lambda t: n.Prefix(t[0], t[1])),
    st.tuples(st.integers(0, _TOP), st.integers(20, 32)).map(
        lambda t: n.Prefix(t[0] & prefix_mask(t[1]), t[1])))


@settings(max_examples=150, deadline=None)
@given(keys=st.lists(_keys, max_size=25), data=st.booleans(), probes=st.lists(st.integers(0, _TOP + 10), max_size=20))
def test_bisection_answers_as_the_linear_scan(keys, data, probes):
    elements = tuple(n.Element(k, f"d{i}" if data else None) for i, k in enumerate(keys))
    lookup = SetLookup(elements)
    edges = [b for k in keys if type(k) is n.Range for b in (k.low - 1, k.low, k.high, k.high + 1)]
    for key in [*probes, *edges]:
        if key >= 0:
            assert lookup.find(key) == _linear(elements, key), (keys, key)


def test_disjoint_intervals_are_bisected_and_overlapping_ones_scanned():
    """The index is used exactly when the intervals do not overlap (the test above would pass with the
    scan alone: this one says the bisection is there)."""
    disjoint = SetLookup(tuple(n.Element(n.Range(i * 10, i * 10 + 5)) for i in range(1000)))
    assert len(disjoint.starts) == 1000 and not disjoint.scan
    assert disjoint.find(9995) == (True, None) and disjoint.find(9996) == (False, None)
    overlapping = SetLookup((n.Element(n.Range(0, 10), "a"), n.Element(n.Range(5, 20), "b")))
    assert not overlapping.starts and overlapping.find(7) == (True, "a") and overlapping.find(15) == (True, "b")
