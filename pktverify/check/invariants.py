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
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field, replace

from ..eval.address_classes import AddressClasses, base_groups
from ..eval.cluster_walk import PROXY_SPORT, ClusterWalker, Endpoint, Hop, PathEnd, remembered
from ..eval.node_symmetry import NodeSymmetry
from ..model.addresses import format_ip, format_network, in_network, network_within, networks_overlap
from ..model.cluster import ClusterSpec, PodSpec
from ..model.kube_proxy import PROBE_CLIENT_SPORT, bridge_address
from ..model.packet import PROTO_NUMBERS, Packet
from ..progress import Progress

__all__ = ["Violation", "InvariantResult", "check_all", "INVARIANTS", "UNIFORMITY_TOLERANCE", "flow_key",
           "violating_flows"]

INVARIANTS = ("pod-ip-uniqueness", "no-nat", "service-reachability", "routing")
UNIFORMITY_TOLERANCE = 1e-6
_CLIENT_SPORT = PROBE_CLIENT_SPORT     # every probe client's source port (userspace proxies never listen on it)
_PROBE_PORT = 8080          # destination port for no-nat and routing probes when a pod declares none
_KUBELET_PORT = 10250
# The fixed ports the checks' flows use (besides the cluster's own): see NodeSymmetry.
_FLOW_PORTS = frozenset({_CLIENT_SPORT, _PROBE_PORT, _KUBELET_PORT, PROXY_SPORT})


@dataclass(frozen=True)
class Violation:
    """A broken promise with its counterexample: the flow, its hops as text, and (for
    captures) the structured path: the client, the forward PathEnd and its replies."""
    message: str
    flow: str = ""
    path: tuple[str, ...] = ()
    client: Endpoint | None = field(default=None, compare=False)
    end: PathEnd | None = field(default=None, compare=False)
    replies: tuple[PathEnd, ...] = field(default=(), compare=False)
    covers: int = 1                                   # flows of the same class this stands for
    members: tuple = field(default=(), compare=False)  # (client group, server group) of the class
    packet: Packet | None = field(default=None, compare=False)   # the flow's first packet, as sent
    invariant: str = field(default="", compare=False)           # the invariant it breaks

    @property
    def hops(self) -> tuple[Hop, ...]:
        """The counterexample hop by hop as records (``point``, ``packet`` there, ``note``): the
        forward path, then the reply's. Empty for an address-plan violation (no flow)."""
        out: tuple[Hop, ...] = self.end.hops if self.end is not None else ()
        for back in self.replies:
            out += back.hops
        return out

    @property
    def probability(self) -> float:
        """How likely the flow takes the violating path (1.0 for an address-plan violation)."""
        return self.end.probability if self.end is not None else 1.0

    def to_json(self) -> dict:
        return {"message": self.message, "flow": self.flow, "path": list(self.path)}


def flow_key(invariant: str, v: Violation) -> tuple:
    """What makes two violations the same flow: the invariant, the client and the packet it sent
    (its source port aside: a session-affinity check's second connection is the same flow).
    Address-plan violations have no flow: each is its own."""
    if v.client is None or v.packet is None:
        return (invariant, id(v))
    p = v.packet
    return (invariant, v.client, p.proto, p.src, p.dst, p.dport)


def violating_flows(members) -> int:
    """How many flows ``members`` ((invariant, violation) pairs) stand for: each flow once, however
    many of its outcomes violate, counted for its whole class of equivalent flows (as ``checked``
    counts them)."""
    weights: dict[tuple, int] = {}
    for inv, v in members:
        key = flow_key(inv, v)
        weights[key] = max(weights.get(key, 0), v.covers)
    return sum(weights.values())


@dataclass(frozen=True)
class CheckedFlow:
    """One flow an invariant checked, with every way it ended (kept for ``--all`` captures)."""
    label: str
    client: Endpoint
    ends: tuple[tuple[PathEnd, tuple[PathEnd, ...]], ...]     # (forward end, its replies)


@dataclass
class InvariantResult:
    name: str
    checked: int = 0
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    flows: list[CheckedFlow] | None = None       # filled when check_all(keep_flows=True)

    def keep(self, label: str, client: Endpoint, ends: list[tuple[PathEnd, tuple[PathEnd, ...]]]) -> None:
        if self.flows is not None:
            self.flows.append(CheckedFlow(label, client, tuple(ends)))

    @property
    def holds(self) -> bool:
        return not self.violations

    @property
    def violating(self) -> int:
        """How many of the ``checked`` flows violate (a flow with several violating outcomes once;
        for pod-ip-uniqueness, the address facts that do not hold)."""
        return violating_flows((self.name, v) for v in self.violations)

    def to_json(self) -> dict:
        return {"name": self.name, "holds": self.holds, "checked": self.checked, "violating_flows": self.violating,
                "violations": [v.to_json() for v in self.violations], "notes": self.notes}


def check_all(cluster: ClusterSpec, walker: ClusterWalker, *, keep_flows: bool = False,
              exhaustive: bool = False, jobs: int = 1, invariants: tuple[str, ...] = INVARIANTS,
              show_progress: bool = False, executor=None,
              only_services: tuple[str, ...] | None = None, deadline=None) -> list[InvariantResult]:
    """Run the four invariants; each result lists its violations with flows and paths.

    Flows are checked once per class of equivalent flows (see
    :mod:`pktverify.eval.address_classes` for why that is sound; with
    :mod:`pktverify.eval.node_symmetry`, flows from interchangeable nodes are one class too)
    unless ``exhaustive``, or unless the rule sets make the classes unsound; ``checked``
    counts every flow either way. ``keep_flows`` keeps each checked flow's
    paths (for ``--all`` captures) and implies ``exhaustive``. ``jobs`` > 1 spreads
    the flows over that many forked processes; ``executor`` (a
    :class:`pktverify.check.distributed.DaskExecutor`) over a Dask cluster's workers instead;
    the results are the same, in the same order. ``invariants``: the ones to check (results
    come in :data:`INVARIANTS` order); every violation records the invariant it breaks.
    ``only_services``: service keys (``ns/name``) whose reachability is checked (None: every one).
    ``deadline``: a :class:`pktverify.check.deadline.Deadline` that counts the tasks done.
    """
    results = [InvariantResult(name, flows=[] if keep_flows else None) for name in INVARIANTS]
    wanted = set(invariants)
    if "pod-ip-uniqueness" in wanted:
        pod_ip_uniqueness(cluster, results[0])
        results[0].notes += list(cluster.extras.get("notes", ()))      # what the input had that is not modelled
    notes, tasks = plan_tasks(cluster, walker, wanted, exhaustive=exhaustive or keep_flows, only_services=only_services)
    results[1].notes += notes
    progress = Progress(len(tasks), "tasks") if show_progress else None
    if deadline is not None:            # counts the tasks done, for the message if the time runs out
        progress = deadline.tasks(len(tasks), progress)
    if executor is not None and not keep_flows:
        _merge(executor.run(len(tasks), progress), tasks, results)
    elif jobs > 1 and not keep_flows and len(tasks) >= _MIN_PARALLEL_TASKS:
        _run_parallel(tasks, results, jobs, progress)
    else:
        for index, task in tasks:
            before = results[index].checked
            task(results[index])
            if progress is not None:
                progress.advance(1, results[index].checked - before)
    if progress is not None:
        progress.close()
    for res in results:
        res.violations = [replace(v, invariant=res.name) for v in res.violations]
    return [res for res in results if res.name in wanted]


def plan_tasks(cluster: ClusterSpec, walker: ClusterWalker, wanted: set[str], *,
               exhaustive: bool = False, only_services: tuple[str, ...] | None = None) -> tuple[list[str], list]:
    """The flow checks as independent tasks (invariant index, task), and notes for no-nat. The
    same cluster and walker options give the same tasks in the same order, in any process."""
    notes: list[str] = []
    classes = None
    if not exhaustive and wanted & {"no-nat", "service-reachability"}:
        classes = AddressClasses(cluster, walker.states)
        if not classes.sound:
            notes.append(f"every flow checked one by one: {classes.unsound_reason}")
            classes = None
    sym = NodeSymmetry(cluster, walker.states, classes, walker.proxy_ports, _FLOW_PORTS) if classes is not None else None
    sym = sym if sym is not None and sym.usable else None
    tasks = [(1, t) for t in no_nat_tasks(cluster, walker, classes, sym)] if "no-nat" in wanted else []
    if "service-reachability" in wanted:
        tasks += [(2, t) for t in service_tasks(cluster, walker, classes, sym, only=only_services)]
    tasks += [(3, t) for t in routing_tasks(cluster, walker, sym)] if "routing" in wanted else []
    return notes, tasks


def run_task_chunk(tasks: list, indexes) -> list[tuple[int, int, list, list[str]]]:
    """Run tasks ``indexes`` of ``tasks``: (index, flows checked, violations, notes) each."""
    out = []
    for index in indexes:
        res = InvariantResult("")
        tasks[index][1](res)
        out.append((index, res.checked, res.violations, res.notes))
    return out


def _merge(parts, tasks: list, results: list[InvariantResult]) -> None:
    """Results of task chunks (in any order) into ``results``, in task order."""
    for index, checked, violations, notes in sorted((item for part in parts for item in part), key=lambda x: x[0]):
        res = results[tasks[index][0]]
        res.checked += checked
        res.violations += violations
        res.notes += notes


_MIN_PARALLEL_TASKS = 64      # below this, forking costs more than it saves
_PARALLEL_TASKS: list = []    # what forked workers run (inherited, not pickled)


def _run_parallel(tasks: list, results: list[InvariantResult], jobs: int, progress=None) -> None:
    """Run ``tasks`` in ``jobs`` forked workers, handed out in small chunks as workers free up;
    merge the results in task order (the same output as one process)."""
    import multiprocessing

    global _PARALLEL_TASKS
    _PARALLEL_TASKS = tasks
    size = max(1, len(tasks) // (jobs * 16))
    chunks = [range(i, min(i + size, len(tasks))) for i in range(0, len(tasks), size)]
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            parts = []
            for part in pool.imap_unordered(_run_chunk, chunks):
                parts.append(part)
                if progress is not None:
                    progress.advance(len(part), sum(item[1] for item in part))
    finally:
        _PARALLEL_TASKS = []
    _merge(parts, tasks, results)


def _run_chunk(indexes: range) -> list[tuple[int, int, list[Violation], list[str]]]:
    return run_task_chunk(_PARALLEL_TASKS, indexes)


def _groups(cluster: ClusterSpec, atom, *, by_port: bool) -> list[list[PodSpec]]:
    """Pods that no test can tell apart: same node, same address atom (and same probe port).
    ``atom`` maps an address to its class (None: every pod on its own)."""
    if atom is None:
        return [[p] for p in cluster.pods]
    groups: dict[tuple, list[PodSpec]] = {}
    for p in cluster.pods:
        key = (p.node, atom(p.ip), _pod_port(p) if by_port else 0)
        groups.setdefault(key, []).append(p)
    return list(groups.values())


def _as_class(res: InvariantResult, start: int, weight: int, members: tuple) -> None:
    """Count a representative flow for its whole class; say so on its violations."""
    res.checked += weight - 1
    if weight == 1:
        return
    for i in range(start, len(res.violations)):
        v = res.violations[i]
        res.violations[i] = replace(v, message=f"{v.message} (this flow stands for {weight} equivalent flows)",
                                    covers=weight, members=members)


# ------------------------------------------------------------------ helpers
def _path(ends: list[PathEnd] | PathEnd) -> tuple[str, ...]:
    end = ends if isinstance(ends, PathEnd) else ends[0]
    return tuple(f"{h.point}: {h.packet.describe()} — {h.note}" for h in end.hops)


def _flow(client: Endpoint, pkt: Packet) -> str:
    return f"{client.label()}: {pkt.describe()}"


def _short_list(text: str, limit: int = 120) -> str:
    """``text`` cut to ``limit`` characters (a list of many endpoints in one message)."""
    return text if len(text) <= limit else text[:limit] + "…"


def _net(n: tuple[int, int]) -> str:
    return format_network(*n)


# ------------------------------------------------------------------ pod-ip-uniqueness
def pod_ip_uniqueness(cluster: ClusterSpec, res: InvariantResult) -> InvariantResult:
    seen: dict[int, str] = {}
    nodes = {n.name: n for n in cluster.nodes}
    for pod in cluster.pods:
        res.checked += 1
        if pod.ip in seen:
            res.violations.append(Violation(f"pod {pod.key} has IP {format_ip(pod.ip)}, already used by {seen[pod.ip]}"))
        seen.setdefault(pod.ip, pod.key)
        node = nodes[pod.node]
        if not in_network(pod.ip, *node.pod_cidr):
            res.violations.append(Violation(f"pod {pod.key} IP {format_ip(pod.ip)} is outside node {node.name}'s"
                                            f" pod CIDR {_net(node.pod_cidr)}"))
    node_ips = {n.ip: n.name for n in cluster.nodes}
    for i, a in enumerate(cluster.nodes):
        res.checked += 1
        if not network_within(a.pod_cidr, cluster.cidr):
            res.violations.append(Violation(f"node {a.name} pod CIDR {_net(a.pod_cidr)} is not inside the cluster"
                                            f" CIDR {_net(cluster.cidr)}"))
        if networks_overlap(a.pod_cidr, cluster.service_cidr):
            res.violations.append(Violation(f"node {a.name} pod CIDR {_net(a.pod_cidr)} overlaps the service CIDR"
                                            f" {_net(cluster.service_cidr)}"))
        for ip, name in node_ips.items():
            if in_network(ip, *a.pod_cidr):
                res.violations.append(Violation(f"node {a.name} pod CIDR {_net(a.pod_cidr)} contains node {name}'s"
                                                f" address {format_ip(ip)}"))
        for b in cluster.nodes[i + 1:]:
            if networks_overlap(a.pod_cidr, b.pod_cidr):
                res.violations.append(Violation(f"nodes {a.name} and {b.name} have overlapping pod CIDRs"
                                                f" {_net(a.pod_cidr)} and {_net(b.pod_cidr)}"))
            for x, y in ((a, b), (b, a)):
                if x.docker and (y.docker or networks_overlap((0xAC110000, 0xFFFF0000), y.pod_cidr)):
                    res.violations.append(Violation(
                        f"node {x.name}'s docker0 (172.17.0.0/16) collides with node {y.name}'s "
                        f"{'docker0' if y.docker else 'pod CIDR'}: docker's default bridge is the same subnet on"
                        " every host"))
                    break
    _address_plan(cluster, res)
    return res


def _pod_cidr_lookup(cluster: ClusterSpec):
    """``ip -> the nodes whose pod CIDR holds it``, in node order: by bisection when the pod
    CIDRs are disjoint (every sane cluster), else by asking each node."""
    spans = sorted((n.pod_cidr[0], n.pod_cidr[0] | (~n.pod_cidr[1] & 0xFFFFFFFF), i) for i, n in enumerate(cluster.nodes))
    if any(spans[k][1] >= spans[k + 1][0] for k in range(len(spans) - 1)):
        return lambda ip: [n for n in cluster.nodes if in_network(ip, *n.pod_cidr)]
    firsts = [first for first, _last, _i in spans]

    def lookup(ip: int) -> list:
        k = bisect_right(firsts, ip) - 1
        return [cluster.nodes[spans[k][2]]] if k >= 0 and ip <= spans[k][1] else []
    return lookup


def _address_plan(cluster: ClusterSpec, res: InvariantResult) -> None:
    """Service addresses against the plan: each ClusterIP inside the service CIDR, clear of every
    pod CIDR, node address and other ClusterIP; the service and cluster CIDRs disjoint; each
    NodePort inside the node-port range and used once per protocol."""
    res.checked += 1
    if networks_overlap(cluster.cidr, cluster.service_cidr):
        res.violations.append(Violation(f"the service CIDR {_net(cluster.service_cidr)} overlaps the cluster CIDR "
                                        f"{_net(cluster.cidr)}: ClusterIPs and pod IPs can collide"))
    node_ips = {n.ip: n.name for n in cluster.nodes}
    owners: dict[int, str] = {}
    cidr_of = _pod_cidr_lookup(cluster)
    for svc in cluster.services:
        res.checked += 1
        cip, what = svc.cluster_ip, f"service {svc.key} ClusterIP {format_ip(svc.cluster_ip)}"
        if not in_network(cip, *cluster.service_cidr):
            res.violations.append(Violation(f"{what} is outside the service CIDR {_net(cluster.service_cidr)}"))
        for node in cidr_of(cip):
                res.violations.append(Violation(f"{what} is inside node {node.name}'s pod CIDR {_net(node.pod_cidr)}"
                                                ": a pod can get that address"))
        if cip in node_ips:
            res.violations.append(Violation(f"{what} is node {node_ips[cip]}'s address"))
        if cip in owners:
            res.violations.append(Violation(f"{what} is also the ClusterIP of service {owners[cip]}"))
        owners.setdefault(cip, svc.key)
    low, high = cluster.node_port_range
    node_ports: dict[tuple[str, int], str] = {}
    for svc in cluster.services:
        for sp in svc.ports:
            if not sp.node_port:
                continue
            res.checked += 1
            what = f"service {svc.key}:{sp.name or sp.port} NodePort {sp.node_port}/{sp.protocol}"
            if not low <= sp.node_port <= high:
                res.violations.append(Violation(f"{what} is outside the node-port range {low}-{high}"))
            key = (sp.protocol, sp.node_port)
            if key in node_ports:
                res.violations.append(Violation(f"{what} is also the NodePort of {node_ports[key]}: on every node, "
                                                "one of them takes the other's traffic"))
            node_ports.setdefault(key, f"service {svc.key}:{sp.name or sp.port}")


# ------------------------------------------------------------------ no-nat
def _pod_port(pod) -> int:
    return pod.ports[0] if pod.ports else _PROBE_PORT


def _walk(walker: ClusterWalker, res: InvariantResult, client: Endpoint,
          pkt: Packet, *, replies: bool = True) -> list[tuple[PathEnd, tuple[PathEnd, ...]]]:
    """Every end of the flow, each with its replies (arrived ends only), kept for captures."""
    res.checked += 1
    out = [(end, tuple(walker.reply(end, client)) if replies and end.kind == "arrived" else ())
           for end in walker.walk(client, pkt)]
    res.keep(_flow(client, pkt), client, out)
    return out


def _violation(message: str, client: Endpoint, pkt: Packet, end: PathEnd,
               back: PathEnd | None = None) -> Violation:
    path = _path(end) + (_path(back) if back is not None else ())
    return Violation(message, _flow(client, pkt), path, client, end, (back,) if back is not None else (), packet=pkt)


def _no_nat_flow(walker: ClusterWalker, res: InvariantResult, client: Endpoint, pkt: Packet,
                 target: Endpoint) -> None:
    for end, backs in _walk(walker, res, client, pkt):
        if end.kind != "arrived" or end.at != target:
            where = end.at.label() if end.at else end.kind
            res.violations.append(_violation(f"{_flow(client, pkt)} does not reach {target.label()}: {end.reason}"
                                             f" (ends: {where})", client, pkt, end))
            continue
        if (end.packet.src, end.packet.dst) != (pkt.src, pkt.dst):
            res.violations.append(_violation(
                f"NAT between {client.label()} and {target.label()}: sent {pkt.describe()}, arrived "
                f"{end.packet.describe()}", client, pkt, end, backs[0] if backs else None))
            continue
        for back in backs:
            if not back.answers(client, pkt):
                res.violations.append(_violation(
                    f"reply from {target.label()} to {client.label()} {back.kind}: "
                    f"{back.packet.describe()} ({back.reason})", client, pkt, end, back))


def no_nat_tasks(cluster: ClusterSpec, walker: ClusterWalker, classes: AddressClasses | None,
                 sym: NodeSymmetry | None = None):
    """The no-nat checks as independent tasks: one per source class, one per node (or, when
    every node is interchangeable, one per class of node pairs: the same node or two nodes)."""
    atom = classes.atom if classes is not None else None
    sources, targets = _groups(cluster, atom, by_port=False), _groups(cluster, atom, by_port=True)
    if sym is not None and sym.all_free and len({g[0].node for g in sources}) == len(sources):
        return _symmetric_no_nat_tasks(cluster, walker, sources, targets)

    def from_pods(gs: list[PodSpec]):
        def run(res: InvariantResult) -> None:
            for gd in targets:
                shared = len({id(p) for p in gs} & {id(p) for p in gd})
                weight = len(gs) * len(gd) - shared
                if weight:
                    _pod_pair_class(walker, res, gs, gd, weight)
        return run

    def with_node(node):
        def run(res: InvariantResult) -> None:
            for group in targets:
                _node_pod_class(walker, res, node, group, len(group), to_pod=True)
            for group in sources:
                _node_pod_class(walker, res, node, group, len(group), to_pod=False)
        return run

    return [from_pods(gs) for gs in sources] + [with_node(node) for node in cluster.nodes]


def _pod_pair_class(walker: ClusterWalker, res: InvariantResult, gs, gd, weight: int) -> None:
    """One pod→pod flow from class ``gs`` to class ``gd`` (two different pods), counted for
    ``weight`` flows."""
    src = next(s for s in gs if any(d is not s for d in gd))
    dst = next(d for d in gd if d is not src)
    start = len(res.violations)
    pkt = Packet(6, src.ip, dst.ip, _CLIENT_SPORT, _pod_port(dst))
    _no_nat_flow(walker, res, walker.pod_endpoint(src), pkt, walker.pod_endpoint(dst))
    _as_class(res, start, weight, (gs, gd))


def _node_pod_class(walker: ClusterWalker, res: InvariantResult, node, group, weight: int, *, to_pod: bool) -> None:
    """One flow between ``node`` and the first pod of ``group`` — node → pod (``to_pod``) or
    pod → node (the kubelet port) — counted for ``weight`` flows."""
    me, pod = walker.node_endpoint(node), group[0]
    start = len(res.violations)
    if to_pod:
        pkt = Packet(6, walker.source_address(me, pod.ip), pod.ip, _CLIENT_SPORT, _pod_port(pod))
        _no_nat_flow(walker, res, me, pkt, walker.pod_endpoint(pod))
    else:
        pkt = Packet(6, pod.ip, node.ip, _CLIENT_SPORT, _KUBELET_PORT)
        _no_nat_flow(walker, res, walker.pod_endpoint(pod), pkt, me)
    _as_class(res, start, weight, ((node,), group) if to_pod else (group, (node,)))


def _symmetric_no_nat_tasks(cluster: ClusterSpec, walker: ClusterWalker, sources, targets) -> list:
    """no-nat when every node is interchangeable and each holds one source class: a flow between
    two pods depends only on whether they share a node (and the target's port), a flow between a
    node and a pod only on whether the pod is on that node. One representative flow per such
    class, counted for all of its flows."""
    nodes = {n.name: n for n in cluster.nodes}
    src_of = {g[0].node: g for g in sources}
    by_port: dict[int, list] = {}
    for g in targets:
        by_port.setdefault(_pod_port(g[0]), []).append(g)
    pairs = []       # (source group, target group, weight) per class of pod pairs
    for tgs in by_port.values():
        same = [(src_of[g[0].node], g) for g in tgs if g[0].node in src_of]
        weight = sum(len(s) * len(g) - len({id(p) for p in s} & {id(p) for p in g}) for s, g in same)
        rep = next(((s, g) for s, g in same if any(d is not x for x in s for d in g)), None)
        if rep is not None and weight:
            pairs.append((*rep, weight))
        cross = [(s, g) for g in tgs for node, s in src_of.items() if node != g[0].node]
        if cross:
            pairs.append((*cross[0], sum(len(s) * len(g) for s, g in cross)))

    def pod_pair(gs, gd, weight):
        def run(res: InvariantResult) -> None:
            _pod_pair_class(walker, res, gs, gd, weight)
        return run

    def node_pod(node, group, weight, to_pod: bool):
        def run(res: InvariantResult) -> None:
            _node_pod_class(walker, res, node, group, weight, to_pod=to_pod)
        return run

    n = len(cluster.nodes)
    tasks = [pod_pair(*pair) for pair in pairs]
    for groups, to_pod in ((targets, True), (sources, False)):
        by_key: dict = {}
        for g in groups:
            by_key.setdefault(_pod_port(g[0]) if to_pod else 0, []).append(g)
        for gs in by_key.values():
            total = sum(len(g) for g in gs)
            home = gs[0]
            tasks.append(node_pod(nodes[home[0].node], home, total, to_pod))              # the pod's own node
            other = next(name for name in nodes if name != home[0].node)
            tasks.append(node_pod(nodes[other], home, total * (n - 1), to_pod))           # another node
    return tasks


# ------------------------------------------------------------------ service-reachability
class _Scoped(list):
    """The endpoints a traffic policy leaves a client: those on ``node``."""

    def __init__(self, items, node: str) -> None:
        super().__init__(items)
        self.node = node


@dataclass(frozen=True)
class _Door:
    """One way into a service port: ``label`` names it in messages (``NodePort 192.168.1.10:30080``);
    ``dst``/``dport`` are what clients send to; ``clients`` are (client, the pods or nodes it
    stands for, the endpoints it must reach — all of them, uniformly, and no other —, whether the
    endpoint must see the client's own address)."""
    label: str
    dst: int
    dport: int
    clients: tuple


def service_tasks(cluster: ClusterSpec, walker: ClusterWalker, classes: AddressClasses | None,
                  sym: NodeSymmetry | None = None, *, only: tuple[str, ...] | None = None):
    """The service-reachability checks as independent tasks: one per service (of ``only``, when given)."""
    nodes = [(walker.node_endpoint(n), (n,)) for n in cluster.nodes]
    bases = base_groups(cluster, classes) if classes is not None else None

    def for_service(svc):
        def run(res: InvariantResult) -> None:
            walker.forget_proxy_legs()          # another service's endpoints: its proxy legs are of no use
            atom = classes.for_destination(svc.cluster_ip) if classes is not None else None
            groups = atom.refine(bases) if atom is not None else _groups(cluster, None, by_port=False)
            pods = [(walker.pod_endpoint(g[0]), g) for g in groups]
            # NodePort doors: the destination is a node address, so the base classes apply
            node_pods = pods if atom is None or not svc.has_node_ports else \
                [(walker.pod_endpoint(g[0]), g) for g in bases]
            cip_pods, cip_nodes = pods, nodes
            if sym is not None:
                # The service's endpoints set their nodes apart: KUBE-SEP rules name them in iptables
                # mode, and in userspace mode the proxies' own table does.
                endpoints = [(ip, ip) for _label, ip in cluster.endpoints_of(svc)]
                cip_pods, cip_nodes = _merged_clients(walker, groups, nodes, sym.free([*atom.extra, *endpoints]))
            for sp in svc.ports:
                eps = cluster.port_endpoints(svc, sp)
                name = f"{svc.key}:{sp.name or sp.port}"
                if not eps:
                    res.notes.append(f"service {name} has no ready endpoints")
                for door in _doors(cluster, walker, svc, sp, eps, cip_pods, cip_nodes, node_pods, nodes):
                    for client, group, wanted, keep_source in door.clients:
                        src = walker.source_address(client, door.dst)
                        pkt = Packet(PROTO_NUMBERS[sp.protocol], src, door.dst, _CLIENT_SPORT, door.dport)
                        start = len(res.violations)
                        _service_flow(cluster, walker, res, client, pkt, f"{name} via {door.label}", wanted,
                                      keep_source=keep_source, affinity=bool(svc.affinity_timeout))
                        _as_class(res, start, len(group), (group, None))
        return run

    return [for_service(svc) for svc in cluster.services if only is None or svc.key in only]


def _merged_clients(walker: ClusterWalker, groups: list, nodes: list, free: set[str]) -> tuple[list, list]:
    """ClusterIP clients with the interchangeable nodes' ones merged: the pods of every free node
    that holds one class are one class, and the free nodes one client class."""
    per_node: dict[str, int] = {}
    for g in groups:
        per_node[g[0].node] = per_node.get(g[0].node, 0) + 1
    merged: list = []
    pods = []
    for g in groups:
        if g[0].node in free and per_node[g[0].node] == 1:
            merged += g
        else:
            pods.append((walker.pod_endpoint(g[0]), g))
    if merged:
        pods.append((walker.pod_endpoint(merged[0]), merged))
    kept = [(client, group) for client, group in nodes if client.node not in free]
    loose = [group[0] for client, group in nodes if client.node in free]
    if loose:
        kept.append((walker.node_endpoint(loose[0]), tuple(loose)))
    return pods, kept


def _doors(cluster: ClusterSpec, walker: ClusterWalker, svc, sp, eps, pods, nodes, node_pods,
           every_node) -> list[_Door]:
    """Every front door of one service port, with what each client must get through it.

    * the ClusterIP, from pods and nodes (``internalTrafficPolicy: Local``: only the endpoints on
      the client's own node, none at all dropping);
    * each NodePort on every node's address, from pods, nodes and an off-cluster client;
    * each external IP and LoadBalancer ingress IP, from an off-cluster client arriving at any node
      (outside ``loadBalancerSourceRanges``: blocked in iptables mode; userspace kube-proxy leaves the
      ranges to the load balancer, so such a client is not sent).

    ``externalTrafficPolicy: Local`` keeps off-cluster traffic (and another node's) on the node
    it arrives at, with the client's own address, and drops it where that node has no endpoint;
    pods and the node itself still reach every endpoint, as kube-proxy routes them."""
    def local(node: str) -> list:
        return _Scoped((e for e in eps if cluster.endpoint_node(e[0], e[1]) == node), node)

    doors = []
    internal = (lambda node: local(node)) if svc.internal_policy == "Local" else (lambda node: eps)
    doors.append(_Door(f"ClusterIP {format_ip(svc.cluster_ip)}:{sp.port}", svc.cluster_ip, sp.port, tuple(
        (client, group, internal(client.node), False) for client, group in pods + nodes)))
    nodes = every_node          # the other doors: every node on its own
    ext_local = svc.external_policy == "Local"

    def outside(node) -> tuple:
        """What an off-cluster client (or another node) gets arriving at ``node``."""
        return (local(node.name), True) if ext_local else (eps, False)

    allowed = not svc.lb_source_ranges or any(in_network(walker.external_ip, *net) for net in svc.lb_source_ranges)
    for node in cluster.nodes:
        outsider = walker.external_endpoint(node)
        if svc.has_node_ports and sp.node_port:
            clients = [(client, group, eps, False) for client, group in node_pods]
            clients += [(client, group, *(outside(node) if client.node != node.name else (eps, False)))
                        for client, group in nodes]
            clients.append((outsider, (outsider,), *outside(node)))
            doors.append(_Door(f"NodePort {format_ip(node.ip)}:{sp.node_port}", node.ip, sp.node_port, tuple(clients)))
        for ip in svc.external_ips:
            doors.append(_Door(f"ExternalIP {format_ip(ip)}:{sp.port} at {node.name}", ip, sp.port,
                               ((outsider, (outsider,), *outside(node)),)))
        for ip in svc.lb_ips:
            if not allowed and cluster.proxy_mode == "userspace":
                continue        # userspace kube-proxy leaves source ranges to the load balancer itself
            wanted, keep = outside(node) if allowed else ([], False)
            doors.append(_Door(f"LoadBalancer {format_ip(ip)}:{sp.port} at {node.name}"
                               + ("" if allowed else " (client outside loadBalancerSourceRanges)"), ip, sp.port,
                               ((outsider, (outsider,), wanted, keep),)))
    return doors


def _service_flow(cluster, walker, res, client, pkt, name, eps: list[tuple[str, int, int]], *,
                  keep_source: bool = False, affinity: bool = False) -> None:
    """One client's flow to one service port whose ready endpoints are ``eps`` (label, ip, port).

    An endpoint is reached when the flow arrives at its address and port — and, for a pod, at
    that pod: two pods with one address (docker's default bridge on every node) are two
    endpoints, and a client whose packets always land on one of them never reaches the other.
    ``keep_source``: the endpoint must see the client's own address (``externalTrafficPolicy:
    Local``); ``affinity``: a second connection must reach the endpoint the first one did."""
    walked = _walk(walker, res, client, pkt)
    eps_given = eps
    # Endpoints the network can tell apart: a pod by its own namespace; host-network pods and bare
    # addresses by address and port (two of them on one address are one socket address).
    distinct: dict = {}
    for label, ip, port in eps:
        distinct.setdefault(label if label in cluster.pods_by_key else (ip, port), (label, ip, port))
    eps = list(distinct.values())
    labels = [label for label, _ip, _port in eps]
    reached: dict[str, float] = {}
    for end, backs in walked:
        if end.kind != "arrived":
            if eps or end.kind == "left":
                res.violations.append(_violation(f"{name} from {client.label()}: {end.kind} ({end.reason})"
                                                 f" with probability {end.probability:.6g}", client, pkt, end))
            continue
        hit = _endpoint_hit(cluster, end, eps)
        if hit is None:
            wanted = ", ".join(sorted({f"{format_ip(ip)}:{port}" for _l, ip, port in eps})) or "none"
            scope = (f"not one this client may reach: the traffic policy (Local) keeps it on {eps_given.node}'s "
                     f"endpoints ({_short_list(wanted)})") if isinstance(eps_given, _Scoped) else \
                f"not a ready endpoint (ready: {_short_list(wanted)})"
            res.violations.append(_violation(f"{name} from {client.label()} reached {end.at.label()} at "
                                             f"{format_ip(end.packet.dst)}:{end.packet.dport}, which is {scope}",
                                             client, pkt, end))
            continue
        if keep_source and end.packet.src != pkt.src:
            res.violations.append(_violation(
                f"{name} from {client.label()}: externalTrafficPolicy: Local, yet endpoint {hit} sees source "
                f"{format_ip(end.packet.src)}, not the client's {format_ip(pkt.src)}", client, pkt, end))
        reached[hit] = reached.get(hit, 0.0) + end.probability
        for back in backs:
            if not back.answers(client, pkt):
                res.violations.append(_violation(
                    f"{name} from {client.label()}: the reply from {end.at.label()} arrives as "
                    f"{back.packet.describe()} ({back.kind}: {back.reason}); the client expects it from "
                    f"{format_ip(pkt.dst)}:{pkt.dport}", client, pkt, end, back))
    where = {label: (ip, port) for label, ip, port in eps}
    for label in labels:
        if label in reached:
            continue
        ip, port = where[label]
        message = f"{name} from {client.label()} never reaches endpoint {label} ({format_ip(ip)}:{port})"
        twin = [other for other in labels if other != label and where[other] == (ip, port)]
        if twin:
            message += f": {', '.join(twin)} has the same address, and this client's packets go there"
        towards = _towards(walked, ip, port)
        res.violations.append(_violation(message, client, pkt, towards) if towards else
                              Violation(message, _flow(client, pkt)))
    if cluster.proxy_mode == "iptables" and reached and len(reached) == len(labels):
        share = 1.0 / len(labels)
        for end, backs in walked:
            hit = _endpoint_hit(cluster, end, eps) if end.kind == "arrived" else None
            p = reached.get(hit) if hit is not None else None
            if p is not None and abs(p - share) > UNIFORMITY_TOLERANCE:
                res.violations.append(_violation(
                    f"{name} from {client.label()}: endpoint {format_ip(end.packet.dst)} gets p={p:.9f}, not the"
                    f" uniform {share:.9f}", client, pkt, end, backs[0] if backs else None))
                reached.pop(hit)
    if affinity:
        _affinity(cluster, walker, res, client, pkt, name, eps, walked)


def _towards(walked, ip: int, port: int) -> PathEnd | None:
    """The path that shows why an endpoint at ``ip:port`` is never reached: the branch that was
    sent towards it and ended on the way (the packet, rewritten to the endpoint, was dropped
    or rejected), else the branch that arrived at that address (a twin took it); when no branch
    went there, the first that arrived elsewhere (nothing sends the flow to it), or, when none
    arrived anywhere, the first path (what stopped the flow stopped it before any endpoint)."""
    ends = [end for end, _backs in walked]
    for failed in (True, False):
        for end in ends:
            if (end.kind != "arrived") == failed and (end.packet.dst, end.packet.dport) == (ip, port):
                return end
    return next((end for end in ends if end.kind == "arrived"), ends[0] if ends else None)


def _affinity(cluster, walker, res, client, pkt, name, eps, walked) -> None:
    """``sessionAffinity: ClientIP``: after a first connection reached endpoint E, the client's
    next connection (another source port) reaches E and nothing else."""
    again = pkt._replace(sport=pkt.sport + 1)
    done: set[str] = set()
    for end, _backs in walked:
        hit = _endpoint_hit(cluster, end, eps) if end.kind == "arrived" else None
        if hit is None or hit in done:
            continue
        done.add(hit)          # (part of the flow's check: not counted as a flow of its own)
        for second in walker.walk(client, again, recent=remembered(end, walker)):
            if second.kind == "arrived" and _endpoint_hit(cluster, second, eps) == hit:
                continue
            got = (f"reaches {second.at.label()} at {format_ip(second.packet.dst)}:{second.packet.dport}"
                   if second.kind == "arrived" else f"ends: {second.kind} ({second.reason})")
            res.violations.append(_violation(
                f"{name} from {client.label()}: sessionAffinity: ClientIP, yet after a first connection to endpoint "
                f"{hit} the next one {got} with probability {second.probability:.6g}", client, again, second))


def _endpoint_hit(cluster: ClusterSpec, end: PathEnd, eps: list[tuple[str, int, int]]) -> str | None:
    """The endpoint (label) an arrived flow reached: same address and port, and the same pod when
    the endpoint is a (not host-network) pod."""
    got = (end.packet.dst, end.packet.dport)
    for label, ip, port in eps:
        if (ip, port) != got:
            continue
        if label in cluster.pods_by_key and end.at is not None and end.at.kind == "pod":
            if end.at.name == label:
                return label
            continue
        return label
    return None


# ------------------------------------------------------------------ routing
def routing_tasks(cluster: ClusterSpec, walker: ClusterWalker, sym: NodeSymmetry | None = None):
    """The routing checks as independent tasks: one per node (to every node's pod CIDR), or, when
    every node is interchangeable, two flows: a node to its own pod CIDR and to another's."""
    def probe(res: InvariantResult, node, other) -> None:
        me = walker.node_endpoint(node)
        dst = bridge_address(other)
        pkt = Packet(6, walker.source_address(me, dst), dst, _CLIENT_SPORT, _PROBE_PORT)
        target = walker.node_endpoint(other)
        for end, _backs in _walk(walker, res, me, pkt, replies=False):
            if end.kind != "arrived" or end.at != target:
                res.violations.append(_violation(
                    f"node {node.name} cannot reach node {other.name}'s pod CIDR {_net(other.pod_cidr)}"
                    f" ({end.kind}: {end.reason})", me, pkt, end))

    def from_node(node):
        def run(res: InvariantResult) -> None:
            for other in cluster.nodes:
                probe(res, node, other)
        return run

    n = len(cluster.nodes)
    if sym is not None and sym.all_free:
        a, b = cluster.nodes[0], cluster.nodes[1]

        def pair(node, other, weight):
            def run(res: InvariantResult) -> None:
                start = len(res.violations)
                probe(res, node, other)
                _as_class(res, start, weight, ((node,), (other,)))
            return run
        return [pair(a, a, n), pair(a, b, n * (n - 1))]
    return [from_node(node) for node in cluster.nodes]
