"""PV3xx: Kubernetes semantics in a node's rules — load balancing and service NAT as kube-proxy
means them (rule-level checks; the cluster-level ones need ``--cluster``, see :mod:`.lint_cluster`)."""

from __future__ import annotations

from ..model import rules as m
from ..model.addresses import format_ip
from .headerspace import DPORT, DST, PROTO, Universe, intersects, rule_box
from .registry import Check, Finding, register

register(Check(
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
    "-A KUBE-SVC-X -j KUBE-SEP-C\nCOMMIT", "kubernetes"))
register(Check(
    "PV302", "conflicting-nat", "error",
    "two DNAT/REDIRECT rules of one chain for the same destination with different targets",
    "The first one decides every packet both match; the other is dead or, with different sources, sends some "
    "clients of one service address elsewhere — a stale portal or a second controller writing rules.",
    "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination "
    "10.1.1.5:8080\n-A PREROUTING -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination 10.1.2.7:8080\nCOMMIT",
    "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination "
    "10.1.1.5:8080\n-A PREROUTING -d 10.96.0.11/32 -p tcp --dport 80 -j DNAT --to-destination 10.1.2.7:8080\nCOMMIT",
    "kubernetes"))

UNIFORMITY = 1e-6


def _probability(rule: m.Rule) -> float | None:
    for mt in rule.matches:
        if type(mt) is m.RandomMatch:
            return (1.0 - mt.probability) if mt.invert else mt.probability
    return None


def _key(rule: m.Rule) -> tuple:
    return tuple(mt for mt in rule.matches if type(mt) not in (m.CommentMatch, m.RandomMatch))


def endpoint_choice(ruleset: m.Ruleset) -> list[Finding]:
    """PV301 for every run of statistic-random rules (kube-proxy's endpoint choice)."""
    out = []
    for table in ruleset.tables.values():
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


def conflicting_nat(ruleset: m.Ruleset) -> list[Finding]:
    """PV302 in the nat table: same destination address, protocol and port, different DNAT/REDIRECT."""
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
