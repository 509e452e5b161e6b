"""PV163-PV165 against the kernel: a rule (or set element) lint calls dead never counts a packet.

Each case of tests/check/test_lint_nft_reachability.py is loaded with ``nft -f`` in the kernel
lab's node namespace (a ``counter`` on every rule), packets of the dead rule's box are sent from
the lab's pod through the forward hook, and the counters are read back from ``nft -j list
ruleset``: the rule lint reports stays at 0 while the rules covering it count; in the negative
cases (lint says nothing) the rule's counter moves. nft runs only inside the lab's namespaces.
"""

from __future__ import annotations

import json

import pytest

from ..check.test_lint_nft_reachability import CASES, forward, found

pytestmark = pytest.mark.kernel


def counters(lab) -> list[int]:
    """Packets counted by each rule of table ip t's forward chain, in order."""
    out = []
    for item in json.loads(lab.dump().nft_json)["nftables"]:
        rule = item.get("rule")
        if rule and rule["table"] == "t" and rule["chain"] == "forward":
            out.append(sum(e["counter"]["packets"] for e in rule["expr"] if "counter" in e))
    return out


@pytest.mark.parametrize(("name", "rules", "expected", "probes"), CASES, ids=[c[0] for c in CASES])
def test_dead_rules_never_count(lab, name, rules, expected, probes):
    script = forward(*rules)
    assert found(script) == expected
    assert set(expected) <= set().union(*(zero for *_x, zero, _m in probes))     # every finding probed
    before = [0] * len(rules)
    for i, (proto, dst, dport, zero, moves) in enumerate(probes):
        lab.probe(None, client="pod", proto=proto, sport=41000 + i, dst=dst, dport=dport, nft=script, reload=i == 0)
        after = counters(lab)
        assert len(after) == len(rules), after
        for k in moves:
            assert after[k - 1] > before[k - 1], (name, proto, dst, dport, k, after)
        for k in zero:
            assert after[k - 1] == before[k - 1], (name, proto, dst, dport, k, after)
        before = after
