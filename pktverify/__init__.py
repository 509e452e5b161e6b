"""pktverify: packet-level verification of Kubernetes node and cluster networking.

Public names are re-exported here; implementations live in the pipeline
packages (``load``/``parse`` → ``eval`` → ``check`` → ``report``).  They are imported on
first use (PEP 562), so ``pktverify trace`` does not pay for the cluster checks'
imports and ``import pktverify.cli`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    # the node API (pktverify trace)
    "ConntrackTable": ".node_api", "NodeTracer": ".node_api", "load_node": ".node_api", "trace": ".node_api",
    "trace_packet": ".node_api", "trace_to_pcapng": ".node_api",
    # the cluster API (pktverify verify, trace --cluster)
    "INVARIANTS": ".cluster_api", "VerifyReport": ".cluster_api", "cluster_to_yaml": ".cluster_api",
    "load_cluster": ".cluster_api", "verify": ".cluster_api", "trace_flow": ".cluster_api",
    "FlowReport": ".cluster_api", "generated_dumps": ".cluster_api", "with_node_dumps": ".cluster_api",
    "InvariantResult": ".check.invariants", "Violation": ".check.invariants",
    "ModelCache": ".load.model_cache",
    # the errors public calls raise
    "InputError": ".errors", "InvalidArgument": ".errors", "LimitExceeded": ".errors", "OutputError": ".errors",
    "PktverifyError": ".errors", "VerificationStopped": ".errors",
    # the records public calls take and return
    "Packet": ".model.packet", "NodeState": ".model.node", "ClusterSpec": ".model.cluster",
    "Connection": ".model.trace", "NodeVerdict": ".model.trace", "Outcome": ".model.trace", "Step": ".model.trace",
    "Trace": ".model.trace",
    "Endpoint": ".model.path", "Hop": ".model.path", "PathEnd": ".model.path", "PathEndKind": ".model.path",
    "make_packet": ".packets", "packet_from_scapy": ".packets",
}

__all__ = [
    "ClusterSpec", "ConntrackTable", "Connection", "Endpoint", "FlowReport", "Hop", "INVARIANTS", "InputError",
    "InvalidArgument", "InvariantResult", "LimitExceeded", "ModelCache", "NodeState", "NodeTracer", "NodeVerdict",
    "Outcome", "OutputError", "Packet", "PathEnd", "PathEndKind", "PktverifyError", "Step", "Trace",
    "VerificationStopped", "VerifyReport", "Violation", "cluster_to_yaml", "generated_dumps", "load_cluster",
    "load_node", "make_packet", "packet_from_scapy", "trace", "trace_flow", "trace_packet", "trace_to_pcapng",
    "verify", "with_node_dumps",
]
assert sorted(__all__) == sorted(_EXPORTS)
from .version import __version__  # noqa: E402,F401  (the one home of the version)

if TYPE_CHECKING:
    from .check.invariants import InvariantResult, Violation
    from .cluster_api import (
        INVARIANTS,
        FlowReport,
        VerifyReport,
        cluster_to_yaml,
        generated_dumps,
        load_cluster,
        trace_flow,
        verify,
        with_node_dumps,
    )
    from .errors import InputError, InvalidArgument, LimitExceeded, OutputError, PktverifyError, VerificationStopped
    from .load.model_cache import ModelCache
    from .model.cluster import ClusterSpec
    from .model.node import NodeState
    from .model.packet import Packet
    from .model.path import Endpoint, Hop, PathEnd, PathEndKind
    from .model.trace import Connection, NodeVerdict, Outcome, Step, Trace
    from .node_api import ConntrackTable, NodeTracer, load_node, trace, trace_packet, trace_to_pcapng
    from .packets import make_packet, packet_from_scapy


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pktverify' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
