"""Every ruleset :mod:`pktverify.testing.nft_draw` draws loads in the kernel, and pktverify reads it.

Each draw (an ``nft -f`` script, sometimes after an iptables-restore text on the same hooks) is
loaded in a network namespace of this module's own, from an empty ruleset; nft and iptables run
only through ``ip netns exec``. A fixed, derandomized number of draws, so CI is reproducible.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pktverify.parse.nft_json import parse_nft_json
from pktverify.parse.nft_text import parse_nft_text
from pktverify.testing.nft_draw import mixed_rulesets

from .nft_netns import netns_fixture
from .nft_netns import run_in as _run

pytestmark = [pytest.mark.kernel, pytest.mark.property]


netns = netns_fixture("pv-nftd", scope="module")     # the lab's rule: iptables-restore is there too


def test_drawn_rulesets_load(netns):
    drawn = []

    @settings(max_examples=30, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=["generate"])
    @given(client=st.sampled_from(["pod", "lan", "node"]), data=st.data())
    def one(client, data):
        script, iptables = data.draw(mixed_rulesets(client))
        assert _run(netns, "nft", "flush", "ruleset").returncode == 0
        if iptables:
            res = _run(netns, "iptables-restore", text=iptables)
            assert res.returncode == 0, f"{res.stderr}\n{iptables}"
        res = _run(netns, "nft", "-f", "-", text=script)
        assert res.returncode == 0, f"{res.stderr}\n{script}"
        # pktverify reads the kernel's listing and its JSON dump into one model. (Not the script:
        # nft normalizes rules as it loads them -- drops a protocol match another match implies,
        # turns `th` into `tcp`/`udp` after one, removes duplicate set elements -- so the script's
        # model may differ in form, though not in meaning.) Compared: the drawn tables only; iptables-nft's
        # tables show their matches as `xt` statements in JSON and translated in the listing.
        listing = parse_nft_text(_run(netns, "nft", "list", "ruleset").stdout, "drawn.txt")
        dump = parse_nft_json(_run(netns, "nft", "-j", "list", "ruleset").stdout, "drawn.json")
        assert [t for t in listing.tables if t.name.startswith("t")] == [t for t in dump.tables
                                                                        if t.name.startswith("t")], script
        parse_nft_text(script, "drawn.nft")
        drawn.append(script)

    one()
    assert len(drawn) == 30
