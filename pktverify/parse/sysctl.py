"""``sysctl.txt`` (``sysctl -a`` output, or the lines ``scripts/collect-node`` writes) → Sysctls.

Only the settings that decide a packet's fate are kept (see :mod:`pktverify.model.sysctls`):
``net.ipv4.ip_forward``, ``net.ipv4.conf.<all|default|IFACE>.{rp_filter,arp_ignore,
route_localnet,accept_local}`` and ``net.bridge.bridge-nf-call-iptables``; every other line is
passed over. A node's ``sysctl.txt`` is optional and read from the folder of its dump files.
"""

from __future__ import annotations

import os
import re

from ..errors import InputError
from ..model.cluster import DUMP_KINDS, NodeSpec
from ..model.sysctls import KNOWN, Sysctls
from .source import read_text

__all__ = ["parse_sysctls", "node_sysctls", "SYSCTL_FILE"]

SYSCTL_FILE = "sysctl.txt"
_LINE = re.compile(r"\s*([A-Za-z0-9_./:@-]+)\s*=\s*(.*?)\s*")
_GLOBAL = ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables")


def parse_sysctls(text: str, *, source: str = "<sysctl>") -> Sysctls:
    """The settings pktverify reads, from ``name = value`` lines; a line that is no such pair, or
    a read setting whose value is no small integer, is an InputError at its line."""
    values: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        m = _LINE.fullmatch(line)
        if m is None:
            raise InputError(source, number, "a sysctl line is NAME = VALUE", line[:200])
        name = _normal(m.group(1))
        if not _read(name):
            continue
        value = m.group(2)
        if not re.fullmatch(r"[0-9]{1,3}", value):
            raise InputError(source, number, f"{name} must be a small integer", line[:200])
        values[name] = int(value)
    return Sysctls(tuple(values.items()), source)


def node_sysctls(node: NodeSpec) -> Sysctls | None:
    """The node's ``sysctl.txt`` beside its dump files (the folder layout ``collect-node``
    writes), or None when it gives no dump file or the folder holds none."""
    paths = [getattr(node, kind) for kind in DUMP_KINDS]
    folder = next((os.path.dirname(p) for p in paths if p), None)
    if folder is None:
        return None
    path = os.path.join(folder, SYSCTL_FILE)
    if not os.path.lexists(path):
        return None
    return parse_sysctls(read_text(path, allow_empty=True), source=path)


def _normal(name: str) -> str:
    """``sysctl -a`` writes the dots of an interface's name as slashes (``eth0/100``) and
    ``/proc/sys`` paths use slashes throughout: the key with dots, the interface's name as is."""
    if name.startswith("net/"):
        name = name.replace("/", ".")
    parts = name.split(".")
    if len(parts) >= 5 and parts[:3] == ["net", "ipv4", "conf"]:
        return ".".join(parts[:3] + [".".join(parts[3:-1]).replace("/", "."), parts[-1]])
    return name


def _read(name: str) -> bool:
    if name in _GLOBAL:
        return True
    parts = name.split(".")
    return len(parts) >= 5 and parts[:3] == ["net", "ipv4", "conf"] and parts[-1] in KNOWN
