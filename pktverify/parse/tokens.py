"""Split an iptables-restore line into arguments, the way iptables-restore does.

Double quotes group words (``--comment "a b"``) and may open mid-word; inside
them a backslash escapes the next character. Lines without quotes take the
fast ``str.split`` path, which is what 100k-rule kube-proxy dumps mostly are.
"""

from __future__ import annotations

__all__ = ["split_args", "TokenError"]


class TokenError(ValueError):
    """The line cannot be split (an unterminated quote)."""


def split_args(line: str) -> list[str]:
    """Return the arguments of ``line``; raise TokenError on an unterminated quote."""
    if '"' not in line:
        return line.split()
    args: list[str] = []
    buf: list[str] = []
    in_quote = escaped = False
    started = False
    for ch in line:
        if in_quote:
            if escaped:
                buf.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_quote = False
            else:
                buf.append(ch)
            continue
        if ch == '"':
            in_quote = started = True
        elif ch in " \t":
            if started:
                args.append("".join(buf))
                buf.clear()
                started = False
        else:
            buf.append(ch)
            started = True
    if in_quote:
        raise TokenError("unterminated double quote")
    if started:
        args.append("".join(buf))
    return args
