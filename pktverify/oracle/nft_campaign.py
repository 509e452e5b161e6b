"""The kernel as oracle for nftables: drawn nft rulesets and packets, the kernel's answer against ``pktverify trace``.

An :class:`NftProbe` is an ``nft -f`` script (optionally beside an iptables-restore text, loaded
first, as on a node where iptables-nft and native tables share the hooks) plus one packet from one
client of the lab (:mod:`.kernel_lab`). :func:`observe` gives the kernel's
:class:`~.kernel_observe.KernelObservation`; :func:`trace_argv` the ``pktverify trace`` command
for the same probe on the node's dumps (``nft -j list ruleset`` without the lab's own tables,
``iptables-save`` when it holds anything, ``ip -j addr/route/rule``); :func:`run_nft_probe`
compares the two as :func:`.kernel_campaign.run_probe` does for iptables; :func:`run_nft_campaign`
draws probes with :mod:`pktverify.testing.nft_draw`. :func:`nft_trace_unavailable` says why this
pktverify's ``trace`` cannot answer for nft rulesets yet, if it cannot.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from ..eval.node_trace import NodeTracer
from ..load.node import load_node
from ..packets import make_packet
from ..report.trace_json import outcome_to_json
from ..testing.nft_draw import mixed_rulesets
from .kernel_campaign import (
    _DESTS,
    _PORTS,
    CampaignResult,
    Prediction,
    ProbeResult,
    Trace,
    _describe,
    _matches,
    run_drawn,
)
from .kernel_lab import CLIENT_ADDRESSES, LAB_ADDRS, LAB_ROUTES, KernelLab, KernelObservation

__all__ = ["NftProbe", "observe", "write_dumps", "trace_argv", "nft_trace_unavailable", "predict_nft",
           "run_nft_probe", "nft_probes", "run_nft_campaign"]


@dataclass(frozen=True)
class NftProbe:
    """An nft script (and an iptables-restore text loaded before it, or None) and one packet."""
    nft: str
    iptables: str | None
    client: str
    proto: str
    sport: int
    dst: str
    dport: int
    then: tuple = ()        # (sport, dst, dport): the client's next connection, after this one

    def reproducer(self) -> str:
        """Shell commands that replay this probe through ``pktverify trace`` without the lab
        (the script as loaded, not the kernel's listing of it)."""
        src, iface = CLIENT_ADDRESSES[self.client]
        where = f"--in-iface {iface}" if iface else "--local"
        ipt = f"cat > rules.txt <<'EOF'\n{self.iptables}EOF\n" if self.iptables else ""
        return (f"cat > ruleset.nft <<'EOF'\n{self.nft}EOF\n{ipt}"
                f"cat > addrs.txt <<'EOF'\n{LAB_ADDRS}EOF\n"
                f"cat > routes.txt <<'EOF'\n{LAB_ROUTES}EOF\n"
                f"pktverify trace --nft ruleset.nft {'--iptables rules.txt ' if ipt else ''}--addrs addrs.txt "
                f"--routes routes.txt {where} --proto {self.proto} --src {src} --sport {self.sport} "
                f"--dst {self.dst} --dport {self.dport}" + (
                    f"\n# then the client's next connection: --sport {self.then[0]} --dst {self.then[1]} --dport "
                    f"{self.then[2]}, traced with what the first added to dynamic sets "
                    "(NodeTracer.trace(..., recent=...), as a cluster walk carries it)" if self.then else ""))


def observe(lab: KernelLab, probe: NftProbe) -> KernelObservation:
    """Load the probe's rulesets in the lab's node and send its packet: what the kernel did.
    Raises RuntimeError (naming ``nft -f`` or ``iptables-restore``) when the kernel refuses them."""
    return lab.probe(probe.iptables, client=probe.client, proto=probe.proto, sport=probe.sport, dst=probe.dst,
                     dport=probe.dport, nft=probe.nft)


def write_dumps(lab: KernelLab, dump_dir: Path, probe: NftProbe, *, loaded: bool = True) -> None:
    """The node's dumps as pktverify reads them, in ``dump_dir``: nft-ruleset.json (or, when the kernel
    refused the probe, its script as ruleset.nft), iptables-save.txt (when it holds a table),
    ip-addr.json, ip-route.json, ip-rule.json."""
    dump = lab.dump()
    if loaded:
        (dump_dir / "nft-ruleset.json").write_text(dump.nft_json)
    else:
        (dump_dir / "ruleset.nft").write_text(probe.nft)
    saved = dump.iptables_save if loaded else (probe.iptables or "")
    if saved.strip():
        (dump_dir / "iptables-save.txt").write_text(saved)
    (dump_dir / "ip-addr.json").write_text(dump.ip_addr_json)
    (dump_dir / "ip-route.json").write_text(dump.ip_route_json)
    if dump.ip_rule_json.strip():
        (dump_dir / "ip-rule.json").write_text(dump.ip_rule_json)


def trace_argv(probe: NftProbe, dump_dir: Path) -> list[str]:
    """``pktverify trace`` argv (without the program name) for ``probe`` on the dumps :func:`write_dumps` wrote."""
    src, iface = CLIENT_ADDRESSES[probe.client]
    nft = dump_dir / "nft-ruleset.json"
    ipt = dump_dir / "iptables-save.txt"
    rules = dump_dir / "ip-rule.json"
    return ["trace", "--nft", str(nft if nft.exists() else dump_dir / "ruleset.nft"),
            *(["--iptables", str(ipt)] if ipt.exists() else []),
            "--addrs", str(dump_dir / "ip-addr.json"), "--routes", str(dump_dir / "ip-route.json"),
            *(["--rules", str(rules)] if rules.exists() else []),
            *(["--in-iface", iface] if iface else ["--local"]),
            "--proto", probe.proto, "--src", src, "--sport", str(probe.sport),
            "--dst", probe.dst, "--dport", str(probe.dport), "--format", "json"]


def nft_trace_unavailable(trace: Trace) -> str:
    """Why this pktverify cannot answer for nft rulesets yet ("" when it can): ``trace`` takes no
    ``--nft``, or refuses a one-chain ruleset with the lab's addresses and routes."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            trace(["trace", "--help"])
        except SystemExit:
            pass
    if "--nft" not in out.getvalue():
        return "pktverify trace takes no --nft yet"
    with tempfile.TemporaryDirectory(prefix="pktverify-nft-") as tmp:
        files = {"ruleset.nft": "table ip t {\n chain f { type filter hook forward priority 0; policy accept; }\n}\n",
                 "addrs.txt": LAB_ADDRS, "routes.txt": LAB_ROUTES}
        for name, text in files.items():
            (Path(tmp) / name).write_text(text)
        prediction = predict_nft(["trace", "--nft", f"{tmp}/ruleset.nft", "--addrs", f"{tmp}/addrs.txt",
                                  "--routes", f"{tmp}/routes.txt", "--in-iface", "cni0", "--proto", "tcp",
                                  "--src", "10.0.0.9", "--sport", "40000", "--dst", "192.168.0.40", "--dport", "80",
                                  "--format", "json"], trace)
    return f"pktverify trace --nft does not answer yet: {prediction.load_error}" if prediction.load_error else ""


def predict_nft(argv: list[str], trace: Trace) -> Prediction:
    """Run ``trace`` (the CLI's entry point, in-process) on ``argv``: pktverify's outcomes or its refusal."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = trace(argv)
    if status != 0:
        return Prediction((), err.getvalue().strip() or f"exit {status}")
    return Prediction(tuple(json.loads(out.getvalue())["outcomes"]))


def run_nft_probe(lab: KernelLab, probe: NftProbe, trace: Trace) -> ProbeResult:
    """Send ``probe`` through the kernel and through pktverify; say whether they agree and why not.
    The dumps are taken after loading and before the packet (a dynamic set's elements are the state
    pktverify starts from); pktverify reads both the dump and the script as loaded; a second
    connection (``probe.then``) is compared with what pktverify says after the first one's additions."""
    try:
        lab.load(probe.iptables, nft=probe.nft)
        kernel_error = ""
    except RuntimeError as exc:
        if "nft -f" not in str(exc) and "iptables-restore" not in str(exc):
            raise
        kernel_error = str(exc)
    with tempfile.TemporaryDirectory(prefix="pktverify-nft-") as tmp:
        dump_dir = Path(tmp)
        write_dumps(lab, dump_dir, probe, loaded=not kernel_error)
        argv = trace_argv(probe, dump_dir)
        prediction = predict_nft(argv, trace)
        if kernel_error:
            agrees = bool(prediction.load_error)
            why = "" if agrees else f"kernel refused the rules ({kernel_error}) but pktverify accepted them"
            return ProbeResult(probe, None, kernel_error, prediction, agrees, why)  # type: ignore[arg-type]
        obs = lab.probe(probe.iptables, client=probe.client, proto=probe.proto, sport=probe.sport, dst=probe.dst,
                        dport=probe.dport, nft=probe.nft, reload=False)
        why = _disagreement(obs, prediction)
        if not why:
            (dump_dir / "ruleset.nft").write_text(probe.nft)
            script = predict_nft([str(dump_dir / "ruleset.nft") if a.endswith("nft-ruleset.json") else a
                                  for a in argv], trace)
            why = _disagreement(obs, script)
            why = f"read from the script as loaded: {why}" if why else ""
        if not why and probe.then:
            why = _second_connection(lab, probe, dump_dir, obs)
    return ProbeResult(probe, obs, "", prediction, not why, why)                   # type: ignore[arg-type]


def _disagreement(obs: KernelObservation, prediction: Prediction) -> str:
    """Why pktverify's ``prediction`` does not hold the kernel's observation ("" when it does)."""
    if prediction.load_error:
        return f"kernel loaded the rules but pktverify refused them: {prediction.load_error}"
    total = sum(o["probability"] for o in prediction.outcomes)
    if not all(o["exact"] for o in prediction.outcomes) and all(0.0 < o["probability"] <= 1.0
                                                                for o in prediction.outcomes):
        total = 1.0       # inexact outcomes are alternatives, each an upper bound
    if abs(total - 1.0) > 1e-9:
        return (f"pktverify's outcomes do not sum to probability 1 ({total}): "
                f"{'; '.join(_describe(o) for o in prediction.outcomes)}")
    if any(_matches(obs, o) for o in prediction.outcomes):
        return ""
    return (f"kernel: {obs.verdict} {obs.post_nat or ''} out={obs.out_iface} ({obs.detail}); "
            f"pktverify: {'; '.join(_describe(o) for o in prediction.outcomes)}")


def _second_connection(lab: KernelLab, probe: NftProbe, dump_dir: Path, first: KernelObservation) -> str:
    """The client's next connection (``probe.then``), sent without reloading: the kernel's fate against
    pktverify's for it, given what the first connection added to dynamic sets in each of pktverify's
    outcomes that agree with the kernel's first observation (``Outcome.recent``: each key as the packet
    was at the rule that added it). "" when they agree."""
    sport, dst, dport = probe.then
    src, iface = CLIENT_ADDRESSES[probe.client]
    obs = lab.probe(probe.iptables, client=probe.client, proto=probe.proto, sport=sport, dst=dst, dport=dport,
                    nft=probe.nft, reload=False)
    files = {name: dump_dir / f for name, f in (("iptables", "iptables-save.txt"), ("rules", "ip-rule.json"))
             if (dump_dir / f).exists()}
    node = load_node(nft=dump_dir / "nft-ruleset.json", addrs=dump_dir / "ip-addr.json",
                     routes=dump_dir / "ip-route.json", **files)
    tracer = NodeTracer(node)
    pkt1 = make_packet(proto=probe.proto, src=src, dst=probe.dst, sport=probe.sport, dport=probe.dport)
    pkt2 = make_packet(proto=probe.proto, src=src, dst=dst, sport=sport, dport=dport)
    whys = []
    for o in tracer.trace(pkt1, in_iface=iface).outcomes:
        if not _matches(first, outcome_to_json(o)):
            continue
        added = o.recent
        second = tracer.trace(pkt2, in_iface=iface, recent=added)
        why = _disagreement(obs, Prediction(tuple(outcome_to_json(x) for x in second.outcomes)))
        if not why:
            return ""
        whys.append(why + (f" (after the first added {sorted(added)})" if added else ""))
    return f"second connection from port {sport} to {dst}:{dport}: " + ("; ".join(whys) or
                                                                      "no outcome of the first agreed")


@st.composite
def nft_probes(draw) -> NftProbe:
    """A random probe: client, nft script (sometimes beside an iptables text), protocol, destination, ports."""
    client = draw(st.sampled_from(["pod", "lan", "node"]))
    nft, iptables = draw(mixed_rulesets(client))
    sport, dst, dport = draw(st.integers(20000, 60000)), draw(st.sampled_from(_DESTS[client])), \
        draw(st.sampled_from(_PORTS))
    then: tuple = ()
    # Some probes (a tenth to a quarter, by seed): the client's next connection, mostly to the same place (what
    # the first added to dynamic sets decides it). Not after `numgen inc`: its counter moved, and pktverify knows
    # only the first.
    if draw(st.integers(0, 3)) == 3 and "numgen inc" not in nft:
        then = (sport + 1, draw(st.sampled_from([dst, dst, *_DESTS[client]])), draw(st.sampled_from([dport, dport,
                                                                                                       *_PORTS])))
    return NftProbe(nft, iptables, client, draw(st.sampled_from(["tcp", "udp"])), sport, dst, dport, then)


def run_nft_campaign(lab: KernelLab, examples: int, trace: Trace, *, seed: int | None = None) -> CampaignResult:
    """Run ``examples`` drawn nft probes through the kernel and ``trace``; divergences kept with their probe."""
    return run_drawn(nft_probes(), lambda probe: run_nft_probe(lab, probe, trace), examples, seed)