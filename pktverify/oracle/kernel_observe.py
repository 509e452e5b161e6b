"""What the kernel did to one probe of the kernel lab (:mod:`.kernel_lab`), read from what it saw.

The lab watches a probe three ways: conntrack's NEW events (the post-NAT tuple; an entry also
says "not dropped"), raw packet sockets on the peers' interfaces (:data:`SNIFFER`, run in each
peer namespace: which peer received the packet, and any ICMP error or TCP reset sent back), and
the client socket's error. :func:`classify` turns these into one :class:`KernelObservation`.
"""

from __future__ import annotations

import json
from typing import NamedTuple

__all__ = ["KernelObservation", "SNIFFER", "post_nat_of", "classify"]

_PEER_IFACE = {"lan": "eth0", "pod": "cni0"}     # the node interface facing each peer


class KernelObservation(NamedTuple):
    """What the kernel did to one probe.

    ``verdict``: forward / local / drop / reject. ``post_nat``: (src, sport,
    dst, dport) after NAT, for forward and local. ``out_iface``: the node
    interface the packet left by (forward only).
    """
    verdict: str
    post_nat: tuple[str, int, str, int] | None
    out_iface: str | None
    detail: str


# Runs inside a peer namespace: print every IPv4 TCP/UDP/ICMP packet received on peer0
# as one JSON line; "ready" once the socket is bound. Raw bytes, no scapy: it must be cheap.
SNIFFER = r"""
import json, select, socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
s.bind(("peer0", 0))
print("ready", flush=True)
def ports(b, off, proto):
    if proto in (6, 17) and len(b) >= off + 4:
        return struct.unpack("!HH", b[off:off + 4])
    return (0, 0)
while True:
    if not select.select([s], [], [], 0.05)[0]:
        continue
    b, addr = s.recvfrom(65535)
    if addr[2] == socket.PACKET_OUTGOING or len(b) < 20:
        continue
    ihl = (b[0] & 15) * 4
    proto = b[9]
    rec = {"proto": proto, "src": socket.inet_ntoa(b[12:16]), "dst": socket.inet_ntoa(b[16:20])}
    rec["sport"], rec["dport"] = ports(b, ihl, proto)
    if proto == 6 and len(b) >= ihl + 14:
        rec["flags"] = b[ihl + 13]
    if proto == 1 and len(b) >= ihl + 8:
        rec["type"], rec["code"] = b[ihl], b[ihl + 1]
        inner = b[ihl + 8:]
        if len(inner) >= 20:
            iihl = (inner[0] & 15) * 4
            rec["inner"] = [inner[9], socket.inet_ntoa(inner[12:16]), socket.inet_ntoa(inner[16:20]),
                            *ports(inner, iihl, inner[9])]
    print(json.dumps(rec), flush=True)
"""


def post_nat_of(event_text: str, src: str, sport: int) -> tuple[str, int, str, int] | None:
    """The post-NAT (src, sport, dst, dport) of the connection ``src:sport`` opened, from NEW events."""
    for line in event_text.splitlines():
        fields = [f.split("=", 1) for f in line.split() if "=" in f]
        orig = [v for k, v in fields if k in ("src", "dst", "sport", "dport")]
        if len(orig) < 8 or orig[0] != src or int(orig[2]) != sport:
            continue
        # The reply tuple's source is the post-DNAT destination, its destination the post-SNAT source.
        r_src, r_dst, r_sport, r_dport = orig[4:8]
        return (r_dst, int(r_dport), r_src, int(r_sport))
    return None


def classify(proto: str, client: str, src: str, sport: int, post_nat, seen: dict[str, str],
              errname: str, delivered=None) -> KernelObservation:
    """The kernel's verdict from what was seen: conntrack's entry, the peers' captures, the client's error."""
    proto_num = 6 if proto == "tcp" else 17
    arrived = []            # peers that received the (post-NAT) probe itself
    untracked = None        # without a conntrack entry (NOTRACK): the probe as a peer received it (the sniffers
                            # see only incoming packets, so the client's own peer counts when it comes back)
    answered = ""           # what the client received back
    for peer, text in seen.items():
        for line in text.splitlines():
            rec = json.loads(line)
            first = proto_num == 17 or rec.get("flags", 0) & 0x12 == 0x02      # a SYN, or the datagram
            if post_nat and rec["proto"] == proto_num and (rec["src"], rec["sport"], rec["dst"], rec["dport"]) == post_nat:
                if first:
                    arrived.append(peer)
                    continue
            if post_nat is None and rec["proto"] == proto_num and first \
                    and (rec["src"], rec["sport"]) == (src, sport) and untracked is None:
                untracked = ((rec["src"], rec["sport"], rec["dst"], rec["dport"]), peer)
                continue
            if peer == client and rec["dst"] == src:
                if rec["proto"] == 1 and rec.get("type") in (3, 11):
                    inner = rec.get("inner", [])
                    if inner[:2] == [proto_num, src] and inner[3:4] == [sport]:
                        what = "unreachable" if rec["type"] == 3 else "time exceeded"
                        answered = f"icmp {what} code {rec['code']} from {rec['src']}"
                elif rec["proto"] == 6 and rec["dport"] == sport and rec.get("flags", 0) & 0x04:
                    answered = f"tcp reset from {rec['src']}"
    if post_nat is not None:
        if arrived:
            return KernelObservation("forward", post_nat, _PEER_IFACE[arrived[0]], f"received by {arrived[0]}")
        if delivered is not None:
            return KernelObservation("local", post_nat, None, "conntrack entry, delivered locally")
        # Confirmed, yet neither a peer nor the input hook saw it: the node's own packet, dropped
        # on its way back in through lo (its entry was confirmed at POSTROUTING).
    elif untracked is not None:       # forwarded without a connection: untracked, so not NATed
        tuple_, peer = untracked
        return KernelObservation("forward", tuple_, _PEER_IFACE[peer], f"received by {peer}, no conntrack entry")
    elif delivered is not None:       # passed the input hook without a connection: untracked, so not NATed
        return KernelObservation("local", delivered, None, "delivered locally, no conntrack entry (untracked)")
    tracked = "conntrack entry, but no peer or local socket received it; " if post_nat is not None else ""
    if client == "node":
        if errname in ("ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EACCES"):
            return KernelObservation("reject", None, None, f"{tracked}socket error {errname}")
        return KernelObservation("drop", None, None, f"{tracked}socket error {errname}")
    if answered:
        return KernelObservation("reject", None, None, f"{tracked}{answered}")
    return KernelObservation("drop", None, None, f"{tracked or 'no conntrack entry, '}no answer")
