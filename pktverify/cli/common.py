"""What several CLI commands share: refusing empty paths, the model cache, warnings on stderr, output."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Iterable

from ..errors import InvalidArgument, one_line

__all__ = ["cache", "given", "print_warnings", "refuse_empty_paths", "say", "say_cache_warnings", "write_out"]

_PATH_OPTIONS = ("html", "pcap", "pcap_dir", "out", "cache_dir", "dumps", "cluster", "iptables", "addrs", "routes",
                 "ipsets", "rules", "node")


def refuse_empty_paths(args: argparse.Namespace) -> None:
    """An option given an empty value (``--html ''``, an unset shell variable) is an error, never
    taken as "not given": the user asked for something and would silently not get it."""
    for name in _PATH_OPTIONS:
        if getattr(args, name, None) == "":
            positional = name == "cluster" and args.command in ("verify", "generate")
            option = "CLUSTER" if positional else f"--{name.replace('_', '-')}"
            raise InvalidArgument(f"{option} is empty: give a " + ("name" if name == "node" else "path"))


def say(text: str) -> None:
    """One line on stderr, made safe to print (``pktverify: wrote ...``, warnings)."""
    print(one_line(text), file=sys.stderr)


def print_warnings(cluster) -> None:
    """What the input lacks that the user must hear now (also in the report's notes)."""
    for warning in cluster.extras.get("warnings", ()):
        say(f"pktverify: warning: {warning}")


def cache(args: argparse.Namespace):
    """The model cache asked for by --cache-dir or $PKTVERIFY_CACHE_DIR (None: parse every time)."""
    directory = args.cache_dir or os.environ.get("PKTVERIFY_CACHE_DIR")
    if not directory:
        return None
    from ..load.model_cache import ModelCache
    args.model_cache = ModelCache(directory)
    return args.model_cache


def say_cache_warnings(args: argparse.Namespace) -> None:
    """Print what the model cache ignored or could not write (a bad entry never stops a run)."""
    model_cache = getattr(args, "model_cache", None)
    for warning in model_cache.warnings if model_cache is not None else ():
        say(f"pktverify: warning: {warning}")


def given(args: argparse.Namespace, names: Iterable[str]) -> list[str]:
    """The options of ``names`` the user set (as they are written on the command line)."""
    spelled = {"source": "from", "target": "to"}
    return ["--" + spelled.get(name, name).replace("_", "-") for name in names
            if getattr(args, name) not in (None, False, "", 0)]      # every such default is one of these


def write_out(out: str) -> None:
    """The command's answer on stdout, ending with one line break."""
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
