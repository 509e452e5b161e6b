"""The stages of each netfilter hook on a node with an nftables ruleset, in the kernel's order.

On a hook every base chain runs in priority order (nf_hook_entries_grow), iptables' own tables
among them at their fixed priorities (raw -300, mangle -150, filter 0, security 50), and the
node's nft base chains (families ip and inet) at theirs. ``accept`` ends one base chain only: the
next one still runs; ``drop`` and ``reject`` are final. Base chains of equal priority run in
reverse registration order: the dump's order reversed stands for it (a dump cannot always tell;
the step says so), and an nft chain runs before an iptables table of equal priority (whose
module was loaded first, at boot: an assumption, noted the same way), except the tables of
iptables-nft the dump lists (``NftRuleset.iptables_nft``): they run at their place in it
(kernel-checked: an ``ip nat`` re-created after kube-proxy's table translates before it does).

NAT (nf_nat_core.c, nf_nat_register_fn): every nat chain of a hook, the iptables nat table's
among them, runs inside the one NAT hook at its fixed place (-100 on prerouting and output,
100 on input and postrouting), in priority order among themselves, for a connection's first
packet only; the first that translates ends NAT on that hook (later nat chains do not run at
all). Known connections are translated by conntrack there, as without nft.

The NAT-done status bits (IPS_DST_NAT_DONE, IPS_SRC_NAT_DONE) of a new connection are set as each
NAT hook passes, where the dumps tell whether the kernel runs NAT hooks at all (:meth:`NftNode._nat_active`);
an nft chain at a NAT hook's own priority may run before or after it, so there they are not known.

Chains before conntrack (priority -200 or lower, as iptables' raw; kernel-checked) see no
connection (``ct state`` invalid; other ct keys match nothing, not even with ``!=``) and
``notrack`` there leaves the packet untracked. On output, a ``route`` chain re-routes
a packet whose destination or mark it changed, as mangle OUTPUT does.
"""

from __future__ import annotations

from typing import NamedTuple

from ..bulk import cyclic_gc_paused
from ..model.nft import NftRuleset
from .fib import Fib
from .nft_exprs import CT_TEMPLATE, DST_DONE, NAT_KNOWN, SRC_DONE, ZONE_BITS
from .nft_nat import NAT_KINDS
from .nft_walk import NftTableEval
from .route_checks import with_step
from .state import CT_DNAT, CT_INVALID, CT_NEW, CT_SNAT, CT_UNTRACKED, MERGE_FROM, merge_states, with_ctbits

__all__ = ["NftNode", "IPT_STAGES"]

# iptables' tables per hook at their fixed priorities (NF_IP_PRI_*); "nat" is the NAT hook.
IPT_STAGES = {"PREROUTING": (("raw", -300), ("mangle", -150), ("nat", -100)),
              "INPUT": (("mangle", -150), ("filter", 0), ("security", 50), ("nat", 100)),
              "FORWARD": (("mangle", -150), ("filter", 0), ("security", 50)),
              "OUTPUT": (("raw", -300), ("mangle", -150), ("nat", -100), ("filter", 0), ("security", 50)),
              "POSTROUTING": (("mangle", -150), ("nat", 100))}
_CONNTRACK = -200          # NF_IP_PRI_CONNTRACK
_NAT_PRIO = {hook: prio for hook, stages in IPT_STAGES.items() for name, prio in stages if name == "nat"}


class Stage(NamedTuple):
    """One step of a hook: an iptables table (``kind`` "ipt"), an nft base chain ("nft"), or the
    NAT hook ("nat": ``members`` its chains in order, each ``("ipt", None, "nat")`` or
    ``("nft", table, chain)``)."""
    kind: str
    priority: int
    name: str
    table: NftTableEval | None = None
    members: tuple = ()
    reroute: bool = False
    note: str = ""


class NftNode:
    """A node's nft ruleset compiled, and each hook's stage list (built once per node)."""

    def __init__(self, ruleset: NftRuleset, fib: Fib, ipt_tables: dict, shared: dict | None = None) -> None:
        """``ipt_tables``: the node's compiled iptables tables (an empty one shares no priority);
        ``shared``: compiled chains shared between nodes (:mod:`.nft_share`)."""
        self.tables = [NftTableEval(t, fib, ruleset.source, shared) for t in ruleset.tables
                       if t.family in ("ip", "inet")]
        self._ipt = ipt_tables
        # iptables-nft table name -> how many nft tables the dump lists before it
        order = ruleset.iptables_nft if len(self.tables) == len(ruleset.tables) else ()
        self._ipt_at = {e.split()[1]: sum(not o.startswith("iptables ") for o in order[:i])
                        for i, e in enumerate(order) if e.startswith("iptables ")}
        self.plan = {hook: self._plan(hook) for hook in IPT_STAGES}
        self.nat_active = self._nat_active()

    def _nat_active(self) -> bool | None:
        """Whether the kernel runs its four IPv4 NAT hooks here: once any ip or inet nat chain exists,
        or the iptables nat table (nf_nat_register_fn registers them all for the first). True when an nft
        nat chain or a rule in an iptables nat built-in chain says so, False when there is neither and no
        ``*nat`` in iptables-save, None when iptables-save shows an empty nat table (whether iptables-nft
        made its base chains, the dump cannot tell): then the NAT-done bits stay unknown."""
        if any(c.type == "nat" and c.hook for t in self.tables for c in t.table.chains):
            return True
        nat = self._ipt.get("nat")
        chains = nat.table.chains if nat is not None else {}
        if any(c.rules for name, c in chains.items() if name in _NAT_PRIO):
            return True
        return None if any(c.declaration for c in chains.values()) else False

    def compile_all(self) -> None:
        """Compile every chain of every table now (``NodeTracer(compile_all=True)``)."""
        with cyclic_gc_paused():
            for table in self.tables:
                table.compile_all()

    def _plan(self, hook: str) -> tuple[Stage, ...]:
        entries, nat_members, index = [], [], 0
        placed: dict[str, float] = {}           # iptables-nft's tables at their place in the dump
        for position, table in enumerate([*self.tables, None]):
            placed.update((name, index + 0.5) for name, at in self._ipt_at.items()
                          if at == position or (table is None and at > position))
            if table is None:
                break
            for chain in table.table.chains:
                index += 1
                if chain.hook != hook.lower() or chain.type not in ("filter", "nat", "route"):
                    continue
                key = (chain.priority, 0, -index)
                if chain.type == "nat":
                    nat_members.append((key, ("nft", table, chain.name)))
                elif chain.rules or chain.policy == "drop":
                    entries.append((key, Stage("nft", chain.priority, chain.name, table,
                                               reroute=hook == "OUTPUT" and chain.type == "route")))
        for name, prio in IPT_STAGES[hook]:
            # Newest first at equal priority: a table the dump lists after nft tables runs before their chains;
            # one not in the dump (iptables-legacy) is taken as registered first, at boot.
            key = (prio, 0, -placed[name]) if name in placed else (prio, 1, 0)
            if name == "nat":
                members = sorted(nat_members + [(key, ("ipt", None, "nat"))], key=lambda e: e[0])
                entries.append(((prio, 1, 0), Stage("nat", prio, "nat", members=tuple(m for _k, m in members),
                                                    reroute=hook == "OUTPUT")))
            else:
                entries.append((key, Stage("ipt", prio, name, reroute=hook == "OUTPUT" and name == "mangle")))
        entries.sort(key=lambda e: e[0])
        stages = self._noted(hook, [s for _k, s in entries])
        # What cannot act is left out (an iptables table without rules; the NAT hook of a node
        # without nat chains still translates known connections: kept).
        return tuple(s for s in stages if s.kind != "ipt" or self._acts(hook, s))

    def _acts(self, hook: str, stage: Stage) -> bool:
        """Whether a stage can do anything on ``hook`` (an iptables table without rules cannot)."""
        if stage.kind == "ipt":
            return not self._ipt[stage.name].is_empty(hook)
        if stage.kind == "nat":
            return any(k == "nft" or not self._ipt["nat"].is_empty(hook) for k, _t, _c in stage.members)
        return True

    def _noted(self, hook: str, stages: list[Stage]) -> list[Stage]:
        """nft chains that share their priority with another stage: the step says the order is assumed."""
        out = []
        where = "iptables-nft's tables at their place in it" if self._ipt_at else "nft before iptables"
        for s in stages:
            peers = [o for o in stages if o is not s and o.priority == s.priority and self._acts(hook, o)]
            if s.kind == "nft" and peers:
                names = ", ".join(f"{o.table.label}/{o.name}" if o.kind == "nft" else f"iptables {o.name}"
                                  for o in peers)
                s = s._replace(note=f"nft: {s.table.label}/{s.name} shares priority {s.priority} on {hook.lower()} "
                                    f"with {names}: taken to run in reverse registration order (the dump's order "
                                    f"reversed, {where}; a dump cannot always tell)")
            out.append(s)
        return out

    # ------------------------------------------------------------ running
    def run(self, walk, hook: str, states: list, finished: list, ctx=None, *, nat: bool = True,
            looped: bool = False) -> list:
        """The states that get through ``hook``'s stages (the others end in ``finished``)."""
        if hook in ("INPUT", "FORWARD", "POSTROUTING"):      # no conntrack stage, no re-route: a plain run
            for stage in self.plan[hook]:
                if not states:
                    break
                states = self._stage(walk, hook, stage, states, finished, ctx, nat)
            return states
        return self.run_groups(walk, hook, [(None, states)], finished, ctx, nat=nat, looped=looped)[0][1] \
            if states else []

    def run_groups(self, walk, hook: str, groups: list, finished: list, ctx=None, *, nat: bool = True,
                   looped: bool = False, original=None) -> list:
        """``groups`` (nexthop, states) through ``hook``'s stages; on output, re-routed after a stage
        that may change the route (mangle, a route chain, NAT) as ``walk._rerouted`` does."""
        bits = None
        if not looped and self.nat_active is not None and walk._known is None:     # a new connection from here:
            groups = [(gw, [with_ctbits(s, s.ctbits | NAT_KNOWN) if s.ctbits & CT_NEW else s for s in sts])
                      for gw, sts in groups]                                       # its NAT-done bits are followed
        for stage in self.plan[hook]:
            if stage.priority <= _CONNTRACK and stage.kind != "nat" and hook in ("PREROUTING", "OUTPUT"):
                if bits is None and not looped and groups and groups[0][1]:
                    bits = groups[0][1][0].ctbits
                    groups = [(gw, [s._replace(ctbits=CT_INVALID) for s in sts]) for gw, sts in groups]
            elif bits is not None:
                groups, bits = _tracked(groups, bits), None
            groups = [(gw, self._stage(walk, hook, stage, sts, finished, ctx, nat)) for gw, sts in groups]
            if stage.reroute and original is not None:
                groups = walk._rerouted(groups, original, finished)
        if bits is not None:
            groups = _tracked(groups, bits)
        return groups

    def _stage(self, walk, hook: str, stage: Stage, states: list, finished: list, ctx, nat: bool) -> list:
        if not states:
            return states
        if stage.kind == "ipt":
            return walk._tables(hook, (stage.name,), states, finished, ctx)
        if stage.kind == "nat":
            return self._nat(walk, hook, stage, states, finished, ctx) if nat else states
        nxt: list = []
        table = stage.table
        if self.nat_active and stage.priority == _NAT_PRIO.get(hook):      # before or after the NAT hook: the
            states = [with_ctbits(s, s.ctbits & ~NAT_KNOWN) for s in states]  # registration order decides
        for st in states:
            if stage.note:
                st = with_step(st, stage.note)
            for res in table.walk(stage.name, st, ctx, walk.budget):
                walk._sort(res, table.label, hook, nxt, finished)
        return merge_states(nxt) if len(nxt) > MERGE_FROM else nxt

    def _nat(self, walk, hook: str, stage: Stage, states: list, finished: list, ctx) -> list:
        """The NAT hook: conntrack's translation for a known connection; for a new one its nat
        chains in order until one translates (or stops the packet)."""
        manip = "dst" if hook in ("PREROUTING", "OUTPUT") else "src"
        if walk._known is not None:
            return walk._nat(hook, manip, states, finished, ctx)
        out: list = []
        for st in states:
            if not st.ctbits & CT_NEW:
                out.append(st)        # no conntrack entry: nat chains are not consulted
                continue
            pending = [st]
            for kind, table, chain in stage.members:
                if kind == "ipt" and walk.tables["nat"].is_empty(hook):
                    continue
                nxt: list = []
                for s in pending:
                    results = walk.tables["nat"].walk(hook, s, ctx, walk.budget) if kind == "ipt" else \
                        table.walk(chain, s, ctx, walk.budget)
                    label = "nat" if kind == "ipt" else table.label
                    for res in results:
                        if res.verdict != "ACCEPT":
                            walk._sort(res, label, hook, nxt, finished)
                        elif res.detail in NAT_KINDS:
                            t = res.state
                            if t.pkt != s.pkt:
                                t = with_ctbits(t, t.ctbits | (CT_DNAT if manip == "dst" else CT_SNAT))
                            out.append(t)          # translated: later nat chains do not run
                        else:
                            nxt.append(res.state)
                pending = nxt
            out.extend(pending)
        if self.nat_active:         # the NAT hook set the connection's done bit (a binding, or the null one)
            done = DST_DONE if manip == "dst" else SRC_DONE
            out = [with_ctbits(s, s.ctbits | done) if s.ctbits & NAT_KNOWN else s for s in out]
        return out

    def answer_path(self, *, local: bool = False) -> tuple:
        """``(hook, table name, walker)`` of what a REJECT's (or the kernel's) answer crosses: iptables'
        tables (walker None) and the nft filter and route chains of output and postrouting, by
        priority (no nat: the answer is RELATED to the rejected packet's connection); ``local``: an
        answer to the node itself, which comes back in by ``lo`` through prerouting and input too."""
        path = []
        for hook in ("OUTPUT", "POSTROUTING") + (("PREROUTING", "INPUT") if local else ()):
            for stage in self.plan[hook]:
                if stage.kind == "ipt" and stage.name != "nat" and (hook != "POSTROUTING" or stage.name == "mangle"):
                    path.append((hook, stage.name, None))
                elif stage.kind == "nft":
                    table, name = stage.table, stage.name
                    path.append((hook, table.label, lambda s, b, t=table, c=name: t.walk(c, s, None, b)))
        return tuple(path)

    def output(self, walk, st, gateway, finished: list) -> None:
        """OUTPUT then POSTROUTING for one routing decision (as ``_NodeWalk._output``)."""
        groups = self.run_groups(walk, "OUTPUT", [(gateway, [st])], finished, original=st)
        for gw, states in groups:
            for s in states:
                if s.out_iface == "lo":
                    walk._loopback(s, finished)
                else:
                    walk._postrouting([s], gw if gw is not None else s.pkt.dst, finished)


def _tracked(groups: list, bits: int) -> list:
    """Past conntrack: a packet left untracked (notrack) keeps no connection, the others get theirs; a
    new one is made in the zone of the template ``ct zone set`` gave the packet (zone 0 without one)."""
    return [(gw, [s if s.ctbits == CT_UNTRACKED else s._replace(ctbits=bits | (
        s.ctbits & ZONE_BITS if s.ctbits & CT_TEMPLATE and bits & CT_NEW else 0)) for s in sts]) for gw, sts in groups]
