"""ipset look-ups as xt_set makes them (``ip_set_test`` and each type's ``kadt``).

The packet supplies one value per dimension, taken from its source or destination as
the ``--match-set`` flags say (address, protocol and port, interface). A set with more
dimensions than flags never matches. ``hash:net``-style sets find the most specific
entry first; an entry marked ``nomatch`` makes the look-up fail (or, with
``--return-nomatch``, match): :meth:`IpSets.lookup` returns None for it.
``list:set`` tries its member sets in order.
"""

from __future__ import annotations

from ..model.ipsets import IpSet, IpSetDump
from ..model.packet import ICMP, Packet

__all__ = ["IpSets"]

_PORTED = {6, 17, 132, 136}


class IpSets:
    """A node's ipsets, ready for look-ups."""

    def __init__(self, dump: IpSetDump) -> None:
        self.sets: dict[str, IpSet] = dump.sets
        self._exact: dict[str, dict[tuple, bool]] = {}
        for name, s in self.sets.items():
            if all(d in ("ip", "port") for d in s.dims) and all(
                    v[1] == v[2] for e in s.entries for d, v in zip(s.dims, e.values) if d == "port"):
                self._exact[name] = {self._key(s, e.values): e.nomatch for e in s.entries}

    @staticmethod
    def _key(s: IpSet, values: tuple) -> tuple:
        return tuple(v[0] if d == "ip" else (v[0], v[1]) for d, v in zip(s.dims, values))

    def lookup(self, name: str, pkt: Packet, dirs: tuple[bool, ...], in_iface: str, out_iface: str,
               depth: int = 0) -> bool | None:
        """True when ``pkt`` is in set ``name``, False when not, None for a ``nomatch`` entry."""
        s = self.sets.get(name)
        if s is None or depth > 8:
            return False
        if s.kind == "list:set":
            for entry in s.entries:
                found = self.lookup(entry.values[0], pkt, dirs, in_iface, out_iface, depth + 1)
                if found:
                    return True
            return False
        if len(dirs) < len(s.dims):
            return False
        wanted = []
        for kind, use_src in zip(s.dims, dirs):
            if kind in ("ip", "net"):
                wanted.append(pkt.src if use_src else pkt.dst)
            elif kind == "port":
                if pkt.proto not in _PORTED and pkt.proto != ICMP:
                    return False
                port = (pkt.sport if use_src else pkt.dport) if pkt.proto != ICMP else \
                    ((max(pkt.icmp_type, 0) << 8) | max(pkt.icmp_code, 0))
                wanted.append((pkt.proto, port))
            else:  # iface: src = the incoming, dst = the outgoing interface
                wanted.append(in_iface if use_src else out_iface)
        if s.kind == "bitmap:port":          # bitmap:port holds port numbers, whatever the protocol
            return pkt.proto in _PORTED and any(e.values[0][1] <= wanted[0][1] <= e.values[0][2] for e in s.entries)
        exact = self._exact.get(name)
        if exact is not None:
            mask = (0xFFFFFFFF << (32 - s.netmask)) & 0xFFFFFFFF
            hit = exact.get(tuple(w & mask if d == "ip" else w for d, w in zip(s.dims, wanted)))
            return False if hit is None else (None if hit else True)
        best, best_rank = None, -1
        for entry in s.entries:
            rank = 0
            for kind, want, value in zip(s.dims, wanted, entry.values):
                if kind in ("ip", "net"):
                    network, mask = value
                    if want & mask != network:
                        break
                    rank = rank * 33 + bin(mask).count("1")
                elif kind == "port":
                    proto, low, high = value
                    if want[0] != proto or not low <= want[1] <= high:
                        break
                else:
                    physdev, iface = value
                    if physdev or want != iface:
                        break
            else:
                if rank > best_rank:
                    best, best_rank = entry, rank
        if best is None:
            return False
        return None if best.nomatch else True
