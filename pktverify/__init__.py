"""pktverify: packet-level verification of Kubernetes node and cluster networking.

Public names are re-exported here; implementations live in the pipeline
packages (``parse`` → ``eval`` → ``checks`` → ``report``).
"""

from .api import ConntrackTable, NodeTracer, load_node, trace, trace_packet, trace_to_pcapng
from .cluster_api import INVARIANTS, VerifyReport, cluster_to_yaml, load_cluster, verify
from .errors import InputError, InvalidArgument, PktverifyError
from .model.packet import Packet
from .model.trace import Connection, Outcome, Trace
from .packets import make_packet, packet_from_scapy

__all__ = [
    "ConntrackTable", "Connection", "INVARIANTS", "InputError", "InvalidArgument", "NodeTracer", "Outcome",
    "Packet", "PktverifyError", "Trace", "VerifyReport", "cluster_to_yaml", "load_cluster", "load_node",
    "make_packet", "packet_from_scapy", "trace", "trace_packet", "trace_to_pcapng", "verify",
]
__version__ = "0.1.0"
