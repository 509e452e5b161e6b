"""pktverify: packet-level verification of Kubernetes node and cluster networking.

Public names are re-exported here; implementations live in the pipeline
packages (``parse`` → ``eval`` → ``checks`` → ``report``).  They are imported on
first use (PEP 562), so ``pktverify trace`` does not pay for the cluster checks'
imports and ``import pktverify.cli`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "ConntrackTable": ".node_api", "NodeTracer": ".node_api", "load_node": ".node_api", "trace": ".node_api",
    "trace_packet": ".node_api", "trace_to_pcapng": ".node_api",
    "INVARIANTS": ".cluster_api", "VerifyReport": ".cluster_api", "cluster_to_yaml": ".cluster_api",
    "load_cluster": ".cluster_api", "verify": ".cluster_api", "trace_flow": ".cluster_api",
    "FlowReport": ".cluster_api", "generated_dumps": ".cluster_api", "with_node_dumps": ".cluster_api",
    "InputError": ".errors", "InvalidArgument": ".errors", "PktverifyError": ".errors",
    "Packet": ".model.packet",
    "Connection": ".model.trace", "Outcome": ".model.trace", "Trace": ".model.trace",
    "make_packet": ".packets", "packet_from_scapy": ".packets",
}

__all__ = [
    "ConntrackTable", "Connection", "FlowReport", "INVARIANTS", "InputError", "InvalidArgument", "NodeTracer", "Outcome",
    "Packet", "PktverifyError", "Trace", "VerifyReport", "cluster_to_yaml", "generated_dumps", "load_cluster",
    "load_node",
    "make_packet", "packet_from_scapy", "trace", "trace_flow", "trace_packet", "trace_to_pcapng", "verify", "with_node_dumps",
]
assert sorted(__all__) == sorted(_EXPORTS)
from .version import __version__  # noqa: E402,F401  (the one home of the version)

if TYPE_CHECKING:
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
    from .errors import InputError, InvalidArgument, PktverifyError
    from .model.packet import Packet
    from .model.trace import Connection, Outcome, Trace
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
