"""What the kernel checks when a rule set is loaded, checked here at parse time.

``iptables-restore`` refuses a rule set with a jump to an undeclared chain,
a jump to a built-in chain, a loop between chains, or a target used from a
hook it does not support (DNAT outside PREROUTING/OUTPUT, REJECT outside
INPUT/FORWARD/OUTPUT, NAT targets outside the nat table, ...). We refuse
the same input, naming the line, instead of tracing something Linux would
never run.
"""

from __future__ import annotations

from ..errors import InputError
from ..model.rules import (TABLE_CHAINS, AddrTypeMatch, Dnat, Jump, Masquerade, Redirect, Reject,
                           Rule, Ruleset, Snat, UnknownTarget, Verdict)

__all__ = ["check_ruleset", "chain_hooks"]

# Which hooks each target may be used from (the kernel's xt_target.hooks).
_TARGET_HOOKS = {
    Dnat: ("PREROUTING", "OUTPUT"),
    Redirect: ("PREROUTING", "OUTPUT"),
    Snat: ("POSTROUTING", "INPUT"),
    Masquerade: ("POSTROUTING",),
    Reject: ("INPUT", "FORWARD", "OUTPUT"),
}
_NAT_TARGETS = (Dnat, Snat, Masquerade, Redirect)


def check_ruleset(ruleset: Ruleset, *, lenient: bool = False) -> None:
    """Raise InputError if the kernel would refuse ``ruleset``; otherwise return None."""
    for table in ruleset.tables.values():
        builtins = TABLE_CHAINS[table.name]
        for chain in table.chains.values():
            for rule in chain.rules:
                _check_target(rule, table, builtins, lenient)
        hooks = chain_hooks(ruleset, table.name)
        for chain in table.chains.values():
            for rule in chain.rules:
                _check_hooks(rule, hooks.get(chain.name, frozenset()))


def _check_target(rule: Rule, table, builtins, lenient) -> None:
    target = rule.target
    if isinstance(target, Jump):
        if target.chain in builtins:
            raise InputError(rule.source, rule.line, f"cannot jump to built-in chain {target.chain}", rule.text)
        if target.chain not in table.chains:
            hint = " (or an unsupported target; --lenient treats it as unknown)" if target.chain.isupper() else ""
            if lenient and target.chain.replace("-", "").isalnum() and target.chain.isupper():
                object.__setattr__(rule, "target", UnknownTarget(target.chain))
                return
            raise InputError(rule.source, rule.line,
                             f"jump to undeclared chain {target.chain} in table {table.name}{hint}", rule.text)
    if isinstance(target, _NAT_TARGETS) and table.name != "nat":
        raise InputError(rule.source, rule.line,
                         f"{type(target).__name__.upper()} is only valid in the nat table, not {table.name}", rule.text)
    if table.name == "nat" and isinstance(target, Verdict) and target.name == "DROP":
        raise InputError(rule.source, rule.line, "the nat table does not allow DROP (filter in the filter table)", rule.text)


def chain_hooks(ruleset: Ruleset, table_name: str) -> dict[str, frozenset[str]]:
    """Map each chain to the built-in hooks it is reachable from; raise InputError on a loop."""
    table = ruleset.tables[table_name]
    reach: dict[str, set[str]] = {name: set() for name in table.chains}
    for hook in TABLE_CHAINS[table_name]:
        state: dict[str, int] = {}   # 1 = on the current path, 2 = done for this hook
        stack = [(hook, iter(table.chains[hook].rules))]
        state[hook] = 1
        reach[hook].add(hook)
        while stack:
            name, rules = stack[-1]
            for rule in rules:
                target = rule.target
                if isinstance(target, Jump) and target.chain in table.chains:
                    nxt = target.chain
                    if state.get(nxt) == 1:
                        raise InputError(rule.source, rule.line,
                                         f"loop between chains: {nxt} is reached again from {name}", rule.text)
                    reach[nxt].add(hook)
                    if state.get(nxt) != 2:
                        state[nxt] = 1
                        stack.append((nxt, iter(table.chains[nxt].rules)))
                        break
            else:
                state[name] = 2
                stack.pop()
    # Chains reachable from no hook are still checked for loops among themselves.
    _check_unreached_loops(table, reach)
    return {name: frozenset(h) for name, h in reach.items()}


def _check_unreached_loops(table, reach) -> None:
    state: dict[str, int] = {}
    for start in table.chains:
        if reach[start] or state.get(start):
            continue
        stack = [(start, iter(table.chains[start].rules))]
        state[start] = 1
        while stack:
            name, rules = stack[-1]
            for rule in rules:
                if isinstance(rule.target, Jump) and rule.target.chain in table.chains:
                    nxt = rule.target.chain
                    if state.get(nxt) == 1:
                        raise InputError(rule.source, rule.line,
                                         f"loop between chains: {nxt} is reached again from {name}", rule.text)
                    if not state.get(nxt):
                        state[nxt] = 1
                        stack.append((nxt, iter(table.chains[nxt].rules)))
                        break
            else:
                state[name] = 2
                stack.pop()


def _check_hooks(rule: Rule, hooks: frozenset[str]) -> None:
    allowed = _TARGET_HOOKS.get(type(rule.target))
    if allowed and hooks - set(allowed):
        bad = ", ".join(sorted(hooks - set(allowed)))
        raise InputError(rule.source, rule.line,
                         f"{type(rule.target).__name__.upper()} is only valid from {'/'.join(allowed)},"
                         f" but this chain is reached from {bad}", rule.text)
    for match in rule.matches:
        if isinstance(match, AddrTypeMatch) and match.limit_iface:
            bad_hooks = {"POSTROUTING", "OUTPUT"} if match.limit_iface == "in" else {"PREROUTING", "INPUT"}
            if hooks & bad_hooks:
                raise InputError(rule.source, rule.line,
                                 f"addrtype --limit-iface-{match.limit_iface} is not valid from "
                                 f"{', '.join(sorted(hooks & bad_hooks))}", rule.text)
    if rule.chain in ("OUTPUT", "POSTROUTING") and any(
            type(mt).__name__ == "IfaceMatch" and mt.direction == "in" for mt in rule.matches):
        raise InputError(rule.source, rule.line, f"-i cannot be used in the {rule.chain} chain", rule.text)
    if rule.chain in ("PREROUTING", "INPUT") and any(
            type(mt).__name__ == "IfaceMatch" and mt.direction == "out" for mt in rule.matches):
        raise InputError(rule.source, rule.line, f"-o cannot be used in the {rule.chain} chain", rule.text)
