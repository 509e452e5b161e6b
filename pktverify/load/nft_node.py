"""A node's nftables dump, read and reduced to what the node's IPv4 packets pass.

One dump in any of nft's three forms (``nft -j list ruleset`` JSON, ``nft list ruleset`` text, an
``nft -f`` script), told apart by content, is read into :class:`NftRuleset` and then sorted for the
node:

* families: ``ip`` and ``inet`` tables see IPv4 packets and are kept; ``ip6``, ``arp``, ``bridge``
  and ``netdev`` tables are skipped with a note in the node's warnings (IPv6 and the other hooks come
  later), never an error.
* mixed nodes: the tables iptables-nft wrote (``ip`` tables named as iptables' own, with iptables'
  built-in base chains; tables holding ``xt`` statements, the matches and targets JSON shows without
  their arguments; tables a listing says are "managed by iptables-nft", whose rules ``nft list
  ruleset`` prints as nft translates them, silently leaving out comments and turning ``statistic``
  into ``meta random``) are read from ``iptables-save`` when the node has one, so that each table is
  read once; without one, an ``xt`` statement or a managed table in a listing is refused in one line
  saying to pass it, since only ``iptables-save`` shows those rules exactly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..bulk import cyclic_gc_paused
from ..errors import InputError
from ..model.nft import NftRule, NftRuleset, NftTable, Xt
from ..parse.nft_json import looks_like_nft_json, parse_nft_json
from ..parse.nft_text import looks_like_nft_text, parse_nft_text
from ..parse.source import read_text

if TYPE_CHECKING:
    from .model_cache import ModelCache

__all__ = ["read_nft", "parse_nft", "cached_parse_nft", "node_nft", "load_node_nft", "managed_tables",
           "IPV4_FAMILIES", "iptables_nft_table"]

IPV4_FAMILIES = ("ip", "inet")
# What iptables-nft creates: its tables in the ip family, with iptables' built-in chains as base chains.
_IPTABLES_TABLES = frozenset({"raw", "mangle", "nat", "filter", "security"})
_BUILTIN_CHAINS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
_MANAGED = re.compile(r"^# Warning: table (\w+) (\S+) is managed by iptables-nft", re.M)
_SKIPPED_WHY = {"ip6": "IPv6 only", "arp": "ARP only", "bridge": "bridged frames: not modelled yet",
                "netdev": "ingress/egress of devices: not modelled yet"}


def read_nft(path: str | Path) -> NftRuleset:
    """Read an nftables dump file in any of its three forms."""
    return parse_nft(read_text(path, allow_empty=True), source=str(path))


def parse_nft(text: str, *, source: str) -> NftRuleset:
    """``text`` as ``nft -j list ruleset`` JSON, an ``nft list ruleset`` listing or an ``nft -f``
    script, told apart by content; empty text is a ruleset without tables (``nft list ruleset``
    of a node without any)."""
    if not text.strip():
        return NftRuleset(source, "text", ())
    if looks_like_nft_json(text):
        return parse_nft_json(text, source)
    if text.lstrip().startswith(("{", "[")):
        return parse_nft_json(text, source)         # JSON, but not nft's: its reader says what is wrong
    if looks_like_nft_text(text):
        return parse_nft_text(text, source)
    line = next((n for n, t in enumerate(text.split("\n"), 1) if t.strip() and not t.lstrip().startswith("#")), None)
    if line is None:            # comments only: nft -f loads nothing from it
        return NftRuleset(source, "text", ())
    raise InputError(source, line, "not an nftables ruleset (nft -j list ruleset JSON, nft list ruleset, or an "
                                   "nft -f script)", text.split("\n")[line - 1].strip())


def managed_tables(text: str) -> dict[tuple[str, str], int]:
    """(family, name) -> line of each table an ``nft list ruleset`` listing says iptables-nft manages
    (nft prints ``# Warning: table ip filter is managed by iptables-nft, do not touch!`` above it)."""
    if "managed by iptables-nft" not in text:
        return {}
    return {(m.group(1), m.group(2)): text.count("\n", 0, m.start()) + 1 for m in _MANAGED.finditer(text)}


def load_node_nft(text: str, *, source: str, iptables_given: bool,
                  cache: ModelCache | None = None) -> tuple[NftRuleset, tuple[str, ...]]:
    """Read a node's nft dump and keep what its IPv4 packets pass (:func:`node_nft`); ``cache``:
    the parsed ruleset kept between runs (:class:`.model_cache.ModelCache`; only one that parsed
    without error is stored)."""
    return node_nft(cached_parse_nft(text, source=source, cache=cache), iptables_given=iptables_given,
                    managed=managed_tables(text))


def cached_parse_nft(text: str, *, source: str, cache: ModelCache | None = None) -> NftRuleset:
    """:func:`parse_nft`, or the ruleset ``cache`` holds for the same text and source."""
    if cache is None:
        return parse_nft(text, source=source)
    key = cache.key(text, source, False, kind="nft")
    with cyclic_gc_paused():
        ruleset = cache.load_nft(key)
        if ruleset is not None:
            return ruleset
        ruleset = parse_nft(text, source=source)
    cache.store_nft(key, ruleset)
    return ruleset


def iptables_nft_table(table: NftTable) -> bool:
    """Whether iptables-nft wrote ``table``: an ``ip`` table named as one of iptables' whose base
    chains are iptables' built-in ones, or any table holding an ``xt`` statement."""
    if _first_xt(table) is not None:
        return True
    bases = [c.name for c in table.chains if c.is_base]
    return (table.family == "ip" and table.name in _IPTABLES_TABLES and bool(bases)
            and all(name in _BUILTIN_CHAINS for name in bases))


def node_nft(ruleset: NftRuleset, *, iptables_given: bool,
             managed: dict[tuple[str, str], int] | None = None) -> tuple[NftRuleset, tuple[str, ...]]:
    """The tables of ``ruleset`` the node's IPv4 packets pass, and the notes on what was left out.

    ``iptables_given``: the node's ``iptables-save`` is given (tables iptables-nft wrote are read
    from it); ``managed``: the tables a listing says iptables-nft manages (:func:`managed_tables`).
    Raises InputError on an ``xt`` statement or a managed table without ``iptables-save``."""
    managed = managed or {}
    kept: list[NftTable] = []
    skipped: list[NftTable] = []
    from_iptables: list[str] = []
    order: list[str] = []           # where the dump lists them among the tables kept
    for table in ruleset.tables:
        if table.family not in IPV4_FAMILIES:
            skipped.append(table)
        elif iptables_given and ((table.family, table.name) in managed or iptables_nft_table(table)):
            from_iptables.append(f"{table.family} {table.name}")
            order.append(f"iptables {table.name}")
        elif (table.family, table.name) in managed or (ruleset.form == "text" and iptables_nft_table(table)):
            line = managed.get((table.family, table.name), table.line)
            raise InputError(ruleset.source, line, f"table {table.family} {table.name} was written by iptables-nft "
                                                   "(iptables' table and chain names): `nft list ruleset` prints its "
                                                   "rules as nft translates them, silently leaving out what it cannot "
                                                   f"(comments, statistic, ...): {_PASS_IPTABLES}")
        else:
            hit = _first_xt(table)
            if hit is not None:
                raise _xt_refusal(ruleset, table, hit)
            kept.append(table)
            order.append(f"{table.family} {table.name}")
    notes: list[str] = []
    if skipped:
        names = ", ".join(f"{t.family} {t.name}" for t in skipped[:4]) + (", ..." if len(skipped) > 4 else "")
        families = sorted({t.family for t in skipped})
        why = "; ".join(f"{f}: {_SKIPPED_WHY.get(f, 'not an IPv4 family')}" for f in families)
        notes.append(f"{ruleset.source}: {len(skipped)} nftables table(s) of families other than ip and inet "
                     f"skipped ({names}): {why}")
    if from_iptables:
        notes.append(f"{ruleset.source}: table(s) {', '.join(from_iptables)} written by iptables-nft: read from "
                     "iptables-save, not from the nft dump")
    at = tuple(order) if from_iptables else ()
    return NftRuleset(ruleset.source, ruleset.form, tuple(kept), at), tuple(notes)


_PASS_IPTABLES = ("pass the node's iptables-save too (trace --iptables FILE; iptables: in the cluster YAML; "
                  "iptables-save.txt in the node folder)")


def _first_xt(table: NftTable) -> tuple[str, NftRule, Xt] | None:
    for chain in table.chains:
        for rule in chain.rules:
            for expr in rule.exprs:
                if type(expr) is Xt:
                    return chain.name, rule, expr
    return None


def _xt_refusal(ruleset: NftRuleset, table: NftTable, hit: tuple[str, NftRule, Xt]) -> InputError:
    chain, rule, xt = hit
    message = (f"table {table.family} {table.name} was written by iptables-nft (chain {chain} holds `xt {xt.kind} "
               f"{xt.name}`, whose arguments only iptables-save shows): {_PASS_IPTABLES}")
    if ruleset.form == "json":
        return InputError(ruleset.source, 0, f"nftables[{rule.line}].rule: {message}")
    return InputError(ruleset.source, rule.line, message, rule.text)
