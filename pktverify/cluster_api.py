"""The library entry points behind ``pktverify verify``: load a cluster, verify it, read the report.

>>> import pktverify
>>> cluster = pktverify.load_cluster("rules/seed/cluster-iptables.yaml")      # doctest: +SKIP
>>> report = pktverify.verify(cluster)                                         # doctest: +SKIP
>>> report.holds, [v.message for v in report.violations]                       # doctest: +SKIP
(True, [])
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .check import verify_run
from .check.invariants import INVARIANTS, Violation
from .errors import InvalidArgument
from .eval.cluster_walk import ClusterWalker
from .limits import MAX_BRANCHES, MAX_PATHS
from .load.cluster import load_cluster
from .model.cluster import ClusterSpec
from .report.cluster_yaml import cluster_to_yaml

if TYPE_CHECKING:
    from .check.flow_question import FlowAnswer
    from .load.model_cache import ModelCache

__all__ = ["load_cluster", "verify", "VerifyReport", "cluster_to_yaml", "INVARIANTS", "trace_flow", "FlowReport",
           "generated_dumps", "with_node_dumps"]


class VerifyReport(verify_run.VerifyReport):
    """What :func:`verify` found: ``results`` per invariant (in :data:`INVARIANTS` order),
    ``holds`` when none is broken, ``violations`` all of them (each with ``.invariant``,
    ``.message``, ``.flow``, ``.packet``, ``.hops`` as records and ``.probability``); the
    check stage's record (:class:`pktverify.check.verify_run.VerifyReport`) with its renderings."""

    def to_json(self, *, captures: dict | None = None) -> str:
        """The JSON ``pktverify verify --format json`` prints, byte for byte (``captures``: what
        :meth:`write_pcaps` wrote, as ``capture_names`` maps it, named with each violation)."""
        from .report.verify_report import verify_to_json
        return verify_to_json(self.results, captures=captures, node_warnings=self.node_warnings)

    def to_text(self, *, max_violations: int = 2, captures: dict | None = None) -> str:
        """The text ``pktverify verify`` prints: the table, then the causes, biggest first."""
        from .report.verify_report import verify_to_text
        return verify_to_text(self.results, max_violations=max_violations, captures=captures,
                              node_warnings=self.node_warnings)

    def to_html(self, *, max_violations: int = 2, captures: dict | None = None) -> str:
        """The self-contained HTML page ``pktverify verify --html FILE`` writes."""
        from .report.verify_html import verify_to_html
        return verify_to_html(self.cluster, self.results, max_violations=max_violations, captures=captures,
                              node_warnings=self.node_warnings)

    @property
    def node_warnings(self) -> list[tuple[tuple[str, ...], str]]:
        """What the nodes' dumps held that pktverify left out, each warning once: (nodes, warning),
        a warning the same on several nodes' own files folded into one (the reports list them)."""
        from .report.node_warnings import fold_node_warnings
        return fold_node_warnings(self.cluster, self.walker.states)

    def write_pcaps(self, folder: str | Path, *, all_flows: bool = False, split: str = "flow") -> list[Path]:
        """Each violation's counterexample as pcapng in ``folder`` (made if missing), as
        ``pktverify verify --pcap-dir`` writes them (``split="point"``: one file per flow and
        observation point, as ``--pcap-split point``); the paths written."""
        from .report.files import OutputDir
        from .report.verify_pcaps import write_verify_pcaps
        with OutputDir(folder) as out:
            return write_verify_pcaps(self.walker, self.results, out, all_flows=all_flows, split=split)


def verify(cluster: ClusterSpec, *, invariants: Iterable[str] | None = None, jobs: int = 1,
           lenient: bool = False, max_branches: int = MAX_BRANCHES, max_paths: int = MAX_PATHS,
           at: int | dt.datetime | None = None, keep_flows: bool = False, progress: bool = False,
           executor: str = "local", scheduler=None, cache: ModelCache | None = None, only: Iterable[str] | None = None,
           timeout: float | None = None) -> VerifyReport:
    """Check ``cluster`` against the Kubernetes network model, as ``pktverify verify`` does.

    ``invariants``: names from :data:`INVARIANTS` (default all four). ``jobs``: worker
    processes (clamped to the CPUs). ``lenient``: unknown matches and targets in given
    dumps become may-match (outcomes inexact) instead of an error. ``at``: when the
    flows are sent, for ``-m time`` rules (a datetime, naive = UTC, or epoch seconds).
    ``keep_flows``: keep every checked flow's paths (for ``write_pcaps(all_flows=True)``).
    ``progress``: a progress line on stderr while it runs (only when stderr is a terminal).
    ``executor="dask"``: run the flow checks on a Dask cluster — ``scheduler`` is its address
    (``tcp://HOST:8786``) or a ``distributed.Client``; the report is the one ``jobs=1`` gives.
    ``cache``: a :class:`pktverify.ModelCache` for the given dumps' rule sets.
    ``only``: service keys (``"ns/name"``) to narrow the report to: their reachability from every
    client, every door, every endpoint and reply (unless ``invariants`` says otherwise, only
    service-reachability is run); the report's notes say what was left out.
    ``timeout``: seconds for the whole run (reading the dumps, connecting, every check), or a
    running :class:`pktverify.check.deadline.Deadline`; past them it raises
    :class:`pktverify.VerificationStopped` (how many tasks were done; nothing is
    judged, no report), having stopped its worker processes and released its Dask tasks.
    """
    run = verify_run.verify(cluster, invariants=invariants, jobs=jobs, lenient=lenient, max_branches=max_branches,
                            max_paths=max_paths, at=at, keep_flows=keep_flows, progress=progress,
                            executor=executor, scheduler=scheduler, cache=cache, only=only, timeout=timeout)
    return VerifyReport(run.cluster, run.results, run.walker)


@dataclass
class FlowReport:
    """What :func:`trace_flow` found for one flow: ``holds`` (no promise broken), ``judged``
    (False: no promise applies, e.g. to an address no pod, node or service holds),
    ``violations`` (as :func:`verify` reports them for this flow), ``outcomes`` (each forward
    :class:`PathEnd` with its replies: ``probability``, ``kind``, ``at``, ``packet``, ``hops``),
    ``question`` and ``packet`` (as sent)."""
    answer: "FlowAnswer"
    walker: ClusterWalker = field(repr=False)

    @property
    def holds(self) -> bool:
        return self.answer.holds

    @property
    def judged(self) -> bool:
        return self.answer.judged

    @property
    def violations(self) -> list[Violation]:
        return list(self.answer.violations)

    @property
    def outcomes(self) -> list:
        return list(self.answer.ends)

    @property
    def question(self) -> str:
        return self.answer.question

    @property
    def packet(self):
        return self.answer.packet

    def to_text(self) -> str:
        """The text ``pktverify trace --cluster`` prints."""
        from .report.flow_answer import flow_answer_to_text
        return flow_answer_to_text(self.answer)

    def to_json(self) -> str:
        """The JSON ``pktverify trace --cluster --format json`` prints."""
        from .report.flow_answer import flow_answer_to_json
        return flow_answer_to_json(self.answer)

    def to_html(self) -> str:
        """The page ``pktverify trace --cluster --html FILE`` writes."""
        from .report.flow_answer import flow_answer_to_html
        return flow_answer_to_html(self.answer, source=self.walker.cluster.source)

    def write_pcaps(self, path: str | Path) -> list[tuple[int, Path]]:
        """Each outcome (the packet at every hop, its reply, the ACK) as pcapng: ``path`` itself
        for one outcome, ``NAME-1.pcapng``, ``NAME-2.pcapng``, ... for several (the probability
        in each file's comment); returns (outcome number, path) pairs."""
        from .errors import OutputError
        from .eval.flows import cluster_flow
        from .report.files import refuse_special
        from .report.pcap import write_pcapng

        path = Path(path)
        refuse_special(path)
        if not path.name or str(path).endswith("/"):
            raise OutputError(f"refusing to write {str(path)!r}: give a file name, not a folder")
        ends = self.answer.ends
        out = []
        for n, (end, backs) in enumerate(ends, 1):
            title = f"{self.answer.question} (outcome {n} of {len(ends)}, p={end.probability:.6g})"
            flow = cluster_flow(self.walker, self.answer.client, end, title=title, replies=list(backs))
            target = path if len(ends) == 1 else path.with_name(f"{path.stem}-{n}{path.suffix or '.pcapng'}")
            out.append((n, write_pcapng([flow], target)))
        return out


def trace_flow(cluster: ClusterSpec, *, source: str, to: str, proto: str | None = None, sport: int | None = None,
               lenient: bool = False, max_branches: int = MAX_BRANCHES, max_paths: int = MAX_PATHS,
               at: int | dt.datetime | None = None, cache: ModelCache | None = None) -> FlowReport:
    """One flow and its reply across ``cluster``, judged as :func:`verify` judges it, as
    ``pktverify trace --cluster`` does.

    ``source``: ``"NS/POD"``, ``"NODE"`` (its own stack) or ``"outside@NODE"`` (an off-cluster
    client arriving at NODE). ``to``: ``"NS/SVC:PORT"`` (number or name; no port for a one-port
    service), ``"NS/POD:PORT"`` or ``"IP:PORT"`` (a service's ClusterIP, NodePort, external or
    load-balancer address, or a pod's or node's). ``proto``: picks among a service's ports of
    one number (tcp/udp/sctp, any case), else the protocol to a pod or address (default tcp).
    ``sport``: the client's source port (default: the one verify's probes use).

    >>> report = pktverify.trace_flow(cluster, source="default/client", to="default/web:80")  # doctest: +SKIP
    >>> report.holds, [(end.probability, end.at.label()) for end, _replies in report.outcomes]  # doctest: +SKIP
    (True, [(0.5, 'pod default/web-1'), (0.5, 'pod default/web-2')])
    """
    from .check.flow_question import answer_flow, parse_source, parse_target
    from .load.cluster_nodes import cluster_nodes

    if not isinstance(cluster, ClusterSpec):
        raise InvalidArgument(f"cluster={cluster!r} (type={type(cluster).__name__}): give a cluster from "
                              "pktverify.load_cluster or a pktverify.strategies strategy")
    for what, value in (("source", source), ("to", to)):
        if not isinstance(value, str):
            raise InvalidArgument(f"{what}={value!r} (type={type(value).__name__}): give a string such as "
                                  + ("'default/client'" if what == "source" else "'default/web:80'"))
    if proto is not None:
        if not isinstance(proto, str) or proto.lower() not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"proto={proto!r}: use tcp, udp or sctp")
        proto = proto.lower()
    if sport is not None and (type(sport) is not int or not 0 < sport < 65536):
        raise InvalidArgument(f"sport={sport!r}: use a port number 1-65535")
    if isinstance(at, dt.datetime):
        at = int((at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)).timestamp())
    nodes = cluster_nodes(cluster, lenient=lenient, cache=cache)
    walker = ClusterWalker(cluster, nodes, max_branches=max_branches, max_paths=max_paths, at=at)
    client = parse_source(cluster, walker, source)
    target = parse_target(cluster, walker, to, proto=proto)
    return FlowReport(answer_flow(cluster, walker, client, target, sport=sport), walker)


def generated_dumps(cluster: ClusterSpec) -> dict[str, dict[str, str]]:
    """The dumps pktverify generates for each node of ``cluster`` (what kube-proxy, kubelet and
    the CNI would write there): ``{node: {"iptables": iptables-save text, "addrs": ip -j addr
    JSON, "routes": ip route text}}``. Dumps a node gives itself are not in it: its entry holds
    only what it leaves out (an empty dict when it gives all three).

    With :func:`with_node_dumps`, the way to put your own tooling's rules on a drawn cluster:

    >>> def render_cluster(cluster):                                            # doctest: +SKIP
    ...     for node, dumps in pktverify.generated_dumps(cluster).items():
    ...         cluster = pktverify.with_node_dumps(cluster, node, iptables=our_rules(node, dumps["iptables"]))
    ...     return cluster
    """
    from .generate.node_state import generate_node

    if not isinstance(cluster, ClusterSpec):
        raise InvalidArgument(f"cluster={cluster!r} (type={type(cluster).__name__}): give a cluster from "
                              "pktverify.load_cluster or a pktverify.strategies strategy")
    out: dict[str, dict[str, str]] = {}
    for node in cluster.nodes:
        missing = [kind for kind in ("iptables", "addrs", "routes") if not node.has_dump(kind)]
        gen = generate_node(cluster, node) if missing else None
        out[node.name] = {kind: getattr(gen, kind) for kind in missing}
    return out


def with_node_dumps(cluster: ClusterSpec, node: str, *, iptables: str | None = None, addrs: str | None = None,
                    routes: str | None = None, ipsets: str | None = None, rules: str | None = None,
                    nft: str | None = None) -> ClusterSpec:
    """A copy of ``cluster`` whose node ``node`` has the dumps given here, as text (the
    formats ``pktverify trace`` reads: ``iptables-save``, ``ip -j addr``, ``ip route``, ``ipset
    save``, ``ip rule``, ``nft -j list ruleset``); its other dumps stay as they were (given, or generated). The copy is
    of the same class (a drawn cluster keeps its ``fault``), and :func:`cluster_to_yaml` writes
    the new dumps inline, so a counterexample stays one file. Errors in the text are reported
    when the cluster is verified, at the text's own line numbers."""
    import dataclasses

    if not isinstance(cluster, ClusterSpec):
        raise InvalidArgument(f"cluster={cluster!r} (type={type(cluster).__name__}): give a cluster from "
                              "pktverify.load_cluster or a pktverify.strategies strategy")
    names = [n.name for n in cluster.nodes]
    if node not in names:
        raise InvalidArgument(f"node={node!r}: the cluster has no such node (it has {', '.join(names)})")
    given = {"iptables": iptables, "addrs": addrs, "routes": routes, "ipsets": ipsets, "rules": rules, "nft": nft}
    for kind, text in given.items():
        if text is not None and not isinstance(text, str):
            raise InvalidArgument(f"{kind}={text!r} (type={type(text).__name__}): give the dump's text as a str")
    given = {kind: text for kind, text in given.items() if text is not None}
    if not given:
        raise InvalidArgument("with_node_dumps: give at least one of iptables, addrs, routes, ipsets, rules, nft")
    nodes = []
    for spec in cluster.nodes:
        if spec.name == node:
            inline = tuple((k, t) for k, t in spec.inline if k not in given) + tuple(given.items())
            spec = dataclasses.replace(spec, inline=inline, inline_lines=tuple(
                (k, line) for k, line in spec.inline_lines if k not in given), **{k: None for k in given})
        nodes.append(spec)
    return dataclasses.replace(cluster, nodes=tuple(nodes))
