"""PV303 and PV304 on an nft ruleset (``lint --cluster`` with a proposed nft ruleset): a DNAT to
an address that is no ready endpoint, a kube-proxy service rule for an address outside the
service CIDR.

The ruleset is read as its header-space view (:mod:`..nft_view`: one view rule per action, and
per element of a verdict map, a NAT map or a concatenation lookup), and each view rule goes
through the predicates iptables' rules go through (:class:`.cluster.ServiceFacts`):

* PV303: every DNAT to one address of every ``ip`` and ``inet`` table — ``dnat to A:P``, the
  elements of a NAT map (``dnat to ip daddr map { ... }``), kube-proxy's ``endpoint-`` chains.
  A DNAT to a range, a prefix or an address an expression computes is not judged.
* PV304: the rules of kube-proxy's dispatch chains (``services``, ``service-endpoints-check`` of
  table ``kube-proxy``) whose packets have one destination: the ``service-ips`` and
  ``no-endpoint-services`` elements (their key's address) and ``ip daddr X ...`` rules. The
  ``service-nodeports`` elements are for the addresses of ``@nodeport-ips`` (the node's, chosen by
  ``--nodeport-addresses``), no ClusterIP: a rule that reads a named set's addresses is not judged.

A finding names the nft rule as PV163-PV165 do (its position, its text and handle, its chain and
table, at its line; JSON: line 1 and ``nftables[i]``), and the element it comes from. Never a false
report: a ruleset a reader refuses, or whose elements do not fit their sets, is not judged.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...model import nft as n
from ...model.addresses import format_ip
from ...model.cluster import ClusterSpec
from ..headerspace import Universe, rule_box
from ..nft_view import View, build_view
from .cluster import ServiceFacts
from .finding import Finding
from .nft_reachability import _name, _Where

__all__ = ["cluster_findings", "nft_cluster_findings", "nft_view_findings"]

# kube-proxy's chains that send a service address on (PV304), by view table.
_DISPATCH = frozenset({("ip kube-proxy", "services"), ("ip kube-proxy", "service-endpoints-check"),
                       ("inet kube-proxy", "services"), ("inet kube-proxy", "service-endpoints-check")})
_BLOCKERS = frozenset({"PV150", "PV158"})        # nothing read; elements read as another type


def cluster_findings(ruleset: n.NftRuleset, cluster: ClusterSpec, findings: Sequence[Finding] = ()) -> list[Finding]:
    """PV303 and PV304 of ``ruleset`` as the proposed rules of a node of ``cluster``."""
    return nft_cluster_findings(ruleset, ServiceFacts.of(cluster), findings)


def nft_cluster_findings(ruleset: n.NftRuleset, facts: ServiceFacts, findings: Sequence[Finding] = ()) -> list[Finding]:
    """PV303 and PV304 of ``ruleset`` against the cluster's ``facts`` (:meth:`.ServiceFacts.of`);
    none when its structure ``findings`` say it was not read as nft reads it."""
    if any(f.id in _BLOCKERS for f in findings):
        return []
    return nft_view_findings(build_view(ruleset), facts, _Where(ruleset))


def nft_view_findings(view: View, facts: ServiceFacts, where: _Where) -> list[Finding]:
    """PV303 and PV304 on the view rules of ``view``, once per nft rule (or element) and address."""
    universe = Universe.of(view.ruleset)
    out: list[Finding] = []
    seen: set[tuple] = set()
    for (tname, cname), infos in view.info.items():
        dispatch = (tname, cname) in _DISPATCH
        chain = f"chain {cname} of table {tname}"
        for vr, info in zip(view.ruleset.tables[tname].chains[cname].rules, infos):
            stale = facts.stale_dnat(vr.target)
            if stale is not None:
                label = _name(info, whole=not _nat_map(info.rule))
                if ("PV303", label, stale) not in seen:
                    seen.add(("PV303", label, stale))
                    out.append(where.finding("PV303", f"{label} of {chain} DNATs to {format_ip(stale)}, which is no "
                                                      "ready endpoint of any service", info.rule.line))
            if not dispatch or _reads_address_set(info.rule):
                continue
            outside = facts.outside_cidr(rule_box(vr, universe)[0])
            if outside is not None and ("PV304", _name(info), outside) not in seen:
                seen.add(("PV304", _name(info), outside))
                out.append(where.finding("PV304", f"{_name(info)} of {chain} is for {format_ip(outside)}, outside the "
                                                  "service CIDR", info.rule.line))
    return out


def _nat_map(rule: n.NftRule) -> bool:
    """Whether the rule's NAT address comes from a map (its view rules are its elements)."""
    return any(type(s) is n.Nat and isinstance(s.addr, n.MapLookup) for s in rule.exprs)


def _reads_address_set(rule: n.NftRule) -> bool:
    """Whether a match of the rule looks an address alone up in a named set (``ip daddr @nodeport-ips``:
    the addresses of a set, not one service's; a concatenation's elements are each one service port)."""
    return any(type(s) is n.Match and isinstance(s.right, n.SetRef) and type(s.left) is n.Payload
               and s.left.field in ("saddr", "daddr") for s in rule.exprs)
