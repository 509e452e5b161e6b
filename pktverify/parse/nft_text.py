"""``nft list ruleset`` listings and ``nft -f`` scripts, read into :class:`NftRuleset`.

Both are the nft language: a listing is nested ``table ip x { chain y { ... } set s { ... } }``
blocks (with ``# handle N`` comments when listed with ``-a``); a script is commands, one per
line (``add table|chain|set|map|element|rule``, ``insert``, ``replace``, ``flush``, ``delete``),
as knftables writes them, and may hold blocks too. The form is told by content: only ``table``
blocks make a listing. A terse listing (``nft -t``: sets without their elements) is refused.
Errors: ``FILE:LINE: what is wrong: the line``.
"""

from __future__ import annotations

import re

from ..bulk import cyclic_gc_paused
from ..errors import InputError
from ..model.nft import NftRule, NftRuleset
from .nft_build import FAMILIES, RulesetBuilder, TableBuilder, add_rule, new_flowtable, new_object
from .nft_rule import LineParser, RuleParser, ValueProblem, tokenize
from .nft_stmts import unquote
from .nft_values import convert, resolve_priority, value_message

__all__ = ["parse_nft_text", "looks_like_nft_text"]

_HANDLE = re.compile(r"#\s*handle\s+([0-9]+)")
_OBJECT_KINDS = frozenset({"counter", "quota", "limit", "secmark", "synproxy", "ct"})


def looks_like_nft_text(text: str) -> bool:
    """Whether ``text`` reads as nft's language (a listing or a script), by its first word."""
    for line in text.splitlines():
        word = line.split("#", 1)[0].split(None, 1)
        if word:
            return word[0] in ("table", "add", "create", "insert", "flush", "delete", "destroy", "replace")
    return False


def parse_nft_text(text: str, source: str) -> NftRuleset:
    """Read an ``nft list ruleset`` listing or an ``nft -f`` script (told apart by content)."""
    reader = _Reader(text, source)
    with cyclic_gc_paused():
        reader.run()
    form = "script" if reader.commands else "text"
    ruleset = reader.rs.freeze(source, form)
    if form == "text":
        _refuse_terse(ruleset, source)
    return ruleset


def _refuse_terse(ruleset: NftRuleset, source: str) -> None:
    named = [s for t in ruleset.tables for s in (*t.sets, *t.maps) if "dynamic" not in s.flags]
    if named and not any(s.elements for s in named):
        raise InputError(source, 0, "no set or map shows its elements: a terse listing (`nft -t list ruleset`) "
                         "leaves them out, and they decide what rules match; list with `nft -j list ruleset` "
                         "(or `nft list ruleset`, without -t)", f"{len(named)} sets/maps without elements")


class _Reader:
    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines = text.split("\n")
        self.toks, self.tline = tokenize(text)
        self.pos = 0
        self.rs = RulesetBuilder()
        self.commands = 0
        self.parser_end = 0         # where the last braced element list ended

    # ---------------------------------------------------------------- tokens and errors
    def error(self, message: str, at: int | None = None) -> InputError:
        i = min(self.pos if at is None else at, len(self.toks) - 1)
        line = self.tline[i] if i >= 0 else 1
        return InputError(self.source, line, message, self.lines[line - 1].strip() if line <= len(self.lines) else "")

    def peek(self) -> str:
        return self.toks[self.pos] if self.pos < len(self.toks) else ""

    def next(self, what: str) -> str:
        tok = self.peek()
        if tok in ("", "\n", ";") or tok.startswith("#"):
            raise self.error(f"{what} expected")
        self.pos += 1
        return tok

    def skip_blank(self) -> None:
        toks = self.toks
        while self.pos < len(toks) and (toks[self.pos] in ("\n", ";") or toks[self.pos].startswith("#")):
            self.pos += 1

    def expect(self, word: str) -> None:
        self.skip_blank()
        if self.peek() != word:
            raise self.error(f"{word!r} expected, found {self.peek() or 'the end'!r}")
        self.pos += 1

    def name(self, what: str) -> str:
        return unquote(self.next(what))

    def family_name(self) -> tuple[str, str]:
        family = self.next("a family or table name")
        if family not in FAMILIES:
            return "ip", family
        return family, self.name("a table name")

    def table_family_name(self) -> tuple[str, str]:
        """``[FAMILY] NAME`` of a table command, which ends there (or at its block)."""
        family, name = self.family_name()
        tok = self.peek()
        if tok not in ("", "\n", ";", "{") and not tok.startswith("#"):
            raise self.error(f"unknown family {self.toks[self.pos - 1]!r} (nft has {', '.join(FAMILIES)})"
                             if family == "ip" and self.toks[self.pos - 1] not in FAMILIES
                             else f"unexpected {tok!r} after table {family} {name}")
        return family, name

    def statement_end(self) -> int:
        """The index of the token ending the statement at ``pos``: newline, ``;`` or the closing
        brace of the enclosing block (braces inside are skipped)."""
        depth, i, toks = 0, self.pos, self.toks
        while i < len(toks):
            tok = toks[i]
            if tok == "{":
                depth += 1
            elif tok == "}":
                if depth == 0:
                    return i
                depth -= 1
            elif depth == 0 and (tok == "\n" or tok == ";"):
                return i
            i += 1
        return i

    # ---------------------------------------------------------------- top level
    def run(self) -> None:
        while True:
            self.skip_blank()
            tok = self.peek()
            if not tok:
                return
            try:
                self.command(tok)
            except ValueProblem as exc:
                raise self.error(str(exc)) from None

    def command(self, tok: str) -> None:
        self.pos += 1
        if tok == "table":
            family, name = self.family_name()
            self.table_block(self.rs.table(family, name, self.tline[self.pos - 1]))
            return
        self.commands += 1
        if tok in ("add", "create", "insert", "replace"):
            self.add(tok)
        elif tok == "flush":
            self.flush()
        elif tok in ("delete", "destroy"):
            self.delete()
        else:
            raise self.error(f"not an nft command or listing: {tok!r} (expected table, add, flush, delete, ...)",
                             self.pos - 1)

    def add(self, verb: str) -> None:
        what = self.next("table, chain, set, map, element or rule")
        if what == "rule":
            self.add_rule(verb)
            return
        if verb in ("insert", "replace"):
            raise self.error(f"{verb} works on rules, not {what}s")
        line = self.tline[self.pos - 1]
        if what == "table":
            table = self.rs.table(*self.table_family_name(), line)
            if self.peek() == "{":
                self.table_block(table)
            return
        table = self.rs.need_table(*self.family_name())
        if what == "chain":
            chain = table.chain(self.name("a chain name"), line)
            if self.peek() == "{":
                self.pos += 1
                self.chain_body(table, chain)
        elif what in ("set", "map"):
            self.set_block(table, what, self.name("a set name"), line)
        elif what == "element":
            one = table.need_set(self.name("a set name"))
            self.expect("{")
            one.add(self.parser(table).elements(one.key_type, one.data))
            self.pos = self.parser_end
        elif what == "flowtable":
            self.flowtable(table, self.name("a flowtable name"), line)
        elif what in _OBJECT_KINDS:
            self.named_object(table, what, line)
        else:
            raise self.error(f"cannot add {what!r}", self.pos - 1)

    def add_rule(self, verb: str) -> None:
        table = self.rs.need_table(*self.family_name())
        chain = table.need_chain(self.name("a chain name"))
        handle = 0
        if self.peek() in ("handle", "position", "index"):
            self.pos += 1
            handle = int(self.next("a handle"))
        rule = self.rule(table, self.command_text)
        if self.peek() == "}":
            raise self.error("unexpected '}' in a rule")
        add_rule(chain, rule, position=verb if verb in ("insert", "replace") else "add", handle=handle)

    def flush(self) -> None:
        what = self.next("ruleset, table, chain, set or map")
        if what == "ruleset":
            self.rs = RulesetBuilder()
            return
        table = self.rs.need_table(*self.family_name())
        if what == "table":
            table.flush()
        elif what == "chain":
            table.need_chain(self.name("a chain name")).rules.clear()
        elif what in ("set", "map"):
            table.need_set(self.name("a set name")).elements.clear()
        else:
            raise self.error(f"cannot flush {what!r}", self.pos - 1)

    def delete(self) -> None:
        what = self.next("table, chain, set, map, element or rule")
        if what == "table":
            self.rs.delete_table(*self.table_family_name())
            return
        table = self.rs.need_table(*self.family_name())
        name = self.name("a name")
        if what == "chain":
            table.need_chain(name)
            del table.chains[name]
        elif what in ("set", "map"):
            table.need_set(name)
            del table.sets[name]
        elif what == "element":
            one = table.need_set(name)
            self.expect("{")
            for element in self.parser(table).elements(one.key_type, None):
                one.elements.pop(element.key, None)
            self.pos = self.parser_end
        elif what == "rule":
            chain = table.need_chain(name)
            self.expect("handle")
            handle = int(self.next("a handle"))
            chain.rules[:] = [r for r in chain.rules if r.handle != handle]
        else:
            raise self.error(f"cannot delete {what!r}", self.pos - 1)

    # ---------------------------------------------------------------- blocks
    def table_block(self, table: TableBuilder) -> None:
        table.handle = table.handle or self.handle_here()
        self.expect("{")
        while True:
            self.skip_blank()
            tok = self.next("'}'")
            line = self.tline[self.pos - 1]
            if tok == "}":
                return
            if tok == "chain":
                chain = table.chain(self.name("a chain name"), line)
                chain.handle = self.handle_here()
                self.expect("{")
                self.chain_body(table, chain)
            elif tok in ("set", "map"):
                self.set_block(table, tok, self.name("a set name"), line)
            elif tok == "flowtable":
                self.flowtable(table, self.name("a flowtable name"), line)
            elif tok == "comment":
                table.comment = convert(self.next("a comment"), None)
            elif tok == "flags":
                self.pos = self.statement_end()
            elif tok in _OBJECT_KINDS:
                self.named_object(table, tok, line)
            else:
                raise self.error(f"unexpected {tok!r} in table {table.name}", self.pos - 1)

    def handle_here(self) -> int:
        tok = self.toks[self.pos] if self.pos < len(self.toks) else ""
        if tok == "{":
            tok = self.toks[self.pos + 1] if self.pos + 1 < len(self.toks) else ""
        m = _HANDLE.match(tok)
        return int(m.group(1)) if m else 0

    def chain_body(self, table: TableBuilder, chain) -> None:
        if not chain.handle:
            chain.handle = self.handle_here()
        while True:
            self.skip_blank()
            tok = self.peek()
            if tok == "}":
                self.pos += 1
                return
            if not tok:
                raise self.error(f"chain {chain.name!r} is not closed with '}}'")
            if tok == "type":
                self.base_chain(table, chain)
            elif tok == "policy":
                self.pos += 1
                chain.base["policy"] = self.next("accept or drop")
            elif tok == "comment":
                self.pos += 1
                chain.base["comment"] = convert(self.next("a comment"), None)
            elif tok in ("devices", "device"):
                chain.base["devices"] = self.devices()
            else:
                add_rule(chain, self.rule(table, self.listing_text))

    def base_chain(self, table: TableBuilder, chain) -> None:
        self.pos += 1
        chain.base["type"] = self.next("filter, nat or route")
        self.expect("hook")
        chain.base["hook"] = self.next("a hook")
        if self.peek() in ("device", "devices"):
            chain.base["devices"] = self.devices()
        self.expect("priority")
        end = self.statement_end()
        chain.base["priority"] = resolve_priority(" ".join(self.toks[self.pos:end]), table.family)
        self.pos = end

    def devices(self) -> tuple:
        if self.next("device") == "device":
            return (self.name("a device"),)
        self.expect("=")
        self.expect("{")
        out = []
        while self.peek() != "}":
            tok = self.next("'}'")
            if tok != ",":
                out.append(convert(tok, None))
        self.pos += 1
        return tuple(out)

    def set_block(self, table: TableBuilder, kind: str, name: str, line: int) -> None:
        from .nft_text_sets import read_set_block
        read_set_block(self, table, kind, name, line)

    def flowtable(self, table: TableBuilder, name: str, line: int) -> None:
        handle = self.handle_here()
        self.expect("{")
        hook, priority, devices = "ingress", 0, ()
        while True:
            self.skip_blank()
            tok = self.next("'}'")
            if tok == "}":
                break
            if tok == "hook":
                hook = self.next("a hook")
                self.expect("priority")
                end = self.statement_end()
                priority = resolve_priority(" ".join(self.toks[self.pos:end]), table.family)
                self.pos = end
            elif tok == "devices":
                self.pos -= 1
                devices = self.devices()
            else:
                self.pos = self.statement_end()
        table.flowtables[name] = new_flowtable(name, hook, priority, devices, handle, line)

    def named_object(self, table: TableBuilder, kind: str, line: int) -> None:
        if kind == "ct":
            kind = f"ct {self.next('helper, timeout or expectation')}"
        name = self.name(f"a {kind} name")
        table.objects[(kind, name)] = new_object(kind, name, line)
        if self.peek() == "{":
            depth = 0
            while self.pos < len(self.toks):
                tok = self.toks[self.pos]
                self.pos += 1
                depth += (tok == "{") - (tok == "}")
                if depth == 0:
                    break

    # ---------------------------------------------------------------- rules
    def parser(self, table: TableBuilder) -> RuleParser:
        end = len(self.toks)
        parser = _TrackingParser(self, self.toks, self.pos, end, table.family)
        return parser

    def rule(self, table: TableBuilder, text_of) -> NftRule:
        start, end = self.pos, self.statement_end()
        line = self.tline[start] if start < len(self.tline) else 0
        parser = RuleParser.of_rule(self.toks, start, end, table.family)
        try:
            exprs = parser.statements()
        except (ValueProblem, ValueError) as exc:
            raise self.error(value_message(exc), start) from None
        if parser.pos < parser.end and not parser.toks[parser.pos].startswith("#"):
            raise self.error(f"unexpected {parser.toks[parser.pos]!r} in a rule", start)
        handle = 0
        for tok in parser.toks[parser.pos:]:
            m = _HANDLE.match(tok)
            if m:
                handle = int(m.group(1))
        self.pos = end
        return NftRule(handle, line, text_of(line), exprs, parser.comment)

    def listing_text(self, line: int) -> str:
        text = self.lines[line - 1].strip()
        m = _HANDLE.search(text)
        return text[:m.start()].rstrip() if m else text

    def command_text(self, line: int) -> str:
        words = self.lines[line - 1].split(None, 5)
        skip = 5 if len(words) > 2 and words[2] in FAMILIES else 4
        return self.lines[line - 1].split(None, skip)[-1].strip() if len(words) > skip else ""


class _TrackingParser(LineParser):
    """A RuleParser for a braced element list outside a rule: reports where it stopped."""

    def __init__(self, reader: _Reader, toks, pos, end, family) -> None:
        super().__init__(toks, pos, end, family)
        self.reader = reader

    def elements(self, dtypes, data, raw=False):
        try:
            out = super().elements(dtypes, data, raw)
        except (ValueProblem, ValueError) as exc:
            self.reader.pos = self.pos
            raise self.reader.error(value_message(exc)) from None
        self.reader.parser_end = self.pos
        return out

