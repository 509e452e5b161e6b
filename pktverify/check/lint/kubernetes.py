"""PV3xx: Kubernetes semantics in a node's rules — load balancing and service NAT as kube-proxy
means them (rule-level checks; the cluster-level ones need ``--cluster``, see :mod:`.lint_cluster`)."""

from __future__ import annotations

import re

from ...model import rules as m
from ...model.addresses import format_ip
from ..headerspace import DPORT, DST, PROTO, Universe, intersects, rule_box
from .finding import Check, Finding, Subject

PV301 = Check(
    "PV301", "non-uniform-endpoint-choice", "error",
    "statistic-random branches that do not split traffic evenly, or with no unconditional last branch",
    "kube-proxy spreads a service's connections evenly: branch i of n has --probability 1/(n-i) and the last "
    "branch has none. Other values overload some endpoints; a missing last branch lets a share of the "
    "connections fall through the chain unbalanced.",
    "*nat\n:KUBE-SVC-X - [0:0]\n:KUBE-SEP-A - [0:0]\n:KUBE-SEP-B - [0:0]\n:KUBE-SEP-C - [0:0]\n"
    "-A KUBE-SVC-X -m statistic --mode random --probability 0.5 -j KUBE-SEP-A\n"
    "-A KUBE-SVC-X -m statistic --mode random --probability 0.5 -j KUBE-SEP-B\n-A KUBE-SVC-X -j KUBE-SEP-C\nCOMMIT",
    "*nat\n:KUBE-SVC-X - [0:0]\n:KUBE-SEP-A - [0:0]\n:KUBE-SEP-B - [0:0]\n:KUBE-SEP-C - [0:0]\n"
    "-A KUBE-SVC-X -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-A\n"
    "-A KUBE-SVC-X -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-B\n"
    "-A KUBE-SVC-X -j KUBE-SEP-C\nCOMMIT", "kubernetes")
PV302 = Check(
    "PV302", "conflicting-nat", "error",
    "two DNAT/REDIRECT rules of one chain for the same destination with different targets",
    "The first one decides every packet both match; the other is dead or, with different sources, sends some "
    "clients of one service address elsewhere — a stale portal or a second controller writing rules.",
    "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination "
    "10.1.1.5:8080\n-A PREROUTING -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination 10.1.2.7:8080\nCOMMIT",
    "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination "
    "10.1.1.5:8080\n-A PREROUTING -d 10.96.0.11/32 -p tcp --dport 80 -j DNAT --to-destination 10.1.2.7:8080\nCOMMIT",
    "kubernetes")

PV307 = Check(
    "PV307", "shared-proxy-port", "error",
    "two services redirected to the same userspace proxy port",
    "kube-proxy's userspace mode opens one proxy port per service port and sends that service's connections "
    "there (REDIRECT for pods, DNAT to the node's own address for the node itself); the proxy on a port "
    "forwards to the endpoints of the one service it serves, so the other service's clients reach the wrong "
    "pods. The services are told apart by kube-proxy's rule comment (namespace/name:port, or namespace/name "
    "for a port without a name); DNATs count when "
    "they go to the node's own address (with --cluster --node) or stand in KUBE-PORTALS-HOST/KUBE-NODEPORT-HOST.",
    "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-PORTALS-CONTAINER - [0:0]\n"
    "-A PREROUTING -j KUBE-PORTALS-CONTAINER\n"
    "-A KUBE-PORTALS-CONTAINER -d 10.152.183.69/32 -p tcp -m comment --comment \"default/backend:\" -m tcp "
    "--dport 80 -j REDIRECT --to-ports 36533\n"
    "-A KUBE-PORTALS-CONTAINER -d 10.152.183.164/32 -p tcp -m comment --comment \"default/web:http\" -m tcp "
    "--dport 80 -j REDIRECT --to-ports 36533\nCOMMIT",
    "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-PORTALS-CONTAINER - [0:0]\n"
    "-A PREROUTING -j KUBE-PORTALS-CONTAINER\n"
    "-A KUBE-PORTALS-CONTAINER -d 10.152.183.69/32 -p tcp -m comment --comment \"default/backend:\" -m tcp "
    "--dport 80 -j REDIRECT --to-ports 36533\n"
    "-A KUBE-PORTALS-CONTAINER -d 10.152.183.164/32 -p tcp -m comment --comment \"default/web:http\" -m tcp "
    "--dport 80 -j REDIRECT --to-ports 58263\nCOMMIT", "kubernetes")

UNIFORMITY = 1e-6
# namespace/name:port; a port without a name is namespace/name (kube-proxy v1.19 and later) or
# namespace/name: (before): ServicePortName.String(), pkg/proxy/types.go
_SERVICE_PORT = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[-a-z0-9]*)?")
_PROTO_NAMES = {6: "tcp", 17: "udp", 132: "sctp"}
# kube-proxy userspace's chains for the node's own connections: their DNATs go to the node's address.
_HOST_CHAINS = ("KUBE-PORTALS-HOST", "KUBE-NODEPORT-HOST")


def _probability(rule: m.Rule) -> float | None:
    for mt in rule.matches:
        if type(mt) is m.RandomMatch:
            return (1.0 - mt.probability) if mt.invert else mt.probability
    return None


def _key(rule: m.Rule) -> tuple:
    return tuple(mt for mt in rule.matches if type(mt) not in (m.CommentMatch, m.RandomMatch))


def endpoint_choice(subject: Subject) -> list[Finding]:
    """PV301 for every run of statistic-random rules (kube-proxy's endpoint choice)."""
    out = []
    for table in subject.ruleset.tables.values():
        for chain in table.chains.values():
            rules = chain.rules
            i = 0
            while i < len(rules):
                if _probability(rules[i]) is None:
                    i += 1
                    continue
                key = _key(rules[i])
                j = i
                while j < len(rules) and _probability(rules[j]) is not None and _key(rules[j]) == key:
                    j += 1
                run = rules[i:j]
                last = rules[j] if j < len(rules) and _key(rules[j]) == key else None
                out += _judge(chain, run, last)
                i = j + (1 if last is not None else 0)
    return out


def _judge(chain: m.Chain, run, last) -> list[Finding]:
    shares, rest = [], 1.0
    for rule in run:
        p = _probability(rule)
        shares.append(rest * p)
        rest *= 1.0 - p
    first = run[0]
    if last is None:
        return [Finding("PV301", f"the statistic branches of chain {chain.name} have no unconditional last branch: "
                                 f"{rest:.6g} of the traffic falls through rule #{run[-1].index}", first.source,
                        first.line)]
    shares.append(rest)
    even = 1.0 / len(shares)
    if all(abs(s - even) <= UNIFORMITY for s in shares):
        return []
    spread = ", ".join(f"#{r.index}: {s:.4g}" for r, s in zip([*run, last], shares))
    return [Finding("PV301", f"chain {chain.name} splits traffic unevenly over its {len(shares)} branches ({spread}; "
                             f"even is {even:.4g} each: probability 1/(n-i) for branch i)", first.source, first.line,
                    related=tuple((r.source, r.line, f"branch with share {s:.4g}")
                                  for r, s in zip([*run, last], shares)))]


def conflicting_nat(subject: Subject) -> list[Finding]:
    """PV302 in the nat table: same destination address, protocol and port, different DNAT/REDIRECT."""
    ruleset = subject.ruleset
    table = ruleset.tables.get("nat")
    if table is None:
        return []
    universe = Universe.of(ruleset)
    out = []
    for chain in table.chains.values():
        seen: dict[tuple, list[tuple]] = {}
        for rule in chain.rules:
            if not isinstance(rule.target, (m.Dnat, m.Redirect)) or _probability(rule) is not None:
                continue
            box, _exact = rule_box(rule, universe)
            dst = box[DST]
            if not (len(dst) == 1 and dst[0][0] == dst[0][1]):
                continue
            key = (dst, box[PROTO], box[DPORT])
            for other, other_box in seen.get(key, []):
                if other.target != rule.target and intersects(box, other_box):
                    out.append(Finding(
                        "PV302", f"{format_ip(dst[0][0])}: rule #{rule.index} of {chain.name} NATs it differently "
                                 f"from rule #{other.index} ({other.text}), which decides first", rule.source, rule.line,
                        related=((other.source, other.line, "the earlier NAT for the same destination"),)))
                    break
            seen.setdefault(key, []).append((rule, box))
    return out


def _own_addresses(subject: Subject) -> set[int] | None:
    """The addresses a DNAT to a userspace proxy port goes to: None, not knowing the cluster (a
    DNAT in kube-proxy's host chains counts); with it, the node's address in userspace mode, and an
    empty set otherwise (no DNAT counts: in iptables mode two services may well DNAT to one
    host-network endpoint; only userspace mode DNATs to its own proxy ports)."""
    cluster, node = subject.cluster, subject.node
    if cluster is None:
        return None
    known = node is not None and node in {n.name for n in cluster.nodes}
    return {cluster.node(node).ip} if known and cluster.proxy_mode == "userspace" else set()


def _service_comment(rule: m.Rule) -> str | None:
    """kube-proxy's ``namespace/name:port`` comment of a service rule, or None."""
    for mt in rule.matches:
        if type(mt) is m.CommentMatch and _SERVICE_PORT.fullmatch(mt.text):
            return mt.text
    return None


def shared_proxy_ports(subject: Subject) -> list[Finding]:
    """PV307: the rules of two services (told apart by kube-proxy's comment) that send their
    connections to one userspace proxy port: REDIRECT to it, or DNAT to one of the node's own
    addresses (:func:`_own_addresses`) and it."""
    node_ips = _own_addresses(subject)
    table = subject.ruleset.tables.get("nat")
    if table is None:
        return []
    users: dict[tuple[int, int], dict[str, m.Rule]] = {}
    for chain in table.chains.values():
        for rule in chain.rules:
            target = rule.target
            if type(target) is m.Redirect:
                port = target.port_low if target.port_low is not None and target.port_low == target.port_high else None
            elif type(target) is m.Dnat and target.addr_low is not None and target.addr_low == target.addr_high \
                    and target.port_low is not None and target.port_low == target.port_high \
                    and (target.addr_low in node_ips if node_ips is not None else chain.name in _HOST_CHAINS):
                port = target.port_low
            else:
                continue
            service = _service_comment(rule)
            proto = next((mt.proto for mt in rule.matches if type(mt) is m.ProtoMatch and not mt.invert), None)
            if port is None or service is None or proto is None:
                continue
            users.setdefault((proto, port), {}).setdefault(service, rule)
    out = []
    for (proto, port), services in users.items():
        if len(services) < 2:
            continue
        (first_service, first), *others = sorted(services.items(), key=lambda kv: kv[1].line)
        for service, rule in others:
            out.append(Finding(
                "PV307", f"services {first_service} and {service} both go to userspace proxy port {port}/"
                         f"{_PROTO_NAMES.get(proto, proto)} (rule #{rule.index} of {rule.chain}): kube-proxy gives "
                         "every service port its own, so one of them reaches the other's endpoints",
                rule.source, rule.line,
                related=((first.source, first.line, f"{first_service} goes to the same proxy port"),)))
    return out
