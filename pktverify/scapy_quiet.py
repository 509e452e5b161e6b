"""Import scapy without letting it write anything.

On its first import scapy creates ``~/.cache`` and ``~/.config`` and pickles
~3 MB of lookup tables into ``~/.cache/scapy``. pktverify writes nothing but the
output it was asked for, so scapy is imported with both folders pointed at a
path that cannot exist (under ``/dev/null``): scapy then finds no cache folder
and caches nothing. The environment is restored right after, so programs the
user starts later see their own settings.
"""

from __future__ import annotations

import os
import sys

__all__ = ["import_scapy"]

_NOWHERE = "/dev/null/pktverify-no-scapy-cache"


def import_scapy() -> None:
    """Import the scapy modules pktverify uses, with scapy's cache and config folders off."""
    if "scapy.main" in sys.modules:
        return
    saved = {var: os.environ.get(var) for var in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME")}
    os.environ.update({var: _NOWHERE for var in saved})
    try:
        import scapy.main  # noqa: F401  (reads the two folders once, at import)
        import scapy.layers.inet  # noqa: F401
        import scapy.layers.l2  # noqa: F401
        import scapy.layers.sctp  # noqa: F401
        import scapy.utils  # noqa: F401
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
