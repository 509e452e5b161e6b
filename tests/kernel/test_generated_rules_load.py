"""What `pktverify generate` writes is iptables-save text the kernel's iptables-restore accepts,
and iptables-save gives back rules pktverify reads as the same rule set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pktverify.generate.node_state import generate_node
from pktverify.parse.cluster_yaml import load_cluster
from pktverify.parse.iptables_save import parse_iptables_save

pytestmark = pytest.mark.kernel
RULES = Path(__file__).resolve().parents[2] / "rules"


def _rules(ruleset):
    return {(t.name, c.name): [(r.matches, r.target) for r in c.rules]
            for t in ruleset.tables.values() for c in t.chains.values()}


@pytest.mark.parametrize("cluster", ["seed/cluster.yaml", "seed/cluster-iptables.yaml",
                                     "broken/docker-default-nat.yaml", "broken/docker-default-iptables.yaml",
                                     "services/every-service-type.yaml", "services/every-service-type.yaml@userspace",
                                     "broken/etp-local-node-without-endpoints.yaml", "broken/nodeport-collision.yaml"])
def test_generated_rules_load_into_the_kernel(lab, cluster):
    """Every service type, policy and affinity in both proxy modes: iptables-restore takes it."""
    path, _, mode = cluster.partition("@")
    spec = load_cluster(RULES / path)
    if mode:
        spec = dataclasses.replace(spec, proxy_mode=mode)
    for node in spec.nodes:
        text = generate_node(spec, node).iptables
        lab.load(text)                       # raises if iptables-restore refuses it
        saved = lab.dump().iptables_save
        assert _rules(parse_iptables_save(saved)) == _rules(parse_iptables_save(text))
