"""The Kubernetes network model's promises, checked for every pod, node and service.

* ``pod-ip-uniqueness``: pod IPs unique and inside their node's pod CIDR; pod
  CIDRs pairwise disjoint, inside the cluster CIDR, clear of the service CIDR,
  of node addresses and of other nodes' bridges (the docker0 problem).
* ``no-nat``: pod→pod, node→pod and pod→node arrive with the original source
  and destination, and the reply comes back unchanged.
* ``service-reachability``: every client reaches every ready endpoint of every
  service port with non-zero probability, never drops while endpoints exist,
  spreads uniformly (within 1e-6) in iptables mode, the reply comes from
  ClusterIP:port, and no ClusterIP packet leaves a node un-DNATed.
* ``routing``: every node reaches every pod CIDR (its bridge address); no
  loops, no blackholes.

Every violation carries a concrete flow and its hop-by-hop path.

The package: :mod:`.results` (the records), :mod:`.runner` (planning and running the
checks), one module per invariant, :mod:`.flows` (the probe flows and their classes), and the
reductions that let one flow stand for many (:mod:`.address_classes`, :mod:`.node_symmetry`).
"""

from .results import InvariantResult, Violation, flow_key, violating_flows
from .runner import INVARIANTS, check_all
from .service_reachability import UNIFORMITY_TOLERANCE

__all__ = ["Violation", "InvariantResult", "check_all", "INVARIANTS", "UNIFORMITY_TOLERANCE", "flow_key",
           "violating_flows"]
