"""The nft forms of the faults :mod:`.faults` plants: edits of a node's kube-proxy nftables-mode ruleset.

Each function takes the ``nft -f`` text kube-proxy's nftables mode writes on a node (as
:func:`pktverify.generate.kube_proxy_nft.kube_proxy_nft_rules` does: one ``add ...`` command a
line) and returns it with one fault planted for one service (``svc``: its ``namespace/name``,
which every chain kube-proxy writes for the service names after its hash). The edited text
still loads with ``nft -f`` (tests/kernel/test_faults_nft_load.py): a planted fault is a ruleset
a node can have, not a text the kernel refuses. An edit that finds nothing to change raises
AssertionError: the planter asked for a service the ruleset does not hold.

The forms, as kube-proxy writes the rule each one loses (pkg/proxy/nftables/proxier.go):

* hairpin masquerade: ``endpoint-…`` chains start ``ip saddr <endpoint> jump mark-for-masquerade``;
* a service without endpoints: its ClusterIP:port in ``no-endpoint-services`` (``goto
  reject-chain``), its ClusterIP in ``cluster-ips`` (``cluster-ips-check`` rejects any port of it),
  and the service CIDR dropped there (``Drop traffic to unallocated ClusterIPs``);
* session affinity: ``ip saddr @affinity-… goto endpoint-…`` in the service chain, before numgen;
* the endpoint choice: ``numgen random mod N vmap { 0 : goto endpoint-… , … }``;
* externalTrafficPolicy: Local: ``ip saddr <cluster CIDR> goto service-…`` ("short-circuit pod
  traffic") in ``external-…``, which sends pods to the service chain unmasqueraded.
"""

from __future__ import annotations

__all__ = ["skew_numgen", "skip_endpoint", "without_hairpin_masquerade", "without_reject",
           "without_affinity_checks", "short_circuit_rule", "with_stale_element"]

_UNALLOCATED = 'comment "Drop traffic to unallocated ClusterIPs"'


def _rule(line: str) -> tuple[str, str] | None:
    """``add rule FAMILY TABLE CHAIN BODY`` -> (CHAIN, BODY); None for another command."""
    words = line.split(" ", 5)
    return (words[4], words[5]) if len(words) == 6 and words[:2] == ["add", "rule"] else None


def _of(chain: str, svc: str) -> bool:
    """Whether ``chain`` is one kube-proxy writes for service ``svc`` (``ns/name``): its name is
    ``PREFIX-HASH-ns/name/proto/port…``."""
    return f"-{svc}/" in chain


def _edited(text: str, keep, what: str) -> str:
    """``text`` without the lines ``keep`` refuses; AssertionError when it refuses none."""
    lines = text.split("\n")
    kept = [line for line in lines if keep(line)]
    if len(kept) == len(lines):
        raise AssertionError(f"no {what} in the nft ruleset")
    return "\n".join(kept)


def without_hairpin_masquerade(text: str, svc: str) -> str:
    """``text`` without the hairpin rules of ``svc``'s endpoint chains (``ip saddr <endpoint>
    jump mark-for-masquerade``): an endpoint that calls its own service is DNATed to itself
    with its own source, and answers itself directly."""
    def keep(line: str) -> bool:
        rule = _rule(line)
        return not (rule and rule[0].startswith("endpoint-") and _of(rule[0], svc)
                    and rule[1].split()[1] == "saddr" and rule[1].endswith(" jump mark-for-masquerade"))
    return _edited(text, keep, f"hairpin masquerade rule of {svc}")


def without_reject(text: str, svc: str, cluster_ip: str) -> str:
    """``text`` in which ``svc`` (no endpoints, ClusterIP ``cluster_ip``) is rejected nowhere:
    no ``no-endpoint-services`` element of it, its ClusterIP not in ``cluster-ips``, and no
    ``Drop traffic to unallocated ClusterIPs`` rule.

    kube-proxy's nftables mode rejects such a service three times over: the element alone
    missing changes nothing (``cluster-ips-check`` rejects every port of a ClusterIP it knows),
    and a ClusterIP it does not know is dropped with the rest of the service CIDR. So the nft
    form whose packet leaves the node is a ruleset that never learned the service (a sync it
    missed) from a kube-proxy that knows no service CIDR (it writes the drop only when it
    does): every piece that stops the packet is absent, as the one REJECT rule is in iptables mode."""
    def gone(line: str) -> str | None:
        if line.startswith("add element "):
            body = line.split("{", 1)[1]
            if " no-endpoint-services " in line and body.startswith(f" {cluster_ip} . "):
                return "element"
            if " cluster-ips " in line and body.strip(" }") == cluster_ip:
                return "cluster-ip"
        return "drop" if line.startswith("add rule ") and line.endswith(_UNALLOCATED) else None

    lines = text.split("\n")
    dropped = [gone(line) for line in lines]
    if sorted(d for d in dropped if d in ("element", "cluster-ip")) != ["cluster-ip", "element"]:
        raise AssertionError(f"{svc} at {cluster_ip} is not rejected as kube-proxy's nftables mode does")
    return "\n".join(line for line, d in zip(lines, dropped) if d is None)


def without_affinity_checks(text: str, svc: str) -> str:
    """``text`` without ``svc``'s affinity checks (``ip saddr @affinity-… goto endpoint-…``):
    every connection is balanced anew (the endpoint chains still record the client)."""
    def keep(line: str) -> bool:
        rule = _rule(line)
        return not (rule and _of(rule[0], svc) and rule[1].split()[:2] == ["ip", "saddr"]
                    and rule[1].split()[2].startswith("@affinity-"))
    return _edited(text, keep, f"affinity check of {svc}")


def _numgen(text: str, svc: str) -> tuple[list[str], int, str, list[str]]:
    """(lines, index, the rule's head before ``numgen``, the vmap's arms) of ``svc``'s first
    ``numgen random mod N vmap`` rule."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        rule = _rule(line)
        if rule and _of(rule[0], svc) and " numgen random mod " in line and line.endswith(" }"):
            head, _sep, tail = line.partition(" numgen random mod ")
            arms = tail.split(" vmap { ", 1)[1][:-2].split(" , ")
            return lines, i, head, arms
    raise AssertionError(f"no numgen rule of {svc} in the nft ruleset")


def skew_numgen(text: str, svc: str) -> str:
    """``svc``'s ``numgen random mod 2`` as ``mod 4`` with the second endpoint on three buckets
    (the first gets 1/4)."""
    lines, i, head, arms = _numgen(text, svc)
    if len(arms) != 2:
        raise AssertionError(f"{svc} has {len(arms)} endpoints, not 2")
    target = arms[1].split(" : ", 1)[1]
    lines[i] = f"{head} numgen random mod 4 vmap {{ {arms[0]} , {arms[1]} , 2 : {target} , 3 : {target} }}"
    return "\n".join(lines)


def skip_endpoint(text: str, svc: str, modulus: int) -> str:
    """``svc``'s ``numgen random mod N`` as ``mod modulus`` (below N, the vmap left whole): the
    endpoints of buckets ``modulus`` .. N-1 are never chosen."""
    lines, i, head, arms = _numgen(text, svc)
    if not 1 <= modulus < len(arms):
        raise AssertionError(f"modulus {modulus} does not skip one of {svc}'s {len(arms)} endpoints")
    lines[i] = f"{head} numgen random mod {modulus} vmap {{ {' , '.join(arms)} }}"
    return "\n".join(lines)


def short_circuit_rule(text: str, svc: str) -> str:
    """The body of ``svc``'s ``external-…`` rule that sends pod traffic to its service chain
    (``ip saddr <cluster CIDR> goto service-…``)."""
    for line in text.split("\n"):
        rule = _rule(line)
        if rule and rule[0].startswith("external-") and _of(rule[0], svc) and " goto service-" in rule[1] \
                and rule[1].split()[:2] == ["ip", "saddr"]:
            return rule[1].split(" comment ", 1)[0]
    raise AssertionError(f"no short-circuit rule of {svc} in the nft ruleset")


def with_stale_element(text: str, old: str, svc: str, old_svc: str, key: str) -> str:
    """``text`` whose ``service-ips`` element ``key`` (``ip . proto . port``, ``svc``'s) sends
    the packet to ``old_svc``'s chain as ruleset ``old`` (the old configuration) has it, with
    the chains it leads to (their declarations and rules, from ``old``) added before the
    elements."""
    taken = [line for line in old.split("\n") if line.startswith("add chain ") and _of(line.split()[4], old_svc)]
    taken += [line for line in old.split("\n") if (rule := _rule(line)) and _of(rule[0], old_svc)]
    old_targets = [line.split(" : ", 1)[1] for line in old.split("\n")
                   if line.startswith("add element ") and " service-ips " in line and f"{{ {key} : " in line]
    lines = text.split("\n")
    live = [i for i, line in enumerate(lines) if line.startswith("add element ") and " service-ips " in line
            and f"{{ {key} : " in line]
    if not taken or len(old_targets) != 1 or len(live) != 1:
        raise AssertionError(f"no service-ips element {key} of {svc} (and of {old_svc} in the old ruleset)")
    lines[live[0]] = lines[live[0]].split(" : ", 1)[0] + " : " + old_targets[0]
    at = next(i for i, line in enumerate(lines) if line.startswith("add element "))
    return "\n".join(lines[:at] + taken + lines[at:])
