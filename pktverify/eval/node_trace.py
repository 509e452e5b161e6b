"""A packet's path through one node, hook by hook, in the kernel's order.

Arriving on an interface:  PREROUTING (raw, mangle, nat) → routing decision →
INPUT (mangle, filter, nat) → local socket, or FORWARD (mangle, filter) →
POSTROUTING (mangle, nat) → out.
Locally generated: route → OUTPUT (raw, mangle, nat, filter; re-routed when mangle or nat changed the
destination) → POSTROUTING (mangle, nat) → out, or over ``lo`` back through PREROUTING and INPUT.

The node's sysctls are the NodeState's (its ``sysctl.txt``), else what a
Kubernetes node has (:mod:`pktverify.model.sysctls`): ``ip_forward=1``,
``rp_filter=0``, ``accept_local=0``, ``route_localnet=0``. With ``rp_filter``
1 (strict) or 2 (loose) on the interface a packet arrives on, the kernel's
reverse-path check (``fib_validate_source``) drops it when no route leads back
to its source (loose), or the route back leaves by another interface (strict);
with ``ip_forward=0`` a packet to forward is refused (ICMP host unreachable).
"""

from __future__ import annotations

from ..bulk import cyclic_gc_paused
from ..errors import InvalidArgument
from ..model.addresses import LIMITED_BROADCAST, format_ip, is_loopback, is_multicast, is_zeronet
from ..model.node import NodeState
from ..model.packet import Packet
from ..model.trace import NODE_VERDICTS, Connection, Outcome, Trace
from .branches import merge_outcomes
from .bridge_walk import bridge_or_route, bridged
from .chains import ChainResult, CompiledTable
from .conntrack import ConntrackTable, initial_ctbits, known_ctbits, translate_known, translate_related
from .fib import Fib, RouteResult
from .nft_hooks import NftNode
from .reject_answer import reject_answer, stopped_at
from .route_checks import ROUTE_ICMP, martian_input, next_hops, reverse_path, route_error, with_step
from .state import (
    CT_DNAT,
    CT_INVALID,
    CT_NEW,
    CT_RELATED,
    CT_SNAT,
    CT_UNTRACKED,
    MAX_BRANCHES,
    MERGE_FROM,
    Budget,
    TraceMeta,
    WalkState,
    last_step,
    merge_states,
    routed,
    steps_tuple,
    with_ctbits,
)
from .targets import NatContext

_new_tuple = tuple.__new__

__all__ = ["NodeTracer"]


class NodeTracer:
    """Trace packets through one node. Build once per node; ``trace`` is the hot path."""

    def __init__(self, node: NodeState, *, shared_chains: dict | None = None,
                 max_branches: int = MAX_BRANCHES, compile_all: bool = False) -> None:
        """``shared_chains``: one dict passed to the tracers of several nodes lets nodes with the
        same rule set object share their compiled chains (see :class:`CompiledTable`).
        ``max_branches``: the most distinct branches one trace may create (LimitExceeded past it).
        Chains are compiled when a trace first enters them; ``compile_all`` compiles them all now
        (cheaper in total for a tracer that will see most of them, and done once before forking)."""
        self.node = node
        self.max_branches = max_branches
        self.fib = Fib(node)
        with cyclic_gc_paused():
            self.tables = {name: CompiledTable(table, self.fib, shared_chains, node.ruleset.source)
                           for name, table in node.ruleset.tables.items()}
        if compile_all:
            with cyclic_gc_paused():
                for table in self.tables.values():
                    table.compile_all()
        # Per hook and list of tables, the tables whose walk can change something (not empty).
        self.active: dict[tuple, tuple[str, ...]] = {}
        nft = getattr(node, "nft", None)      # nftables base chains join the hooks (eval/nft_hooks.py)
        self.nft = NftNode(nft, self.fib, self.tables, shared_chains) if nft is not None and nft.tables else None
        if compile_all and self.nft is not None:
            self.nft.compile_all()

    # ------------------------------------------------------------ public
    def trace(self, pkt: Packet, *, in_iface: str | None = None,
              conntrack: ConntrackTable | None = None, uid: int = 0, gid: int = 0,
              physdev_in: str = "", physdev_out: str = "", at: int | None = None,
              recent: frozenset = frozenset()) -> Trace:
        """Every outcome of ``pkt`` arriving on ``in_iface`` (None: generated on the node).

        With ``conntrack``, a packet of a known connection (either direction) is
        translated from the stored binding instead of walking the nat chains.
        ``uid``/``gid`` own a locally generated packet's socket (``-m owner``);
        ``physdev_in``/``physdev_out`` are the bridge ports of a bridged packet (``-m physdev``);
        ``recent``: the ``-m recent`` entries (list name, masked address) earlier connections left.
        """
        known = conntrack.lookup(pkt) if conntrack is not None else None
        ctbits = known_ctbits(known[0]) if known else initial_ctbits(pkt)
        if known is None and conntrack is not None:
            # An ICMP error about a known connection (a REJECT's answer on its way back): RELATED,
            # its outer header un-NATed by that connection.
            conn = conntrack.related(pkt)
            if conn is not None:
                known = (conn, "related")
                ctbits = CT_RELATED | (known_ctbits(conn) & (CT_DNAT | CT_SNAT))
        meta = TraceMeta(known[0].original if known else pkt, bool(known and known[1] in ("reply", "related")),
                         uid if in_iface is None else None, gid if in_iface is None else None,
                         physdev_in, physdev_out, at, recent=recent)
        st = WalkState(pkt, in_iface or "", "", 0, ctbits, 1.0, True, (), ctmark=known[0].ctmark if known else 0,
                       meta=meta)
        finished: list[Outcome] = []
        walk = _NodeWalk(self, known, pkt)
        if in_iface is None:
            walk._from_local(st, finished)
        else:
            if in_iface not in self.node.interfaces:
                raise InvalidArgument(f"in_iface={in_iface!r}: node {self.node.name!r} has no such interface (it has "
                                      f"{', '.join(self.node.interfaces)})")
            walk._from_wire(st, finished)
        return Trace(pkt, in_iface, merge_outcomes(finished), self.node.name)


class _NodeWalk:
    """One call of :meth:`NodeTracer.trace`: the hooks in the kernel's order, with the
    call's own state (the known conntrack entry, the packet as it started), so one
    tracer can serve several traces at once."""

    def __init__(self, tracer: NodeTracer, known: tuple | None, start: Packet) -> None:
        self.node = tracer.node
        self.fib = tracer.fib
        self.tables = tracer.tables
        self._known = known
        self._start = start
        self.budget = Budget(tracer.max_branches, tracer.node.name)
        self._active = tracer.active
        self.nft = tracer.nft

    # ------------------------------------------------------------ paths
    def _from_wire(self, st: WalkState, finished: list) -> None:
        states = self._prerouting(st, finished)
        for st in states:
            self._route_input(st, finished)

    def _prerouting(self, st: WalkState, finished: list, *, nat: bool = True) -> list[WalkState]:
        if self.nft is not None:
            return self.nft.run(self, "PREROUTING", [st], finished, nat=nat, looped=not nat)
        states = self._raw("PREROUTING", st, finished, looped=not nat)
        states = self._tables("PREROUTING", ("mangle",), states, finished)
        if nat:
            states = self._nat("PREROUTING", "dst", states, finished)
        return states

    def _route_input(self, st: WalkState, finished: list) -> None:
        """The routing decision for a packet that arrived on an interface: bridged on (br_netfilter),
        dropped as a martian or by the reverse-path filter, delivered locally, refused, or forwarded."""
        if st.meta is not None and st.meta.physdev_in:
            st = self._bridge_or_route(st, finished)
            if st is None:
                return
        pkt = st.pkt
        martian = martian_input(self.node, pkt, st.in_iface)
        if martian:
            finished.append(self._end(st, "drop", martian, route_step=martian))
            return
        result = self.fib.lookup(pkt.dst, None, pkt.src, st.mark, st.in_iface)
        if result.kind in ("local", "broadcast"):
            self._local_delivery(st, result, finished)
            return
        if not self.node.sysctls.ip_forward:
            why = f"ip_forward=0 ({self.node.sysctls.source}): the node forwards nothing (ICMP host unreachable)"
            self._answer_or_not(with_step(st, f"route: {why}"), why, (3, 1), finished)
            return
        if result.kind != "unicast":
            verdict, reason = route_error(result)
            st = with_step(st, f"route: {reason}", result.route or result.rule)
            if verdict == "reject":
                self._answer_or_not(st, reason, ROUTE_ICMP[result.kind], finished)
            else:
                finished.append(self._end(st, verdict, reason))
            return
        self._forward(st, result.route, finished)

    _bridge_or_route = bridge_or_route      # br_netfilter's bridged frames (eval/bridge_walk.py)
    _bridged = bridged

    def _local_delivery(self, st: WalkState, result: RouteResult, finished: list) -> None:
        """A packet routed to a local address: the martian and reverse-path checks, then INPUT."""
        pkt = st.pkt
        if self.fib.is_interface_address(pkt.src) and st.in_iface != "lo":
            finished.append(self._end(st, "drop", "martian source (a local address arriving from outside)"))
            return
        why = reverse_path(self.node, self.fib, pkt, st.in_iface)
        if why:
            self._rp_dropped(st, why, finished)
            return
        st = with_step(st, f"route: {self.fib.route_text(result.route)} → local delivery")
        self._input(st, finished)

    def _forward(self, st: WalkState, route, finished: list) -> None:
        """A packet routed on by ``route``: the martian, reverse-path and TTL checks, then FORWARD
        and POSTROUTING by each of the route's nexthops (TTL decremented)."""
        pkt = st.pkt
        if self.fib.is_interface_address(pkt.src):
            finished.append(self._end(st, "drop", "martian source (a local address arriving from outside)"))
            return
        why = reverse_path(self.node, self.fib, pkt, st.in_iface)
        if why:
            self._rp_dropped(st, why, finished)
            return
        if pkt.ttl <= 1:
            self._answer_or_not(st, "TTL exceeded in transit (ICMP time exceeded)", (11, 0), finished)
            return
        for gateway, dev, share, text in next_hops(self.fib, route, "forward out"):
            s = with_step(st, text, route)
            s = routed(s, _new_tuple(Packet, (*pkt[:8], pkt.ttl - 1)), dev or "", s.prob * share)
            next_hop = gateway if gateway is not None else s.pkt.dst
            states = self._tables("FORWARD", ("mangle", "filter", "security"), [s], finished) if self.nft is None \
                else self.nft.run(self, "FORWARD", [s], finished)
            self._postrouting(states, next_hop, finished)

    def _rp_dropped(self, st: WalkState, why: str, finished: list) -> None:
        """A drop by the reverse-path check: the step names the check and the interface (one cause
        for every source it stops), the end the source."""
        mode = self.node.sysctls.rp_filter(st.in_iface)
        check = "martian source" if why.startswith("martian") else "reverse-path filter"
        st = with_step(st, f"route: {check} (rp_filter={mode} on {st.in_iface}, {self.node.sysctls.source})")
        finished.append(self._end(st, "drop", why))



    def _input(self, st: WalkState, finished: list, *, nat: bool = True) -> None:
        if self.nft is not None:
            states = self.nft.run(self, "INPUT", [st], finished, nat=nat)
        else:
            states = self._tables("INPUT", ("mangle", "filter", "security"), [st], finished)
        if nat and self.nft is None:
            states = self._nat("INPUT", "src", states, finished)
        for s in states:
            finished.append(self._end(s, "local", "delivered to a local socket"))

    def _postrouting(self, states: list[WalkState], next_hop: int, finished: list) -> None:
        if self.nft is not None:
            states = self.nft.run(self, "POSTROUTING", states, finished, NatContext(next_hop))
        else:
            states = self._tables("POSTROUTING", ("mangle",), states, finished)
            states = self._nat("POSTROUTING", "src", states, finished, NatContext(next_hop))
        for s in states:
            finished.append(self._end(s, "forward", f"leaves on {s.out_iface}", next_hop=next_hop))

    def _from_local(self, st: WalkState, finished: list) -> None:
        for out_state, gateway in self._route_output(st, finished, initial=True):
            self._output(out_state, gateway, finished)

    def _output(self, st: WalkState, gateway: int | None, finished: list) -> None:
        """OUTPUT then POSTROUTING for one routing decision (``gateway``: its nexthop, None for a
        direct route). States stay grouped by the nexthop they were routed to, since two nexthops
        of a multipath route can share a device; a re-route after mangle or nat regroups them."""
        if self.nft is not None:
            return self.nft.output(self, st, gateway, finished)
        groups = [(gateway, self._tables("OUTPUT", ("mangle",), self._raw("OUTPUT", st, finished), finished))]
        groups = self._rerouted(groups, st, finished)
        groups = [(gw, self._nat("OUTPUT", "dst", states, finished)) for gw, states in groups]
        groups = self._rerouted(groups, st, finished)
        groups = [(gw, self._tables("OUTPUT", ("filter", "security"), states, finished)) for gw, states in groups]
        for gw, states in groups:
            for s in states:
                if s.out_iface == "lo":
                    self._loopback(s, finished)
                else:
                    self._postrouting([s], gw if gw is not None else s.pkt.dst, finished)

    def _loopback(self, st: WalkState, finished: list) -> None:
        if self.nft is not None:
            states = self.nft.run(self, "POSTROUTING", [st], finished, NatContext(st.pkt.dst))
        else:
            states = self._tables("POSTROUTING", ("mangle",), [st], finished)
            states = self._nat("POSTROUTING", "src", states, finished, NatContext(st.pkt.dst))
        for s in states:
            s = with_step(s._replace(in_iface="lo"), "loopback: back in through lo")
            # The looped packet keeps its conntrack entry (nat already done) and its route.
            for s2 in self._prerouting(s, finished, nat=False):
                self._input(s2, finished, nat=False)

    def _route_output(self, st: WalkState, finished: list, *, initial: bool) -> list[tuple[WalkState, int | None]]:
        """The routing decision for a locally generated packet: the routed states with their
        nexthop gateway (one per nexthop of a multipath route), or none (the failure is in
        ``finished``)."""
        pkt = st.pkt
        if initial and (is_multicast(pkt.src) or pkt.src == LIMITED_BROADCAST or is_zeronet(pkt.src)):
            finished.append(self._end(st, "drop", "invalid source address for a local socket (EINVAL)"))
            return []
        result: RouteResult = self.fib.lookup(pkt.dst, None, pkt.src, st.mark)   # iif lo: locally generated
        if result.kind in ("local", "broadcast"):
            return [(with_step(st._replace(out_iface="lo"),
                                     f"route: {self.fib.route_text(result.route)} → local via lo"), None)]
        if result.kind != "unicast":
            verdict, reason = route_error(result)
            if not initial:
                verdict, reason = "drop", f"re-route after NAT failed: {reason}"
            finished.append(self._end(with_step(st, f"route: {reason}", result.route or result.rule), verdict,
                                      reason))
            return []
        out = []
        for gateway, dev, share, text in next_hops(self.fib, result.route, "out"):
            if is_loopback(pkt.src) and dev != "lo" and not self.node.route_localnet:
                finished.append(self._end(st, "drop", f"martian source: loopback source {format_ip(pkt.src)} "
                                          f"cannot leave on {dev} (route_localnet=0)"))
                continue
            out.append((with_step(st._replace(out_iface=dev or "", prob=st.prob * share), text, result.route),
                        gateway))
        return out

    def _rerouted(self, groups: list[tuple[int | None, list[WalkState]]], original: WalkState,
                  finished: list) -> list[tuple[int | None, list[WalkState]]]:
        """``groups`` (nexthop, states) after the re-route the kernel does when mangle or nat
        changed a local packet's destination or mark (ip_route_me_harder)."""
        out = []
        for gateway, states in groups:
            kept = [s for s in states if s.pkt.dst == original.pkt.dst and s.mark == original.mark]
            if kept:
                out.append((gateway, kept))
            for s in states:
                if not (s.pkt.dst == original.pkt.dst and s.mark == original.mark):
                    out += [(gw, [again]) for again, gw in self._route_output(s, finished, initial=False)]
        return out

    # ------------------------------------------------------------ tables
    def _raw(self, hook: str, st: WalkState, finished: list, *, looped: bool = False) -> list[WalkState]:
        """The raw table runs before conntrack: its rules see no connection state (INVALID).
        A packet looped back through lo (``looped``) still carries the connection it had on its
        way out: raw sees that, and CT --notrack leaves it alone (xt_CT: "Previously seen")."""
        if self.tables["raw"].is_empty(hook):
            return [st]
        bits = st.ctbits
        if looped:
            return [s._replace(ctbits=bits) for s in self._tables(hook, ("raw",), [st], finished)]
        states = self._tables(hook, ("raw",), [st._replace(ctbits=CT_INVALID)], finished)
        # CT --notrack / NOTRACK leaves the packet UNTRACKED: conntrack then gives it no connection.
        return [s if s.ctbits == CT_UNTRACKED else s._replace(ctbits=bits) for s in states]

    def _tables(self, hook: str, names: tuple[str, ...], states: list[WalkState],
                finished: list, ctx: NatContext | None = None) -> list[WalkState]:
        active = self._active.get((hook, names))
        if active is None:
            active = self._active[(hook, names)] = tuple(n for n in names if not self.tables[n].is_empty(hook))
        for name in active:
            table = self.tables[name]
            if not states:
                break
            nxt: list[WalkState] = []
            for st in states:
                for res in table.walk(hook, st, ctx, self.budget):
                    self._sort(res, name, hook, nxt, finished)
            states = merge_states(nxt) if len(nxt) > MERGE_FROM else nxt
        return states

    def _sort(self, res: ChainResult, table: str, hook: str, nxt: list, finished: list) -> None:
        verdict = res.verdict
        if verdict == "ACCEPT":
            nxt.append(res.state)
        elif verdict == "DROP":
            why = res.detail or f"dropped by {stopped_at(table, hook, res.state)}"
            finished.append(self._end(res.state, "drop", why))
        elif verdict == "REJECT":
            last = last_step(res.state.steps)
            why = f"rejected by {table}/{last.chain} #{last.rule_index} ({res.detail})"
            for answered, st, note, answer in reject_answer(self.fib, self.tables, self.budget, res.state, res.detail,
                                                            nft=self.nft):
                if answered:
                    finished.append(self._end(st, "reject", why, answer=answer))
                else:
                    finished.append(self._end(st, "drop", f"{why}, but its answer was stopped: {note}"))
        else:   # UNKNOWN target or NFQUEUE: it may stop the packet or let it continue
            st = res.state._replace(exact=False)
            nxt.append(st)
            why = ("a userspace program (NFQUEUE) may have dropped the packet" if verdict == "QUEUE"
                   else "unknown target may have stopped the packet")
            finished.append(self._end(st, "drop", why))

    def _answer_or_not(self, st: WalkState, why: str, icmp: tuple[int, int], finished: list) -> None:
        """The kernel's own ICMP error (routing refused the packet, or its TTL ran out): a locally
        generated packet that crosses OUTPUT like REJECT's answer, where a rule or policy can stop
        it (then the sender sees a drop)."""
        for answered, out, note, answer in reject_answer(self.fib, self.tables, self.budget, st, "", icmp=icmp,
                                                         nft=self.nft):
            if answered:
                finished.append(self._end(out, "reject", why, answer=answer))
            else:
                finished.append(self._end(out, "drop", f"{why}, but the ICMP error was stopped: {note}"))


    def _nat(self, hook: str, manip: str, states: list[WalkState], finished: list,
             ctx: NatContext | None = None) -> list[WalkState]:
        if self._known is not None:
            conn, direction = self._known
            out = []
            for st in states:
                new = translate_related(st.pkt, conn, manip) if direction == "related" else \
                    translate_known(st.pkt, conn, direction, manip)
                if new != st.pkt:
                    st = with_step(st._replace(pkt=new),
                                         f"conntrack: {'NAT' if direction == 'original' else 'un-NAT'} "
                                         f"{st.pkt.describe()} → {new.describe()}")
                out.append(st)
            return out
        table = self.tables["nat"]
        out = []
        for st in states:
            if not st.ctbits & CT_NEW:
                out.append(st)       # no conntrack entry (INVALID): the nat table is not consulted
                continue
            if table.is_empty(hook):
                out.append(st)
                continue
            for res in table.walk(hook, st, ctx, self.budget):
                if res.verdict != "ACCEPT":
                    self._sort(res, "nat", hook, out, finished)
                    continue
                s = res.state
                if s.pkt != st.pkt:
                    s = with_ctbits(s, s.ctbits | (CT_DNAT if manip == "dst" else CT_SNAT))
                out.append(s)
        return out

    # ------------------------------------------------------------ helpers
    def _end(self, st: WalkState, verdict: str, reason: str, *, next_hop: int | None = None,
             route_step: str = "", answer: Packet | None = None) -> Outcome:
        if route_step:
            st = with_step(st, route_step)
        conn = None
        if verdict in ("forward", "local") and not st.ctbits & CT_UNTRACKED:
            if self._known is None:
                conn = Connection(self._start, st.pkt.reversed(), st.ctmark)
            else:
                conn = self._known[0]
        return Outcome(NODE_VERDICTS[verdict], st.prob, st.exact and not st.assume, st.pkt, st.in_iface or None,
                       st.out_iface or None if verdict == "forward" else None,
                       next_hop if verdict == "forward" else None, st.masquerade, steps_tuple(st.steps),
                       reason, conn, st.mark, st.random_ports, answer, st.meta.recent if st.meta else frozenset())
