"""Hypothesis strategies for Kubernetes clusters, faults, rule sets, packets and flows.

For property-based tests in your own repository::

    from hypothesis import given
    from pktverify import strategies
    from pktverify.testing import assert_invariants

    @given(strategies.clusters(max_nodes=3))
    def test_the_network_model_holds(cluster):
        assert_invariants(cluster)

This name stays importable; the strategies live in the testing kit,
:mod:`pktverify.testing.strategies` (and the faults :func:`faulty_clusters` plants in
:mod:`pktverify.testing.faults`).
"""

from __future__ import annotations

from .testing.strategies import (
    FAULTS,
    PROXY_MODES,
    Fault,
    FaultyCluster,
    clusters,
    faulty_clusters,
    flows,
    node_networks,
    packets,
    pods,
    rule_sets,
    services,
)

__all__ = ["clusters", "faulty_clusters", "node_networks", "pods", "services", "rule_sets", "packets", "flows",
           "Fault", "FaultyCluster", "FAULTS", "PROXY_MODES"]
