"""``iptables-save`` text → :class:`~pktverify.model.rules.Ruleset`.

Accepts what ``iptables-save`` writes and what ``iptables-restore`` reads:
``*table`` sections ended by ``COMMIT``, chain declarations ``:NAME POLICY [p:b]``,
``-A`` rules (optionally prefixed by ``[p:b]`` counters), ``#`` comments and
CRLF. Built-in chains that are not declared get policy ACCEPT. The rule set is
then checked the way the kernel checks it on load (see :mod:`.iptables_checks`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from ..bulk import cyclic_gc_paused, direct_constructor
from ..errors import InputError
from ..model.rules import TABLE_CHAINS, Chain, Jump, Rule, Ruleset, Table, UnknownMatch, UnknownTarget
from .iptables_checks import check_ruleset
from .iptables_rule import RuleParser, RuleSyntaxError
from .source import decode_text, read_text
from .tokens import TokenError, split_args

__all__ = ["parse_iptables_save", "load_iptables_save"]

_new_rule = direct_constructor(Rule)      # one per line: the dataclass __init__ is twice as slow
_new_chain = direct_constructor(Chain)
# What an iptables-save line looks like; before the first one, nothing of the file is echoed.
_IPTABLES_SHAPE = re.compile(r"(?:\[\d+:\d+\]\s+)?-[AI]\s+\S+|:\S+\s+\S+|COMMIT\Z")


def load_iptables_save(path: str | Path, *, lenient: bool = False, name: str | None = None) -> Ruleset:
    """Read and parse an iptables-save file; raise InputError naming file:line on bad input."""
    label = name or str(path)
    return parse_iptables_save(read_text(path, name=label), source=label, lenient=lenient)


class _TableBuilder:
    def __init__(self, name: str, line: int) -> None:
        self.name = name
        self.line = line
        self.decl: dict[str, tuple[str | None, int, str]] = {}
        self.rules: dict[str, list[Rule]] = {}


class RulesetCache(Protocol):
    """Where parsed rule sets are kept between runs (:class:`pktverify.load.model_cache.ModelCache`)."""

    def key(self, text: str | bytes, source: str, lenient: bool) -> str: ...
    def load(self, key: str) -> Ruleset | None: ...
    def store(self, key: str, ruleset: Ruleset) -> None: ...


def parse_iptables_save(text: str | bytes, *, source: str = "<iptables-save>", lenient: bool = False,
                        cache: RulesetCache | None = None, parser: RuleParser | None = None) -> Ruleset:
    """Parse iptables-save ``text``; ``lenient`` turns unknown matches/targets into may-match.

    ``cache``: load the rule set parsed before from the same text, source and options, or
    store this one (see :mod:`pktverify.load.model_cache`).  ``parser``: one :class:`RuleParser` (of the same
    ``lenient``) for several dumps, so that the nodes of a cluster share their equal matches,
    targets and rule-shape plans."""
    if parser is not None and parser.lenient != lenient:
        raise ValueError("parser.lenient must equal lenient")
    if cache is None:
        with cyclic_gc_paused():
            return _parse(text, source, lenient, parser)
    key = cache.key(text, source, lenient)
    with cyclic_gc_paused():
        ruleset = cache.load(key)
        if ruleset is not None:
            return ruleset
        ruleset = _parse(text, source, lenient, parser)
    cache.store(key, ruleset)
    return ruleset


def _parse(text: str | bytes, source: str, lenient: bool, parser: RuleParser | None = None) -> Ruleset:
    if isinstance(text, bytes):
        text = decode_text(text, source, allow_empty=True)
    # An empty dump is a node without rules (iptables-save prints nothing): every table empty.
    tables: dict[str, Table] = {}
    warnings: list[str] = []
    current: _TableBuilder | None = None
    parser = parser or RuleParser(lenient=lenient)
    recognised = False
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r").strip()
        if not line or line[0] == "#":
            continue
        head = line[0]
        if not recognised:
            if head != "*" and not _IPTABLES_SHAPE.match(line):
                # Not iptables-save output at all (perhaps a wrong path in a cluster file): say so
                # without echoing the content of a file that may be anything the user can read.
                raise InputError(source, lineno, "not iptables-save output (the first line that is not a "
                                 "'#' comment must be a *table line such as *nat)", "")
            recognised = True
        if head == "-" or head == "[":
            if current is None:
                raise InputError(source, lineno, "rule before any *table line", line)
            _parse_rule_line(line, lineno, source, current, parser, warnings)
        elif head == ":":
            if current is None:
                raise InputError(source, lineno, "chain declaration before any *table line", line)
            _declare_chain(line, lineno, source, current)
        elif head == "*":
            if current is not None:
                raise InputError(source, lineno, f"*table line inside table {current.name} (missing COMMIT)", line)
            name = line[1:].strip()
            if name not in TABLE_CHAINS:
                msg = f"unknown table {name!r} (valid: {', '.join(TABLE_CHAINS)})"
                raise InputError(source, lineno, msg, line)
            if name in tables:
                raise InputError(source, lineno, f"table {name} appears twice (iptables-restore would"
                                 " flush the first section)", line)
            current = _TableBuilder(name, lineno)
        elif line == "COMMIT":
            if current is None:
                raise InputError(source, lineno, "COMMIT without a *table line", line)
            tables[current.name] = _finish_table(current, source, lenient, warnings)
            current = None
        else:
            raise InputError(source, lineno, "not an iptables-save line", line)
    if current is not None:
        raise InputError(source, current.line, f"table {current.name} has no COMMIT", f"*{current.name}")
    for name, builtins in TABLE_CHAINS.items():
        if name not in tables:
            tables[name] = Table(name, {c: Chain(c, "ACCEPT", ()) for c in builtins})
    ruleset = Ruleset(source, {name: tables[name] for name in TABLE_CHAINS}, tuple(warnings))
    check_ruleset(ruleset)
    return ruleset


def _declare_chain(line: str, lineno: int, source: str, table: _TableBuilder) -> None:
    parts = line[1:].split()
    if len(parts) not in (2, 3) or (len(parts) == 3 and not _is_counter(parts[2])):
        raise InputError(source, lineno, "chain declaration must be ':NAME POLICY [packets:bytes]'", line)
    name, policy = parts[0], parts[1]
    if len(name) > 28 or name.startswith("-") or name == "!":
        raise InputError(source, lineno, "invalid chain name (at most 28 characters, not starting with '-')", line)
    if name in table.decl:
        raise InputError(source, lineno, f"chain {name} declared twice", line)
    if name in TABLE_CHAINS[table.name]:
        if policy == "-":
            policy = "ACCEPT"   # iptables-restore leaves a fresh built-in's policy as it is: ACCEPT
        elif policy not in ("ACCEPT", "DROP"):
            raise InputError(source, lineno, f"built-in chain policy must be ACCEPT or DROP, not {policy!r}", line)
    elif policy != "-":
        if name in {c for chains in TABLE_CHAINS.values() for c in chains}:
            raise InputError(source, lineno, f"{name} is not a built-in chain of table {table.name}", line)
        raise InputError(source, lineno, f"user chain {name} cannot have a policy (write '-')", line)
    table.decl[name] = (policy if policy != "-" else None, lineno, line)


def _is_counter(text: str) -> bool:
    if not (text.startswith("[") and text.endswith("]")):
        return False
    packets, sep, octets = text[1:-1].partition(":")
    return bool(sep) and packets.isascii() and packets.isdigit() and octets.isascii() and octets.isdigit()


def _parse_rule_line(line: str, lineno: int, source: str, table: _TableBuilder,
                     parser: RuleParser, warnings: list[str]) -> None:
    """Parse one ``-A`` line and append its rule to ``table``."""
    try:
        args = split_args(line)
    except TokenError as exc:
        raise InputError(source, lineno, str(exc), line) from None
    if args and args[0].startswith("["):
        if not _is_counter(args[0]):
            raise InputError(source, lineno, "bad counter prefix (expected [packets:bytes])", line)
        args = args[1:]
    if len(args) < 2 or args[0] not in ("-A", "--append"):
        what = args[0] if args else line
        raise InputError(source, lineno, f"only -A rules are supported in iptables-save input, not {what!r}", line)
    chain = args[1]
    del args[:2]
    try:
        matches, target, _proto = parser.parse_parts(args)
    except RuleSyntaxError as exc:
        raise InputError(source, lineno, str(exc), line) from None
    if type(target) is not Jump and target is not None and "-j" in args:
        at = args.index("-j") + 1
        word = args[at] if at < len(args) else ""
        if word in table.decl and args[-1] == word:
            # iptables resolves -j NAME to the declared chain of that name before the target
            # extension (the kernel loads `:CT - ... -A INPUT -j CT` in filter, where the CT
            # target would be refused).
            target = Jump(word, False)
    if parser.lenient and (type(target) is UnknownTarget
                           or any(type(match) is UnknownMatch for match in matches)):
        warnings.append(f"{source}:{lineno}: unsupported match or target treated as may-match: {line}")
    rules = table.rules.get(chain)
    if rules is None:
        rules = table.rules[chain] = []
    rules.append(_new_rule(table.name, chain, len(rules) + 1, source, lineno, line, matches, target))


def _finish_table(table: _TableBuilder, source: str, lenient: bool, warnings: list[str]) -> Table:
    if lenient:
        _unknown_jumps_to_targets(table, warnings)
    chains: dict[str, Chain] = {}
    for name in TABLE_CHAINS[table.name]:
        policy, line, text = table.decl.get(name, ("ACCEPT", 0, ""))
        chains[name] = Chain(name, policy, tuple(table.rules.pop(name, ())), line, text)
    for name, (policy, line, text) in table.decl.items():
        if name not in chains:
            chains[name] = _new_chain(name, None, tuple(table.rules.pop(name, ())), line, text)
    for name, rules in table.rules.items():
        rule = rules[0]
        raise InputError(source, rule.line, f"rule appended to undeclared chain {name} in table {table.name}", rule.text)
    return Table(table.name, chains)


def _unknown_jumps_to_targets(table: _TableBuilder, warnings: list[str]) -> None:
    """With --lenient, ``-j NAME`` to an undeclared upper-case NAME is an unknown target extension.

    Without options, ``-j CT`` or ``-j TPROXY`` looks exactly like a jump to a
    user chain; only the missing declaration tells them apart. Lower-case or
    odd names stay errors (they are typos, not extensions).
    """
    for chain, rules in table.rules.items():
        for i, rule in enumerate(rules):
            target = rule.target
            if (type(target) is Jump and target.chain not in table.decl
                    and target.chain not in TABLE_CHAINS[table.name]
                    and target.chain.isupper() and target.chain.replace("-", "").isalnum()):
                rules[i] = replace(rule, target=UnknownTarget(target.chain))
                warnings.append(f"{rule.source}:{rule.line}: unsupported target {target.chain} treated as"
                                f" may-match: {rule.text}")
