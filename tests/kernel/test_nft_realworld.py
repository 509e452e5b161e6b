"""Real-world nftables rulesets against the kernel: Docker 29's ``ip docker-bridges``, Calico's
``ip calico``, firewalld's ``inet firewalld`` and a mixed node (Docker 28's iptables-nft tables
beside a hand-written ``inet filter``), each from tests/corpus/nft/. Every probe is sent through
the kernel lab: the kernel must do what the case says (verdict, and the NAT pinned below), and
``pktverify trace --nft`` on the lab's own dumps must agree (the nft campaign's comparison)."""

from __future__ import annotations

import pytest

from pktverify.cli import main
from pktverify.oracle.nft_campaign import NftProbe, run_nft_probe

from ..corpus.nft_cases import NFT_CASES, NFT_IDS, iptables_text

pytestmark = pytest.mark.kernel

# The post-NAT tuple the kernel gives where the case is about NAT: (folder, sport) -> tuple
# (None for the port: masquerade fully-random picks one).
POST_NAT = {
    ("docker-29", 43000): ("192.168.0.9", 43000, "10.0.0.20", 80),        # published port DNATed
    ("docker-29", 43001): ("192.168.0.2", 43001, "192.168.0.40", 80),     # container masqueraded
    ("docker-29", 43005): ("192.168.0.2", 43005, "10.0.0.20", 80),        # host to its published port
    ("calico", 43100): ("10.0.0.9", 43100, "10.0.1.20", 8080),            # pool to pool: no SNAT
    ("calico", 43101): ("192.168.0.2", None, "192.168.0.40", 443),        # nat-outgoing, fully random
    ("calico", 43104): ("192.168.0.9", 43104, "10.0.0.20", 80),
    ("mixed-docker-host-firewall", 43303): ("192.168.0.2", 43303, "192.168.0.40", 80),
}


@pytest.mark.parametrize("case", NFT_CASES, ids=NFT_IDS)
def test_realworld_nft_ruleset_agrees_with_kernel(lab, case):
    probe = NftProbe((case.folder / "ruleset.nft").read_text(), iptables_text(case.folder), case.client,
                     case.proto, case.sport, case.dst, case.dport)
    res = run_nft_probe(lab, probe, main)
    assert res.kernel is not None, f"the kernel refused {case.folder.name}: {res.kernel_error}"
    assert res.kernel.verdict == case.verdict, f"{case.folder.name}: kernel {res.kernel} ({case.why})"
    want = POST_NAT.get((case.folder.name, case.sport))
    if want is not None:
        got = res.kernel.post_nat
        assert got is not None and got[0] == want[0] and got[2:] == want[2:] and want[1] in (None, got[1]), got
    assert res.agrees, f"{case.folder.name}: {res.explanation}\n{probe.reproducer()}"
