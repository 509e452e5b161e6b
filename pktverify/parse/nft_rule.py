"""The rule grammar nft prints (``nft list ruleset``) and reads (``nft -f``): statements in
order, for the text and script readers.

:func:`tokenize` splits a whole file once (one C-level ``findall`` per line, linear: no
backtracking, no re-scan); :class:`RuleParser` reads one rule's tokens left to right with one
token of look-ahead. What it does not know becomes :class:`NftUnknown` with the words it spans.
"""

from __future__ import annotations

import re

from ..model import nft as m
from . import nft_values as nv
from .nft_stmts import HANDLERS, unquote
from .nft_values import FLAG_TYPES, META_UNQUALIFIED, ValueProblem, convert, dtype_of, flags_of, fold_bitwise

__all__ = ["tokenize", "RuleParser", "LineParser", "ValueProblem", "VERDICTS"]

_TOKEN = re.compile(r'#.*|"(?:[^"\\]|\\.)*"|[{};,()|&^]|[^\s{};,()|&^"#]+|\S')


def tokenize(text: str) -> tuple[list[str], list[int]]:
    """All tokens of ``text`` and the line of each; ``"\\n"`` ends every line, comments are
    tokens starting with ``#``."""
    toks: list[str] = []
    lines: list[int] = []
    findall = _TOKEN.findall
    for number, line in enumerate(text.split("\n"), 1):
        found = findall(line)
        found.append("\n")
        toks += found
        lines += [number] * len(found)
    return toks, lines


VERDICTS = frozenset({"accept", "drop", "return", "continue"})
_OPS = {"==": "==", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">=", "eq": "==", "ne": "!=", "lt": "<",
        "gt": ">", "le": "<=", "ge": ">="}
_BITOPS = {"&": "&", "|": "|", "^": "^", "and": "&", "or": "|", "xor": "^"}
_FIELDS = {
    "ip": {"saddr", "daddr", "protocol", "ttl", "length", "dscp", "ecn", "id", "version", "hdrlength",
           "frag-off", "checksum"},
    "tcp": {"sport", "dport", "flags", "sequence", "ackseq", "doff", "window", "checksum", "urgptr"},
    "udp": {"sport", "dport", "length", "checksum"}, "udplite": {"sport", "dport", "checksum"},
    "sctp": {"sport", "dport", "vtag", "checksum"}, "dccp": {"sport", "dport", "type"}, "th": {"sport", "dport"},
    "icmp": {"type", "code", "checksum", "id", "sequence", "gateway", "mtu"},
    "ip6": {"saddr", "daddr", "nexthdr", "hoplimit", "length", "flowlabel", "dscp", "version"},
    "icmpv6": {"type", "code", "checksum", "id", "sequence", "mtu"},
    "ether": {"saddr", "daddr", "type"}, "vlan": {"id", "pcp", "cfi", "type"}, "arp": {"htype", "ptype", "op"},
}
_STATEMENTS = frozenset({"accept", "drop", "return", "continue", "jump", "goto", "reject", "queue", "counter",
                         "log", "limit", "quota", "notrack", "dnat", "snat", "masquerade", "redirect", "comment",
                         "flow", "xt", "meta", "ct", "fib", "numgen", "jhash", "symhash", *_FIELDS,
                         *META_UNQUALIFIED})
_EXPR_START = frozenset({"meta", "ct", "fib", "numgen", "jhash", "symhash", *_FIELDS, *META_UNQUALIFIED})


class RuleParser:
    """Reads the statements of one rule: ``toks[pos:end]`` (no newline inside but those in braces)."""

    def __init__(self, toks: list[str], pos: int, end: int, family: str) -> None:
        self.toks, self.pos, self.end, self.family = toks, pos, end, family
        self.comment: str | None = None

    @classmethod
    def of_rule(cls, toks: list[str], start: int, end: int, family: str) -> "RuleParser":
        """A parser of one rule's tokens, newlines (inside braces) left out once: ``peek`` is then
        an index, the parse's innermost step."""
        words = [t for t in toks[start:end] if t != "\n"]
        return cls(words, 0, len(words), family)

    # ---------------------------------------------------------------- tokens
    def peek(self, ahead: int = 0) -> str:
        i = self.pos + ahead
        return self.toks[i] if i < self.end else ""

    def next(self, what: str = "a word") -> str:
        tok = self.peek()
        if not tok:
            raise ValueProblem(f"the rule ends where {what} should follow")
        self.pos += 1
        return tok

    def take(self, word: str) -> bool:
        pos = self.pos
        if pos < self.end and self.toks[pos] == word:
            self.pos = pos + 1
            return True
        return False

    def expect(self, word: str) -> None:
        tok = self.next(repr(word))
        if tok != word:
            raise ValueProblem(f"expected {word!r}, found {tok!r}")

    # ---------------------------------------------------------------- rule
    def statements(self) -> tuple:
        out: list = []
        while self.peek() and not self.peek().startswith("#"):
            stmt = self.statement()
            if stmt is not None:
                out.append(stmt)
        return tuple(nv.drop_dependencies(out, self.family))

    def statement(self) -> object:
        tok = self.peek()
        handler = HANDLERS.get(tok)
        if handler is not None and not (tok in ("ct", "meta") and self.peek(1) not in ("count",)):
            self.pos += 1
            return handler(self)
        if tok in VERDICTS:
            self.pos += 1
            return m.NftVerdict(tok)
        if tok in ("add", "update", "delete") and self.peek(1).startswith("@"):
            return self.set_update()
        left = self.expr()
        if self.take("set"):
            return m.Mangle(left, self.value_or_expr(left))
        if self.take("vmap"):
            return m.Vmap(left, self.map_data(dtype_of(left), ("verdict",)))
        if isinstance(left, m.NftUnknown):
            return left
        return self.relation(left)

    # ---------------------------------------------------------------- expressions
    def starts_expr(self) -> bool:
        return self.peek() in _EXPR_START

    def expr(self) -> object:
        items = [self.bitwise()]
        while self.take("."):
            items.append(self.bitwise())
        return items[0] if len(items) == 1 else m.Concat(tuple(items))

    def bitwise(self) -> object:
        expr = self.primary()
        while self.peek() in _BITOPS and self.peek(1) != "set":
            op = _BITOPS[self.next()]
            expr = fold_bitwise(expr, op, self.constant(dtype_of(expr)[0]))
        return expr

    def constant(self, dtype: str | None) -> int:
        if self.take("("):
            names = []
            while not self.take(")"):
                tok = self.next("')'")
                if tok not in ("|", ","):
                    names.append(tok)
            return flags_of(names, dtype)
        names = [self.next("a value")]
        while self.take(","):
            names.append(self.next("a flag"))
        return flags_of(names, dtype)

    def primary(self) -> object:
        tok = self.next("an expression")
        if tok in _FIELDS and self.peek() in _FIELDS[tok]:
            return m.Payload(tok, self.next())
        if tok == "meta" or tok in META_UNQUALIFIED:
            return m.Meta(self.next("a meta key") if tok == "meta" else tok)
        if tok == "ct":
            direction = self.next() if self.peek() in ("original", "reply") else None
            key = self.next("a ct key")
            if key in ("ip", "ip6"):
                key = f"{key} {self.next('saddr or daddr')}"
            return m.Ct(key, direction)
        if tok == "fib":
            flags = [self.next("saddr or daddr")]
            while self.take("."):
                flags.append(self.next("a fib flag"))
            return m.Fib(tuple(flags), self.next("type, oif or oifname"))
        if tok in ("numgen", "jhash", "symhash"):
            return self.hash(tok)
        return self.unknown(tok)

    def hash(self, tok: str) -> object:
        mode = self.next("random or inc") if tok == "numgen" else tok
        expr = self.expr() if tok == "jhash" else None
        self.expect("mod")
        mod, seed, offset = int(self.next("a modulus"), 0), 0, 0
        while self.peek() in ("seed", "offset"):
            key = self.next()
            value = int(self.next("a number"), 0)
            seed, offset = (value, offset) if key == "seed" else (seed, value)
        if tok == "numgen":
            return m.Numgen(mode, mod, offset)
        return m.Hash(tok, mod, expr, seed, offset)

    def unknown(self, tok: str) -> m.NftUnknown:
        words = [tok]
        while self.peek() and self.peek() not in _STATEMENTS and not self.peek().startswith("#"):
            words.append(self.next())
        return m.NftUnknown(" ".join(words))

    # ---------------------------------------------------------------- values
    def relation(self, left: object) -> m.Match:
        if self.take("!"):                              # tcp flags ! syn,ack: (flags & (syn|ack)) == 0
            dtype = (dtype_of(left) or (None,))[0]
            bits = self.constant(dtype)
            while self.take("|"):
                bits |= self.constant(dtype)
            return nv.negated_flags(left, bits)
        op = _OPS.get(self.peek())
        if op is not None:
            self.pos += 1
        dtypes = dtype_of(left)
        right = self.right(dtypes, left)
        if self.take("/"):                              # tcp flags syn / syn,ack
            left = fold_bitwise(left, "&", self.constant(dtypes[0]))
            return m.Match(left, op or "==", right)
        if op is None:
            op = "in" if len(dtypes) == 1 and dtypes[0] in FLAG_TYPES and isinstance(right, int) else "=="
        return m.Match(left, op, right)

    def right(self, dtypes: tuple, left: object) -> object:
        tok = self.peek()
        if tok == "{":
            self.pos += 1
            return nv.anon_set(self.elements(dtypes, None, raw=True), dtypes)
        if tok.startswith("@"):
            self.pos += 1
            return m.SetRef(tok[1:])
        if isinstance(left, m.Fib) and left.result == "oif" and tok in ("missing", "exists"):
            self.pos += 1
            return tok == "exists"
        return self.value(dtypes)

    def value(self, dtypes: tuple) -> object:
        parts = [self.one_value(dtypes[0] if dtypes else None)]
        while self.take("."):
            parts.append(self.one_value(dtypes[len(parts)] if len(parts) < len(dtypes) else None))
        return parts[0] if len(parts) == 1 else tuple(parts)

    def one_value(self, dtype: str | None) -> object:
        tok = self.next("a value")
        if tok in "{}(),;:" or tok in _OPS:
            raise ValueProblem(f"expected a value, found {tok!r}")
        if dtype in FLAG_TYPES and self.peek() == ",":
            names = [tok]
            while self.take(","):
                names.append(self.next("a flag"))
            return flags_of(names, dtype)
        return convert(tok, dtype)

    def value_or_expr(self, left: object) -> object:
        if self.peek() in _EXPR_START:
            expr = self.expr()
            if self.take("map"):
                return m.MapLookup(expr, self.map_data(dtype_of(expr), dtype_of(left)))
            return expr
        return self.value(dtype_of(left))

    def elements(self, dtypes: tuple, data: tuple | None, raw: bool = False) -> tuple:
        """``a, b : c, ...`` up to the closing brace (the opening one read); newlines allowed."""
        out = []
        while not self.take("}"):
            if self.take(","):
                continue
            key = self.value(dtypes)
            timeout = comment = value = None
            while self.peek() in ("timeout", "expires", "comment", "counter"):
                word = self.next()
                if word == "timeout":
                    timeout = nv.parse_time_ms(self.next("a time"))
                elif word == "comment":
                    comment = convert(self.next("a comment"), None)
                elif word == "expires":
                    self.next("a time")
                else:
                    while self.peek() in ("packets", "bytes"):
                        self.pos += 2
            if self.take(":"):
                value = self.element_data(data)
            out.append(m.Element(key, value, timeout, comment))
        return out if raw else nv.sort_elements(out, dtypes)

    def element_data(self, data: tuple | None) -> object:
        tok = self.peek()
        if tok in VERDICTS:
            self.pos += 1
            return m.NftVerdict(tok)
        if tok in ("jump", "goto"):
            self.pos += 1
            return m.NftVerdict(tok, unquote(self.next("a chain name")))
        return self.value(data or (None,))

    def map_data(self, keys: tuple, data: tuple) -> object:
        tok = self.next("@name or {")
        if tok.startswith("@"):
            return m.SetRef(tok[1:])
        if tok != "{":
            raise ValueProblem(f"expected @name or {{ after map/vmap, found {tok!r}")
        return m.AnonSet(self.elements(keys, data))

    def set_update(self) -> m.SetUpdate:
        op, name = self.next(), self.next()[1:]
        self.expect("{")
        key = self.expr()
        timeout = data = None
        if self.take("timeout"):
            timeout = nv.parse_time_ms(self.next("a time"))
        if self.take(":"):
            data = self.value_or_expr(key)
        self.expect("}")
        return m.SetUpdate(op, name, key, timeout, data)


class LineParser(RuleParser):
    """A RuleParser over a file's tokens where newlines may come between words (an element
    list over several lines): they are skipped."""

    def peek(self, ahead: int = 0) -> str:
        toks, i, end = self.toks, self.pos, self.end
        while i < end and toks[i] == "\n":
            i += 1
        self.pos = i
        for _ in range(ahead):
            i += 1
            while i < end and toks[i] == "\n":
                i += 1
        return toks[i] if i < end else ""

    def take(self, word: str) -> bool:
        if self.peek() == word:
            self.pos += 1
            return True
        return False
