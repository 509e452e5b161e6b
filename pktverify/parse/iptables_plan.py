"""Rule-shape planning: parse a rule's shape once, then fill in its values for every rule of that shape.

A rule's *shape* (:func:`shape_key`) is its tokens with every value that cannot change
the parse's course blanked out; kube-proxy dumps are a dozen shapes repeated 100k
times.  :func:`plan` routes one rule of a shape (:mod:`.iptables_route`), builds now
what reads no blanked token, and compiles the rest into one function ``args ->
(matches, target, proto)`` that reads the blanked values from their token positions.
The parser (:class:`.iptables_rule.RuleParser`) keeps these plans and the memos the
compiled functions call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..bulk import direct_constructor
from ..model import rules as m
from . import iptables_values as v
from .iptables_kit import MatchModule, checked
from .iptables_route import Route, route
from .iptables_table import MATCH_OPTIONS, TARGET_OPTIONS

__all__ = ["shape_key", "plan", "Plan", "MAX_PLANS"]

Plan = Callable[[list[str]], tuple[tuple, object, "int | None"]]

# Options whose argument never steers the parse: the next token is a value that only the
# built match or target reads.
_VALUE_OPTIONS = frozenset(
    {"-s", "--source", "--src", "-d", "--destination", "--dst"}
    | {opt for opts in MATCH_OPTIONS.values() for opt, nargs in opts.items() if nargs}
    | {opt for opts in TARGET_OPTIONS.values() for opt, nargs in opts.items() if nargs})
_JUMP_OPTIONS = frozenset({"-j", "--jump", "-g", "--goto"})
_BLANKERS = _VALUE_OPTIONS | _JUMP_OPTIONS
_SLOT = None        # a blanked value in a shape key
MAX_PLANS = 1 << 16
# The objects a kube-proxy dump has tens of thousands of, built without the dataclass __init__.
_new_addr = direct_constructor(m.AddrMatch)


class Memos(Protocol):
    """What a plan calls on its parser: memoised builders of comments, matches and targets."""
    lenient: bool

    def _comment(self, text: str) -> m.CommentMatch: ...
    def _jump(self, name: str) -> object: ...
    def _goto(self, name: str) -> object: ...
    def _match(self, name: str, known: bool, proto: int | None, raw: tuple, opts: tuple) -> tuple: ...
    def _target(self, name: str, goto: bool, opts: tuple, proto: int | None) -> object: ...


def shape_key(args: list[str]) -> tuple:
    """``args`` with every value that cannot change the parse's course blanked out.

    A value is blanked by the previous token's text alone: the argument of an option
    that takes one, and a ``-j``/``-g`` argument that is not a target extension (a user
    chain: the walk only asks "is it an extension?").  :func:`plan` then confirms that
    each blanked token really was consumed as such a value before the plan is shared
    (``--comment -s 1.2.3.4`` blanks ``1.2.3.4``, which is then an unexpected argument:
    that rule's plan is not kept).
    """
    prev = ""
    key = []
    for tok in args:
        if prev in _BLANKERS and (prev not in _JUMP_OPTIONS or tok not in TARGET_OPTIONS):
            key.append(_SLOT)
        else:
            key.append(tok)
        prev = tok
    return tuple(key)


def plan(memos: Memos, args: list[str], key: tuple) -> tuple[Plan, bool]:
    """Route the rule once; return its compiled plan and whether its shape may share it.

    Values whose token the shape key blanked become token positions; everything else
    is built now.  The plan is shareable when every blanked token was consumed as such
    a value, so that no decision of the walk read one.
    """
    r = route(args, memos.lenient)
    blanked = {pos for pos, tok in enumerate(key) if tok is _SLOT}
    steps = _match_steps(memos, r, args, blanked)
    target, built = _target_step(memos, r, args, blanked)
    return _compile(memos, steps, target, built, r.proto), not r.swallowed and blanked <= r.free


def _match_steps(memos: Memos, r: Route, args: list[str], blanked: set[int]) -> list:
    """The routed items as plan steps: modules reading no blanked token are built now."""
    steps: list[object] = []
    for item in r.items:
        if type(item) is not MatchModule:
            steps.append(item)
        elif any(pos in blanked for _opt, s, e, _inv in item.opts for pos in range(s, e)):
            steps.append((3, item.name, item.known, tuple(item.raw), tuple(item.opts)))
        else:
            built_matches = memos._match(item.name, item.known, r.proto, tuple(item.raw),
                                         tuple((opt, tuple(args[s:e]), inv) for opt, s, e, inv in item.opts))
            if built_matches:
                steps.append((0, built_matches))
    return steps


def _target_step(memos: Memos, r: Route, args: list[str], blanked: set[int]) -> tuple[object, bool]:
    """The target built now (and True), or as ``(name or None, name_pos, goto, opts)`` to build per rule."""
    if r.target_name is None:
        return None, True
    pos = r.target_pos
    if pos in blanked or any(p in blanked for _opt, s, e, _inv in r.target_opts for p in range(s, e)):
        return (None if pos in blanked else r.target_name, pos if pos in blanked else None, r.goto,
                tuple(r.target_opts)), False
    return memos._target(r.target_name, r.goto, tuple((opt, tuple(args[s:e]), inv)
                                                      for opt, s, e, inv in r.target_opts), r.proto), True


def _compile(memos: Memos, steps: list, target: object, built: bool, proto: int | None) -> Plan:
    """One function per plan: ``args -> (matches, target, proto)`` with no per-step dispatch.

    ``steps`` holds, in rule order, ``(0, matches)`` for matches built already (no
    blanked value) or a step that reads its values from token positions: ``(1, field,
    invert, pos)`` an address, ``(2, pos)`` a comment, ``(3, name, known, raw, opts)`` a
    match module whose ``opts`` are ``(option, start, end, invert)`` token ranges.
    ``target`` is a built target (``built``), None, or ``(name or None, name_pos, goto,
    opts)``.  The generated text holds only names and token positions; every value
    (built matches, option names, the protocol) is passed in the namespace, never
    spliced into the source.
    """
    ns: dict[str, object] = {"_comment": memos._comment, "_match": memos._match, "_target": memos._target,
                             "_jump": memos._jump, "_goto": memos._goto, "PROTO": proto}
    names = iter(f"c{i}" for i in range(1 << 20))

    def const(value: object) -> str:
        name = next(names)
        ns[name] = value
        return name

    def opts_expr(opts) -> str:
        parts = [f"({const(opt)}, ({''.join(f'args[{pos}], ' for pos in range(start, end))}), {const(inv)})"
                 for opt, start, end, inv in opts]
        return f"({''.join(part + ', ' for part in parts)})"

    exprs: list[str] = []
    for step in steps:
        kind = step[0]
        if kind == 0:
            exprs.extend(const(match) for match in step[1])
        elif kind == 1:
            exprs.append(f"*{const(_address_builder(step[1], step[2]))}(args[{step[3]}])")
        elif kind == 2:
            exprs.append(f"_comment(args[{step[1]}])")
        else:
            _k, name, known, raw, opts = step
            exprs.append(f"*_match({const(name)}, {const(known)}, PROTO, {const(raw)}, {opts_expr(opts)})")
    if built:
        target_expr = const(target)
    else:
        name, pos, goto, opts = target
        if pos is not None and not opts:
            target_expr = f"{'_goto' if goto else '_jump'}(args[{pos}])"
        else:
            name_expr = f"args[{pos}]" if pos is not None else const(name)
            target_expr = f"_target({name_expr}, {const(goto)}, {opts_expr(opts)}, PROTO)"
    source = f"def build(args):\n    return ({''.join(e + ', ' for e in exprs)}), {target_expr}, PROTO\n"
    exec(source, ns)    # noqa: S102 - names and integers only, see above
    return ns["build"]


def _address_builder(field_name: str, invert: bool) -> Callable[[str], tuple]:
    """``text -> (AddrMatch,)`` for one ``-s``/``-d`` slot: canonical text fast, xtables' forms after.

    ``-s 0/0`` is no test at all: the kernel keeps no address match for it (iptables-save
    prints none), so neither does the model; ``! -s 0/0`` stays (it matches nothing)."""
    def build(text: str) -> tuple:
        net, mask = checked(v.parse_network_text, text)
        return (_new_addr(field_name, net, mask, invert),) if mask or invert else ()
    return build
