"""The nft kernel oracle (pktverify.oracle.nft_campaign): the lab loads nft scripts (alone or beside an
iptables text), observes the kernel, and writes the dumps and ``pktverify trace --nft`` argv for the
same probe. The comparison with ``pktverify trace`` runs once this pktverify's trace takes ``--nft``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pktverify.cli import main
from pktverify.oracle.nft_campaign import (
    NftProbe,
    nft_trace_unavailable,
    observe,
    run_nft_campaign,
    run_nft_probe,
    trace_argv,
    write_dumps,
)

pytestmark = pytest.mark.kernel

DNAT = ("add table ip t\nadd chain ip t n { type nat hook prerouting priority dstnat ; }\n"
        "add rule ip t n ip daddr 10.96.0.10 meta l4proto tcp dnat to 192.168.0.40:8080\n"
        "add chain ip t f { type filter hook forward priority 0 ; policy accept ; }\n"
        "add rule ip t f ip daddr 192.168.0.41 drop\n")
IPT = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -p udp -j DROP\nCOMMIT\n"

FIXED = [
    (NftProbe(DNAT, None, "pod", "tcp", 40000, "10.96.0.10", 80), "forward", ("10.0.0.9", 40000, "192.168.0.40", 8080)),
    (NftProbe(DNAT, None, "pod", "tcp", 40001, "192.168.0.41", 80), "drop", None),
    (NftProbe(DNAT, IPT, "lan", "udp", 40002, "10.0.0.20", 53), "drop", None),
    (NftProbe(DNAT, IPT, "lan", "tcp", 40003, "10.96.0.10", 80), "forward",
     ("192.168.0.9", 40003, "192.168.0.40", 8080)),
]


@pytest.mark.parametrize("probe,verdict,post_nat", FIXED)
def test_lab_observes_nft_probes(lab, tmp_path, probe, verdict, post_nat):
    obs = observe(lab, probe)
    assert (obs.verdict, obs.post_nat) == (verdict, post_nat), obs
    write_dumps(lab, tmp_path, probe)
    tables = [item["table"] for item in json.loads((tmp_path / "nft-ruleset.json").read_text())["nftables"]
              if "table" in item]
    assert ("ip", "t") in {(t["family"], t["name"]) for t in tables}
    assert not any(t["name"].startswith("pktverify_") for t in tables)      # the lab's own tables are left out
    argv = trace_argv(probe, tmp_path)
    assert argv[:3] == ["trace", "--nft", str(tmp_path / "nft-ruleset.json")]
    assert ("--iptables" in argv) == bool(probe.iptables)
    assert all(Path(a).exists() for a in argv if a.startswith(str(tmp_path)))
    assert "pktverify trace --nft ruleset.nft" in probe.reproducer()


def test_refused_script_is_kept_as_written(lab, tmp_path):
    """A script the kernel refuses: the lab says so (RuntimeError naming nft -f), and the dumps hold the
    script itself, which pktverify must refuse too."""
    probe = NftProbe("add table ip t\nadd chain ip t n { type nat hook output priority -200 ; }\n", None, "node",
                     "tcp", 40000, "10.96.0.10", 80)
    with pytest.raises(RuntimeError, match="nft -f"):
        observe(lab, probe)
    write_dumps(lab, tmp_path, probe, loaded=False)
    assert trace_argv(probe, tmp_path)[2] == str(tmp_path / "ruleset.nft")


def _need_trace_nft() -> None:
    reason = nft_trace_unavailable(main)
    if reason:
        pytest.skip(f"the nft kernel comparison waits for pktverify: {reason}")


@pytest.mark.parametrize("probe,verdict,post_nat", FIXED)
def test_trace_agrees_on_fixed_probes(lab, probe, verdict, post_nat):
    _need_trace_nft()
    res = run_nft_probe(lab, probe, main)
    assert res.agrees, f"{res.explanation}\n{probe.reproducer()}"


def test_nft_campaign(lab, kernel_examples, kernel_seed):
    """Drawn nft rulesets (sometimes beside an iptables text): pktverify agrees with the kernel."""
    _need_trace_nft()
    result = run_nft_campaign(lab, kernel_examples, main, seed=kernel_seed)
    assert not result.divergences, "\n\n".join(f"{r.explanation}\n{r.probe.reproducer()}"
                                              for r in result.divergences[:3])


def test_a_probe_the_lab_cannot_run_is_counted_apart_and_shown(monkeypatch, capsys):
    """A lab failure on one probe (the kernel refusing a drawn ruleset, a command timing out under
    load) is recorded with its probe and shown, not turned into Hypothesis' FlakyFailure, which
    ended a 600-probe run as an internal error."""
    from pktverify.cli import main
    from pktverify.oracle import nft_campaign

    calls = {"n": 0}
    real = nft_campaign.run_nft_probe

    def sometimes_fails(lab, probe, trace):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("nft -f refused the ruleset: Error: Could not process rule")
        return real(lab, probe, trace)

    monkeypatch.setattr(nft_campaign, "run_nft_probe", sometimes_fails)
    code = main(["selftest-kernel", "--nft", "--examples", "4", "--seed", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "kernel agreement: 3/3 probes" in out
    assert "1 probe(s) the lab could not run (not counted above); the first: RuntimeError: nft -f refused" in out
