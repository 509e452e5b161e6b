"""br_netfilter's part of a node walk: a bridged frame stays bridged (FORWARD and POSTROUTING with
the bridge as ``-i``/``-o``, no routing decision) or, when PREROUTING changed its destination to
one routed elsewhere, is routed like any packet. Methods of the node walk (``walk``), kept here so
that :mod:`.node_trace` stays at its size.
"""

from __future__ import annotations

from .facts import UNKNOWN_PORT
from .route_checks import reverse_path, with_step
from .state import WalkState

__all__ = ["bridge_or_route", "bridged"]


def bridge_or_route(walk, st: WalkState, finished: list) -> WalkState | None:
    """br_netfilter (br_nf_pre_routing_finish) on a bridged frame: one for a host behind the
    bridge stays bridged; one whose destination PREROUTING changed is bridged on when its new
    route leaves by the same bridge (to the new destination's port), else routed like any.
    None: it was bridged (or dropped); else the state to route."""
    pkt, meta = st.pkt, st.meta
    if pkt.dst == walk._start.dst:
        if meta.physdev_out:
            walk._bridged(st, finished)
            return None
        return st
    new_route = walk.fib.lookup(pkt.dst, None, pkt.src, st.mark, st.in_iface)
    if new_route.kind == "unicast" and not new_route.route.nexthops and new_route.route.dev == st.in_iface:
        why = reverse_path(walk.node, walk.fib, pkt, st.in_iface)   # br_nf's ip_route_input checks the source
        if why:
            walk._rp_dropped(st, why, finished)
            return None
        walk._bridged(st._replace(meta=meta._replace(physdev_out=UNKNOWN_PORT)), finished)
        return None
    if meta.physdev_out:
        st = st._replace(meta=meta._replace(physdev_out=""))
    return st


def bridged(walk, st: WalkState, finished: list) -> None:
    """A frame bridged between two ports of one bridge, as br_netfilter shows it to iptables:
    FORWARD and POSTROUTING with ``-i``/``-o`` the bridge and no routing decision (so no TTL
    decrement, no martian checks); the frame goes to the destination's port on the bridge."""
    bridge = st.in_iface
    ports = " to ".join(f"port {name}" if name != UNKNOWN_PORT else "a pod's port"
                        for name in (st.meta.physdev_in, st.meta.physdev_out))
    st = with_step(st, f"bridged on {bridge} from {ports} (br_netfilter: not routed, TTL unchanged)")
    st = st._replace(out_iface=bridge)
    states = walk._tables("FORWARD", ("mangle", "filter", "security"), [st], finished) if walk.nft is None \
        else walk.nft.run(walk, "FORWARD", [st], finished)
    walk._postrouting(states, st.pkt.dst, finished)
