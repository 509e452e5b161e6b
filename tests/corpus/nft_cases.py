"""The real-world nftables rulesets of tests/corpus/nft/ and their probes (shared by the load test
and the kernel test).

Each folder holds ``ruleset.nft`` (an ``nft -f`` script written from the system's own sources,
on the kernel lab's addresses), ``PROVENANCE.md``, optionally ``iptables-save.txt`` (iptables-nft's
tables, loaded with ``iptables-restore`` before the script: a mixed node), and ``probes.txt``:
``CLIENT PROTO SPORT DST DPORT VERDICT  why...`` one a line, VERDICT being what the kernel does
(forward, local, drop or reject)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

NFT_CORPUS = Path(__file__).resolve().parent / "nft"


class NftCase(NamedTuple):
    folder: Path
    client: str
    proto: str
    sport: int
    dst: str
    dport: int
    verdict: str
    why: str


def nft_folders() -> list[Path]:
    return sorted(p for p in NFT_CORPUS.iterdir() if (p / "ruleset.nft").is_file())


def nft_cases(folder: Path) -> list[NftCase]:
    out = []
    for line in (folder / "probes.txt").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            client, proto, sport, dst, dport, verdict, *why = line.split()
            out.append(NftCase(folder, client, proto, int(sport), dst, int(dport), verdict, " ".join(why)))
    return out


def iptables_text(folder: Path) -> str | None:
    path = folder / "iptables-save.txt"
    return path.read_text() if path.is_file() else None


NFT_CASES = [case for folder in nft_folders() for case in nft_cases(folder)]
NFT_IDS = [f"{c.folder.name}-{c.client}-{c.proto}-{c.dst}:{c.dport}" for c in NFT_CASES]
