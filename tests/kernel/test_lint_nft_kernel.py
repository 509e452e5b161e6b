"""lint's nft checks against the kernel: every ruleset lint calls an error (PV150-PV158, PV161) is refused
by ``nft -f`` in a network namespace, and every other one (clean, or warnings only: PV159, PV160, PV162)
loads. The cases are tests/check/test_lint_nft.py's and each check's documented examples.
nft runs only inside a namespace this module creates (never on the host's ruleset).
"""

from __future__ import annotations

import subprocess

import pytest

from pktverify.check.lint import REGISTRY, lint_text
from pktverify.check.lint.nft_structure import NFT_CHECKS

from ..check.test_lint_nft import CASES
from .nft_netns import netns_fixture, nft

pytestmark = pytest.mark.kernel

EXAMPLES = [(f"{c.id}-bad", c.bad + "\n") for c in NFT_CHECKS] + [(f"{c.id}-good", c.good + "\n") for c in NFT_CHECKS]
RULESETS = [(name, text) for name, text, _ids in CASES] + EXAMPLES


netns = netns_fixture("pv-nftlint", scope="module")


def _load(ns: str, text: str) -> subprocess.CompletedProcess:
    assert nft(ns, "flush", "ruleset").returncode == 0
    return nft(ns, "-f", "-", script=text, timeout=60)


@pytest.mark.parametrize("name,text", RULESETS, ids=[r[0] for r in RULESETS])
def test_lint_errors_are_what_nft_refuses(netns, name, text):
    errors = sorted({f.id for f in lint_text(text, "t.nft", nft=True) if REGISTRY[f.id].severity == "error"})
    result = _load(netns, text)
    if errors:
        assert result.returncode != 0, f"lint says {errors}, but nft -f loads it"
    else:
        assert result.returncode == 0, f"lint finds no error, but nft -f refuses it: {result.stderr}"
