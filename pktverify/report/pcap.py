"""Flows as pcapng files that Wireshark shows hop by hop (scapy is imported here, at the edge).

One Interface Description Block per observation point, named as a person
recognises it (``pod:default/web-1:eth0``, ``node1:cbr0``, ``wire``, ...).
Each packet appears at each point with the headers it has there, in an
Ethernet frame with stable MACs derived from the point's name, correct
checksums (scapy computes them), and a per-packet comment saying what
happened there. TCP flows carry a consistent handshake (SYN, SYN-ACK, ACK
with matching sequence numbers) so Wireshark's TCP analysis recognises it.

Output is deterministic: timestamps start at a fixed epoch and advance by a
fixed step per packet; IP ids and sequence numbers are fixed; the same flows
give a byte-identical file.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from ..eval.flows import Flow
from ..model.addresses import format_ip
from ..model.packet import ICMP, SCTP, TCP, UDP, Packet
from ..scapy_quiet import import_scapy
from .files import OutputDir, write_file

__all__ = ["write_pcapng", "pcapng_bytes", "EPOCH", "STEP", "mac_for"]

EPOCH = 1_767_225_600          # 2026-01-01T00:00:00Z: a fixed, recognisable start
STEP = 0.001                    # one millisecond per observation
_CLIENT_ISN, _SERVER_ISN = 1000, 5000
_PAYLOAD = b"pktverify"


def mac_for(point: str) -> str:
    """A stable, locally administered unicast MAC for an observation point."""
    digest = hashlib.sha256(point.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def write_pcapng(flows: list[Flow], path: str | Path, *, folder: OutputDir | None = None) -> Path:
    """Write ``flows`` (one after the other) as pcapng; return the path written.

    ``path`` is a file path, or with ``folder`` a plain file name inside that
    folder. Either way the file is written safely (see :mod:`.files`): never
    through a symlink, never over a device or FIFO, never half-written.
    """
    data = pcapng_bytes(flows)
    if folder is not None:
        return folder.write(str(path), data)
    return write_file(path, data)


def pcapng_bytes(flows: list[Flow]) -> bytes:
    """The pcapng file of ``flows``, as bytes."""
    import_scapy()
    from scapy.utils import PcapNgWriter

    class _Writer(PcapNgWriter):
        """Into memory (scapy's own constructor opens a file by name), and only named
        interfaces: no anonymous interface 0 in the header."""

        def __init__(self, sink) -> None:      # what RawPcapNgWriter.__init__ sets, but our sink
            self.header_present = False
            self.tsresol = 1000000
            self.interfaces2id = {None: -1}
            self.endian, self.endian_magic = "<", b"\x4d\x3c\x2b\x1a"
            self.filename, self.f = "<memory>", sink

        def _write_header(self, pkt) -> None:
            if not self.header_present:
                self.header_present = True
                self._write_block_shb()

    frames = []
    t = 0
    for n, flow in enumerate(flows):
        prev_point = None
        for i, hop in enumerate(flow.hops):
            frame = _frame(hop.packet, prev_point or hop.point, hop.point, ipid=(n << 8 | i) + 1)
            note = hop.note if i else f"{flow.title} — {hop.note}"
            frame.comments = [f"{hop.point}: {note}".encode()]
            frame.sniffed_on = hop.point
            frame.time = EPOCH + t * STEP
            t += 1
            frames.append(frame)
            prev_point = hop.point
    sink = io.BytesIO()
    writer = _Writer(sink)
    for frame in frames:
        writer.write(frame)
    writer.flush()
    return sink.getvalue()


def _frame(pkt: Packet, src_point: str, dst_point: str, *, ipid: int):
    from scapy.layers.inet import ICMP as ScapyICMP, IP, TCP as ScapyTCP, UDP as ScapyUDP
    from scapy.layers.l2 import Ether
    from scapy.layers.sctp import SCTP as ScapySCTP
    from scapy.packet import Raw

    ether = Ether(src=mac_for(src_point), dst=mac_for(dst_point), type=0x0800)
    ip = IP(src=format_ip(pkt.src), dst=format_ip(pkt.dst), ttl=pkt.ttl, id=ipid & 0xFFFF, flags="DF")
    if pkt.proto == TCP:
        is_reply = pkt.tcp_flags & 0x12 == 0x12
        if is_reply:
            l4 = ScapyTCP(sport=pkt.sport, dport=pkt.dport, flags="SA", seq=_SERVER_ISN, ack=_CLIENT_ISN + 1,
                          window=64240)
        elif pkt.tcp_flags & 0x02:
            l4 = ScapyTCP(sport=pkt.sport, dport=pkt.dport, flags="S", seq=_CLIENT_ISN, ack=0, window=64240)
        else:
            l4 = ScapyTCP(sport=pkt.sport, dport=pkt.dport, flags=pkt.tcp_flags, seq=_CLIENT_ISN + 1,
                          ack=_SERVER_ISN + 1, window=64240)
        return ether / ip / l4
    if pkt.proto == UDP:
        return ether / ip / ScapyUDP(sport=pkt.sport, dport=pkt.dport) / Raw(_PAYLOAD)
    if pkt.proto == SCTP:
        return ether / ip / ScapySCTP(sport=pkt.sport, dport=pkt.dport, tag=0)
    if pkt.proto == ICMP:
        return ether / ip / ScapyICMP(type=max(pkt.icmp_type, 0), code=max(pkt.icmp_code, 0), id=pkt.sport, seq=1)
    return ether / ip
