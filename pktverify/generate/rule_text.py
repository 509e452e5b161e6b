"""Arguments of generated iptables-restore lines, quoted exactly as ``iptables-save`` quotes them.

``xtables_save_string`` leaves a word of letters, digits, ``_`` and ``-``
bare and otherwise wraps it in double quotes, escaping ``"``, ``\\`` and
``'`` with a backslash. A line break cannot be represented at all (it would
end the rule and start a new, attacker-chosen line), so it is refused. Names
are validated long before they get here; this is the second wall.
"""

from __future__ import annotations

import re

__all__ = ["quote"]

_BARE = re.compile(r"[A-Za-z0-9_-]+\Z")
_ESCAPED = re.compile(r"""(["\\'])""")


def quote(value: str) -> str:
    """``value`` as one iptables-restore argument (bare or double-quoted)."""
    if any(c in value for c in "\n\r\0"):
        raise ValueError(f"{value!r} cannot be written into a rule: it holds a line break or NUL")
    if _BARE.match(value):
        return value
    return '"' + _ESCAPED.sub(r"\\\1", value) + '"'
