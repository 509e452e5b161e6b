"""The structure the evaluator relies on, checked on a rule set that did not come from the parser.

A rule set whose every field has its declared type can still be hollow: a table missing, a
built-in chain missing or without a policy, a jump to a chain its table does not declare, a
rule whose table, chain or position is not where it stands, a loop between chains that a hook
reaches (the evaluator would follow it for ever).  The parser never builds one (it refuses
such input, as the kernel does); the model cache checks what it loads with
:func:`check_shape` and treats a failure as a bad entry.

The checks run in time linear in the rule set, mostly at C speed (``map`` over ``attrgetter``
and ``itertools``), since they run on every cache hit of a 110k-rule dump.
"""

from __future__ import annotations

from itertools import chain as _concat
from itertools import compress, repeat
from operator import attrgetter, is_, not_

from ..model.rules import TABLE_CHAINS, Jump, Ruleset
from .model_codec import BadEntry

__all__ = ["check_shape"]

_ALL_BUILTINS = frozenset(name for chains in TABLE_CHAINS.values() for name in chains)
_TARGET = attrgetter("target")
_TO = attrgetter("chain")
_RULES = attrgetter("rules")
_POLICY = attrgetter("policy")
_NAME = attrgetter("name")
_ROUNDS = 8


def check_shape(ruleset: Ruleset) -> None:
    """Raise BadEntry (saying what is wrong) unless ``ruleset`` has the shape a parse gives it: the
    five tables in order, each with its built-in chains first (policy ACCEPT or DROP) and user
    chains after them (no policy, no built-in's name), every jump to a user chain of its table, and
    no loop a hook reaches.  (That each rule's table, chain and position are where it stands is
    the entry layout's: :mod:`.model_codec` builds them from it.)"""
    if list(ruleset.tables) != list(TABLE_CHAINS):
        raise BadEntry(f"its tables are {', '.join(ruleset.tables)[:80] or 'none'}, not {', '.join(TABLE_CHAINS)}")
    for name, builtins in TABLE_CHAINS.items():
        if ruleset.tables[name].name != name:
            raise BadEntry(f"table {name} is stored under another name")
        _check_table(name, builtins, ruleset.tables[name].chains)


def _check_table(table: str, builtins: tuple[str, ...], chains: dict) -> None:
    names = list(chains)
    count = len(builtins)
    if list(map(_NAME, chains.values())) != names:
        raise BadEntry(f"a chain of table {table} is stored under another name")
    if names[:count] != list(builtins):
        raise BadEntry(f"table {table} does not begin with its built-in chains {', '.join(builtins)}")
    policies = list(map(_POLICY, chains.values()))
    if None in policies[:count]:
        raise BadEntry(f"a built-in chain of table {table} has no policy")
    if policies[count:].count(None) != len(names) - count:
        raise BadEntry(f"a user chain of table {table} has a policy")
    if not _ALL_BUILTINS.isdisjoint(names[count:]):
        raise BadEntry(f"table {table} declares a built-in chain's name as a user chain")
    groups = list(map(_RULES, chains.values()))
    targets = list(map(_TARGET, _concat.from_iterable(groups)))
    jumps = list(map(is_, map(type, targets), repeat(Jump)))
    sources = list(compress(_concat.from_iterable(map(repeat, names, map(len, groups))), jumps))
    to = list(map(_TO, compress(targets, jumps)))
    users = set(names[count:])
    if not users.issuperset(to):
        missing = sorted(set(to) - users)[0]
        raise BadEntry(f"a rule of table {table} jumps to {missing[:40]!r}, which is no user chain of the table")
    _check_no_loop(table, builtins, sources, to)


def _check_no_loop(table: str, builtins: tuple[str, ...], sources: list[str], to: list[str]) -> None:
    """Refuse a loop between chains that a built-in chain reaches (the kernel refuses it too; a loop
    no hook reaches is loaded by the kernel and the parser, and never walked).

    A chain that jumps nowhere is on no loop: a few rounds drop the jumps to such chains at C
    speed (a kube-proxy dump is 4 levels deep: every jump is gone after 4 rounds); a depth-first
    walk then looks at what is left (nothing, unless the chains nest deeper), so the whole
    stays linear."""
    for _ in range(_ROUNDS):
        if not to:
            return
        ends = set(to).difference(sources)          # jumped to, jumping nowhere
        if not ends:
            break
        keep = list(map(ends.__contains__, to))
        kept = keep.count(False)
        sources = list(compress(sources, map(not_, keep)))
        to = list(compress(to, map(not_, keep)))
        if not kept:
            return
    below: dict[str, list[str]] = {}
    for src, dst in zip(sources, to):
        below.setdefault(src, []).append(dst)
    state: dict[str, int] = {}            # 1: on the current path, 2: done
    for start in builtins:
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(below.get(start, ())))]
        while stack:
            name, rest = stack[-1]
            for nxt in rest:
                seen = state.get(nxt)
                if seen == 1:
                    raise BadEntry(f"table {table} has a loop between chains through {nxt[:40]!r}")
                if seen is None:
                    state[nxt] = 1
                    stack.append((nxt, iter(below.get(nxt, ()))))
                    break
            else:
                state[name] = 2
                stack.pop()
