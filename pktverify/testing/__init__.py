"""The testing kit: assertions and Hypothesis strategies for tests in your own repository.

* :func:`assert_invariants` — the Kubernetes network model holds on a cluster, or an
  ``AssertionError`` that shows the violation hop by hop; under Hypothesis the cluster's YAML
  is attached with ``hypothesis.note`` so the shrunk example reproduces with ``pktverify verify``.
* :func:`assert_trace` — what one scapy packet does on a node, or across a cluster.

With the pytest plugin (``--pktverify-pcap-dir DIR``), the last failing
:func:`assert_invariants` of a failed test — under Hypothesis, the final shrunk example —
is written to DIR as its cluster YAML and one pcapng per violation.

The rest of the kit: :mod:`.strategies` (clusters, faulty clusters, rule sets, packets and flows
to draw; also importable as :mod:`pktverify.strategies`), :mod:`.faults` (the faults
``faulty_clusters`` plants) and :mod:`.iptables_draw` (random ``iptables-restore`` texts). The
kernel oracle pktverify checks itself with is apart, in :mod:`pktverify.oracle`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable

from ..check.invariants import Violation
from ..errors import InvalidArgument, one_line
from ..model.cluster import ClusterSpec
from ..model.node import NodeState
from ..model.path import PathEndKind
from ..model.trace import NodeVerdict

__all__ = ["assert_invariants", "assert_trace", "InvariantsFailed", "register_ci_profile"]

# The pytest plugin sets a list here for the duration of one test call; failures are appended.
FAILURES: contextvars.ContextVar[list | None] = contextvars.ContextVar("pktverify_failures", default=None)

_SHOWN = 3          # violations shown in the assertion message (the report has them all)


class InvariantsFailed(AssertionError):
    """Raised by :func:`assert_invariants`; ``report`` is the full :class:`~pktverify.VerifyReport`."""

    def __init__(self, message: str, report) -> None:
        super().__init__(message)
        self.report = report


def assert_invariants(cluster: ClusterSpec, invariants: Iterable[str] | None = None, **verify_options):
    """Verify ``cluster`` and raise :class:`InvariantsFailed` (an ``AssertionError``) unless every
    invariant holds; return the report when they do. ``verify_options`` go to
    :func:`pktverify.verify` (``jobs``, ``lenient``, ``at``, ...)."""
    __tracebackhide__ = True       # pytest: the failure is the caller's, not this helper's
    from ..cluster_api import verify
    from ..report.cluster_yaml import cluster_to_yaml

    report = verify(cluster, invariants=invariants, **verify_options)
    if report.holds:
        return report
    if _final_hypothesis_example():
        from hypothesis import note
        note(f"pktverify: the failing cluster (save it and run `pktverify verify FILE`):\n"
             f"{cluster_to_yaml(cluster, inline_files=True)}")
    failures = FAILURES.get()
    if failures is not None:
        failures.append(report)
    raise InvariantsFailed(_message(report.violations, getattr(cluster, "fault", None)), report)


def register_ci_profile(name: str = "pktverify-ci", *, max_examples: int = 500):
    """Register (and return) the Hypothesis settings profile we recommend for property tests of a
    network in CI: no deadline (one verification takes milliseconds to seconds), derandomized
    (a failure fails the same way on every retry), and without Hypothesis's *explain* phase,
    which re-runs a failing example many times to say which parts mattered (a failing
    ``assert_invariants`` test took 60 s with it, 0.5 s without). Load it with
    ``settings.load_profile(name)``; the tests' own ``@settings`` should not set
    ``max_examples``, so the profile decides."""
    from hypothesis import Phase, settings

    if type(max_examples) is not int or max_examples < 1:
        raise InvalidArgument(f"max_examples={max_examples!r} (type={type(max_examples).__name__}): use an integer >= 1")
    phases = tuple(p for p in Phase if p.name != "explain")
    settings.register_profile(name, max_examples=max_examples, deadline=None, derandomize=True, phases=phases,
                              print_blob=True)
    return settings.get_profile(name)


def _message(violations: list[Violation], fault) -> str:
    broken = sorted({v.invariant for v in violations})
    lines = [f"{len(violations)} violation(s) of the Kubernetes network model ({', '.join(broken)})"]
    if fault is not None:
        lines.append(f"planted fault: {fault.name}: {fault.detail}")
    for n, v in enumerate(violations[:_SHOWN], 1):
        lines += ["", f"{v.invariant} violation {n}: {v.message}"]
        if v.flow:
            lines.append(f"  flow: {v.flow}")
        lines += [f"    {hop}" for hop in v.path]
    if len(violations) > _SHOWN:
        lines += ["", f"... and {len(violations) - _SHOWN} more (the exception's .report has them all)"]
    return "\n".join(one_line(line) for line in lines)


def _final_hypothesis_example() -> bool:
    """Whether this runs as Hypothesis's final replay of the failing example (the one it reports:
    only then is the cluster's YAML worth making and attaching)."""
    try:
        from hypothesis.control import current_build_context
        return bool(current_build_context().is_final)
    except Exception:       # not inside a Hypothesis test, or no Hypothesis installed
        return False


_NODE_VERDICTS = tuple(NodeVerdict)
_PATH_ENDS = tuple(PathEndKind)


def assert_trace(target: NodeState | ClusterSpec, packet, *, in_iface: str | None = None,
                 sender: str | None = None, verdict: str | None = None, reaches: str | None = None,
                 no_nat: bool = False):
    """Trace the scapy ``packet`` and assert what happens to every outcome.

    On a node (from :func:`pktverify.load_node`): ``in_iface`` is where it arrives (None:
    sent by the node); ``verdict`` is what every outcome must be (forward, local, drop or
    reject; by default every outcome must get through: forward or local, never a drop or a
    reject). Returns the :class:`~pktverify.Trace`.

    Across a cluster: ``sender`` is a pod (``namespace/name``) or node name; ``reaches`` the
    pod or node every path must arrive at, ``no_nat`` that it arrives with its source and
    destination unchanged, ``verdict`` how every path must end (arrived, drop, reject,
    blackhole, loop, left); by default every path must arrive somewhere. Returns the path ends
    (records whose packets print their addresses).
    """
    __tracebackhide__ = True
    from ..packets import packet_from_scapy

    pkt = packet_from_scapy(packet)
    if isinstance(target, NodeState):
        if sender is not None or reaches is not None or no_nat:
            raise InvalidArgument("sender, reaches and no_nat are for a cluster; on a node give in_iface and verdict")
        return _assert_on_node(target, pkt, in_iface, verdict)
    if not isinstance(target, ClusterSpec):
        raise InvalidArgument(f"target={target!r} (type={type(target).__name__}): give a node or a cluster")
    return _assert_across_cluster(target, pkt, sender, verdict, reaches, no_nat)


def _assert_on_node(node: NodeState, pkt, in_iface: str | None, verdict: str | None):
    """:func:`assert_trace` on a node: every outcome's verdict is ``verdict`` (default: gets through)."""
    __tracebackhide__ = True
    if verdict is not None and verdict not in _NODE_VERDICTS:
        raise InvalidArgument(f"verdict={verdict!r}: on a node use one of {', '.join(_NODE_VERDICTS)}")
    from ..node_api import trace
    result = trace(node, pkt, in_iface=in_iface)
    allowed = (verdict,) if verdict is not None else ("forward", "local")
    wrong = [o for o in result.outcomes if o.verdict not in allowed]
    if wrong:
        expected = verdict or "it to get through (forward or local)"
        raise AssertionError(one_line(f"{pkt.describe()} on {node.name}: expected {expected}, got ")
                             + "; ".join(f"{o.verdict} (p={o.probability:.6g}: {o.reason})" for o in wrong))
    return result


def _assert_across_cluster(target: ClusterSpec, pkt, sender: str | None, verdict: str | None,
                           reaches: str | None, no_nat: bool):
    """:func:`assert_trace` across a cluster: every path from ``sender`` ends as asked."""
    __tracebackhide__ = True
    if sender is None:
        raise InvalidArgument("sender is required on a cluster: a pod as namespace/name, or a node name")
    if verdict is not None and verdict not in _PATH_ENDS:
        raise InvalidArgument(f"verdict={verdict!r}: across a cluster use one of {', '.join(_PATH_ENDS)}")
    if verdict not in (None, "arrived") and (reaches is not None or no_nat):
        raise InvalidArgument(f"verdict={verdict!r} says no path arrives: reaches and no_nat cannot hold then")
    from ..eval.cluster_walk import ClusterWalker
    from ..load.cluster_nodes import cluster_nodes

    walker = ClusterWalker(target, cluster_nodes(target))
    if sender in target.pods_by_key:
        client = walker.pod_endpoint(target.pods_by_key[sender])
    elif any(n.name == sender for n in target.nodes):
        client = walker.node_endpoint(target.node(sender))
    else:
        raise InvalidArgument(f"sender={sender!r}: no such pod (namespace/name) or node in the cluster")
    ends = walker.walk(client, pkt)
    problems = []
    wanted_kind = verdict or "arrived"
    for end in ends:
        if end.kind != wanted_kind:
            problems.append(f"{end.kind} at {end.at.label() if end.at else '-'} (p={end.probability:.6g}: "
                            f"{end.reason}), not {reaches or wanted_kind}")
        elif reaches is not None and (end.at is None or end.at.name != reaches):
            problems.append(f"arrived at {end.at.label() if end.at else '-'} (p={end.probability:.6g}), not {reaches}")
        elif no_nat and (end.packet.src, end.packet.dst) != (pkt.src, pkt.dst):
            problems.append(f"arrived NATed as {end.packet.describe()}")
    if problems:
        hops = "\n".join(f"    {h.point}: {h.packet.describe()} — {h.note}" for h in ends[0].hops)
        raise AssertionError(one_line(f"{pkt.describe()} from {sender}: ") + "; ".join(problems) + "\n" + hops)
    return ends
