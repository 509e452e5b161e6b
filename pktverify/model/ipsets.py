"""ipsets as immutable data (what ``ipset save`` lists), for ``-m set`` and ``SET``."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SetEntry", "IpSet", "IpSetDump"]


@dataclass(frozen=True, slots=True)
class SetEntry:
    """One element: per dimension an ``(network, mask)`` for ip/net, ``(proto, low, high)`` for a
    port, ``(physdev, name)`` for an interface, a set name for list:set; ``nomatch`` as ipset says."""
    values: tuple
    nomatch: bool = False


@dataclass(frozen=True, slots=True)
class IpSet:
    name: str
    kind: str                       # "hash:ip,port", ...
    dims: tuple[str, ...]           # per dimension: ip, net, port, iface, set
    netmask: int = 32
    line: int = 0
    entries: tuple[SetEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class IpSetDump:
    source: str
    sets: dict[str, IpSet] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
