"""Address classes: addresses that no test on a flow's path can tell apart.

Why flows may be grouped (the soundness argument the fast path rests on).
Everything the evaluator decides about an address is one of:

* a rule's address test: ``-s/-d`` prefixes, ``iprange``, ``addrtype`` (which
  compares with the node's local and broadcast addresses);
* a route lookup (longest prefix over the node's routes), a martian check
  (0/8, 127/8, multicast, limited broadcast), an interface address;
* a NAT result: DNAT/SNAT to constant addresses, MASQUERADE/REDIRECT to an
  interface's address — none of which reads the packet's own address — *except*
  an address *range*, whose choice hashes the packet's addresses (jhash). A NAT
  target is a cut too (where its rule can be walked): a client that is itself
  the target (a hairpin) then sits in a class of its own;
* conntrack: lookups by the flow's own tuple, consistent under renaming;
* the walker's delivery: "is there a pod with this IP behind this bridge",
  true for every pod of a class on that node;
* the sending pod's own route lookup (:mod:`pktverify.eval.pod_stack`): is the
  destination inside the pod's eth0 subnet (each pod's subnet is a cut, so the
  pods of one class on one node share theirs, and with it their gateway), and
  is it an address of the node (a point); the receiving pod's martian check
  compares the source with its own address (a hairpin, set apart as a NAT
  target is).

Cut the address space at every prefix, range and NAT target above, and set
apart every address a test names exactly (a /32): inside one resulting class
every test gives the same answer.
Two flows whose clients and servers sit on the same nodes, in the same atoms,
with the same ports and protocol, take the same path with the same
probabilities, and their packets differ only by the renaming of client and
server addresses; the invariants compare addresses with the flow's own, so
they hold for one exactly when they hold for the other.

Which rules can test a flow's addresses at all. The nat table is walked only
by a connection's first packet on each node, and only with a destination the
flows can have: the flow's destinations, their NAT targets, and the clients
(a reply is new on a node the request did not cross). A nat chain that is
entered only by jumps whose rule requires a destination outside that set (the
``-d ClusterIP/32 -j KUBE-SVC-...`` dispatch of kube-proxy) is never walked,
so the ``-s endpoint/32`` tests in the KUBE-SEP chains behind it need no cut
for pod-to-pod flows. Reachability here ignores every other condition of a
jump (it over-approximates the chains walked), so it can only add cuts, never
miss one (:mod:`.nat_graph`). Other tables are taken whole.

nftables rules are read the same way (:mod:`.nft_addresses`): what a
statement compares an address with, in values, prefixes, sets and map keys,
is a cut; the chains of nat base chains form the same destination-guarded
graph (kube-proxy's nftables mode dispatches on ``ip daddr . meta l4proto .
th dport vmap @service-ips``), the rest is taken whole.

When a rule set uses something whose answer depends on the exact address
beyond all that (NAT to an address range, ``-m recent``, an nft set the
packet path fills with addresses, a hash of addresses), :attr:`sound` is
False and callers check every flow.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable

from ...model import rules as m
from ...model.addresses import format_ip, prefix_mask
from ...model.cluster import ClusterSpec
from ...model.node import NodeState
from .nat_graph import Interval, NatGraph, Points, iptables_chain_tests, iptables_nat_graph, rule_tests
from .nat_graph import interval as _interval
from .nft_addresses import NftReader, NftTableAddresses

__all__ = ["AddressClasses", "base_groups"]

_SPECIAL = [(0x00000000, 0x00FFFFFF), (0x7F000000, 0x7FFFFFFF), (0xE0000000, 0xEFFFFFFF),
            (0xF0000000, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF)]


class AddressClasses:
    """The atoms of the address space for the cluster's pod/node flows; ``atom(ip)`` names one."""

    def __init__(self, cluster: ClusterSpec, nodes: dict[str, NodeState]) -> None:
        self.unsound_reason = ""
        # Addresses and ranges some rule names (tests and NAT targets the flows can meet): a node
        # whose own addresses are among them is set apart (see pktverify.check.invariants.node_symmetry).
        self.rule_intervals: list[Interval] = []
        # A class stands for flows that differ only by a renaming of addresses; two endpoints that
        # share one address cannot be renamed apart (a flow to one may reach the other).
        owners: dict[int, str] = {}
        for p in cluster.pods:
            if p.ip in owners and not self.unsound_reason:
                self.unsound_reason = (f"pods {owners[p.ip]} and {p.key} share the address {format_ip(p.ip)}")
            owners.setdefault(p.ip, p.key)
        base: list[Interval] = list(_SPECIAL)
        for net in (cluster.cidr, cluster.service_cidr, *(n.pod_cidr for n in cluster.nodes)):
            base.append(_interval(*net))
        # Each pod's eth0 subnet decides on-link (ARP) or the gateway for every destination.
        masks = {n.name: prefix_mask(n.pod_prefixlen) for n in cluster.nodes}
        base += [_interval(*net) for net in {(p.ip & masks[p.node], masks[p.node]) for p in cluster.pods}]
        endpoints: list[Interval] = [(p.ip, p.ip) for p in cluster.pods]
        node_owner: dict[int, str] = {}
        scanned: set[int] = set()
        self._own = _one_user_addresses(cluster, nodes)
        self._nft: dict[int, NftTableAddresses] = {}
        self._nft_reader = NftReader()
        for node in nodes.values():
            self._read_node(node, owners, node_owner, base, endpoints)
            base += self._read_nft(node)
            if id(node.ruleset) in scanned:       # a rule set shared by nodes is read once
                continue
            scanned.add(id(node.ruleset))
            base += self._read_rules(node)
        # One jump graph per distinct nat table (iptables' nat table, an nft table with nat base
        # chains): nodes that share a parsed rule set share it. Entries: (graph, what each chain names,
        # table id).
        graphs: dict[int, tuple[NatGraph, Callable[[str], list[Interval]]]] = {}
        self._nat: list[tuple[NatGraph, Callable[[str], list[Interval]], int]] = []
        for node in nodes.values():
            table = node.ruleset.tables["nat"]
            if id(table) not in graphs:
                graphs[id(table)] = iptables_nat_graph(table), iptables_chain_tests(table)
            self._nat.append((*graphs[id(table)], id(table)))
            for nft_table in node.nft.tables if node.nft is not None else ():
                reading = self._nft[id(nft_table)]
                if reading.graph is not None:
                    self._nat.append((reading.graph, reading.tests, id(nft_table)))
        # Pods and nodes (and what they are NATed to) are the destinations of pod/node flows.
        self._reached, extra, naming = self._nat_tests(Points(endpoints))
        self._reached_keys = [frozenset(chains) for chains in self._reached]
        self.rule_intervals += naming
        self._classify = _Classifier(base + extra)

    def _read_nft(self, node: NodeState) -> list[Interval]:
        """The cuts of ``node``'s nft tables outside their nat chains (each table read once, see
        :mod:`.nft_addresses`); a table read as unsound makes the classes unsound."""
        out: list[Interval] = []
        for table in node.nft.tables if node.nft is not None else ():
            if id(table) in self._nft:
                continue
            reading = self._nft[id(table)] = self._nft_reader.read(table)
            if reading.unsound and not self.unsound_reason:
                self.unsound_reason = f"node {node.name}: {reading.unsound}"
            out += reading.whole
            self.rule_intervals += _not_own(reading.whole, self._own.get(id(table)))
        return out

    def _read_node(self, node: NodeState, owners: dict[int, str], node_owner: dict[int, str],
                   base: list[Interval], endpoints: list[Interval]) -> None:
        """A node's addresses and routes into ``base`` (and its addresses into ``endpoints``); an
        address a pod or another node holds too makes the classes unsound."""
        for iface in node.interfaces.values():
            for a in iface.addresses:
                if iface.name != "lo" and not self.unsound_reason:
                    if a.ip in owners:
                        self.unsound_reason = (f"pod {owners[a.ip]} has the address of node {node.name} "
                                               f"({format_ip(a.ip)})")
                    elif node_owner.setdefault(a.ip, node.name) != node.name:
                        self.unsound_reason = (f"nodes {node_owner[a.ip]} and {node.name} share the address "
                                               f"{format_ip(a.ip)}")
                base += [(a.ip, a.ip), _interval(a.ip, a.mask)]
                endpoints.append((a.ip, a.ip))
                if a.broadcast is not None:
                    base.append((a.broadcast, a.broadcast))
        for route in (*node.routes, *node.local_routes):
            base.append(_interval(route.network, route.mask))
            base += [(p, p) for p in (route.gateway, route.prefsrc) if p is not None]

    def _read_rules(self, node: NodeState) -> list[Interval]:
        """The address tests of ``node``'s rules outside the nat table (that table is walked per
        destination, see :class:`.nat_graph.NatGraph`); each rule checked for soundness, and the tests that
        set nodes apart kept in :attr:`rule_intervals`."""
        base: list[Interval] = []
        for table in node.ruleset.tables.values():
            for chain in table.chains.values():
                for rule in chain.rules:
                    self._check_sound(rule, node.name)
                    if table.name != "nat":
                        named = rule_tests(rule)
                        base += named
                        self.rule_intervals += _not_own(named, self._own.get(id(node.ruleset)))
        return base

    @property
    def sound(self) -> bool:
        """False when some rule's answer depends on exact addresses (then check every flow)."""
        return not self.unsound_reason

    def atom(self, ip: int) -> tuple[int, int]:
        """The class of ``ip`` for flows between pods and nodes (equal: no test tells them apart)."""
        return self._classify(ip)

    def for_destination(self, dst: int):
        """A classifier for flows to ``dst`` (a ClusterIP): adds the tests of the nat chains only
        that destination reaches (its KUBE-SVC/KUBE-SEP chains, or its nftables-mode service and
        endpoint chains). Returns ``ip -> atom key``."""
        extra: list[Interval] = []
        naming: list[Interval] = []
        walked: dict[tuple[int, frozenset], set[str]] = {}
        done: set[tuple] = set()
        for i, (graph, tests, table_id) in enumerate(self._nat):
            key = (id(graph), self._reached_keys[i])
            new = walked.get(key)
            if new is None:                  # the same graph from the same start: the same chains
                new = walked[key] = graph.walked(Points([]), start=self._reached[i], single=dst) - self._reached[i]
            # what those chains name, and whose own address it may name without setting it apart
            found_key = (self._own.get(table_id), tuple(id(tests(c)) for c in sorted(new)))
            if found_key in done:
                continue
            done.add(found_key)
            found = [iv for c in new for iv in tests(c)]
            extra += found
            naming += _not_own(found, self._own.get(table_id))
        return _DestinationAtoms(self._classify, _Classifier(extra), naming)

    def _nat_tests(self, dsts: Points) -> tuple[list[set[str]], list[Interval], list[Interval]]:
        """Per entry of ``_nat`` the nat chains walked for ``dsts`` (closed under NAT targets), their
        tests, and those tests less each one-node table's own address (what sets nodes apart)."""
        reached: list[set[str]] = []
        tests: list[Interval] = []
        naming: list[Interval] = []
        per_graph: dict[int, set[str]] = {}
        done: set[tuple[int, int]] = set()
        for graph, chain_tests, table_id in self._nat:
            if id(graph) not in per_graph:
                per_graph[id(graph)] = graph.walked(dsts)
            chains = per_graph[id(graph)]
            reached.append(chains)
            if (id(graph), table_id) in done:   # a shared table: the same chains, tests already taken
                continue
            done.add((id(graph), table_id))
            found = [iv for c in chains for iv in chain_tests(c)]
            tests += found
            naming += _not_own(found, self._own.get(table_id))
        return reached, tests, naming

    def _check_sound(self, rule: m.Rule, node: str) -> None:
        if self.unsound_reason:
            return
        if any(isinstance(mt, m.RecentMatch) for mt in rule.matches):
            self.unsound_reason = f"{node}: -m recent remembers exact addresses ({rule.location()})"
        target = rule.target
        if isinstance(target, (m.Dnat, m.Snat)) and target.addr_low is not None \
                and target.addr_low != target.addr_high:
            self.unsound_reason = (f"{node}: NAT to an address range picks by a hash of the packet's addresses"
                                   f" ({rule.location()})")


def _one_user_addresses(cluster: ClusterSpec, nodes: dict[str, NodeState]) -> dict[int, int]:
    """id(rule set or nat table) -> the address of its one user, for those one node alone uses.

    A rule set used by one node alone may name that node's own address without setting it
    apart: the renaming that swaps two nodes maps one's rules onto the other's when they are
    the same up to it (kube-proxy's userspace portals DNAT to the node's own address)."""
    users: dict[int, list[str]] = {}
    for name, node in nodes.items():
        users.setdefault(id(node.ruleset), []).append(name)
        users.setdefault(id(node.ruleset.tables["nat"]), []).append(name)
        for table in node.nft.tables if node.nft is not None else ():
            users.setdefault(id(table), []).append(name)
    by_name = {n.name: n for n in cluster.nodes}
    own: dict[int, int] = {}
    for key, names in users.items():
        if len(names) == 1 and names[0] in by_name:
            own[key] = by_name[names[0]].ip
    return own


def _not_own(intervals: list[Interval], own: int | None) -> list[Interval]:
    """``intervals`` without the single address ``own`` (a one-node rule set's own node address)."""
    if own is None:
        return intervals
    return [iv for iv in intervals if iv != (own, own)]


class _Group(list):
    """Pods of one class, with the lowest and highest of their addresses."""

    def __init__(self, pods) -> None:
        super().__init__(pods)
        self.low = min(p.ip for p in self)
        self.high = max(p.ip for p in self)


def base_groups(cluster: ClusterSpec, classes: "AddressClasses") -> list[list]:
    """The cluster's pods grouped by (node, base class), in order (see :meth:`_DestinationAtoms.refine`)."""
    groups: dict[tuple, list] = {}
    for p in cluster.pods:
        groups.setdefault((p.node, classes.atom(p.ip)), []).append(p)
    return [_Group(g) for g in groups.values()]


class _DestinationAtoms:
    """``ip -> atom key`` for flows to one destination; ``extra``: the intervals its own chains add."""
    __slots__ = ("base", "more", "extra")

    def __init__(self, base, more, extra: list[Interval]) -> None:
        self.base, self.more, self.extra = base, more, extra

    def __call__(self, ip: int) -> tuple:
        return self.base(ip), self.more(ip)

    def refine(self, groups: list[list]) -> list[list]:
        """``groups`` of pods made with the base classes (``base_groups``), split where this
        destination's own chains tell their pods apart: the same groups as grouping by this
        classifier, in a time that grows with the groups, not the pods."""
        out: list[list] = []
        more = self.more
        for group in groups:
            if len(group) == 1 or more.constant_on(group.low, group.high):
                out.append(group)
                continue
            split: dict = {}
            for p in group:
                split.setdefault(more(p.ip), []).append(p)
            out += [_Group(g) for g in split.values()]
        return out


class _Classifier:
    """Maps an address to its class: the interval between cuts of the ranges, and the address
    itself when it is one of the single-address tests (``-s 10.1.2.3/32``). Two addresses on
    either side of a single-address test answer every test alike, so a point does not cut."""

    def __init__(self, intervals: list[Interval]) -> None:
        cuts: set[int] = set()
        self.points: set[int] = set()
        for low, high in intervals:
            if low == high:
                self.points.add(low)
                continue
            cuts.add(low)
            if high < 0xFFFFFFFF:
                cuts.add(high + 1)
        self.cuts = sorted(cuts)
        self._sorted_points = sorted(self.points)

    def __call__(self, ip: int) -> tuple[int, int]:
        return bisect_right(self.cuts, ip), ip if ip in self.points else -1

    def constant_on(self, low: int, high: int) -> bool:
        """Whether every address in [low, high] is in one class (no cut or point inside)."""
        if bisect_right(self.cuts, low) != bisect_right(self.cuts, high):
            return False
        i = bisect_left(self._sorted_points, low)
        return i == len(self._sorted_points) or self._sorted_points[i] > high
