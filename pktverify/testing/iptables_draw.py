"""Random ``iptables-restore`` texts aimed at the kernel lab's node, for property tests.

All five tables, user chains, RETURN and goto, marks, multiport, negations, addrtype, iprange,
conntrack state, DNAT/SNAT/MASQUERADE/REDIRECT, filter verdicts and policies, over a small pool of
addresses and ports that the kernel lab's packets use too, so rules both hit and miss. Some
draws hold rules the kernel refuses: :func:`pktverify.strategies.rule_sets` keeps only
the rules ``iptables-restore`` accepts; the kernel campaign (:mod:`pktverify.oracle.kernel_campaign`)
sends them all, since pktverify must refuse what the kernel refuses. The draw order is fixed:
recorded campaign seeds replay the same rule sets.
"""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["rule_sets"]

_ADDRS = ["10.0.0.9", "192.168.0.9", "192.168.0.2", "10.0.0.1", "10.96.0.10", "192.168.0.40", "10.0.0.20"]


@st.composite
def _match(draw, hook: str, proto: str) -> str:
    """One match, valid in ``hook``; ``proto`` is the rule's -p (port matches need it).

    ``hook`` "USER" is a user chain reached from several hooks: neither -i nor -o.
    """
    neg = draw(st.sampled_from(["", "! "]))
    choices = ["src", "dst", "mark", "addrtype", "iprange", "ctstate", "comment", "connmark", "ttl", "pkttype",
               "limit", "ctdir", "length", "policy", "physdev", "fragment"]
    if hook in ("OUTPUT", "POSTROUTING"):
        choices.append("owner")
    if hook not in ("OUTPUT", "POSTROUTING", "USER"):
        choices.append("in")
    if hook not in ("PREROUTING", "INPUT", "USER"):
        choices.append("out")
    if proto:
        choices += ["dport", "sport", "multiport"]
    return _match_text(draw, draw(st.sampled_from(choices)), neg, proto)


def _match_text(draw, kind: str, neg: str, proto: str) -> str:
    """The text of one match of ``kind`` (``neg``: "! " negates it where the match allows)."""
    if kind in ("src", "dst"):
        addr = draw(st.sampled_from(_ADDRS))
        plen = draw(st.sampled_from([32, 24, 16, 8]))
        return f"{neg}-{kind[0]} {addr}/{plen}"
    if kind == "in":
        return f"{neg}-i {draw(st.sampled_from(['eth0', 'cni0', 'eth+']))}"
    if kind == "out":
        return f"{neg}-o {draw(st.sampled_from(['eth0', 'cni0', 'c+']))}"
    if kind == "mark":
        return f"-m mark {neg}--mark {draw(st.sampled_from(['0x1', '0x1/0x1', '0x2/0x3']))}"
    if kind == "addrtype":
        which = draw(st.sampled_from(["--dst-type", "--src-type"]))
        return f"-m addrtype {neg}{which} {draw(st.sampled_from(['LOCAL', 'UNICAST', 'LOCAL,BROADCAST']))}"
    if kind == "iprange":
        which = draw(st.sampled_from(["--src-range", "--dst-range"]))
        rng = draw(st.sampled_from(["10.0.0.5-10.0.0.10", "192.168.0.1-192.168.0.50", "10.96.0.10-10.96.0.10"]))
        return f"-m iprange {neg}{which} {rng}"
    if kind == "ctstate":
        return f"-m conntrack {neg}--ctstate {draw(st.sampled_from(['NEW', 'DNAT', 'NEW,ESTABLISHED', 'SNAT']))}"
    if kind == "comment":
        return '-m comment --comment "pktverify probe"'
    if kind == "connmark":
        return f"-m connmark {neg}--mark {draw(st.sampled_from(['0x5', '0x5/0xf', '0x0/0xff']))}"
    if kind == "ttl":
        return f"-m ttl {neg}{draw(st.sampled_from(['--ttl-eq 64', '--ttl-lt 64', '--ttl-gt 63', '--ttl-eq 63']))}"
    if kind == "pkttype":
        return f"-m pkttype {neg}--pkt-type {draw(st.sampled_from(['unicast', 'broadcast', 'multicast']))}"
    if kind == "limit":
        return f"-m limit --limit {draw(st.sampled_from(['1/hour', '10/sec']))} --limit-burst 1"
    if kind == "ctdir":
        return f"-m conntrack {neg}--ctdir {draw(st.sampled_from(['ORIGINAL', 'REPLY']))}"
    if kind == "length":
        return f"-m length {neg}--length {draw(st.sampled_from(['0:100', '1000:65535', '20:65535']))}"
    if kind == "policy":
        return f"-m policy --dir {draw(st.sampled_from(['in', 'out']))} --pol {draw(st.sampled_from(['none', 'ipsec']))}"
    if kind == "physdev":
        return f"-m physdev {neg}--physdev-is-bridged"
    if kind == "fragment":
        return f"{neg}-f"
    if kind == "owner":
        return f"-m owner {neg}--uid-owner {draw(st.sampled_from(['0', '1000', '0-10']))}"
    if kind in ("dport", "sport"):
        port = draw(st.sampled_from(["80", "443", "8000:9000", "53"]))
        return f"-m {proto} {neg}--{kind} {port}"
    return f"-m multiport {neg}--dports {draw(st.sampled_from(['80,443', '53,8080', '1:100']))}"


@st.composite
def _rule(draw, chain: str, hook: str, targets: list[str]) -> str:
    proto = draw(st.sampled_from(["", "", "tcp", "udp"]))
    parts = [f"-A {chain}"]
    if proto:
        parts.append(f"-p {proto}")
    parts += draw(st.lists(_match(hook, proto), max_size=2))
    target = draw(st.sampled_from(targets))
    if "{port}" in target:
        target = target.replace("{port}", f":{draw(st.sampled_from([8080, 9000]))}" if proto else "")
    if target.startswith("REJECT") and "tcp-reset" in target and proto != "tcp":
        target = "REJECT"
    if target.startswith(("REDIRECT", "MASQUERADE")) and "--to-ports" in target and not proto:
        target = target.split(" --to-ports")[0]
    parts.append(f"-j {target}" if not target.startswith("goto ") else f"-g {target[5:]}")
    return " ".join(parts)


_NAT_PRE = ["DNAT --to-destination 192.168.0.40{port}", "DNAT --to-destination 192.168.0.20-192.168.0.30{port}",
            "DNAT --to-destination 10.0.0.20{port}", "REDIRECT --to-ports 15001", "RETURN", "ACCEPT", "PV-NAT"]
_NAT_USER = ["DNAT --to-destination 192.168.0.41{port}", "REDIRECT", "RETURN"]
_NAT_POST = ["MASQUERADE", "MASQUERADE --to-ports 20000-20100", "SNAT --to-source 192.168.0.60",
             "SNAT --to-source 192.168.0.60-192.168.0.70", "MASQUERADE --random-fully",
             "SNAT --to-source 10.0.0.60", "RETURN", "ACCEPT"]
_MANGLE = ["MARK --set-xmark 0x1/0xffffffff", "MARK --or-mark 0x2", "MARK --and-mark 0x0", "ACCEPT", "LOG",
           "CONNMARK --set-mark 0x5", "CONNMARK --save-mark", "CONNMARK --restore-mark", "TTL --ttl-dec 1",
           "TTL --ttl-set 1", "CHECKSUM --checksum-fill"]
_FILTER = ["ACCEPT", "DROP", "REJECT", "REJECT --reject-with icmp-host-prohibited", "REJECT --reject-with tcp-reset",
           "PV-FILTER", "goto PV-FILTER", "LOG"]
_FILTER_USER = ["RETURN", "DROP", "ACCEPT", "REJECT", "MARK --set-mark 0x4"]
_RAW = ["CT --notrack", "ACCEPT", "DROP", "TRACE"]
_SECURITY = ["ACCEPT", "DROP", "LOG"]


@st.composite
def rule_sets(draw, client: str) -> str:
    """A complete iptables-restore text for the lab's node, aimed at probes from ``client``."""
    def rules(chain, hook, targets, max_size=3):
        return draw(st.lists(_rule(chain, hook, targets), max_size=max_size))

    raw = rules("PREROUTING", "PREROUTING", _RAW, 1) + rules("OUTPUT", "OUTPUT", _RAW, 1)
    security = rules("FORWARD", "FORWARD", _SECURITY, 1) + rules("OUTPUT", "OUTPUT", _SECURITY, 1)
    mangle = rules("PREROUTING", "PREROUTING", _MANGLE, 2) + rules("OUTPUT", "OUTPUT", _MANGLE, 1)
    nat = (rules("PREROUTING", "PREROUTING", _NAT_PRE) + rules("OUTPUT", "OUTPUT", _NAT_PRE)
           + rules("PV-NAT", "USER", _NAT_USER, 2) + rules("POSTROUTING", "POSTROUTING", _NAT_POST))
    # Locally generated packets to the node itself are confirmed by conntrack before the
    # INPUT hook; the lab once could not tell an INPUT drop from delivery, so node probes draw
    # no INPUT rules. It now counts delivery on the input hook (tests/kernel/test_kernel_campaign_cases.py
    # checks an INPUT drop), but drawing them would change what every recorded seed replays.
    filt = (([] if client == "node" else rules("INPUT", "INPUT", _FILTER))
            + rules("FORWARD", "FORWARD", _FILTER) + rules("OUTPUT", "OUTPUT", _FILTER)
            + rules("PV-FILTER", "USER", _FILTER_USER, 2))
    policies = {c: draw(st.sampled_from(["ACCEPT", "ACCEPT", "DROP"])) for c in ("INPUT", "FORWARD", "OUTPUT")}
    if client == "node":
        policies["INPUT"] = "ACCEPT"
    return ("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" + "".join(r + "\n" for r in raw) + "COMMIT\n"
            "*security\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            + "".join(r + "\n" for r in security) + "COMMIT\n"
            "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
            ":OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" + "".join(r + "\n" for r in mangle) + "COMMIT\n"
            "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
            ":PV-NAT - [0:0]\n" + "".join(r + "\n" for r in nat) + "COMMIT\n"
            f"*filter\n:INPUT {policies['INPUT']} [0:0]\n:FORWARD {policies['FORWARD']} [0:0]\n"
            f":OUTPUT {policies['OUTPUT']} [0:0]\n:PV-FILTER - [0:0]\n" + "".join(r + "\n" for r in filt)
            + "COMMIT\n")
