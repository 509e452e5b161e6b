"""``pktverify selftest-cluster``: every flow ``verify --all`` checks, sent for real through a
:class:`~.cluster_lab.ClusterLab`, and judged against verify's per-flow facts
(:mod:`.cluster_compare`).

For each distinct sent flow (client, protocol, source, destination, port) the lab opens
``connections_for`` connections from the client's namespace, each from a source port of its
own, and counts their outcomes; each connection of a flow whose outcomes may include an
unanswered one runs *traced*: every namespace's connections are read before and after it, so
a SYN delivered but never answered still names its receiver and the source it saw (a flow promised to answer every
time that does not is restarted traced once, its first counts thrown away, so the counts
stay unbiased).  An off-cluster client's packets are routed through the node the flow
arrives at.  Services with session affinity: every ``-m recent`` list (and in kube-proxy's
nftables mode every ``affinity-`` set) is emptied before each connection, so each is a first
connection as verify's flow is.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from ..model.addresses import parse_ip
from ..model.cluster import ClusterSpec
from .cluster_compare import Expectation, Verdict, connections_for, expectation_of, judge
from .cluster_dumps import Unemulable, node_dump_text
from .cluster_lab import PROBE_PORTS, ClusterLab

__all__ = ["ClusterRun", "run_cluster", "drawn_clusters"]

# Answers that say no: a reset or ICMP error; a userspace proxy without endpoints closes unanswered.
_REFUSED = {"ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EACCES", "ECONNRESET"}
_TIMEOUT = 0.25         # a SYN unanswered this long is lost (in-lab answers take under a millisecond;
                        # the first retransmission would come at 1 s)


@dataclass
class ClusterRun:
    """One cluster's run: every flow's verdict, or why it was skipped, or the lab's own errors."""
    name: str
    verdicts: list[Verdict] = field(default_factory=list)
    skipped: str = ""
    lab_errors: list[str] = field(default_factory=list)
    connections: int = 0
    unsent: int = 0             # flows of other protocols (ICMP, SCTP): not sent
    prefix: str = ""            # the lab's namespace name prefix (empty: no lab was built)
    seconds: float = 0.0

    @property
    def agreed(self) -> int:
        return sum(v.agrees for v in self.verdicts)

    @property
    def disagreements(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.agrees]


def _send_key(exp: Expectation) -> tuple:
    return (exp.client, exp.arrives_at, exp.proto, exp.src, exp.dst, exp.dport)


def run_cluster(cluster: ClusterSpec, *, name: str, minimum: int = 10, flow_filter: str = "",
                override=None) -> ClusterRun:
    """Verify ``cluster`` with every flow kept, build it, send every flow, judge each.
    ``override``: a function mapping the list of expectations to another (tests feed a wrong
    verdict through it: the comparison must catch it)."""
    from ..cluster_api import verify
    from ..errors import PktverifyError

    started = time.monotonic()
    run = ClusterRun(name)
    try:
        report = verify(cluster, keep_flows=True)
    except PktverifyError as exc:
        run.skipped = f"verify refuses it: {exc}"
        return run
    exps = [expectation_of(res.name, f, cluster) for res in report.results for f in res.flows or ()]
    skipped = [e for e in exps if e.proto not in ("tcp", "udp")]
    exps = [e for e in exps if e.proto in ("tcp", "udp") and flow_filter in e.label]
    if override is not None:
        exps = override(exps)
    tcp, udp = _flow_ports(report)
    affinity = any(" -m recent " in (node_dump_text(cluster, n, "iptables") or "")
                   or "@affinity-" in (node_dump_text(cluster, n, "nft") or "") for n in cluster.nodes)
    try:
        lab = ClusterLab(cluster, report.walker.states, ports=(tcp, udp), external=report.walker.external_ip,
                         proxies=report.walker.proxy_ports)
    except Unemulable as exc:
        run.skipped = f"cannot emulate: {exc}"
        return run
    run.prefix = lab.prefix
    try:
        lab.__enter__()
    except RuntimeError as exc:     # a command of the build failed: the lab's fault, said, not a verdict
        run.lab_errors = [f"the lab could not be built: {exc}"]
        return run
    try:                            # built (and entered): closed whatever happens from here
        run.lab_errors = lab.readback()
        if run.lab_errors:
            return run
        # A probe's source port is none a socket listens on: the flows' ports, and the userspace
        # proxies' ports (each node's proxies listen on every address of the node).
        prober = _Prober(lab, tcp | udp | {port for _node, port in report.walker.proxy_ports}, affinity)
        groups: dict[tuple, list[Expectation]] = {}
        for e in exps:
            groups.setdefault(_send_key(e), []).append(e)
        for key, members in groups.items():
            n = max(connections_for(e, minimum=minimum) for e in members)
            traced = any(o[2] != "reply" for e in members for o, _ in e.promised)
            counts = prober.flow(members[0], n, traced)
            for e in members:
                run.verdicts.append(judge(e, counts))
        run.connections = prober.sent
    finally:
        lab.close()
    run.unsent = len(skipped)
    run.seconds = time.monotonic() - started
    return run


def _flow_ports(report) -> tuple[set[int], set[int]]:
    """The TCP and UDP destination ports of every flow's first and last packet: the ports the
    lab's agents listen on."""
    tcp: set[int] = set()
    udp: set[int] = set()
    for res in report.results:
        for f in res.flows or ():
            for end, _ in f.ends:
                for pkt in (end.hops[0].packet, end.packet):
                    (tcp if pkt.proto == 6 else udp if pkt.proto == 17 else set()).add(pkt.dport)
    tcp.discard(0)
    udp.discard(0)
    return tcp, udp


class _Prober:
    def __init__(self, lab: ClusterLab, listening: set[int], affinity: bool) -> None:
        self.lab, self.listening, self.affinity = lab, listening, affinity
        self.sport = PROBE_PORTS.start
        self.sent = 0
        self.everyone = [a for a in lab.agents if a != "external"]

    def _port(self) -> int:
        while True:
            self.sport = PROBE_PORTS.start if self.sport >= PROBE_PORTS.stop - 1 else self.sport + 1
            if self.sport not in self.listening:
                return self.sport

    def flow(self, exp: Expectation, n: int, traced: bool) -> Counter:
        if exp.client == "external":
            self.lab.route_external(parse_ip(exp.dst), exp.arrives_at)
        for attempt in range(2):
            counts: Counter = Counter()
            restart = False
            for _ in range(n):
                outcome = self.one(exp, traced)
                if outcome is None:          # failed untraced: start again, traced
                    restart = True
                    break
                counts[outcome] += 1
            if not restart:
                return counts
            traced = True
        return counts

    def one(self, exp: Expectation, traced: bool):
        """One connection's outcome; None when it failed untraced (nobody knows who received it)."""
        lab = self.lab
        if self.affinity:
            lab.ask([a for a in lab.agents if a.startswith("node:")], "forget")
        if traced and exp.proto == "tcp":
            lab.ask(self.everyone, "drain")       # every agent's snapshot of its connections
        self.sent += 1
        token = f"t{self.sent}"
        for _ in range(5):    # a port still held by an earlier probe's connection: take the next
            res = lab.ask([exp.client], "connect", proto=exp.proto, src=exp.src, sport=self._port(),
                          dst=exp.dst, dport=exp.dport, token=token, timeout=_TIMEOUT)[exp.client]
            if res["ok"] or res["err"] != "bind EADDRINUSE":
                break
        if res["ok"]:
            lab.events(token)
            return (res["who"], res["peer"], "reply")
        err = res["err"]
        if err.startswith("bind") or err.startswith("garbled"):
            raise RuntimeError(f"lab probe from {exp.client} failed: {err}")
        answer = "refused" if err in _REFUSED else "silence"
        if exp.proto == "udp":
            got = lab.events(token, wait=0.05)
            if got:
                return (got[0]["who"], got[0]["peer"], answer)
            return ("-", "-", answer)
        if not traced:
            return None
        time.sleep(0.02)
        seen = lab.ask(self.everyone, "drain")
        for ident, rec in sorted(seen.items()):
            for src, proto, _port in rec["seen"]:
                if proto == "tcp":
                    return (ident, src, answer)
        return ("-", "-", answer)


def drawn_clusters(count: int, seed: int) -> list[ClusterSpec]:
    """``count`` clusters drawn by :func:`pktverify.strategies.faulty_clusters` (either proxy mode,
    small: at most 3 nodes, 3 pods a node, 3 services) from Hypothesis seed ``seed``."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    from ..testing.strategies import faulty_clusters

    out: list[ClusterSpec] = []

    @hseed(seed)
    @settings(max_examples=count, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(faulty_clusters(max_nodes=3, max_pods_per_node=3, max_services=3))
    def collect(cluster) -> None:
        if len(out) < count:
            out.append(cluster)

    collect()
    return out
