"""What every ``-m``/``-j`` builder shares: the error it raises and the record it reads.

A builder takes a :class:`MatchModule` (a loaded ``-m`` module and its options, in
rule order) or a target's option list, and returns model values; anything iptables
or the kernel would refuse is a :class:`RuleSyntaxError` whose message says what is
wrong (the file parser adds ``file:line``).  The helpers here turn the ValueError of
:mod:`.iptables_values` into that error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from . import iptables_values as v

__all__ = ["RuleSyntaxError", "MatchModule", "MatchBuilder", "TargetBuilder", "TargetOptions", "checked", "uint", "uint_range", "value_mask", "network",
           "options_by_name", "any_inverted"]

T = TypeVar("T")


class RuleSyntaxError(ValueError):
    """A rule we cannot accept; the message says what is wrong and what is supported."""


@dataclass
class MatchModule:
    """One ``-m NAME`` in a rule: its options as ``(option, values, invert)`` in rule order.

    While a rule is routed (:mod:`.iptables_route`) ``opts`` holds ``(option, start, end,
    invert)`` token positions instead; ``raw`` is an unknown module's option text (lenient).
    """
    name: str
    known: bool
    opts: list[tuple] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)


# A target's options as (option, values, invert), in rule order.
TargetOptions = list[tuple[str, list[str], bool]]
# ``-m`` builder: (module, the rule's protocol) -> model matches.
MatchBuilder = Callable[[MatchModule, "int | None"], list]
# ``-j`` builder: (target name, its options, the rule's protocol) -> model target.
TargetBuilder = Callable[[str, TargetOptions, "int | None"], object]


def checked(fn: Callable[[str], T], text: str) -> T:
    """``fn(text)``, its ValueError raised as a RuleSyntaxError with the same message."""
    try:
        return fn(text)
    except ValueError as exc:
        raise RuleSyntaxError(str(exc)) from None


def uint(text: str, what: str, limit: int = 0xFFFFFFFF) -> int:
    """An unsigned number as strtoul reads it, at most ``limit``."""
    try:
        return v.c_uint(text, what, limit)
    except ValueError as exc:
        raise RuleSyntaxError(str(exc)) from None


def uint_range(text: str, what: str, limit: int = 0xFFFFFFFF, sep: str = ":") -> tuple[int, int]:
    """``LOW[:HIGH]`` (either side may be left out: 0 and ``limit``)."""
    low_text, s, high_text = text.partition(sep)
    low = uint(low_text, what, limit) if low_text else 0
    high = (uint(high_text, what, limit) if high_text else limit) if s else low
    if low > high:
        raise RuleSyntaxError(f"{what} range {text!r} has its start after its end")
    return low, high


def value_mask(text: str, what: str) -> tuple[int, int]:
    """``VALUE[/MASK]`` as ``(value & mask, mask)``."""
    value_text, sep, mask_text = text.partition("/")
    value = uint(value_text, what)
    mask = uint(mask_text, f"{what} mask") if sep else 0xFFFFFFFF
    return value & mask, mask


def network(text: str, parse: Callable[[str], tuple[int, int]] | None = None) -> tuple[int, int]:
    """An address or network as ``(net, mask)`` (xtables' forms unless ``parse`` says otherwise)."""
    try:
        return (parse or v.parse_network_text)(text)
    except ValueError as exc:
        raise RuleSyntaxError(str(exc)) from None


def options_by_name(module: MatchModule) -> dict[str, tuple[list[str], bool]]:
    """The module's options as ``{option: (values, invert)}``."""
    return {opt: (vals, inv) for opt, vals, inv in module.opts}


def required(module: MatchModule, option: str) -> tuple[list[str], bool]:
    """The ``(values, invert)`` of an option the module cannot do without, or the error
    iptables-restore gives when it is missing (``length: option "--length" must be specified``)."""
    for opt, vals, inv in module.opts:
        if opt == option:
            return vals, inv
    raise RuleSyntaxError(f'{module.name}: option "{option}" must be specified')


def any_inverted(module: MatchModule) -> bool:
    """Whether any of the module's options is negated."""
    return any(inv for _o, _v, inv in module.opts)
