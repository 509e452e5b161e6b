"""One ``-A CHAIN ...`` line → matches and a target.

Options come in any order (kube-proxy writes ``-m tcp -p tcp -d X --dport N``).
Like iptables, an option belongs to the target if it knows it, else to the
most recently loaded match module that knows it, else to the protocol's
implicit module (``-p tcp --dport 80`` without ``-m tcp``).  An unknown module,
target or option is an error, or with ``lenient`` an explicit unknown that the
evaluator treats as "may match".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..bulk import direct_constructor
from ..model import rules as m
from ..model.packet import ICMP, SCTP, TCP, UDP
from . import iptables_values as v
from .iptables_ext import (CONNTRACK_OPTIONS, EXT_MATCH_BUILDERS, EXT_MATCH_MODULES, EXT_TARGETS, ExtSyntaxError,
                           build_ext_target, conntrack_extra)

__all__ = ["RuleSyntaxError", "ParsedRule", "RuleParser", "parse_rule_args", "MATCH_MODULES", "TARGETS"]


class RuleSyntaxError(ValueError):
    """A rule we cannot accept; the message says what is wrong and what is supported."""


# option -> number of arguments, per match module
MATCH_MODULES: dict[str, dict[str, int]] = {
    "tcp": {"--sport": 1, "--source-port": 1, "--dport": 1, "--destination-port": 1,
            "--tcp-flags": 2, "--syn": 0, "--tcp-option": 1},
    "udp": {"--sport": 1, "--source-port": 1, "--dport": 1, "--destination-port": 1},
    "sctp": {"--sport": 1, "--source-port": 1, "--dport": 1, "--destination-port": 1},
    "multiport": {"--dports": 1, "--destination-ports": 1, "--sports": 1, "--source-ports": 1,
                  "--ports": 1},
    "comment": {"--comment": 1},
    "addrtype": {"--src-type": 1, "--dst-type": 1, "--limit-iface-in": 0, "--limit-iface-out": 0},
    "statistic": {"--mode": 1, "--probability": 1, "--every": 1, "--packet": 1},
    "mark": {"--mark": 1},
    "conntrack": dict(CONNTRACK_OPTIONS),
    "state": {"--state": 1},
    "iprange": {"--src-range": 1, "--dst-range": 1},
    "icmp": {"--icmp-type": 1},
    "recent": {"--name": 1, "--set": 0, "--rcheck": 0, "--update": 0, "--remove": 0,
               "--seconds": 1, "--reap": 0, "--hitcount": 1, "--rttl": 0, "--rsource": 0,
               "--rdest": 0, "--mask": 1},
    **EXT_MATCH_MODULES,
}

TARGETS: dict[str, dict[str, int]] = {
    "ACCEPT": {}, "DROP": {}, "RETURN": {},
    "REJECT": {"--reject-with": 1},
    "DNAT": {"--to-destination": 1, "--random": 0, "--persistent": 0},
    "SNAT": {"--to-source": 1, "--random": 0, "--random-fully": 0, "--persistent": 0},
    "MASQUERADE": {"--to-ports": 1, "--random": 0, "--random-fully": 0},
    "REDIRECT": {"--to-ports": 1, "--random": 0},
    "MARK": {"--set-xmark": 1, "--set-mark": 1, "--or-mark": 1, "--and-mark": 1, "--xor-mark": 1},
    "LOG": {"--log-prefix": 1, "--log-level": 1, "--log-tcp-sequence": 0,
            "--log-tcp-options": 0, "--log-ip-options": 0, "--log-uid": 0, "--log-macdecode": 0},
    "NFLOG": {"--nflog-group": 1, "--nflog-prefix": 1, "--nflog-range": 1,
              "--nflog-threshold": 1, "--nflog-size": 1},
    **EXT_TARGETS,
}

_PROTO_MODULES = {TCP: "tcp", UDP: "udp", SCTP: "sctp", ICMP: "icmp"}
# The objects a kube-proxy dump has tens of thousands of, built without the dataclass __init__.
_new_addr = direct_constructor(m.AddrMatch)
_new_comment = direct_constructor(m.CommentMatch)
_new_jump = direct_constructor(m.Jump)


@dataclass
class _Module:
    name: str
    known: bool
    opts: list[tuple] = field(default_factory=list)   # (option, values, invert); while planning (option, start, end, invert)
    raw: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ParsedRule:
    """What one rule line says: its matches in order and its target."""
    matches: tuple
    target: object
    proto: int | None


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


# Options whose argument never steers the parse: the next token is a value that only the
# built match or target reads.  A rule's *shape* is its tokens with these values blanked, and
# the parse of a shape is planned once (kube-proxy dumps are a dozen shapes repeated 100k times).
_VALUE_OPTIONS = frozenset(
    {"-s", "--source", "--src", "-d", "--destination", "--dst"}
    | {opt for opts in MATCH_MODULES.values() for opt, nargs in opts.items() if nargs}
    | {opt for opts in TARGETS.values() for opt, nargs in opts.items() if nargs})
_JUMP_OPTIONS = frozenset({"-j", "--jump", "-g", "--goto"})
_BLANKERS = _VALUE_OPTIONS | _JUMP_OPTIONS
_SLOT = None        # a blanked value in a shape key
_MAX_PLANS = 1 << 16


def _shape_key(args: list[str]) -> tuple:
    """``args`` with every value that cannot change the parse's course blanked out.

    A value is blanked by the previous token's text alone: the argument of an option
    that takes one, and a ``-j``/``-g`` argument that is not a target extension (a user
    chain: the walk only asks "is it an extension?").  :meth:`RuleParser._plan` then
    confirms that each blanked token really was consumed as such a value before the
    plan is shared (``--comment -s 1.2.3.4`` blanks ``1.2.3.4``, which is then an
    unexpected argument: that rule's plan is not kept).
    """
    prev = ""
    key = []
    for tok in args:
        if prev in _BLANKERS and (prev not in _JUMP_OPTIONS or tok not in TARGETS):
            key.append(_SLOT)
        else:
            key.append(tok)
        prev = tok
    return tuple(key)


class RuleParser:
    """Parses rule arguments; equal match modules and targets are built once and shared.

    Matches and targets are immutable, and a kube-proxy dump repeats the same
    ``-m comment``, ``-m statistic`` and ``-j KUBE-MARK-MASQ`` thousands of
    times, so one parser per file memoises them by their exact option text, and
    plans each rule *shape* (:func:`_shape_key`) once.
    """

    def __init__(self, *, lenient: bool = False) -> None:
        self.lenient = lenient
        self._matches: dict[tuple, tuple] = {}
        self._targets: dict[tuple, object] = {}
        self._comments: dict[str, m.CommentMatch] = {}
        self._plans: dict[tuple, Callable] = {}     # shape key -> its compiled builder (see _plan)
        self._jumps: dict[str, object] = {}

    def parse(self, args: list[str]) -> ParsedRule:
        """Parse the arguments after ``-A CHAIN``; raise RuleSyntaxError on anything unsupported."""
        matches, target, proto = self.parse_parts(args)
        return ParsedRule(matches, target, proto)

    def parse_parts(self, args: list[str]) -> tuple[tuple, object, int | None]:
        """:meth:`parse` as a plain ``(matches, target, proto)`` tuple (the file parser's hot path)."""
        key = _shape_key(args)
        build = self._plans.get(key)
        if build is None:
            build, shareable = self._plan(args, key)
            if shareable and len(self._plans) < _MAX_PLANS:
                self._plans[key] = build
        return build(args)

    def _compile(self, steps: list, target: object, built: bool, proto: int | None) -> Callable:
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
        ns: dict[str, object] = {"_comment": self._comment, "_match": self._match, "_target": self._target,
                                 "_jump": self._jump, "_goto": self._goto, "PROTO": proto}
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

    def _comment(self, text: str) -> m.CommentMatch:
        comment = self._comments.get(text)
        if comment is None:
            comment = self._comments[text] = _new_comment(text)
        return comment

    def _jump(self, name: str) -> object:
        built = self._jumps.get(name)
        if built is None:
            if not name or name[0] == "-":
                _build_target(name, False, [], None, self.lenient)     # raises: not a chain name
            built = self._jumps[name] = _new_jump(name, False)
        return built

    def _goto(self, name: str) -> object:
        return self._target(name, True, (), None)

    def _plan(self, args: list[str], key: tuple) -> tuple[Callable, bool]:
        """Walk the rule's options once; return its compiled plan and whether its shape may share it.

        Values whose token the shape key blanked become token positions; everything
        else is built now.  The plan is shareable when every blanked token was consumed
        as such a value, so that no decision of this walk read one.
        """
        lenient = self.lenient
        items: list[object] = []        # matches, steps and _Module placeholders, in order of appearance
        modules: list[_Module] = []
        target_name: str | None = None
        target_pos = -1
        goto = False
        target_opts: list[tuple[str, int, int, bool]] = []
        proto: int | None = None
        invert = False
        seen_once: set[str] = set()
        free: set[int] = set()          # positions consumed as values the walk did not read
        swallowed = False
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
            if kind is not None and kind != "fragment":
                if i + 1 >= n:
                    raise RuleSyntaxError(f"option {tok} needs an argument")
                value = args[i + 1]
                if kind in _ONCE:
                    if kind in seen_once:
                        raise RuleSyntaxError(f"multiple {_ONCE[kind]} flags (iptables allows one)")
                    seen_once.add(kind)
            if kind == "src" or kind == "dst":
                items.append((1, kind, invert, i + 1))
                free.add(i + 1)
                i += 2
            elif kind == "proto":
                if proto is not None:
                    raise RuleSyntaxError("-p given twice")
                proto = _value(v.parse_protocol, value)
                if proto == 0 and invert:
                    raise RuleSyntaxError("'! -p all' matches nothing; iptables rejects it")
                if proto != 0:
                    items.append((0, (m.ProtoMatch(proto, invert),)))
                proto = -proto if invert else proto   # negative: negated protocol
                i += 2
            elif kind == "in" or kind == "out":
                name, prefix = _value(v.parse_iface, value)
                if not (prefix and name == "") or invert:
                    items.append((0, (m.IfaceMatch(kind, name, prefix, invert),)))
                i += 2
            elif kind == "match":
                if invert:
                    raise RuleSyntaxError("'!' cannot negate a -m module; put it before the module's option")
                name = value
                if name == "comment" and i + 3 < n and args[i + 2] == "--comment" \
                        and (i + 4 == n or args[i + 4] != "--comment"):
                    # The most common module by far: one option, no negation, shared objects.
                    items.append((2, i + 3))
                    free.add(i + 3)
                    i += 4
                    continue
                known = name in MATCH_MODULES
                if not known and not lenient:
                    raise RuleSyntaxError(
                        f"unsupported match module {name!r} (supported: {', '.join(sorted(MATCH_MODULES))};"
                        " --lenient treats it as may-match)")
                module = _Module(name, known)
                modules.append(module)
                items.append(module)
                i += 2
            elif kind == "jump" or kind == "goto":
                if invert:
                    raise RuleSyntaxError("'!' cannot negate a target")
                if target_name is not None:
                    raise RuleSyntaxError("more than one target (-j/-g)")
                target_name = value
                target_pos = i + 1
                if value not in TARGETS:
                    free.add(i + 1)     # only "not a target extension" steers the walk
                goto = kind == "goto"
                i += 2
            elif kind == "fragment":
                if "fragment" in seen_once:
                    raise RuleSyntaxError("multiple -f flags (iptables allows one)")
                seen_once.add("fragment")
                # pktverify's packets are whole (first) fragments: -f never matches, ! -f always does.
                items.append((0, (m.FixedMatch("fragment", invert, "packets are not fragments (-f)"),)))
                i += 1
            elif tok.startswith("-") and len(tok) > 1:
                before = i
                i, took_unknown = _module_option(args, i, invert, target_name, target_opts, modules, items,
                                                 proto, lenient)
                if took_unknown:
                    swallowed = True    # the walk looked at these tokens to find where they end
                else:
                    free.update(range(before + 1, i))
            else:
                raise RuleSyntaxError(f"unexpected argument {tok!r}")
            invert = False
        if invert:
            raise RuleSyntaxError("'!' at the end of the rule negates nothing")
        blanked = {pos for pos, tok in enumerate(key) if tok is _SLOT}
        steps: list[object] = []
        for item in items:
            if type(item) is not _Module:
                steps.append(item)
            elif any(pos in blanked for _opt, s, e, _inv in item.opts for pos in range(s, e)):
                steps.append((3, item.name, item.known, tuple(item.raw), tuple(item.opts)))
            else:
                built_matches = self._match(item.name, item.known, proto, tuple(item.raw),
                                            tuple((opt, tuple(args[s:e]), inv) for opt, s, e, inv in item.opts))
                if built_matches:
                    steps.append((0, built_matches))
        target: object = None
        built = True
        if target_name is not None:
            if target_pos in blanked or any(pos in blanked for _opt, s, e, _inv in target_opts for pos in range(s, e)):
                target = (None if target_pos in blanked else target_name,
                          target_pos if target_pos in blanked else None, goto, tuple(target_opts))
                built = False
            else:
                target = self._target(target_name, goto, tuple((opt, tuple(args[s:e]), inv)
                                                               for opt, s, e, inv in target_opts), proto)
        return self._compile(steps, target, built, proto), not swallowed and blanked <= free

    def _match(self, name: str, known: bool, proto: int | None, raw: tuple, opts: tuple) -> tuple:
        key = (name, known, proto, raw, opts)
        built = self._matches.get(key)
        if built is None:
            module = _Module(name, known, [(opt, list(vals), inv) for opt, vals, inv in opts], list(raw))
            built = self._matches[key] = tuple(_build_match(module, proto))
        return built

    def _target(self, name: str, goto: bool, opts: tuple, proto: int | None):
        key = (name, goto, proto, opts)
        built = self._targets.get(key)
        if built is None:
            built = self._targets[key] = _build_target(name, goto, [(opt, list(vals), inv) for opt, vals, inv in opts],
                                                       proto, self.lenient)
        return built


def _address_builder(field_name: str, invert: bool):
    """``text -> (AddrMatch,)`` for one ``-s``/``-d`` slot: canonical text fast, xtables' forms after.

    ``-s 0/0`` is no test at all: the kernel keeps no address match for it (iptables-save
    prints none), so neither does the model; ``! -s 0/0`` stays (it matches nothing)."""
    def build(text: str) -> tuple:
        net, mask = _value(v.parse_network_text, text)
        return (_new_addr(field_name, net, mask, invert),) if mask or invert else ()
    return build


def parse_rule_args(args: list[str], *, lenient: bool = False) -> ParsedRule:
    """Parse the arguments after ``-A CHAIN`` (one-off; files use one :class:`RuleParser`)."""
    return RuleParser(lenient=lenient).parse(args)


def _value(fn, text):
    try:
        return fn(text)
    except ValueError as exc:
        raise RuleSyntaxError(str(exc)) from None


def _module_option(args, i, invert, target_name, target_opts, modules, items, proto, lenient) -> tuple[int, bool]:
    """Attach option ``args[i]`` to its owner as ``(option, start, end, invert)`` token positions.

    Returns the index after its arguments, and whether they were an unknown owner's
    (lenient), whose extent was found by looking at the tokens.
    """
    opt = args[i]
    if target_name is not None and opt in TARGETS.get(target_name, {}):
        nargs = TARGETS[target_name][opt]
        _check_count(args, i, nargs, opt)
        target_opts.append((opt, i + 1, i + 1 + nargs, invert))
        return i + 1 + nargs, False
    for module in reversed(modules):
        if module.known and opt in MATCH_MODULES[module.name]:
            nargs = MATCH_MODULES[module.name][opt]
            _check_count(args, i, nargs, opt)
            if any(seen[0] == opt for seen in module.opts):
                raise RuleSyntaxError(f"option {opt} given twice to -m {module.name} (iptables allows it once)")
            module.opts.append((opt, i + 1, i + 1 + nargs, invert))
            return i + 1 + nargs, False
    implicit = _PROTO_MODULES.get(proto or 0)
    if implicit and opt in MATCH_MODULES[implicit]:
        module = _Module(implicit, True)
        modules.append(module)
        items.append(module)
        return _module_option(args, i, invert, target_name, target_opts, modules, items, proto, lenient)
    # Options of an unknown module or target (lenient): swallow up to the next option.
    unknown_owner = next((mod for mod in reversed(modules) if not mod.known), None)
    if lenient and (unknown_owner is not None or (target_name and target_name not in TARGETS)):
        j = i + 1
        while j < len(args) and not args[j].startswith("-") and args[j] != "!":
            j += 1
        if unknown_owner is not None and not (target_name and target_name not in TARGETS):
            unknown_owner.raw.extend(args[i:j])
        else:
            target_opts.append((opt, i + 1, j, invert))
        return j, True
    if target_name and target_name not in TARGETS:
        _unknown_target(target_name, [opt], lenient)
    owner = f"target {target_name}" if target_name else "the loaded match modules"
    raise RuleSyntaxError(f"unknown option {opt!r} for {owner}")


def _check_count(args, i, nargs, opt):
    if i + nargs >= len(args) + (1 if nargs == 0 else 0):
        raise RuleSyntaxError(f"option {opt} needs {nargs} argument(s)")


# ------------------------------------------------------------------ matches
def _build_match(module: _Module, proto: int | None) -> list[object]:
    if not module.known:
        return [m.UnknownMatch(module.name, " ".join([f"-m {module.name}", *module.raw]))]
    build = _MATCH_BUILDERS[module.name]
    try:
        return build(module, proto)
    except ExtSyntaxError as exc:
        raise RuleSyntaxError(str(exc)) from None


def _ports(module: _Module, proto: int | None) -> list[object]:
    needed = {"tcp": TCP, "udp": UDP, "sctp": SCTP}[module.name]
    if proto != needed:
        raise RuleSyntaxError(f"-m {module.name} needs -p {module.name} in the same rule")
    out: list[object] = []
    for opt, vals, inv in module.opts:
        if opt in ("--sport", "--source-port", "--dport", "--destination-port"):
            low, high = _value(v.parse_port_range, vals[0])
            out.append(m.PortMatch("sport" if "s" == opt[2] else "dport", low, high, inv))
        elif opt == "--syn":
            out.append(m.TcpFlagsMatch(0x17, 0x02, inv))
        elif opt == "--tcp-flags":
            out.append(m.TcpFlagsMatch(_value(v.parse_tcp_flag_list, vals[0]),
                                       _value(v.parse_tcp_flag_list, vals[1]), inv))
        elif opt == "--tcp-option":
            _value(lambda t: v.c_uint(t, "--tcp-option", 255), vals[0])
            out.append(m.MaybeMatch("tcp", "which TCP options a packet carries depends on the sender"))
    return out


def _multiport(module: _Module, proto: int | None) -> list[object]:
    if proto not in (TCP, UDP, SCTP):
        raise RuleSyntaxError("-m multiport needs -p tcp, udp or sctp")
    out: list[object] = []
    for opt, vals, inv in module.opts:
        field_name = {"--dports": "dport", "--destination-ports": "dport", "--sports": "sport",
                      "--source-ports": "sport", "--ports": "either"}[opt]
        ranges = tuple(_value(v.parse_port_range, part) for part in vals[0].split(","))
        if sum(1 if lo == hi else 2 for lo, hi in ranges) > 15:
            raise RuleSyntaxError("multiport takes at most 15 ports (a range counts as two)")
        out.append(m.MultiportMatch(field_name, ranges, inv))
    if not out:
        raise RuleSyntaxError("-m multiport needs --dports, --sports or --ports")
    return out


def _comment(module: _Module, proto) -> list[object]:
    if any(inv for _opt, _vals, inv in module.opts):
        raise RuleSyntaxError("--comment cannot be negated with '!'")
    return [m.CommentMatch(vals[0]) for _opt, vals, _inv in module.opts]


def _addrtype(module: _Module, proto) -> list[object]:
    opts = {opt: (vals, inv) for opt, vals, inv in module.opts}
    limit = "in" if "--limit-iface-in" in opts else "out" if "--limit-iface-out" in opts else None
    if "--limit-iface-in" in opts and "--limit-iface-out" in opts:
        raise RuleSyntaxError("addrtype: --limit-iface-in and --limit-iface-out exclude each other")
    out: list[object] = []
    for opt, fld in (("--src-type", "src"), ("--dst-type", "dst")):
        if opt in opts:
            vals, inv = opts[opt]
            out.append(m.AddrTypeMatch(fld, _value(lambda t: v.parse_name_list(t, v.ADDRTYPES, "address type"), vals[0]), inv, limit))
    if not out:
        raise RuleSyntaxError("-m addrtype needs --src-type or --dst-type")
    return out


def _statistic(module: _Module, proto) -> list[object]:
    opts = {opt: (vals, inv) for opt, vals, inv in module.opts}
    mode = opts.get("--mode", ([""], False))[0][0]
    invert = any(inv for _o, _v, inv in module.opts)
    if mode == "random":
        if "--probability" not in opts:
            raise RuleSyntaxError("statistic --mode random needs --probability")
        return [m.RandomMatch(_value(v.parse_probability, opts["--probability"][0][0]), invert)]
    if mode == "nth":
        if "--every" not in opts:
            raise RuleSyntaxError("statistic --mode nth needs --every")
        every = int(_value(v.parse_port, opts["--every"][0][0]))
        packet = int(_value(v.parse_port, opts.get("--packet", (["0"], False))[0][0]))
        if every < 1 or packet >= every:
            raise RuleSyntaxError("statistic nth needs --every >= 1 and 0 <= --packet < --every")
        return [m.NthMatch(every, packet, invert)]
    raise RuleSyntaxError(f"statistic --mode {mode!r} is not supported (use random or nth)")


def _mark(module: _Module, proto) -> list[object]:
    out = []
    for _opt, vals, inv in module.opts:
        value, mask = _value(v.parse_mark, vals[0])
        out.append(m.MarkMatch(value & mask, mask, inv))
    return out


def _ctstate(module: _Module, proto) -> list[object]:
    allowed = v.CTSTATES if module.name == "conntrack" else v.CTSTATES - {"SNAT", "DNAT"}
    out: list[object] = []
    for opt, vals, inv in module.opts:
        if opt in ("--ctstate", "--state"):
            out.append(m.CtStateMatch(_value(lambda t: v.parse_name_list(t, allowed, "state"), vals[0]), inv))
    if module.name == "conntrack":
        out += conntrack_extra(module, proto)
    if not out:
        raise RuleSyntaxError(f"-m {module.name} needs {'an option' if module.name == 'conntrack' else '--state'}")
    return out


def _iprange(module: _Module, proto) -> list[object]:
    out = []
    for opt, vals, inv in module.opts:
        low_text, dash, high_text = vals[0].partition("-")
        low = _value(v.parse_xt_addr, low_text)
        high = _value(v.parse_xt_addr, high_text) if dash else low
        if high < low:
            raise RuleSyntaxError(f"iprange {vals[0]!r} has its start after its end")
        out.append(m.IpRangeMatch("src" if opt == "--src-range" else "dst", low, high, inv))
    return out


def _icmp(module: _Module, proto) -> list[object]:
    if proto != ICMP:
        raise RuleSyntaxError("-m icmp needs -p icmp in the same rule")
    out = []
    for _opt, vals, inv in module.opts:
        t, lo, hi = _value(v.parse_icmp_type, vals[0])
        out.append(m.IcmpTypeMatch(t, lo, hi, inv))
    return out


def _recent(module: _Module, proto) -> list[object]:
    modes = [opt[2:] for opt, _vals, _inv in module.opts if opt in ("--set", "--rcheck", "--update", "--remove")]
    if len(modes) != 1:
        raise RuleSyntaxError("-m recent needs exactly one of --set, --rcheck, --update, --remove")
    name = next((vals[0] for opt, vals, _inv in module.opts if opt == "--name"), "DEFAULT")
    if not 0 < len(name) < 200:
        raise RuleSyntaxError("recent --name must be 1 to 199 characters")
    mask, hitcount = 0xFFFFFFFF, 0
    for opt, vals, _inv in module.opts:
        if opt in ("--seconds", "--hitcount"):
            number = _value(lambda t: v.c_uint(t, opt, 0xFFFFFFFF), vals[0])
            if opt == "--hitcount":
                hitcount = number
        elif opt == "--mask":
            mask = _value(v.parse_aton_addr, vals[0])    # getaddrinfo: 10.1 is 10.0.0.1
    invert = any(inv for _o, _v, inv in module.opts)
    dest = any(opt == "--rdest" for opt, _v, _i in module.opts)
    return [m.RecentMatch(modes[0], name, invert, dest, mask, hitcount)]


_MATCH_BUILDERS = {"tcp": _ports, "udp": _ports, "sctp": _ports, "multiport": _multiport,
                   "comment": _comment, "addrtype": _addrtype, "statistic": _statistic,
                   "mark": _mark, "conntrack": _ctstate, "state": _ctstate, "iprange": _iprange,
                   "icmp": _icmp, "recent": _recent, **EXT_MATCH_BUILDERS}


# ------------------------------------------------------------------ targets
def _build_target(name: str, goto: bool, opts, proto: int | None, lenient: bool):
    if name not in TARGETS:
        if name.startswith("-") or not name:
            raise RuleSyntaxError(f"-j needs a target name, got {name!r}")
        # A user chain takes no options; options mean an unsupported target extension.
        return m.Jump(name, goto) if not opts else _unknown_target(name, opts, lenient)
    if goto and name not in ("ACCEPT", "DROP", "RETURN"):
        raise RuleSyntaxError(f"-g needs a chain, not the target {name}")
    o = {opt: vals for opt, vals, _inv in opts}
    if any(inv for _opt, _vals, inv in opts):
        raise RuleSyntaxError(f"target {name} options cannot be negated with '!'")
    if name in ("ACCEPT", "DROP", "RETURN"):
        return m.Verdict(name)
    if name == "REJECT":
        kind = o.get("--reject-with", ["icmp-port-unreachable"])[0]
        if kind not in v.REJECT_TYPES:
            raise RuleSyntaxError(f"unknown --reject-with {kind!r} (valid: {', '.join(sorted(set(v.REJECT_TYPES.values())))})")
        if v.REJECT_TYPES[kind] == "tcp-reset" and proto != TCP:
            raise RuleSyntaxError("--reject-with tcp-reset needs -p tcp")
        return m.Reject(v.REJECT_TYPES[kind])
    if name in ("LOG", "NFLOG"):
        _check_log_options(name, o)
        return m.NoOp(name)
    if name in EXT_TARGETS:
        try:
            return build_ext_target(name, opts, proto)
        except ValueError as exc:
            raise RuleSyntaxError(str(exc)) from None
    if name == "MARK":
        return _mark_target(opts)
    ports_ok = proto in (TCP, UDP, SCTP)
    if name == "DNAT":
        if "--to-destination" not in o:
            raise RuleSyntaxError("DNAT needs --to-destination")
        al, ah, pl, ph = _value(lambda t: v.parse_nat_range(t, need_addr=False), o["--to-destination"][0])
        if pl is not None and not ports_ok:
            raise RuleSyntaxError("DNAT to a port needs -p tcp, udp or sctp")
        return m.Dnat(al, ah, pl, ph, "--random" in o, "--persistent" in o)
    if name == "SNAT":
        if "--to-source" not in o:
            raise RuleSyntaxError("SNAT needs --to-source")
        al, ah, pl, ph = _value(lambda t: v.parse_nat_range(t, need_addr=True), o["--to-source"][0])
        if pl is not None and not ports_ok:
            raise RuleSyntaxError("SNAT to a port needs -p tcp, udp or sctp")
        return m.Snat(al, ah, pl, ph, "--random" in o, "--random-fully" in o, "--persistent" in o)
    pl = ph = None
    if "--to-ports" in o:
        if not ports_ok:
            raise RuleSyntaxError(f"{name} --to-ports needs -p tcp, udp or sctp")
        pl, ph = _value(lambda t: v.parse_port_range(t, "-"), o["--to-ports"][0])
    if name == "MASQUERADE":
        return m.Masquerade(pl, ph, "--random" in o, "--random-fully" in o)
    return m.Redirect(pl, ph, "--random" in o)


_LOG_LEVELS = {"emerg", "panic", "alert", "crit", "err", "error", "warn", "warning", "notice", "info", "debug"}
# NFLOG's numeric options and their ranges (libxt_NFLOG: XTTYPE_UINT16 / XTTYPE_UINT32).
_NFLOG_NUMBERS = {"--nflog-group": 0xFFFF, "--nflog-threshold": 0xFFFF, "--nflog-range": 0xFFFFFFFF,
                  "--nflog-size": 0xFFFFFFFF}


def _check_log_options(name: str, o: dict) -> None:
    """Refuse the LOG/NFLOG option values iptables refuses (they do not change the packet's path)."""
    if name == "LOG":
        level = o.get("--log-level", ["4"])[0]
        if level.lower() not in _LOG_LEVELS:
            _value(lambda t: v.c_uint(t, "--log-level", 7), level)
        return
    for opt, limit in _NFLOG_NUMBERS.items():
        if opt in o:
            _value(lambda t: v.c_uint(t, opt, limit), o[opt][0])


def _unknown_target(name, opts, lenient):
    if not lenient:
        raise RuleSyntaxError(
            f"unsupported target {name!r} (supported: {', '.join(sorted(TARGETS))} and user chains;"
            " --lenient treats it as unknown)")
    return m.UnknownTarget(name)


def _mark_target(opts) -> m.SetMark:
    if len(opts) != 1:
        raise RuleSyntaxError("MARK needs exactly one of --set-xmark, --set-mark, --or-mark, --and-mark, --xor-mark")
    opt, vals, _inv = opts[0]
    value, mask = _value(v.parse_mark, vals[0])
    full = 0xFFFFFFFF
    if opt == "--set-xmark":
        return m.SetMark(value, mask)
    if opt == "--set-mark":
        return m.SetMark(value, mask | value)
    if opt == "--and-mark":
        return m.SetMark(0, ~value & full)
    if opt == "--or-mark":
        return m.SetMark(value, value)
    return m.SetMark(value, 0)  # --xor-mark
