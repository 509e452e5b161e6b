"""Generated nft scripts read as derived from the one before: the same ruleset a full parse gives."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pktverify.generate.node_state import generate_node
from pktverify.generate.synthetic_cluster import synthetic_cluster
from pktverify.load.cluster import load_cluster
from pktverify.load.nft_derive import NftScripts
from pktverify.load.nft_node import parse_nft

from ..conftest import REPO


def _lines(ruleset):
    """Everything a full parse gives that records do not compare: lines, handles, texts."""
    return [(t.line, [(c.line, [(r.line, r.handle, r.text) for r in c.rules]) for c in t.chains],
             [(s.line, s.handle) for s in (*t.sets, *t.maps)]) for t in ruleset.tables]


def _clusters():
    yield synthetic_cluster(4, 6, 12, proxy_mode="nftables")
    for path in ("rules/services/every-service-type.yaml", "rules/seed/cluster-iptables.yaml"):
        yield dataclasses.replace(load_cluster(REPO / path), proxy_mode="nftables")


@pytest.mark.parametrize("cluster", list(_clusters()), ids=["synthetic", "every-service-type", "seed"])
def test_derived_rulesets_equal_full_parses(cluster):
    scripts = NftScripts()
    for node in cluster.nodes:
        text = generate_node(cluster, node).nft
        source = f"<generated nft of {node.name}>"
        got, full = scripts.parse(text, source=source), parse_nft(text, source=source)
        assert got == full and _lines(got) == _lines(full) and got.source == source
    # ClientIP affinity and Local policies aside, kube-proxy's scripts differ only in nodeport-ips
    if len(cluster.nodes) > 1 and not any(s.internal_policy == "Local" or s.external_policy == "Local"
                                          for s in cluster.services):
        assert scripts.derived == len(cluster.nodes) - 1


def test_derived_rulesets_share_the_unchanged_chains():
    cluster = synthetic_cluster(3, 4, 8, proxy_mode="nftables")
    scripts = NftScripts()
    a, b = (scripts.parse(generate_node(cluster, n).nft, source=n.name) for n in cluster.nodes[:2])
    assert all(x is y for x, y in zip(a.tables[0].chains, b.tables[0].chains))
    assert a.tables[0].set("nodeport-ips") != b.tables[0].set("nodeport-ips")


@pytest.mark.parametrize("edit", [
    lambda t: t.replace("add element ip kube-proxy nodeport-ips", "add element ip kube-proxy cluster-ips", 1),
    lambda t: t + "flush set ip kube-proxy nodeport-ips\n",
    lambda t: t.replace("add rule ip kube-proxy nat-prerouting jump services",
                        "add rule ip kube-proxy nat-prerouting jump services comment \"x\"", 1),
])
def test_any_other_difference_is_parsed_in_full(edit):
    cluster = synthetic_cluster(2, 3, 6, proxy_mode="nftables")
    first, second = (generate_node(cluster, n).nft for n in cluster.nodes)
    scripts = NftScripts()
    scripts.parse(first, source="a")
    text = edit(second)
    assert scripts.parse(text, source="b") == parse_nft(text, source="b")
    assert scripts.derived == 0


@given(st.text(alphabet="ab\n", max_size=40), st.text(alphabet="ab\n", max_size=40))
def test_lines_shared_with_the_script_before_are_the_lines(old, new):
    from pktverify.load.nft_derive import _lines_like
    assert _lines_like(old, old.split("\n"), new) == new.split("\n")
