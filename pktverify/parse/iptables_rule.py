"""One ``-A CHAIN ...`` line → matches and a target.

The parse runs in three rooms: :mod:`.iptables_route` gives each option to its
owner (iptables' own options, the target, a ``-m`` module, the protocol's implicit
module), :mod:`.iptables_table` holds every ``-m``/``-j`` builder, and
:mod:`.iptables_plan` plans each rule *shape* once.  This module is their face: a
:class:`RuleParser` per file keeps the plans and shares equal matches and targets.
An unknown module, target or option is an error, or with ``lenient`` an explicit
unknown that the evaluator treats as "may match".
"""

from __future__ import annotations

from dataclasses import dataclass

from ..bulk import direct_constructor
from ..model import rules as m
from .iptables_kit import MatchModule, RuleSyntaxError
from .iptables_plan import MAX_PLANS, Plan, plan, shape_key
from .iptables_table import build_match, build_target

__all__ = ["RuleSyntaxError", "ParsedRule", "RuleParser", "parse_rule_args"]

# The objects a kube-proxy dump has tens of thousands of, built without the dataclass __init__.
_new_comment = direct_constructor(m.CommentMatch)
_new_jump = direct_constructor(m.Jump)


@dataclass(frozen=True, slots=True)
class ParsedRule:
    """What one rule line says: its matches in order and its target."""
    matches: tuple
    target: object
    proto: int | None


class RuleParser:
    """Parses rule arguments; equal match modules and targets are built once and shared.

    Matches and targets are immutable, and a kube-proxy dump repeats the same
    ``-m comment``, ``-m statistic`` and ``-j KUBE-MARK-MASQ`` thousands of
    times, so one parser per file memoises them by their exact option text, and
    plans each rule *shape* (:func:`.iptables_plan.shape_key`) once.
    """

    def __init__(self, *, lenient: bool = False) -> None:
        self.lenient = lenient
        self._matches: dict[tuple, tuple] = {}
        self._targets: dict[tuple, object] = {}
        self._comments: dict[str, m.CommentMatch] = {}
        self._plans: dict[tuple, Plan] = {}     # shape key -> its compiled builder (see iptables_plan)
        self._jumps: dict[str, object] = {}

    def parse(self, args: list[str]) -> ParsedRule:
        """Parse the arguments after ``-A CHAIN``; raise RuleSyntaxError on anything unsupported."""
        matches, target, proto = self.parse_parts(args)
        return ParsedRule(matches, target, proto)

    def parse_parts(self, args: list[str]) -> tuple[tuple, object, int | None]:
        """:meth:`parse` as a plain ``(matches, target, proto)`` tuple (the file parser's hot path)."""
        key = shape_key(args)
        build = self._plans.get(key)
        if build is None:
            build, shareable = plan(self, args, key)
            if shareable and len(self._plans) < MAX_PLANS:
                self._plans[key] = build
        return build(args)

    # The memos a compiled plan calls (see iptables_plan.Memos).
    def _comment(self, text: str) -> m.CommentMatch:
        comment = self._comments.get(text)
        if comment is None:
            comment = self._comments[text] = _new_comment(text)
        return comment

    def _jump(self, name: str) -> object:
        built = self._jumps.get(name)
        if built is None:
            if not name or name[0] == "-":
                build_target(name, False, [], None, self.lenient)     # raises: not a chain name
            built = self._jumps[name] = _new_jump(name, False)
        return built

    def _goto(self, name: str) -> object:
        return self._target(name, True, (), None)

    def _match(self, name: str, known: bool, proto: int | None, raw: tuple, opts: tuple) -> tuple:
        key = (name, known, proto, raw, opts)
        built = self._matches.get(key)
        if built is None:
            module = MatchModule(name, known, [(opt, list(vals), inv) for opt, vals, inv in opts], list(raw))
            built = self._matches[key] = tuple(build_match(module, proto))
        return built

    def _target(self, name: str, goto: bool, opts: tuple, proto: int | None) -> object:
        key = (name, goto, proto, opts)
        built = self._targets.get(key)
        if built is None:
            built = self._targets[key] = build_target(name, goto, [(opt, list(vals), inv) for opt, vals, inv in opts],
                                                      proto, self.lenient)
        return built


def parse_rule_args(args: list[str], *, lenient: bool = False) -> ParsedRule:
    """Parse the arguments after ``-A CHAIN`` (one-off; files use one :class:`RuleParser`)."""
    return RuleParser(lenient=lenient).parse(args)
