"""The CLI's option values: argparse ``type=`` functions that read one option's text strictly.

Each raises :class:`argparse.ArgumentTypeError` with a message that echoes the text and says what
is valid, so a bad value is a usage error (one line, exit 2) decided here, on the command line,
and never a ``ValueError`` from deeper down.
"""

from __future__ import annotations

import argparse
from typing import Callable

__all__ = ["PORT", "ids", "instant", "number", "pod_cidr", "seconds"]


def number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a plain ASCII decimal in [low, high] (int() would take '٣' or '1_0')."""
    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or len(text) > 12:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
        value = int(text)
        if value < low or (high is not None and value > high):
            allowed = f"{low}-{high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range (allowed: {allowed})")
        return value
    return parse


PORT = number(0, 65535)


def instant(text: str) -> int:
    """An argparse type: an ISO 8601 time as UTC epoch seconds (naive times are UTC)."""
    import datetime as dt
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2026-11-27T14:00") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp())


def pod_cidr(text: str) -> tuple[str, str]:
    """An argparse type: NODE=CIDR (checked against the input's nodes when it is read)."""
    node, sep, cidr = text.partition("=")
    if not sep or not node or not cidr:
        raise argparse.ArgumentTypeError(f"{text!r}: give NODE=CIDR, e.g. worker-1=10.244.1.0/24")
    return node, cidr


def seconds(text: str) -> float:
    """An argparse type: a plain ASCII number of seconds > 0 (no 'inf', 'nan' or '1e9')."""
    from ..check.deadline import MAX_TIMEOUT
    whole, _, fraction = text.partition(".")
    if not (text.isascii() and whole.isdigit() and (fraction.isdigit() or not _) and len(text) <= 16):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (e.g. 30 or 2.5)")
    if not 0 < float(text) <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"{text} is out of range (allowed: more than 0, at most {MAX_TIMEOUT:,.0f})")
    return float(text)


def ids(text: str) -> list[str]:
    """An argparse type: comma-separated check ids or prefixes."""
    parts = [part.strip().upper() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("give check ids or prefixes, e.g. PV203 or PV2,PV301")
    return parts
