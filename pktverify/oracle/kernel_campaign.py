"""The kernel as oracle: random rule sets and packets, the kernel's answer against ``pktverify trace``.

A *probe* is a rule set plus one packet from one client of the lab
(:mod:`.kernel_lab`). The kernel's observation is compared with what
``pktverify trace`` predicts from the node's own dumps (``iptables-save``,
``ip -j addr``, ``ip -j route``, taken from the namespace after loading):

* the observed verdict, post-NAT tuple and outgoing interface must be one of
  the predicted outcomes (a probabilistic rule set has several), and the
  predicted probabilities must sum to 1 (no spurious branch);
* a rule set the kernel refuses to load must be refused by pktverify too.

Hypothesis draws the rule sets (:mod:`pktverify.testing.iptables_draw`) from
the matches and targets pktverify supports (user chains, RETURN, goto, marks, multiport, negations, addrtype,
iprange, conntrack state, DNAT/SNAT/MASQUERADE/REDIRECT, filter verdicts and
policies) over a small pool of addresses and ports that the packets use too,
so rules both hit and miss.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..testing.iptables_draw import rule_sets
from .kernel_lab import CLIENT_ADDRESSES, LAB_ADDRS, LAB_ROUTES, KernelLab, KernelObservation

__all__ = ["Probe", "Prediction", "ProbeResult", "CampaignResult", "Trace", "predict", "run_probe",
           "run_campaign", "probes", "binomial_consistent"]

# The ``pktverify`` command's entry point (argv without the program name -> exit status, printing
# to stdout and stderr): the CLI passes its own ``main``, so the oracle does not import the CLI.
Trace = Callable[[list[str]], int]


@dataclass(frozen=True)
class Probe:
    """A rule set and one packet from one client (pod, lan or node)."""
    rules: str
    client: str
    proto: str
    sport: int
    dst: str
    dport: int
    ipsets: str = ""            # ``ipset restore`` input loaded before the rules
    routing: tuple = ()         # ip commands (policy routing) run in the node before the packet
    at: str = ""                # trace --at (ISO time) for -m time: the time the probe is sent

    def reproducer(self) -> str:
        """Shell commands that replay this probe through ``pktverify trace`` without the lab."""
        src, iface = CLIENT_ADDRESSES[self.client]
        where = f"--in-iface {iface}" if iface else "--local"
        return (f"cat > rules.txt <<'EOF'\n{self.rules}EOF\n"
                f"cat > addrs.txt <<'EOF'\n{LAB_ADDRS}EOF\n"
                f"cat > routes.txt <<'EOF'\n{LAB_ROUTES}EOF\n"
                f"pktverify trace --iptables rules.txt --addrs addrs.txt --routes routes.txt {where} "
                f"--proto {self.proto} --src {src} --sport {self.sport} --dst {self.dst} --dport {self.dport}")


@dataclass(frozen=True)
class Prediction:
    """pktverify's answer: the possible (verdict, post_nat, out_iface, port ranges), or a load error."""
    outcomes: tuple[dict, ...]
    load_error: str = ""


@dataclass(frozen=True)
class ProbeResult:
    probe: Probe
    kernel: KernelObservation | None        # None: the kernel refused the rule set
    kernel_error: str
    prediction: Prediction
    agrees: bool
    explanation: str


@dataclass
class CampaignResult:
    """What a campaign found: probes sent and agreed, divergences with their probe, and probes the lab
    could not run (the kernel refused the drawn rules, a namespace command failed or timed out):
    counted apart and shown, never taken for agreement or divergence."""
    seed: int = 0
    sent: int = 0
    agreed: int = 0
    divergences: list[ProbeResult] = field(default_factory=list)
    lab_errors: list[tuple[object, str]] = field(default_factory=list)


def run_counted(result: CampaignResult, run: Callable[[], ProbeResult], probe: object) -> None:
    """One probe of a campaign into ``result``; an exception from the lab is recorded with its probe,
    so one probe the lab cannot run neither ends the campaign nor makes Hypothesis replay it."""
    try:
        res = run()
    except Exception as exc:       # noqa: BLE001 - the lab's failure, kept with the probe and shown
        result.lab_errors.append((probe, f"{type(exc).__name__}: {exc}"))
        return
    result.sent += 1
    if res.agrees:
        result.agreed += 1
    else:
        result.divergences.append(res)


# ------------------------------------------------------------------ prediction
def predict(probe: Probe, dump_dir: Path, trace: Trace) -> Prediction:
    """Run the ``pktverify trace`` command (in-process, through ``trace``) on the dumps in ``dump_dir``."""
    src, iface = CLIENT_ADDRESSES[probe.client]
    sets = dump_dir / "ipset-save.txt"
    argv = ["trace", "--iptables", str(dump_dir / "iptables-save.txt"),
            "--addrs", str(dump_dir / "ip-addr.json"), "--routes", str(dump_dir / "ip-route.json"),
            *(["--ipsets", str(sets)] if sets.exists() else []),
            *(["--rules", str(dump_dir / "ip-rule.json")] if (dump_dir / "ip-rule.json").exists() else []),
            *(["--at", probe.at] if probe.at else []),
            *(["--in-iface", iface] if iface else ["--local"]),
            "--proto", probe.proto, "--src", src, "--sport", str(probe.sport),
            "--dst", probe.dst, "--dport", str(probe.dport), "--format", "json"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = trace(argv)
    if status != 0:
        return Prediction((), err.getvalue().strip() or f"exit {status}")
    return Prediction(tuple(json.loads(out.getvalue())["outcomes"]))


def _matches(obs: KernelObservation, outcome: dict) -> bool:
    if obs.verdict != outcome["verdict"]:
        return False
    if obs.verdict not in ("forward", "local"):
        return True
    p = outcome["packet"]
    ranges = {"sport": (p["sport"], p["sport"]), "dport": (p["dport"], p["dport"])}
    for fld, (low, high) in outcome.get("random_ports", {}).items():
        ranges[fld] = (low, high)
    k_src, k_sport, k_dst, k_dport = obs.post_nat
    if (k_src, k_dst) != (p["src"], p["dst"]):
        return False
    if not (ranges["sport"][0] <= k_sport <= ranges["sport"][1] and ranges["dport"][0] <= k_dport <= ranges["dport"][1]):
        return False
    return obs.verdict != "forward" or obs.out_iface == outcome["out_iface"]


def _describe(outcome: dict) -> str:
    p = outcome["packet"]
    where = f" out {outcome['out_iface']}" if outcome.get("out_iface") else ""
    return (f"{outcome['verdict']} p={outcome['probability']:.3g} {p['src']}:{p['sport']} → "
            f"{p['dst']}:{p['dport']}{where}")


def run_probe(lab: KernelLab, probe: Probe, trace: Trace) -> ProbeResult:
    """Send ``probe`` through the kernel and through pktverify (``trace``: the CLI's entry point);
    say whether they agree and why not."""
    src = CLIENT_ADDRESSES[probe.client][0]
    try:
        obs = lab.probe(probe.rules, client=probe.client, proto=probe.proto, sport=probe.sport,
                        dst=probe.dst, dport=probe.dport, src=src, ipsets=probe.ipsets, routing=probe.routing)
        kernel_error = ""
    except RuntimeError as exc:
        if "iptables-restore" not in str(exc):
            raise
        obs, kernel_error = None, str(exc)
    with tempfile.TemporaryDirectory(prefix="pktverify-kernel-") as tmp:
        dump_dir = Path(tmp)
        dump = lab.dump()
        # What the kernel loaded, as iptables-save prints it; if it refused the rules,
        # the text itself: pktverify must refuse it too.
        (dump_dir / "iptables-save.txt").write_text(dump.iptables_save if obs is not None else probe.rules)
        (dump_dir / "ip-addr.json").write_text(dump.ip_addr_json)
        (dump_dir / "ip-route.json").write_text(dump.ip_route_json)
        if dump.ipset_save.strip():
            (dump_dir / "ipset-save.txt").write_text(dump.ipset_save)
        if dump.ip_rule_json.strip():
            (dump_dir / "ip-rule.json").write_text(dump.ip_rule_json)
        prediction = predict(probe, dump_dir, trace)
    if obs is None:
        agrees = bool(prediction.load_error)
        why = "" if agrees else f"kernel refused the rules ({kernel_error}) but pktverify accepted them"
        return ProbeResult(probe, None, kernel_error, prediction, agrees, why)
    if prediction.load_error:
        return ProbeResult(probe, obs, "", prediction, False,
                           f"kernel loaded the rules but pktverify refused them: {prediction.load_error}")
    total = sum(o["probability"] for o in prediction.outcomes)
    exact = all(o["exact"] for o in prediction.outcomes)
    if not exact and all(0.0 < o["probability"] <= 1.0 for o in prediction.outcomes):
        total = 1.0       # inexact outcomes are alternatives, each an upper bound: each at most 1
    if abs(total - 1.0) > 1e-9:      # a spurious or missing branch would hide behind "one of them agrees"
        return ProbeResult(probe, obs, "", prediction, False,
                           f"pktverify's outcomes do not sum to probability 1 ({total}): "
                           f"{'; '.join(_describe(o) for o in prediction.outcomes)}")
    agrees = any(_matches(obs, o) for o in prediction.outcomes)
    why = "" if agrees else (
        f"kernel: {obs.verdict} {obs.post_nat or ''} out={obs.out_iface} ({obs.detail}); "
        f"pktverify: {'; '.join(_describe(o) for o in prediction.outcomes)}")
    if not agrees:
        # pktverify reads iptables-save's text: when that text is not what the kernel runs, the
        # divergence is iptables-save's (the reproducer's rules are the probe's, not the saved text).
        misprint = lab.misprinted(dump.iptables_save)
        if misprint:
            why = f"{misprint}; {why}"
    return ProbeResult(probe, obs, "", prediction, agrees, why)


# ------------------------------------------------------------------ strategies
# Destinations per client; never one the client's own namespace owns (it would not reach the node).
_DESTS = {"pod": ["10.96.0.10", "10.96.0.11", "192.168.0.40", "192.168.0.2", "10.0.0.1", "192.168.0.9"],
          "lan": ["10.96.0.10", "10.96.0.11", "192.168.0.2", "10.0.0.1", "10.0.0.20", "10.0.0.9"],
          "node": ["10.96.0.10", "192.168.0.40", "10.0.0.20", "192.168.0.2", "127.0.0.1"]}
_PORTS = [80, 443, 8080, 53]


@st.composite
def probes(draw) -> Probe:
    """A random probe: client, rule set, protocol, destination and ports."""
    client = draw(st.sampled_from(["pod", "lan", "node"]))
    return Probe(draw(rule_sets(client)), client, draw(st.sampled_from(["tcp", "udp"])),
                 draw(st.integers(20000, 60000)), draw(st.sampled_from(_DESTS[client])), draw(st.sampled_from(_PORTS)))


def run_campaign(lab: KernelLab, examples: int, trace: Trace, *, seed: int | None = None) -> CampaignResult:
    """Run ``examples`` random probes through the kernel and ``trace`` (the CLI's entry point);
    every probe counts, divergences are kept with their probe."""
    return run_drawn(probes(), lambda probe: run_probe(lab, probe, trace), examples, seed)


def run_drawn(strategy: st.SearchStrategy, run: Callable[[object], ProbeResult], examples: int,
              seed: int | None) -> CampaignResult:
    """``examples`` probes drawn from ``strategy`` (generated only: no replay, no shrinking), each
    run by ``run`` and counted by :func:`run_counted`; the iptables and nft campaigns share it."""
    from hypothesis import seed as hypothesis_seed
    result = CampaignResult(seed=random.randrange(2 ** 32) if seed is None else seed)

    @hypothesis_seed(result.seed)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=["generate"])
    @given(probe=strategy)
    def one(probe: object) -> None:
        run_counted(result, lambda: run(probe), probe)

    one()
    return result


# ------------------------------------------------------------------ statistics
def binomial_consistent(hits: int, n: int, p: float, *, sigmas: float = 4.5) -> bool:
    """True when ``hits`` of ``n`` is within ``sigmas`` standard deviations of ``n*p``.

    At 4.5 sigma a correct model fails about once in 150,000 checks; a wrong
    probability (0.5 instead of 0.33 over 120 draws) is off by more than 4 sigma.
    """
    mean = n * p
    sd = math.sqrt(n * p * (1 - p))
    if sd == 0:
        return hits == round(mean)
    return abs(hits - mean) <= sigmas * sd
