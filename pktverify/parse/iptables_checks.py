"""What the kernel checks when a rule set is loaded, checked here at parse time.

``iptables-restore`` refuses a rule set with a jump to an undeclared chain,
a jump to a built-in chain, a loop between chains, or a target used from a
hook it does not support (DNAT outside PREROUTING/OUTPUT, REJECT outside
INPUT/FORWARD/OUTPUT, NAT targets outside the nat table, ...). We refuse
the same input, naming the line, instead of tracing something Linux would
never run.

Hooks are tracked as bit masks (one bit per built-in chain): a 100k-rule dump
has ~40k chains, and a set per chain costs more than the rest of the check.
"""

from __future__ import annotations

from ..errors import InputError
from ..model.rules import (
    TABLE_CHAINS,
    AddrTypeMatch,
    Dnat,
    FixedMatch,
    IfaceMatch,
    Jump,
    Masquerade,
    Netmap,
    NoOp,
    NoTrack,
    OwnerMatch,
    Redirect,
    Reject,
    RpFilterMatch,
    Rule,
    Ruleset,
    SetTtl,
    Snat,
    Table,
    Tproxy,
    Verdict,
)

__all__ = ["check_ruleset", "chain_hooks"]

_HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
_BIT = {hook: 1 << i for i, hook in enumerate(_HOOKS)}


def _mask(*hooks: str) -> int:
    out = 0
    for hook in hooks:
        out |= _BIT[hook]
    return out


def _names(mask: int) -> list[str]:
    return [hook for hook in _HOOKS if mask & _BIT[hook]]


# Which hooks each target may be used from (the kernel's xt_target.hooks).
_TARGET_HOOKS = {
    Dnat: _mask("PREROUTING", "OUTPUT"),
    Redirect: _mask("PREROUTING", "OUTPUT"),
    Snat: _mask("POSTROUTING", "INPUT"),
    Masquerade: _mask("POSTROUTING"),
    Reject: _mask("INPUT", "FORWARD", "OUTPUT"),
    Tproxy: _mask("PREROUTING"),
}
# Which tables a target may be used in (the kernel's xt_target.table), by model type or by name.
_TARGET_TABLES = {NoTrack: ("raw",), Tproxy: ("mangle",), SetTtl: ("mangle",)}
_NAMED_TARGET_TABLES = {"CT": ("raw",), "CHECKSUM": ("mangle",), "DSCP": ("mangle",),
                        "TOS": ("mangle",), "ECN": ("mangle",), "CLASSIFY": ("mangle",),
                        "SECMARK": ("mangle", "security"), "CONNSECMARK": ("mangle", "security")}
_NAMED_TARGET_HOOKS = {"CLASSIFY": _mask("OUTPUT", "FORWARD", "POSTROUTING"),
                       "TCPMSS": _mask("FORWARD", "OUTPUT", "POSTROUTING")}
# Matches valid from some hooks only (xt_match.hooks) and tables (xt_match.table).
_MATCH_HOOKS = {OwnerMatch: _mask("OUTPUT", "POSTROUTING"), RpFilterMatch: _mask("PREROUTING")}
_NAT_TARGETS = (Dnat, Snat, Masquerade, Redirect, Netmap)
# The matches some check looks at; a rule without them that jumps to a user chain passes every check.
_SENSITIVE_MATCHES = frozenset({RpFilterMatch, OwnerMatch, FixedMatch, AddrTypeMatch, IfaceMatch})
_NOT_WITH_IN_IFACE = _mask("POSTROUTING", "OUTPUT")     # -i and --limit-iface-in
_NOT_WITH_OUT_IFACE = _mask("PREROUTING", "INPUT")      # -o and --limit-iface-out


def check_ruleset(ruleset: Ruleset) -> None:
    """Raise InputError if the kernel would refuse ``ruleset``; otherwise return None."""
    for table in ruleset.tables.values():
        builtins = TABLE_CHAINS[table.name]
        chains = table.chains
        checked: list[tuple[Rule, str]] = []   # the rules some hook check may refuse, with their chain
        for chain in chains.values():
            for rule in chain.rules:
                target = rule.target
                # A jump to a declared user chain with none of the matches a check looks at passes
                # every check: skip the calls (most of a kube-proxy dump).
                if (type(target) is not Jump or target.chain not in chains or target.chain in builtins
                        or not _SENSITIVE_MATCHES.isdisjoint(map(type, rule.matches))):
                    _check_target(rule, table, builtins)
                    checked.append((rule, chain.name))
        masks = _hook_masks(table)
        for rule, chain_name in checked:
            _check_hooks(rule, masks.get(chain_name, 0))


def chain_hooks(ruleset: Ruleset, table_name: str) -> dict[str, frozenset[str]]:
    """Map each chain of ``table_name`` to the built-in hooks it is reachable from."""
    masks = _hook_masks(ruleset.tables[table_name])
    return {name: frozenset(_names(masks.get(name, 0))) for name in ruleset.tables[table_name].chains}


def _check_target(rule: Rule, table: Table, builtins: tuple[str, ...]) -> None:
    target = rule.target
    if isinstance(target, Jump):
        if target.chain in builtins:
            raise InputError(rule.source, rule.line, f"cannot jump to built-in chain {target.chain}", rule.text)
        if target.chain not in table.chains:
            hint = " (or an unsupported target; --lenient treats it as unknown)" if target.chain.isupper() else ""
            raise InputError(rule.source, rule.line,
                             f"jump to undeclared chain {target.chain} in table {table.name}{hint}", rule.text)
    if isinstance(target, _NAT_TARGETS) and table.name != "nat":
        raise InputError(rule.source, rule.line,
                         f"{type(target).__name__.upper()} is only valid in the nat table, not {table.name}", rule.text)
    tables = _TARGET_TABLES.get(type(target)) or (_NAMED_TARGET_TABLES.get(target.name) if type(target) is NoOp else None)
    if tables and table.name not in tables:
        name = target.name if hasattr(target, "name") else type(target).__name__.upper()
        raise InputError(rule.source, rule.line, f"{name} is only valid in the {'/'.join(tables)} table, "
                                                 f"not {table.name}", rule.text)
    for match in rule.matches:
        if type(match) is RpFilterMatch and table.name not in ("raw", "mangle"):
            raise InputError(rule.source, rule.line, f"rpfilter is only valid in the raw and mangle tables, "
                                                     f"not {table.name}", rule.text)
    if table.name == "nat" and isinstance(target, Verdict) and target.name == "DROP":
        raise InputError(rule.source, rule.line, "the nat table does not allow DROP (filter in the filter table)", rule.text)


def _hook_masks(table: Table) -> dict[str, int]:
    """Each reachable chain's hook mask; raise InputError on a loop between chains.

    One depth-first walk per built-in chain propagates that hook's bit. Only loops a
    built-in chain reaches are refused: the kernel (legacy and nf_tables) loads a loop
    among chains no hook reaches (kernel-checked, tests/check/test_lint_cluster_real.py).
    """
    masks: dict[str, int] = {}
    for hook in TABLE_CHAINS[table.name]:
        _walk(table, hook, _BIT[hook], masks, {})
    return masks


def _walk(table: Table, start: str, bit: int, masks: dict[str, int], state: dict[str, int]) -> None:
    """Depth-first from ``start``: OR ``bit`` into every chain reached; a back edge is a loop.

    ``state``: 1 = on the current path, 2 = finished (its descendants already have the bit).
    """
    chains = table.chains
    state[start] = 1
    if bit:
        masks[start] = masks.get(start, 0) | bit
    stack = [(start, iter(chains[start].rules))]
    while stack:
        name, rules = stack[-1]
        for rule in rules:
            target = rule.target
            if type(target) is Jump and target.chain in chains:
                nxt = target.chain
                seen = state.get(nxt)
                if seen == 1:
                    raise InputError(rule.source, rule.line,
                                     f"loop between chains: {nxt} is reached again from {name}", rule.text)
                if seen is None:
                    state[nxt] = 1
                    if bit:
                        masks[nxt] = masks.get(nxt, 0) | bit
                    stack.append((nxt, iter(chains[nxt].rules)))
                    break
        else:
            state[name] = 2
            stack.pop()


def _check_hooks(rule: Rule, hooks: int) -> None:
    target = rule.target
    allowed = _TARGET_HOOKS.get(type(target))
    if allowed is None and type(target) is NoOp:
        allowed = _NAMED_TARGET_HOOKS.get(target.name)
    if allowed is not None and hooks & ~allowed:
        name = target.name if type(target) is NoOp else type(target).__name__.upper()
        raise InputError(rule.source, rule.line,
                         f"{name} is only valid from {'/'.join(_names(allowed))},"
                         f" but this chain is reached from {', '.join(sorted(_names(hooks & ~allowed)))}", rule.text)
    # The hooks of owner, rpfilter and policy are checked for rules in the built-in chains only:
    # nf_tables' iptables does not check them in user chains (the kernel lab loads `-m policy
    # --dir in` in a chain reached from OUTPUT), and there they simply do not match as they would.
    base = rule.chain in _HOOKS
    for match in rule.matches:
        kind = type(match)
        allowed = _MATCH_HOOKS.get(kind) if base else None
        if kind is FixedMatch and match.module.startswith("policy --dir") and base:
            # xt_policy: an input policy is not valid from POSTROUTING/OUTPUT, an output one from
            # PREROUTING/INPUT.
            allowed = _mask("PREROUTING", "INPUT", "FORWARD") if match.module.endswith("in") else \
                _mask("FORWARD", "OUTPUT", "POSTROUTING")
            if hooks & ~allowed:
                raise InputError(rule.source, rule.line, f"-m {match.module} is only valid from "
                                 f"{'/'.join(_names(allowed))}, but this chain is reached from "
                                 f"{', '.join(sorted(_names(hooks & ~allowed)))}", rule.text)
            continue
        if allowed is not None and hooks & ~allowed:
            raise InputError(rule.source, rule.line,
                             f"-m {'owner' if kind is OwnerMatch else 'rpfilter'} is only valid from "
                             f"{'/'.join(_names(allowed))}, but this chain is reached from "
                             f"{', '.join(sorted(_names(hooks & ~allowed)))}", rule.text)
        if kind is AddrTypeMatch and match.limit_iface:
            bad = hooks & (_NOT_WITH_IN_IFACE if match.limit_iface == "in" else _NOT_WITH_OUT_IFACE)
            if bad:
                raise InputError(rule.source, rule.line,
                                 f"addrtype --limit-iface-{match.limit_iface} is not valid from "
                                 f"{', '.join(sorted(_names(bad)))}", rule.text)
        elif kind is IfaceMatch:
            if match.direction == "in" and rule.chain in ("OUTPUT", "POSTROUTING"):
                raise InputError(rule.source, rule.line, f"-i cannot be used in the {rule.chain} chain", rule.text)
            if match.direction == "out" and rule.chain in ("PREROUTING", "INPUT"):
                raise InputError(rule.source, rule.line, f"-o cannot be used in the {rule.chain} chain", rule.text)
