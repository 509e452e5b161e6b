"""The pod's side of a walk: its own network namespace, the bridge, the pod that receives.

A pod's packet first meets the pod's own route lookup (on-link: ARP on the bridge; else via
its gateway, the node); one for a pod behind the same bridge is bridged (seen by iptables only
with br_netfilter); at the far end the receiving pod's kernel checks the source first
(:func:`.pod_stack.martian_at_pod`). A mixin of :class:`.cluster_walk.ClusterWalker`, whose
``states``, ``specs``, ``tracers`` and ``pods_by_ip`` it reads.
"""

from __future__ import annotations

import dataclasses

from ..model.addresses import format_ip, format_network, in_network
from ..model.cluster import PodSpec
from ..model.packet import Packet
from ..model.path import Endpoint, Hop, PathEnd, PathEndKind
from .facts import UNKNOWN_PORT
from .pod_stack import PodStack, martian_at_pod, pod_stack
from .walk_cursor import Cursor, path_end

__all__ = ["PodHops"]


class PodHops:
    """Where a pod's packet goes before the node's stack sees it, and how a pod receives one."""

    def pod_stack(self, pod: PodSpec) -> PodStack:
        """The pod's eth0 address, prefix and gateway (made once per pod)."""
        stack = self._stacks.get(pod.key)
        if stack is None:
            stack = self._stacks[pod.key] = pod_stack(self.specs[pod.node], self.states[pod.node], pod)
        return stack

    def _pod_first_hop(self, pod: PodSpec, packet: Packet, hop: Hop):
        """The pod's own route lookup: on-link (ARP on the bridge: a pod behind it, the node for an
        address of its own, or nobody: dropped in the pod) or via the gateway (the node's stack)."""
        stack = self.pod_stack(pod)
        bridge = stack.bridge
        dst = packet.dst
        if not stack.on_link(dst):
            if stack.gateway is None:
                reason = (f"network unreachable in pod {pod.key}: {format_ip(dst)} is outside its subnet "
                          f"{format_network(stack.network, stack.mask)} and it has no default route "
                          f"({pod.node}:{bridge} has no address)")
                hop._note = f"sent by pod {pod.key}; refused there: {reason}"
                return PathEnd(PathEndKind.REJECT, 1.0, packet, (hop,), None, reason)
            hop._note = f"sent by pod {pod.key} via its gateway {format_ip(stack.gateway)} ({pod.node}:{bridge})"
            return Cursor(pod.node, bridge, packet, 1.0, [hop])
        sysctls = self.states[pod.node].sysctls
        owner = next((p for p in self.pods_by_ip.get(dst, ()) if p.node == pod.node), None)
        if owner is not None:
            hop._note = f"sent by pod {pod.key} on-link to {format_ip(dst)} (a pod behind {pod.node}:{bridge})"
            if not sysctls.bridge_nf_call_iptables:
                # Without br_netfilter the bridge forwards the frame and no iptables rule sees it.
                cur = Cursor(pod.node, bridge, packet, 1.0, [hop])
                cur.hops.append(Hop(f"{pod.node}:{bridge}", packet, f"bridged on {bridge} (bridge-nf-call-iptables=0"
                                                                   f" in {sysctls.source}: iptables does not see it)"))
                return self._received_any(cur, packet, [p for p in self.pods_by_ip[dst] if p.node == pod.node])
            return Cursor(pod.node, bridge, packet, 1.0, [hop], physout=UNKNOWN_PORT)
        if self._node_answers_arp(pod, stack, dst):
            hop._note = f"sent by pod {pod.key} on-link to {format_ip(dst)} (an address of node {pod.node})"
            return Cursor(pod.node, bridge, packet, 1.0, [hop])
        # The pod's name stays out of the reason: every pod of the subnet fails alike (one cause).
        reason = (f"no ARP answer for {format_ip(dst)} on {bridge} ({pod.node}): it is inside the pod subnet "
                  f"{format_network(stack.network, stack.mask)} (on-link) and nobody on the bridge owns it")
        hop._note = f"sent by pod {pod.key}; dropped there: {reason}"
        return PathEnd(PathEndKind.DROP, 1.0, packet, (hop,), None, reason)

    def _node_answers_arp(self, pod: PodSpec, stack: PodStack, dst: int) -> bool:
        """Whether the node answers the pod's ARP for ``dst`` on the bridge: an address of its own
        on any interface (arp_ignore=0), one on the bridge (1), one on the bridge whose subnet holds
        the pod's address (2); never (8)."""
        state = self.states[pod.node]
        mode = state.sysctls.arp_ignore(stack.bridge)
        if self.tracers[pod.node].fib.lookup(dst, None, pod.ip, 0, stack.bridge).kind != "local":
            return False
        if mode == 0:
            return True
        if mode >= 8:
            return False
        iface = state.interfaces.get(stack.bridge)
        mine = [a for a in (iface.addresses if iface is not None else ()) if a.ip == dst]
        return bool(mine) and (mode != 2 or any(in_network(pod.ip, a.ip & a.mask, a.mask) for a in mine))

    def _received_any(self, cur: Cursor, pkt: Packet, pods: list[PodSpec]) -> list[PathEnd]:
        """``pkt`` delivered behind the bridge to the pod that owns its address. Two pods holding
        one address (the violation pod-ip-uniqueness reports) both answer the ARP request; the
        bridge delivers to whichever answer came first, which no input tells: each is possible,
        so each gets an equal share marked inexact (its probability is no promise), not the
        first listed."""
        if len(pods) == 1:
            return [self._received(cur, pkt, pods[0])]
        ends = []
        for pod in pods:
            fork = dataclasses.replace(cur, probability=cur.probability / len(pods), hops=list(cur.hops), exact=False)
            end = self._received(fork, pkt, pod)
            ends.append(dataclasses.replace(end, reason=f"{end.reason} (or another: {len(pods)} pods behind "
                                                        f"{cur.node}:{self.specs[cur.node].bridge} hold "
                                                        f"{format_ip(pkt.dst)}; the first ARP answer wins)"))
        return ends

    def _received(self, cur: Cursor, pkt: Packet, pod: PodSpec) -> PathEnd:
        """``pkt`` at ``pod``'s eth0: its kernel drops a martian source, else a socket gets it."""
        martian = martian_at_pod(self.pod_stack(pod), pkt)
        if martian:
            cur.hops.append(Hop(f"pod:{pod.key}:eth0", pkt, martian))
            return path_end(cur, PathEndKind.DROP, pkt, martian)
        cur.hops.append(Hop(f"pod:{pod.key}:eth0", pkt, f"received by pod {pod.key}"))
        return path_end(cur, PathEndKind.ARRIVED, pkt, f"received by pod {pod.key}", Endpoint("pod", pod.key, pod.node))
