"""Strings from input made safe for each output: terminal and CI log lines, JSON, URIs.

Every name and comment in a rule file is hostile. A log line may drive the terminal (ESC, BEL) or,
in GitHub Actions, become a workflow command: the runner reads a line whose first non-blank
characters are ``::`` as a command (``::stop-commands::``, ``::add-mask::``) and ``##[`` anywhere
in a line as a legacy one (``##[add-mask]``). JSON may carry lone surrogates (a file name that was
not UTF-8), which strict readers refuse, and DEL raw. A SARIF location is a URI, so ``#`` and
``?`` in a file name would point somewhere else.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote

from ..errors import one_line

__all__ = ["log_line", "inert", "json_text", "uri_path"]


def inert(text: str) -> str:
    """``text`` (already one line) with no workflow command in it: ``##[`` becomes ``#\\x23[`` and a
    leading ``::`` (after blanks) ``\\x3a:``, as :func:`.errors.one_line` writes escaped characters."""
    text = text.replace("##[", "#\\x23[")
    body = text.lstrip()
    if body.startswith("::"):
        text = text[:len(text) - len(body)] + "\\x3a" + body[1:]
    return text


def log_line(text: str) -> str:
    """``text`` as one line for a terminal or a CI log: control characters, line breaks and lone
    surrogates escaped (:func:`.errors.one_line`) and no workflow command (:func:`inert`)."""
    return inert(one_line(text))


def _no_surrogates(value):
    if isinstance(value, str):
        return value if value.isprintable() or not any(0xD800 <= ord(c) <= 0xDFFF for c in value) else \
            "".join(repr(c)[1:-1] if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, dict):
        return {_no_surrogates(k): _no_surrogates(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_surrogates(v) for v in value]
    return value


def json_text(doc, *, indent: int | None = 2) -> str:
    """``doc`` as JSON text that is valid UTF-8 and holds no raw control character: strings keep
    their value (control characters become ``\\u`` escapes, DEL too), except lone surrogates, which
    no valid JSON text can carry: they are written as their escape (``\\udcff``) in the string."""
    text = json.dumps(_no_surrogates(doc), indent=indent, ensure_ascii=True)
    return text.replace("\x7f", "\\u007f")


def uri_path(path: str) -> str:
    """A relative path as a URI reference (RFC 3986): every byte outside the unreserved set and
    ``/`` percent-encoded (``a b#c?.rules`` -> ``a%20b%23c%3F.rules``), from the bytes the file
    system holds (a name that is not UTF-8 keeps its bytes)."""
    return quote(os.fsencode(path), safe="/")
