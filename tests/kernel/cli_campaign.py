"""The kernel campaign with the CLI's own trace, as ``pktverify selftest-kernel`` runs it.

The oracle takes the trace function as an argument (it does not import the CLI); these tests
check the ``pktverify trace`` command itself, so they pass the CLI's entry point.
"""

from __future__ import annotations

from pktverify.cli import main
from pktverify.oracle import kernel_campaign
from pktverify.oracle.kernel_campaign import CampaignResult, Probe, ProbeResult
from pktverify.oracle.kernel_lab import KernelLab


def run_probe(lab: KernelLab, probe: Probe) -> ProbeResult:
    """:func:`pktverify.oracle.kernel_campaign.run_probe` through ``pktverify trace``."""
    return kernel_campaign.run_probe(lab, probe, main)


def run_campaign(lab: KernelLab, examples: int, *, seed: int | None = None) -> CampaignResult:
    """:func:`pktverify.oracle.kernel_campaign.run_campaign` through ``pktverify trace``."""
    return kernel_campaign.run_campaign(lab, examples, main, seed=seed)
