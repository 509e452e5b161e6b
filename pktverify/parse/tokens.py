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
    if _LINE.fullmatch(line) is None:
        raise TokenError("unterminated double quote")
    return [_QUOTED.sub(_unquote, tok) if '"' in tok else tok for tok in _TOKEN.findall(line)]
