"""Option routing: which owner each option of one rule line belongs to.

Options come in any order (kube-proxy writes ``-m tcp -p tcp -d X --dport N``).
Like iptables, an option belongs to the target if it knows it, else to the most
recently loaded ``-m`` module that knows it, else to the protocol's implicit module
(``-p tcp --dport 80`` without ``-m tcp``).  ``!`` negates the next option.  An
unknown module, target or option is an error, or with ``lenient`` an explicit
unknown whose options run to the next option.  iptables' own options (``-s``,
``-p``, ``-i``, ``-f`` ...) are checked and read here.

:func:`route` walks a rule once and records, in rule order, what the planner
(:mod:`.iptables_plan`) builds: the values it read, and token positions for the rest.
"""

from __future__ import annotations

from ..model import rules as m
from ..model.packet import ICMP, SCTP, TCP, UDP
from . import iptables_values as v
from .iptables_kit import MatchModule, RuleSyntaxError, checked
from .iptables_table import MATCH_OPTIONS, TARGET_OPTIONS, unknown_target

__all__ = ["Route", "route"]

# The options iptables itself owns, by meaning.
_CORE_OPTIONS = {
    "!": "not",
    "-s": "src", "--source": "src", "--src": "src",
    "-d": "dst", "--destination": "dst", "--dst": "dst",
    "-p": "proto", "--protocol": "proto",
    "-i": "in", "--in-interface": "in", "-o": "out", "--out-interface": "out",
    "-m": "match", "--match": "match",
    "-j": "jump", "--jump": "jump", "-g": "goto", "--goto": "goto",
    "-f": "fragment", "--fragment": "fragment",
}

# Core options iptables refuses to see twice in one rule ("multiple -s flags not allowed").
_ONCE = {"src": "-s", "dst": "-d", "in": "-i", "out": "-o"}
_PROTO_MODULES = {TCP: "tcp", UDP: "udp", SCTP: "sctp", ICMP: "icmp"}


class Route:
    """One rule's options, each given to its owner.

    ``items`` holds, in rule order, ``(0, matches)`` built already, ``(1, field,
    invert, pos)`` an address at token ``pos``, ``(2, pos)`` a lone comment at ``pos``,
    and the :class:`MatchModule` of each ``-m`` (whose ``opts`` are ``(option, start,
    end, invert)`` token ranges).  The target is ``target_name`` (token ``target_pos``)
    with ``target_opts`` as token ranges.  ``free`` holds the positions consumed as
    values nothing here read; ``swallowed`` says an unknown owner's options were found
    by looking at the tokens.
    """

    __slots__ = ("items", "modules", "target_name", "target_pos", "goto", "target_opts", "proto", "free",
                 "swallowed", "seen_once")

    def __init__(self) -> None:
        self.items: list[object] = []
        self.modules: list[MatchModule] = []
        self.target_name: str | None = None
        self.target_pos = -1
        self.goto = False
        self.target_opts: list[tuple[str, int, int, bool]] = []
        self.proto: int | None = None        # negative: a negated protocol
        self.free: set[int] = set()
        self.swallowed = False
        self.seen_once: set[str] = set()


def route(args: list[str], lenient: bool) -> Route:
    """Walk the arguments after ``-A CHAIN`` once; raise RuleSyntaxError where iptables would refuse."""
    r = Route()
    invert = False
    i, n = 0, len(args)
    while i < n:
        tok = args[i]
        kind = _CORE_OPTIONS.get(tok)
        if kind == "not":
            if invert:
                raise RuleSyntaxError("two '!' in a row")
            invert = True
            i += 1
            continue
        if kind is None:
            if not (tok.startswith("-") and len(tok) > 1):
                raise RuleSyntaxError(f"unexpected argument {tok!r}")
            i = _extension_option(r, args, i, invert, lenient)
        elif kind == "fragment":
            _fragment(r, invert)
            i += 1
        else:
            if i + 1 >= n:
                raise RuleSyntaxError(f"option {tok} needs an argument")
            if kind in _ONCE:
                if kind in r.seen_once:
                    raise RuleSyntaxError(f"multiple {_ONCE[kind]} flags (iptables allows one)")
                r.seen_once.add(kind)
            i = _CORE_READERS[kind](r, kind, args, i, invert, lenient)
        invert = False
    if invert:
        raise RuleSyntaxError("'!' at the end of the rule negates nothing")
    return r


def _address(r: Route, kind: str, args: list[str], i: int, invert: bool, lenient: bool) -> int:
    """``-s``/``-d``: a token position (its value never steers the walk)."""
    r.items.append((1, kind, invert, i + 1))
    r.free.add(i + 1)
    return i + 2


def _protocol(r: Route, kind: str, args: list[str], i: int, invert: bool, lenient: bool) -> int:
    """``-p``: read now (it picks the implicit module and checks the modules' needs)."""
    if r.proto is not None:
        raise RuleSyntaxError("-p given twice")
    proto = checked(v.parse_protocol, args[i + 1])
    if proto == 0 and invert:
        raise RuleSyntaxError("'! -p all' matches nothing; iptables rejects it")
    if proto != 0:
        r.items.append((0, (m.ProtoMatch(proto, invert),)))
    r.proto = -proto if invert else proto
    return i + 2


def _iface(r: Route, kind: str, args: list[str], i: int, invert: bool, lenient: bool) -> int:
    """``-i``/``-o`` (``-i +`` is no test at all)."""
    name, prefix = checked(v.parse_iface, args[i + 1])
    if not (prefix and name == "") or invert:
        r.items.append((0, (m.IfaceMatch(kind, name, prefix, invert),)))
    return i + 2


def _load_module(r: Route, kind: str, args: list[str], i: int, invert: bool, lenient: bool) -> int:
    """``-m NAME``: later options may belong to it."""
    if invert:
        raise RuleSyntaxError("'!' cannot negate a -m module; put it before the module's option")
    name = args[i + 1]
    n = len(args)
    if name == "comment" and i + 3 < n and args[i + 2] == "--comment" and (i + 4 == n or args[i + 4] != "--comment"):
        # The most common module by far: one option, no negation, shared objects.
        r.items.append((2, i + 3))
        r.free.add(i + 3)
        return i + 4
    known = name in MATCH_OPTIONS
    if not known and not lenient:
        raise RuleSyntaxError(
            f"unsupported match module {name!r} (supported: {', '.join(sorted(MATCH_OPTIONS))};"
            " --lenient treats it as may-match)")
    module = MatchModule(name, known)
    r.modules.append(module)
    r.items.append(module)
    return i + 2


def _target(r: Route, kind: str, args: list[str], i: int, invert: bool, lenient: bool) -> int:
    """``-j``/``-g``: the target, whose options may follow."""
    if invert:
        raise RuleSyntaxError("'!' cannot negate a target")
    if r.target_name is not None:
        raise RuleSyntaxError("more than one target (-j/-g)")
    value = args[i + 1]
    r.target_name = value
    r.target_pos = i + 1
    if value not in TARGET_OPTIONS:
        r.free.add(i + 1)     # only "not a target extension" steers the walk
    r.goto = kind == "goto"
    return i + 2


_CORE_READERS = {"src": _address, "dst": _address, "proto": _protocol, "in": _iface, "out": _iface,
                 "match": _load_module, "jump": _target, "goto": _target}


def _fragment(r: Route, invert: bool) -> None:
    if "fragment" in r.seen_once:
        raise RuleSyntaxError("multiple -f flags (iptables allows one)")
    r.seen_once.add("fragment")
    # pktverify's packets are whole (first) fragments: -f never matches, ! -f always does.
    r.items.append((0, (m.FixedMatch("fragment", invert, "packets are not fragments (-f)"),)))


def _extension_option(r: Route, args: list[str], i: int, invert: bool, lenient: bool) -> int:
    """An option of the target or a ``-m`` module: give it to its owner; the index after its arguments."""
    i_next, took_unknown = _give_option(r, args, i, invert, lenient)
    if took_unknown:
        r.swallowed = True    # the walk looked at these tokens to find where they end
    else:
        r.free.update(range(i + 1, i_next))
    return i_next


def _give_option(r: Route, args: list[str], i: int, invert: bool, lenient: bool) -> tuple[int, bool]:
    """Attach option ``args[i]`` to its owner as ``(option, start, end, invert)`` token positions.

    Returns the index after its arguments, and whether they were an unknown owner's
    (lenient), whose extent was found by looking at the tokens.
    """
    opt = args[i]
    target_name = r.target_name
    if target_name is not None and opt in TARGET_OPTIONS.get(target_name, {}):
        nargs = TARGET_OPTIONS[target_name][opt]
        _check_count(args, i, nargs, opt)
        r.target_opts.append((opt, i + 1, i + 1 + nargs, invert))
        return i + 1 + nargs, False
    for module in reversed(r.modules):
        if module.known and opt in MATCH_OPTIONS[module.name]:
            nargs = MATCH_OPTIONS[module.name][opt]
            _check_count(args, i, nargs, opt)
            if any(seen[0] == opt for seen in module.opts):
                raise RuleSyntaxError(f"option {opt} given twice to -m {module.name} (iptables allows it once)")
            module.opts.append((opt, i + 1, i + 1 + nargs, invert))
            return i + 1 + nargs, False
    implicit = _PROTO_MODULES.get(r.proto or 0)
    if implicit and opt in MATCH_OPTIONS[implicit]:
        module = MatchModule(implicit, True)
        r.modules.append(module)
        r.items.append(module)
        return _give_option(r, args, i, invert, lenient)
    return _unknown_owner_option(r, args, i, invert, lenient)


def _unknown_owner_option(r: Route, args: list[str], i: int, invert: bool, lenient: bool) -> tuple[int, bool]:
    """An option no known owner takes: lenient, an unknown owner's (up to the next option); else an error."""
    opt = args[i]
    target_name = r.target_name
    unknown_target_named = bool(target_name) and target_name not in TARGET_OPTIONS
    unknown_module = next((mod for mod in reversed(r.modules) if not mod.known), None)
    if lenient and (unknown_module is not None or unknown_target_named):
        j = i + 1
        while j < len(args) and not args[j].startswith("-") and args[j] != "!":
            j += 1
        if unknown_module is not None and not unknown_target_named:
            unknown_module.raw.extend(args[i:j])
        else:
            r.target_opts.append((opt, i + 1, j, invert))
        return j, True
    if unknown_target_named:
        unknown_target(target_name, [opt], lenient)
    owner = f"target {target_name}" if target_name else "the loaded match modules"
    raise RuleSyntaxError(f"unknown option {opt!r} for {owner}")


def _check_count(args: list[str], i: int, nargs: int, opt: str) -> None:
    if i + nargs >= len(args) + (1 if nargs == 0 else 0):
        raise RuleSyntaxError(f"option {opt} needs {nargs} argument(s)")
