"""Split an iptables-restore line into arguments, the way iptables-restore does.

Double quotes group words (``--comment "a b"``) and may open mid-word; inside
them a backslash escapes the next character. Lines without quotes take the
fast ``str.split`` path, which is what 100k-rule kube-proxy dumps mostly are.
"""

from __future__ import annotations

import re

__all__ = ["split_args", "TokenError"]


class TokenError(ValueError):
    """The line cannot be split (an unterminated quote)."""


_TOKEN = re.compile(r'(?:[^\s"]+|"(?:[^"\\]|\\.)*")+')
_LINE = re.compile(r'\s*+(?:(?:[^\s"]++|"(?:[^"\\]|\\.)*+")++\s*+)*+')  # possessive: linear time
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")


def _unquote(match: re.Match) -> str:
    return _ESCAPE.sub(r"\1", match.group(1))


def split_args(line: str) -> list[str]:
    """Return the arguments of ``line``; raise TokenError on an unterminated quote."""
    if '"' not in line:
        return line.split()
    if "\\" not in line:
        fast = _split_whole_word_quotes(line)
        if fast is not None:
            return fast
    if _LINE.fullmatch(line) is None:
        raise TokenError("unterminated double quote")
    return [_QUOTED.sub(_unquote, tok) if '"' in tok else tok for tok in _TOKEN.findall(line)]


def _split_whole_word_quotes(line: str) -> list[str] | None:
    """Fast path for quotes that each enclose whole words (``--comment "a b"``), no escapes.

    Returns None when a quote opens or closes mid-word or is unbalanced; the
    general regex path then decides.
    """
    parts = line.split('"')
    if len(parts) == 3:     # one quoted comment, the usual case: no loop
        head, quoted, tail = parts
        if head[-1:].isspace() and (not tail or tail[0].isspace()):
            out = head.split()
            out.append(quoted)
            out.extend(tail.split())
            return out
    if len(parts) % 2 == 0:
        return None
    out: list[str] = []
    last = len(parts) - 1
    for i, part in enumerate(parts):
        if i % 2 == 0:
            if i > 0 and not (part[:1].isspace() or (i == last and not part)):
                return None     # the previous quote closes mid-word, or two quotes touch
            if i < last and not (part[-1:].isspace() or (i == 0 and not part)):
                return None     # the next quote opens mid-word
            out.extend(part.split())
        else:
            out.append(part)
    return out
