"""What ``verify`` promises for one flow, what the kernel lab saw, and whether they agree.

An *outcome* is what one connection observably did, as a tuple ``(receiver, source seen,
answer)``: the namespace that received it (``pod NS/NAME``, ``node NAME``, or ``-`` when
nobody did), the source address the receiver saw (so masquerading is part of it), and what
the client got back: ``reply`` (the connection was answered through the return path),
``*`` (verify's check did not walk the reply: answered or not, not judged), ``unresolved``
(verify: the packet died because nobody answers ARP for its next hop; the kernel is silent
until its neighbour probes give up, then says host unreachable: either is taken),
``refused`` (an error: RST, ICMP unreachable, a local EPERM/ECONNREFUSED...) or ``silence``.

verify's paths give a distribution over outcomes (each forward end's probability times its
replies'); the lab gives counts over outcomes from ``n`` connections of the same flow (each
from a source port of its own).  :func:`judge` decides:

1. an outcome the kernel produced that verify gives probability 0: a disagreement, certain
   (no statistics: the kernel did it);
2. an outcome verify promises with probability p that never occurred in n connections: a
   disagreement; by chance this happens with probability (1-p)^n, and :func:`connections_for`
   picks n so that summed over the promised outcomes it is at most ``alpha`` (1e-4 by default);
3. Pearson's chi-square goodness of fit of the counts to verify's probabilities, when every
   expected count is at least 5, rejecting at ``alpha``: the kernel's shares are not verify's.

Each check has false-alarm probability at most ``alpha`` per flow (the first none at all);
a campaign of F flows at most about 2·F·alpha (2% over 100 multi-endpoint flows).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from ..model.addresses import format_ip

__all__ = ["Outcome", "Expectation", "Verdict", "expectation_of", "connections_for", "judge", "ALPHA", "MIN_CONNECTIONS",
           "ends_distribution"]

ALPHA = 1e-4
MIN_CONNECTIONS = 10        # a single promised outcome: an unpromised one of probability >= 1/3 caught at 98%
MAX_CONNECTIONS = 200

Outcome = tuple  # (receiver, source seen, answer)
# A path that dies because nobody answers ARP for its next hop: the kernel queues the packet,
# then (after ~3 s of neighbour probes) answers later packets to that neighbour with host
# unreachable (EHOSTUNREACH to a local sender, ICMP from a forwarding node); either is right.
_NO_NEIGHBOUR = re.compile(r"no ARP answer|no pod with IP|nobody .* owns")


@dataclass(frozen=True)
class Expectation:
    """One flow as verify checked it: who sends what, and the outcome distribution it promises."""
    invariant: str
    label: str
    client: str                 # the sending namespace's identity: pod key, node:NAME, external
    arrives_at: str             # the node an off-cluster client's packet enters by ("" otherwise)
    proto: str                  # tcp | udp
    src: str
    dst: str
    dport: int
    promised: tuple[tuple[Outcome, float], ...]
    possible: tuple[Outcome, ...] = ()    # outcomes of inexact paths: any of them, in any shares (see judge)


@dataclass
class Verdict:
    expectation: Expectation
    counts: Counter
    problems: list[str]
    notes: list[str]

    @property
    def agrees(self) -> bool:
        return not self.problems


def _ident(endpoint, cluster) -> str:
    """The lab namespace an endpoint is: a pod, a node (a host-network pod is its node), the outside."""
    if endpoint is None:
        return "-"
    if endpoint.kind == "pod":
        if endpoint.name in cluster.pods_by_key:
            return endpoint.name
        host = next((p for p in cluster.host_pods if p.key == endpoint.name), None)
        return f"node:{host.node if host else endpoint.node}"
    if endpoint.kind == "node":
        return f"node:{endpoint.name}"
    return "external"


def ends_distribution(flow, cluster, inexact: set | None = None) -> dict[Outcome, float]:
    """verify's outcome distribution of a kept flow (``report.results[i].flows[j]``); the outcomes
    of its inexact paths are added to ``inexact`` when given."""
    sent = flow.ends[0][0].hops[0].packet
    dist: dict[Outcome, float] = {}
    for end, replies in flow.ends:
        if not end.exact and inexact is not None:
            inexact.update(outcome for outcome in ends_distribution(_Only(flow, end, replies), cluster))
        if end.kind == "arrived":
            who, src = _ident(end.at, cluster), format_ip(end.packet.src)
            if not replies:          # a check that does not walk replies (routing): the answer is not judged
                dist[(who, src, "*")] = dist.get((who, src, "*"), 0.0) + end.probability
                continue
            answered = sum(r.probability for r in replies if r.answers(flow.client, sent))
            for outcome, p in (((who, src, "reply"), answered), ((who, src, "silence"), 1.0 - answered)):
                if p > 1e-9:
                    dist[outcome] = dist.get(outcome, 0.0) + end.probability * p
        else:
            answer = "refused" if end.kind == "reject" else "silence"
            if end.kind in ("drop", "blackhole") and _NO_NEIGHBOUR.search(end.reason or ""):
                answer = "unresolved"
            dist[("-", "-", answer)] = dist.get(("-", "-", answer), 0.0) + end.probability
    return dist


@dataclass(frozen=True)
class _Only:
    """One path of a flow, as a flow of its own (its outcomes alone)."""
    flow: object
    end: object
    replies: tuple

    @property
    def ends(self):
        return [(self.end, self.replies)]

    @property
    def client(self):
        return self.flow.client


def expectation_of(invariant: str, flow, cluster) -> Expectation:
    sent = flow.ends[0][0].hops[0].packet
    proto = {6: "tcp", 17: "udp"}.get(sent.proto, str(sent.proto))
    client = _ident(flow.client, cluster) if flow.client.kind != "external" else "external"
    inexact: set = set()
    dist = ends_distribution(flow, cluster, inexact)
    return Expectation(invariant, flow.label, client, flow.client.node if flow.client.kind == "external" else "",
                       proto, format_ip(sent.src), format_ip(sent.dst), sent.dport,
                       tuple(sorted(dist.items())), tuple(sorted(o for o in inexact if o in dist)))


def _pooled(exp: Expectation) -> dict[Outcome, Outcome]:
    """Each outcome of an inexact path mapped to the one outcome they make together: verify
    says one of them happens (their probabilities summed), not which nor in what shares (two pods
    holding one address behind one bridge: the first ARP answer wins, and no input says whose)."""
    if len(exp.possible) < 2:
        return {}
    pooled = tuple(" | ".join(sorted({o[i] for o in exp.possible})) for i in range(3))
    return {o: pooled for o in exp.possible}


def connections_for(exp: Expectation, *, alpha: float = ALPHA, minimum: int = MIN_CONNECTIONS) -> int:
    """How many connections make a missing promised outcome unlikely to pass by chance:
    the least n with sum over promised outcomes of (1-p)^n <= alpha (at least ``minimum``)."""
    probs = [p for _, p in exp.promised if p > 0]
    if len(probs) <= 1:
        return minimum
    n = minimum
    while n < MAX_CONNECTIONS and sum((1 - p) ** n for p in probs) > alpha:
        n += 1
    return n


def _chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for chi-square with ``df`` degrees of freedom: the regularized upper incomplete
    gamma Q(df/2, x/2), by its series below a+1 and its continued fraction above (no scipy:
    importing scipy.stats costs seconds)."""
    a, z = df / 2.0, x / 2.0
    if z <= 0:
        return 1.0
    log_front = -z + a * math.log(z) - math.lgamma(a)
    if z < a + 1:
        term = total = 1.0 / a
        k = 1
        while abs(term) > 1e-16 * abs(total) and k < 100000:
            term *= z / (a + k)
            total += term
            k += 1
        return max(0.0, 1.0 - math.exp(log_front) * total)
    # Lentz's continued fraction for Q(a, z)
    tiny = 1e-300
    b = z + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, 100000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return math.exp(log_front) * h


def judge(exp: Expectation, counts: Counter, *, alpha: float = ALPHA) -> Verdict:
    """Compare the kernel's ``counts`` (outcome -> connections) with verify's promise. The
    outcomes of inexact paths (``exp.possible``) are pooled first: any of them may happen."""
    promised = dict(exp.promised)
    pool = _pooled(exp)
    if pool:
        merged: dict[Outcome, float] = {}
        for o, p in promised.items():
            merged[pool.get(o, o)] = merged.get(pool.get(o, o), 0.0) + p
        promised = merged
        pooled: Counter = Counter()
        for o, k in counts.items():
            pooled[pool.get(o, o)] += k
        counts = pooled
    # An outcome whose answer verify did not judge ("*": its check walked no reply) takes any answer.
    counts = Counter({(o if (o[0], o[1], "*") not in promised or o[2] == "refused" else (o[0], o[1], "*")): k
                      for o, k in counts.items()})
    # A refusal is compared as a refusal, not by who refused: a userspace proxy without endpoints
    # accepts the connection (its node received it) and closes it; verify's reject names no receiver.
    if ("-", "-", "refused") in promised:
        counts = Counter({(("-", "-", "refused") if o[2] == "refused" and o not in promised else o): k
                          for o, k in counts.items()})
    # A neighbour that never answers ARP: silence at first, host unreachable once the kernel gave up.
    if ("-", "-", "unresolved") in promised:
        counts = Counter({(("-", "-", "unresolved") if o[0] == "-" and o[2] in ("silence", "refused") else o): k
                          for o, k in counts.items()})
    n = sum(counts.values())
    problems, notes = [], []
    for outcome, k in sorted(counts.items()):
        if promised.get(outcome, 0.0) <= 0:
            problems.append(f"kernel: {_say(outcome)} in {k}/{n} connections; verify gives it probability 0")
    for outcome, p in sorted(promised.items()):
        if p > 0 and counts.get(outcome, 0) == 0 and n:
            problems.append(f"verify: {_say(outcome)} with probability {p:.3g}; the kernel never did in {n} "
                            f"connections (chance {(1 - p) ** n:.1e})")
    if not problems and len(promised) > 1:
        expected = {o: p * n for o, p in promised.items()}
        if min(expected.values()) >= 5:
            stat = sum((counts.get(o, 0) - e) ** 2 / e for o, e in expected.items())
            pvalue = _chi2_sf(stat, len(expected) - 1)
            if pvalue < alpha:
                problems.append(f"shares differ: kernel {dict(counts)}, verify {promised} (chi-square {stat:.1f},"
                                f" p={pvalue:.1e})")
            else:
                notes.append(f"shares agree (chi-square p={pvalue:.2f})")
        else:
            notes.append("too few connections for a chi-square test of the shares")
    return Verdict(exp, counts, problems, notes)


def _say(outcome: Outcome) -> str:
    who, src, answer = outcome
    if who == "-":
        return {"refused": "refused (nobody received it)", "silence": "no answer, nobody received it",
                "unresolved": "nobody received it, no ARP answer (silence or host unreachable)"}.get(answer, answer)
    what = {"reply": "answered", "silence": "not answered", "refused": "refused"}.get(answer, answer)
    return f"received by {who} from {src}, {what}"
