"""The structure the evaluator relies on, checked on a rule set that did not come from the parser.

A rule set whose every field has its declared type can still be hollow: a table missing, a
built-in chain missing or without a policy, a jump to a chain its table does not declare, a
loop between chains that a hook reaches (the evaluator would follow it for ever).  The parser
never builds one (it refuses such input, as the kernel does).  The model cache
(:mod:`.model_codec`) checks every table it decodes with :func:`check_table`, on the columns
it decodes it from, and a failure is a bad entry.

The checks run in time linear in the rule set, at C speed (``map``, ``compress``, set
operations), since they run on every cache hit of a 110k-rule dump.  Finding a loop would take
a depth-first walk in Python, so the entry carries a certificate instead, :func:`chain_ranks`:
a rank per chain, strictly falling along every jump from a chain a hook reaches; checking it is
one comparison per jump.
"""

from __future__ import annotations

import json
import sys
from itertools import chain as _concat
from itertools import compress, repeat
from operator import is_not, lt
from typing import Any

from ..model.rules import TABLE_CHAINS, Jump, Table

__all__ = ["BadEntry", "check_table", "chain_ranks", "load_entry_json"]

_ALL_BUILTINS = frozenset(name for chains in TABLE_CHAINS.values() for name in chains)


class BadEntry(ValueError):
    """An entry that is not a rule set this version wrote; the message says why, in a few words."""


def load_entry_json(data: bytes, *, kind: str, numbers: str, max_digits: int, floats: bool) -> Any:
    """A cache entry's JSON (the iptables codec's and the nft codec's): arrays, strings and the
    numbers ``numbers`` names only (``floats``: whether non-integers are among them), integers of at
    most ``max_digits`` characters where the interpreter sets no limit of its own (``int()`` of a
    long digit string is quadratic). Anything else, text that is not JSON, or arrays nested past
    the recursion limit is BadEntry, naming the ``kind`` of entry expected ("" or "nft ")."""
    def no_object(pairs: list) -> None:
        raise BadEntry("a JSON object (entries hold arrays only)")

    def no_constant(name: str) -> None:
        raise BadEntry(f"{name} (entries hold {numbers} only)")

    def no_float(text: str) -> None:
        raise BadEntry("a number that is not an integer")

    def short_int(text: str) -> int:
        if len(text) > max_digits:
            raise BadEntry("integer out of range")
        return int(text)

    hooks: dict[str, Any] = {"object_pairs_hook": no_object, "parse_constant": no_constant}
    if not floats:
        hooks["parse_float"] = no_float
    digits = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 4300
    if not digits or digits > 4300:
        hooks["parse_int"] = short_int
    try:
        return json.loads(data, **hooks)
    except BadEntry:
        raise
    except ValueError:              # not JSON, not UTF-8, an integer of too many digits
        raise BadEntry(f"not {'an' if kind else 'a'} {kind}cache entry of this version") from None
    except RecursionError:
        raise BadEntry("arrays nested too deep") from None


def check_tables(names: list[str]) -> None:
    """The five tables, in the parser's order."""
    if names != list(TABLE_CHAINS):
        raise BadEntry(f"its tables are {', '.join(names)[:80] or 'none'}, not {', '.join(TABLE_CHAINS)}")


def check_table(table: str, names: list[str], policies: list, sizes: list[int], jump_to: list,
                ranks: list[int]) -> None:
    """Raise BadEntry unless table ``table`` has the shape a parse gives it.

    ``names``, ``policies``, ``sizes`` and ``ranks``: one per chain, in order; ``jump_to``: for every
    rule, chain after chain, the chain it jumps or goes to (None when its target is no jump).  The built-in chains come first, in the kernel's order,
    with policy ACCEPT or DROP; user chains after them, without policy, none with a built-in's
    name, no name twice; every jump goes to a user chain of the table; ranks (see :func:`chain_ranks`) are >= 1
    for the built-in chains and strictly fall along every jump from a chain of rank >= 1, so no
    loop is reachable from a hook."""
    builtins = TABLE_CHAINS[table]
    count = len(builtins)
    if names[:count] != list(builtins):
        raise BadEntry(f"table {table} does not begin with its built-in chains {', '.join(builtins)}")
    if None in policies[:count]:
        raise BadEntry(f"a built-in chain of table {table} has no policy")
    if policies.count(None) != len(names) - count:
        raise BadEntry(f"a user chain of table {table} has a policy")
    if len(set(names)) != len(names):
        raise BadEntry(f"a chain appears twice in table {table}")
    if not _ALL_BUILTINS.isdisjoint(names[count:]):
        raise BadEntry(f"table {table} declares a built-in chain's name as a user chain")
    jumps = list(map(is_not, jump_to, repeat(None)))
    to = list(compress(jump_to, jumps))
    if not set(names[count:]).issuperset(to):
        missing = sorted(set(to).difference(names[count:]))[0]
        raise BadEntry(f"a rule of table {table} jumps to {missing[:40]!r}, which is no user chain of the table")
    if 0 in ranks[:count]:
        raise BadEntry(f"a built-in chain of table {table} has rank 0")
    rank_of = dict(zip(names, ranks))
    above = list(compress(_concat.from_iterable(map(repeat, ranks, sizes)), jumps))    # the jumping chain's
    below = list(map(rank_of.__getitem__, to))                                         # the jumped-to chain's
    if 0 in ranks:                  # chains no hook reaches (rank 0) may jump anywhere
        reached = list(map(bool, above))
        above, below = list(compress(above, reached)), list(compress(below, reached))
    if 0 in below or not all(map(lt, below, above)):
        raise BadEntry(f"table {table} has a loop between chains (or its ranks are wrong)")


def chain_ranks(table: Table) -> list[int]:
    """A rank per chain of ``table``, in order: 0 for a chain no built-in chain reaches, else its
    place in a depth-first walk's finishing order from 1, so that every jump from a reached chain
    goes to a chain of lower rank >= 1.  Raise BadEntry on a loop a built-in chain reaches (the
    parser refuses such a table)."""
    chains = table.chains
    below = {name: [r.target.chain for r in chain.rules if type(r.target) is Jump and r.target.chain in chains]
             for name, chain in chains.items()}
    state: dict[str, int] = {}            # 1: on the current path; >= 2: finished, rank + 1
    done = 1
    for start in TABLE_CHAINS[table.name]:
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(below.get(start, ())))]
        while stack:
            name, rest = stack[-1]
            for nxt in rest:
                seen = state.get(nxt)
                if seen == 1:
                    raise BadEntry(f"table {table.name} has a loop between chains through {nxt[:40]!r}")
                if seen is None:
                    state[nxt] = 1
                    stack.append((nxt, iter(below.get(nxt, ()))))
                    break
            else:
                done += 1
                state[name] = done
                stack.pop()
    return [state.get(name, 1) - 1 for name in chains]
