"""PV1xx: structure — what ``iptables-restore`` (or the kernel behind it) refuses, and dead chains.

Every error the parser reports becomes a finding with its own message; parsing then goes on
without that line, so one run lists every refused line, not only the first. Only those findings
stop the file from loading (:func:`load_blocker`): an unused chain (PV104) is a warning about a
file ``iptables-restore`` takes as it is.
"""

from __future__ import annotations

from ...errors import InputError
from ...model import rules as m
from ...parse.iptables_save import parse_iptables_save
from .finding import Check, Finding, Subject

PV100 = Check(
    "PV100", "parse-error", "error", "iptables-restore refuses this line",
    "The whole rule set would fail to load: iptables-restore commits nothing of a file with an error, so the "
    "node keeps its old rules (or none).",
    "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 99999 -j ACCEPT\nCOMMIT",
    "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 9999 -j ACCEPT\nCOMMIT", "structure")
PV101 = Check(
    "PV101", "undefined-chain", "error", "a jump or goto to a chain the table does not declare",
    "iptables-restore refuses the file ('Couldn't load target'); a misspelt chain name is the usual cause.",
    "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j KUBE-FIREWAL\nCOMMIT",
    "*filter\n:INPUT ACCEPT [0:0]\n:KUBE-FIREWALL - [0:0]\n-A INPUT -j KUBE-FIREWALL\nCOMMIT", "structure")
PV102 = Check(
    "PV102", "chain-loop", "error", "chains a built-in chain reaches jump to each other in a loop",
    "The kernel refuses a table whose built-in chains reach a loop of chains (ELOOP), so the file does not "
    "load. (A loop no built-in chain reaches loads: no packet ever enters it.)",
    "*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n-A INPUT -j A\n-A A -j B\n-A B -j A\nCOMMIT",
    "*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n-A INPUT -j A\n-A A -j B\n-A B -j RETURN\nCOMMIT",
    "structure")
PV103 = Check(
    "PV103", "target-not-allowed-here", "error",
    "a target or match in a table or chain where the kernel refuses it (DNAT outside nat, -o in PREROUTING, ...)",
    "The kernel checks each target's and match's tables and hooks when the table is loaded; one misplaced "
    "DNAT or MASQUERADE makes the whole file fail.",
    "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -p tcp -j DNAT --to-destination 10.0.0.1\nCOMMIT",
    "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.1\nCOMMIT", "structure")
PV104 = Check(
    "PV104", "unused-chain", "warning", "a user chain no rule jumps to",
    "Rules in a chain nothing jumps to never see a packet: usually a jump was removed or misspelt.",
    "*filter\n:INPUT ACCEPT [0:0]\n:KUBE-FIREWALL - [0:0]\n-A KUBE-FIREWALL -j DROP\nCOMMIT",
    "*filter\n:INPUT ACCEPT [0:0]\n:KUBE-FIREWALL - [0:0]\n-A INPUT -j KUBE-FIREWALL\n-A KUBE-FIREWALL -j DROP\nCOMMIT",
    "structure")

MAX_PARSE_ERRORS = 200

# Chains every real node declares and never jumps to: they exist to be watched, not entered.
# kubelet and kube-proxy each create a canary chain in mangle, nat and filter and re-create their
# rules when it disappears (something flushed the tables); kubelet's KUBE-IPTABLES-HINT (mangle)
# tells containers which iptables backend the host uses; Weave Net keeps WEAVE-CANARY the same way.
CANARY_CHAINS = frozenset({"KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY", "KUBE-IPTABLES-HINT", "WEAVE-CANARY"})
# What a parse error that is about pktverify, not about the file, says (iptables may accept the line).
_NOT_MODELLED = ("unsupported match module", "unsupported target", "is not modelled")


def _id_of(message: str) -> str:
    if message.startswith("jump to undeclared chain"):
        return "PV101"
    if message.startswith("loop between chains"):
        return "PV102"
    if (" is only valid in the " in message or " is only valid from " in message
            or "does not allow DROP" in message or "cannot be used in the" in message
            or message.startswith("cannot jump to built-in chain")):
        return "PV103"
    return "PV100"


def parse_with_findings(text: str, source: str, *, lenient: bool = False) -> tuple[m.Ruleset | None, list[Finding]]:
    """Parse ``text``; every refused line is a finding and is then left out (its line number kept),
    up to :data:`MAX_PARSE_ERRORS`. The rule set is None when a refusal is not about one line."""
    findings: list[Finding] = []
    lines = text.split("\n")
    while True:
        try:
            return parse_iptables_save("\n".join(lines), source=source, lenient=lenient), findings
        except InputError as exc:
            findings.append(Finding(_id_of(exc.message), f"{exc.message}: {exc.text}" if exc.text else exc.message,
                                    source, exc.line))
            index = exc.line - 1
            if not 0 <= index < len(lines) or not lines[index].startswith(("-A ", "-I ", ":")) \
                    or len(findings) >= MAX_PARSE_ERRORS:
                return None, findings
            lines[index] = "#"          # left out, numbering kept


def load_blocker(finding: Finding) -> str | None:
    """Why the file of ``finding`` cannot be loaded as it is — ``"refused"`` (iptables-restore
    refuses it, so the node would keep its old rules) or ``"unreadable"`` (pktverify does not model
    the line; iptables may take it) — or None when the finding does not stop the load (PV104)."""
    if finding.id not in ("PV100", "PV101", "PV102", "PV103"):
        return None
    if finding.id == "PV101" and "(or an unsupported target" in finding.message:
        # -j NAME with no such chain: iptables looks for a target extension NAME. Extensions are
        # named like HMARK or SYNPROXY; a name with a '-' (KUBE-SVC-...) is a missing chain.
        name = finding.message.split("jump to undeclared chain ", 1)[1].split(" ", 1)[0]
        return "refused" if "-" in name else "unreadable"
    if any(word in finding.message for word in _NOT_MODELLED):
        return "unreadable"
    return "refused"


def unused_chains(subject: Subject) -> list[Finding]:
    """PV104: user chains that no rule of their table jumps or goes to (the empty canary chains
    every node declares, :data:`CANARY_CHAINS`, are not findings)."""
    ruleset = subject.ruleset
    out = []
    for table in ruleset.tables.values():
        used = {r.target.chain for c in table.chains.values() for r in c.rules if type(r.target) is m.Jump}
        for chain in table.chains.values():
            if chain.name in CANARY_CHAINS and not chain.rules:
                continue
            if not chain.builtin and chain.name not in used:
                out.append(Finding("PV104", f"chain {chain.name} in table {table.name} is declared, but no rule jumps "
                                            "to it: its rules never see a packet", ruleset.source, chain.line))
    return out
