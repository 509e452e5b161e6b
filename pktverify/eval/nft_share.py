"""Which compiled nft chains nodes may share: the chain itself and the named sets it reads, the same objects.

A cluster's nodes in kube-proxy's nftables mode hold the same chains (``load/nft_derive.py`` makes
them the same objects), and a 10,000-service table has 40,000 of them: compiled once per node, a
1,000-node cluster held gigabytes of identical closures. A chain's compiled rules depend on the
node only through what reads its routes and addresses (``fib``, ``meta pkttype``, masquerade,
redirect), the named sets it looks up (compiled from their elements) and set updates (state the
walk carries); a chain with none of the first and last, whose sets are the same objects on both nodes and not dynamic, compiles to the
same operations on every node, so the first node's compiled chain serves them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import TypeVar

from ..model import nft as n

__all__ = ["share_key", "shared_value"]

T = TypeVar("T")
_NODE_BOUND = (n.Fib, n.SetUpdate, n.Xt)
_PKTTYPE = n.Meta("pkttype")


def shared_value(shared: dict, key: tuple, keep: object, make: Callable[[], T]) -> T:
    """``shared[key]``, made by ``make`` the first time; ``keep`` (the objects whose ids ``key``
    holds) is stored beside it, so those ids stay theirs as long as the value is shared."""
    hit = shared.get(key)
    if hit is None:
        hit = shared[key] = (keep, make())
    return hit[1]


def share_key(chain: n.NftChain, table: n.NftTable, shared: dict) -> tuple | None:
    """The key under which nodes share ``chain``'s compiled form (None: compile it per node), and
    what must stay alive for the key's ids to stay theirs; ``shared`` keeps each chain's reading."""
    names = shared_value(shared, ("nft-refs", id(chain)), chain, lambda: _set_names(chain))
    if names is None:
        return None
    sets = [table.set(name) for name in names]
    if any(s is None or "dynamic" in s.flags for s in sets):
        return None
    return (id(chain), table.family, tuple(id(s) for s in sets)), (chain, *sets)


def _set_names(chain: n.NftChain) -> tuple[str, ...] | None:
    """The named sets ``chain`` reads (None: it reads something node-bound)."""
    found: set[str] = set()
    plain = all(_plain(stmt, found) for rule in chain.rules for stmt in rule.exprs)
    return tuple(sorted(found)) if plain else None


def _plain(x: object, refs: set[str]) -> bool:
    """Whether ``x`` (a statement or expression) reads nothing node-bound; the sets it names into ``refs``.
    Node-bound: ``fib``, ``meta pkttype`` (broadcast addresses), masquerade and redirect (the
    interfaces' addresses), set updates, iptables-nft's ``xt``."""
    if isinstance(x, _NODE_BOUND) or x == _PKTTYPE:
        return False
    if type(x) is n.Nat and x.kind in ("masquerade", "redirect"):
        return False
    if type(x) is n.SetRef:
        refs.add(x.name)
        return True
    if type(x) is tuple:
        return all(_plain(item, refs) for item in x)
    if is_dataclass(x):
        return all(_plain(getattr(x, f.name), refs) for f in fields(x))
    return True
