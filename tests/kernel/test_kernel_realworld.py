"""Real-node rule shapes against the kernel: every dump of tests/corpus/realworld/ is loaded into the
lab's node (ipsets first), every probe is sent, and pktverify must agree with what the kernel did."""

from __future__ import annotations

import pytest

from pktverify.oracle.kernel_campaign import Probe

from ..corpus.realworld_cases import CASES, IDS, ipsets
from .cli_campaign import run_probe

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("folder,probe", CASES, ids=IDS)
def test_realworld_dump_agrees_with_kernel(lab, folder, probe):
    client, proto, sport, dst, dport = probe
    rules = (folder / "iptables-save.txt").read_text()
    res = run_probe(lab, Probe(rules, client, proto, sport, dst, dport, ipsets(folder)))
    assert res.kernel is not None, f"the kernel refused {folder.name}: {res.kernel_error}"
    assert res.agrees, f"{folder.name}: {res.explanation}\n{res.probe.reproducer()}"
