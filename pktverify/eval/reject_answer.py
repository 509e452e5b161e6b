"""Whether a rejected packet's answer (an ICMP error or a TCP RST, REJECT's or the kernel's own)
gets back out of the node: it is a locally generated packet that crosses OUTPUT and mangle
POSTROUTING, where a rule can stop it, and, answering the node's own packet, PREROUTING and INPUT
on its way back in by ``lo``.
"""

from __future__ import annotations

from ..model.addresses import format_ip
from ..model.packet import ICMP, TCP, Packet
from .chains import CompiledTable
from .fib import Fib
from .state import CT_RELATED, Budget, TraceMeta, WalkState, last_step, steps_tuple

__all__ = ["reject_answer", "stopped_at"]

# ICMP destination-unreachable codes of REJECT --reject-with.
_ICMP_CODES = {"icmp-net-unreachable": 0, "icmp-host-unreachable": 1, "icmp-proto-unreachable": 2,
               "icmp-port-unreachable": 3, "icmp-net-prohibited": 9, "icmp-host-prohibited": 10,
               "icmp-admin-prohibited": 13}


def reject_answer(fib: Fib, tables: dict[str, CompiledTable], budget: Budget, st: WalkState, with_: str, *,
                  icmp: tuple[int, int] | None = None, nft=None) -> list[tuple[bool, WalkState, str, Packet | None]]:
    """Whether REJECT's answer (ICMP error or TCP RST) gets out: [(answered, state, why not, the answer)].

    The kernel sends it as a locally generated packet: it crosses OUTPUT
    (raw, mangle, filter; not nat, as its conntrack state is RELATED to the
    rejected packet's entry) and mangle POSTROUTING, where a rule can drop
    it; then the client sees nothing, as after DROP. Checked against the
    kernel: an OUTPUT ``--ctstate RELATED -j DROP`` silences both kinds. ``nft``: the node's nft
    base chains (:class:`.nft_hooks.NftNode`), whose filter and route chains on output and
    postrouting the answer crosses too, in priority order.
    The RST comes from the rejected packet's destination; the ICMP error
    from that destination when it is local, else from the address routing
    picks towards the client.
    """
    pkt = st.pkt
    route = fib.lookup(pkt.src, src=pkt.dst)
    dev = route.route.dev if route.route is not None else None
    if route.kind not in ("unicast", "local", "broadcast"):
        return [(False, st, f"no route back to {format_ip(pkt.src)} ({route.kind})", None)]
    if route.kind == "local":
        dev = "lo"          # an answer to the node itself leaves by lo, as every local delivery does
    if with_ == "tcp-reset":
        answer = Packet(TCP, pkt.dst, pkt.src, pkt.dport, pkt.sport, tcp_flags=0x14)
    else:
        if fib.addr_type(pkt.dst) == "LOCAL":
            src = pkt.dst
        elif route.route is not None and route.route.prefsrc is not None:
            src = route.route.prefsrc
        else:
            src = fib.masquerade_source(dev or "", route.next_hop or pkt.src) or 0
        kind, code = icmp if icmp is not None else (3, _ICMP_CODES.get(with_, 3))
        answer = Packet(ICMP, src, pkt.src, 0, 0, 0, kind, code)
    # The answer is a second packet through the same rules: a one-token limit the packet used
    # is empty for it (found by the kernel campaign, seed 4242).
    spent = frozenset((s.table, s.chain, s.rule_index) for s in steps_tuple(st.steps) if s.rule_index is not None)
    # No socket owns it (the kernel's ICMP socket has no file, the RST no socket): -m owner
    # --uid-owner does not match it (found by the kernel campaign, seed 424242).
    meta = TraceMeta(answer, False, None, None, spent=spent)
    states = [WalkState(answer, "", dev or "", 0, CT_RELATED, st.prob, st.exact, (), meta=meta)]
    out: list[tuple[bool, WalkState, str, Packet | None]] = []
    path = _answer_path(nft, route.kind == "local")
    for hook, name, walker in path:
        table = tables.get(name)
        if walker is None and table.is_empty(hook):
            continue
        passed = []
        for state in states:
            for res in (table.walk(hook, state, None, budget) if walker is None else walker(state, budget)):
                if res.verdict == "ACCEPT" or res.verdict == "UNKNOWN":
                    passed.append(res.state if res.verdict == "ACCEPT" else res.state._replace(exact=False))
                if res.verdict != "ACCEPT":
                    # REJECT of an ICMP error or a RST sends nothing more: it is a drop.
                    out.append((False, st._replace(prob=res.state.prob, exact=_exact(res.state)),
                                f"{res.verdict} by {stopped_at(name, hook, res.state)}"
                                f" (the answer: {answer.describe()})", answer))
        states = passed
    for state in states:
        out.append((True, st._replace(prob=state.prob, exact=_exact(state)), "", answer))
    return out


_ANSWER_PATH = tuple((hook, name, None) for hook, name in (("OUTPUT", "raw"), ("OUTPUT", "mangle"), ("OUTPUT", "filter"),
                                                        ("OUTPUT", "security"), ("POSTROUTING", "mangle")))
# An answer to the node's own packet comes back in by lo: PREROUTING and INPUT (no nat: RELATED),
# where a DROP or REJECT silences it too (found by the nft kernel campaign, seeds 1 and 7).
_LOCAL_PATH = tuple((hook, name, None) for hook, name in (("PREROUTING", "raw"), ("PREROUTING", "mangle"),
                                                       ("INPUT", "mangle"), ("INPUT", "filter"), ("INPUT", "security")))


def _answer_path(nft, local: bool) -> tuple:
    """What the answer crosses: OUTPUT and mangle POSTROUTING, and PREROUTING and INPUT too when it
    answers the node itself (``nft``: the node's nft base chains among iptables' tables)."""
    if nft is not None:
        return nft.answer_path(local=local)
    return _ANSWER_PATH + _LOCAL_PATH if local else _ANSWER_PATH


def stopped_at(table: str, hook: str, st: WalkState) -> str:
    """Where a table walk stopped the packet: ``filter/KUBE-X #3`` or ``filter/FORWARD policy``."""
    last = last_step(st.steps)
    if last is None:
        return f"{table}/{hook}"
    return f"{table}/{last.chain} {'policy' if last.rule_index is None else f'#{last.rule_index}'}"


def _exact(answer: WalkState) -> bool:
    """Whether the answer's fate is certain: a world that assumed how a may-match rule answers
    (-m length of the ICMP error, say) is one alternative, its probability an upper bound (kept
    exact, two such worlds summed to 2: found by the kernel campaign, seed 99991)."""
    return answer.exact and not answer.assume
