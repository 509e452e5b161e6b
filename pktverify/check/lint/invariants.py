"""PV401-PV404: a cluster verified with proposed rules, as one finding per responsible rule.

``lint --cluster`` puts the proposed file in place of a node's rules and verifies the cluster.
A fault breaks many flows; a reviewer wants the rule once, with how many flows it breaks and a
few of them, not one finding per flow. The violations are grouped by what ended or rewrote
their path (:func:`.causes.group_violations`: the dropping or rejecting rule, the chain policy
that decided — at the chain's declaration line —, the rewriting rule of a NAT violation, the
statistic branch of an uneven share, a route) and each group gives one finding per invariant
it breaks, at the cause's line, with the number of flows and example flows as related
locations (each at its client's line in the cluster file). A cause in no file pktverify can
point at (generated dumps, a fact of the address plan) is reported at the cluster file's line
of what it names: the endpoint never reached, the node where the path ended, else the node the
proposed file is for.
"""

from __future__ import annotations

from pathlib import Path

from ...model.cluster import ClusterSpec
from ..causes import Group, group_violations
from ..invariants import INVARIANTS
from .finding import Check, Finding

__all__ = ["INVARIANT_IDS", "invariant_findings"]

INVARIANT_IDS = {"pod-ip-uniqueness": "PV401", "no-nat": "PV402", "service-reachability": "PV403", "routing": "PV404"}
_DOCS = {
    "pod-ip-uniqueness": ("pod IPs unique and inside their node's pod CIDR, pod CIDRs disjoint, the service "
                          "address plan sound", "Two pods with one address, or a ClusterIP inside a pod CIDR, "
                          "make traffic go to the wrong place for some clients and not others."),
    "no-nat": ("pod-to-pod, node-to-pod and pod-to-node traffic arrives with its own addresses, and so does "
               "the reply", "The Kubernetes network model: the address a pod sees for itself is the address "
               "others see; NAT breaks network policies, logs and protocols that carry addresses."),
    "service-reachability": ("every service port reaches every ready endpoint from every client, evenly, with "
                             "the reply from the ClusterIP", "A service that drops, favours or misroutes "
                             "some clients' connections is an outage for them."),
    "routing": ("every node reaches every node's pod CIDR, without loops or blackholes",
                "Without a route a node's pods are unreachable from the others."),
}


def _documented(name: str) -> Check:
    return Check(INVARIANT_IDS[name], name, "error", _DOCS[name][0],
                 _DOCS[name][1] + " `lint --cluster` reports one finding per responsible rule (the drop, "
                 "reject, chain policy, rewrite or statistic branch that ended the violating paths), with the "
                 "number of flows it breaks and example flows as related locations.",
                 "pktverify lint proposed.rules --cluster cluster.yaml --node node1   # a rule that breaks it",
                 "pktverify verify cluster.yaml   # the same invariant on the whole cluster", "invariants")


PV401, PV402, PV403, PV404 = (_documented(name) for name in INVARIANT_IDS)
assert set(INVARIANT_IDS) == set(INVARIANTS)

EXAMPLES = 3            # example flows per finding


def invariant_findings(cluster: ClusterSpec, node_name: str, path: str, report) -> list[Finding]:
    """One finding per (cause, invariant) of ``report``'s violations (``report``: the cluster
    verified with ``path`` as ``node_name``'s rules), at the cause's line."""
    proposed = Path(path).resolve()
    states = getattr(report.walker, "states", None) or {}
    json_dumps = {st.nft.source for st in states.values() if st.nft is not None and st.nft.form == "json"}
    out = []
    for group in _joined(group_violations(report.results)):
        source, line, prefix = _place(group, cluster, node_name, path, proposed, json_dumps)
        for invariant in group.invariants:
            members = [(inv, v) for inv, v in group.members if inv == invariant]
            flows = Group(group.cause, group.location, members).flows
            related = tuple((cluster.source, _client_line(cluster, v, node_name), f"example: {v.message}")
                            for v in _examples(members))
            message = f"{prefix}{group.cause}: {flows} flow(s) break {invariant}"
            out.append(Finding(INVARIANT_IDS[invariant], message, source, line, related=related))
    return out


def _joined(groups: list[Group]) -> list[Group]:
    """``groups`` with each group that has no location joined to the located group of the same
    cause: the flows of an uneven statistic split that took its last (unconditional) branch met
    no statistic rule, yet the split at the first branch's line is their cause too."""
    located = {g.cause: g for g in groups if g.location}
    out = []
    for g in groups:
        home = located.get(g.cause) if not g.location else None
        if home is not None:
            home.members += g.members
        else:
            out.append(g)
    return out


def _examples(members: list) -> list:
    """Up to :data:`EXAMPLES` violations of ``members``, one per flow (a flow that violates in two
    ways — dropped, and so an endpoint never reached — is shown once)."""
    seen, out = set(), []
    for _inv, v in members:
        key = v.flow or v.message
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out[:EXAMPLES]


def _place(group: Group, cluster: ClusterSpec, node_name: str, path: str, proposed: Path,
           json_dumps: set[str] = frozenset()) -> tuple[str, int, str]:
    """(file, line, message prefix) of ``group``'s cause: the proposed file as the user named it,
    another dump file, or the cluster file's line of what the cause names. A rule or chain of an
    nft JSON dump (whose steps carry its index in the ``nftables`` list, not a line) is at line 1
    with ``nftables[i]: `` before the message, as the nft structure findings are."""
    where = group.location or _policy_location(group, cluster, node_name, str(proposed))
    if where is not None:
        file, _sep, line = where.rpartition(":")
        if file and line.isdigit():
            json = file in json_dumps and _from_nft(group, where)
            at, prefix = (1, f"nftables[{line}]: ") if json else (int(line), "")
            if Path(file).resolve() == proposed:
                return path, at, prefix
            # An nft JSON dump inline in the cluster file has no line of its own: the node's line below.
            if not file.startswith("<") and Path(file).is_file() and not (json and file == cluster.source):
                return file, at, prefix
    return cluster.source, _cause_line(group, cluster, node_name), ""


def _from_nft(group: Group, where: str) -> bool:
    """Whether the step at ``where`` (``file:line``) is an nft table's (named ``family name``:
    iptables' table names hold no space)."""
    for _inv, v in group.members:
        for hop in v.hops:
            if hop.outcome is None:
                continue
            for s in hop.outcome.steps:
                if s.table is not None and " " in s.table and s.line and f"{s.source}:{s.line}" == where:
                    return True
    return False


def _policy_location(group: Group, cluster: ClusterSpec, node_name: str, proposed: str) -> str | None:
    """``file:line`` of the chain declaration whose policy is ``group``'s cause (a policy step
    carries its declaration line; the file is the node's iptables dump, the proposed one on
    ``node_name``)."""
    for _inv, v in group.members:
        for hop in v.hops:
            if hop.outcome is None:
                continue
            node = hop.point.split(":")[0]
            for s in hop.outcome.steps:
                if s.table is None or s.rule_index is not None or not s.line \
                        or f"{node}: {s.table}/{s.chain} {s.action}" != group.cause:
                    continue
                if node == node_name:
                    return f"{proposed}:{s.line}"
                dump = next((n.iptables for n in cluster.nodes if n.name == node), None)
                return f"{dump}:{s.line}" if dump else None
    return None


def _cause_line(group: Group, cluster: ClusterSpec, node_name: str) -> int:
    """The cluster file's line for a cause in no dump file: the pod an "endpoint ... is never
    reached" names, the node a node-level cause names, the node where the first path ended,
    else the node the proposed file is for."""
    cause = group.cause
    if cause.startswith("endpoint ") and cause.endswith(" is never reached"):
        pod = cluster.pods_by_key.get(cause[len("endpoint "):-len(" is never reached")])
        if pod is not None and pod.line:
            return pod.line
    lines = {n.name: n.line for n in cluster.nodes}
    named = cause.split(":", 1)[0]
    if named in lines and lines[named]:
        return lines[named]
    end = next((v.end for _i, v in group.members if v.end is not None and v.end.hops), None)
    if end is not None and lines.get(end.hops[-1].point.split(":")[0]):
        return lines[end.hops[-1].point.split(":")[0]]
    return lines.get(node_name) or 1


def _client_line(cluster: ClusterSpec, v, node_name: str) -> int:
    """The cluster file's line of the example flow's client (a pod or a node); for a violation
    without a flow (the address plan), the line of the node the proposed file is for."""
    client = v.client
    if client is not None:
        if client.kind == "pod":
            pod = cluster.pods_by_key.get(client.name)
            if pod is not None and pod.line:
                return pod.line
        for n in cluster.nodes:
            if n.name == client.node and n.line:
                return n.line
    return next((n.line for n in cluster.nodes if n.name == node_name and n.line), 1)
