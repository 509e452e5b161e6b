"""The realistic node dumps of tests/corpus/realworld/ and their probes (shared by the load test
and the kernel test)."""

from __future__ import annotations

from pathlib import Path

REALWORLD = Path(__file__).resolve().parent / "realworld"


def dumps() -> list[Path]:
    return sorted(p for p in REALWORLD.iterdir() if (p / "iptables-save.txt").is_file())


def probes(folder: Path) -> list[tuple[str, str, int, str, int]]:
    out = []
    for line in (folder / "probes.txt").read_text().splitlines():
        if line.strip():
            client, proto, sport, dst, dport = line.split()
            out.append((client, proto, int(sport), dst, int(dport)))
    return out


def reaches_the_node(client: str, dst: str) -> bool:
    """In the kernel lab the peers own .16-.255 of their subnets, and on-link addresses below that
    answer nobody: a probe to them never reaches the node (it would say nothing about the rules)."""
    last = int(dst.rsplit(".", 1)[1])
    if client == "lan":
        return not dst.startswith("192.168.0.") or dst == "192.168.0.2"
    if client == "pod":
        return not dst.startswith("10.0.0.") or dst == "10.0.0.1" or last >= 256
    return True


def ipsets(folder: Path) -> str:
    path = folder / "ipset-save.txt"
    return path.read_text() if path.is_file() else ""


CASES = [(folder, probe) for folder in dumps() for probe in probes(folder)]
IDS = [f"{folder.name}-{probe[0]}-{probe[1]}-{probe[3]}:{probe[4]}" for folder, probe in CASES]
