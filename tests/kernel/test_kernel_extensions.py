"""The real-node rule language against the kernel: each new match and target, a hit and a near miss.

Same harness as ``test_kernel_differential.py``: load the rules (and ipsets) into the lab's node,
send one packet, and compare what the kernel did with ``pktverify trace`` on the lab's own dumps
(``iptables-save``, ``ip -j addr``, ``ip -j route``, ``ipset save``).
"""

from __future__ import annotations

import pytest

from pktverify.oracle.kernel_campaign import Probe

from .cli_campaign import run_probe

pytestmark = pytest.mark.kernel


def table(name: str, *rules: str, chains: str = "") -> str:
    return f"*{name}\n" + chains + "".join(r + "\n" for r in rules) + "COMMIT\n"


def nat(*rules: str) -> str:
    return table("nat", *rules)


SETS = ("create pv-ips hash:ip family inet hashsize 1024 maxelem 65536\nadd pv-ips 192.168.0.40\n"
        "create pv-ipport hash:ip,port family inet hashsize 1024 maxelem 65536\nadd pv-ipport 192.168.0.40,tcp:80\n"
        "create pv-nets hash:net family inet hashsize 1024 maxelem 65536\nadd pv-nets 192.168.0.0/24\n"
        "add pv-nets 192.168.0.40/30 nomatch\n"
        "create pv-ports bitmap:port range 0-65535\nadd pv-ports 8080\n"
        "create pv-list list:set size 8\nadd pv-list pv-ipport\n")

# (rules, client, proto, sport, dst, dport[, ipsets])
EXTENSIONS = [
    # ipsets: address, address+port, nets with a nomatch hole, ports, a list of sets
    (table("filter", "-A FORWARD -m set --match-set pv-ips dst -j DROP"), "pod", "tcp", 41000, "192.168.0.40", 80, SETS),
    (table("filter", "-A FORWARD -m set --match-set pv-ips dst -j DROP"), "pod", "tcp", 41001, "192.168.0.41", 80, SETS),
    (table("filter", "-A FORWARD -m set --match-set pv-ipport dst,dst -j DROP"), "pod", "tcp", 41002, "192.168.0.40", 80, SETS),
    (table("filter", "-A FORWARD -m set --match-set pv-ipport dst,dst -j DROP"), "pod", "tcp", 41003, "192.168.0.40", 81, SETS),
    (table("filter", "-A FORWARD -m set --match-set pv-nets dst -j DROP"), "pod", "tcp", 41004, "192.168.0.50", 80, SETS),
    (table("filter", "-A FORWARD -m set --match-set pv-nets dst -j DROP"), "pod", "tcp", 41005, "192.168.0.41", 80, SETS),
    (table("filter", "-A FORWARD -m set --match-set pv-nets dst --return-nomatch -j DROP"), "pod", "tcp", 41006,
     "192.168.0.41", 80, SETS),
    (table("filter", "-A FORWARD -m set ! --match-set pv-ports dst -j DROP"), "pod", "udp", 41007, "192.168.0.40", 8080, SETS),
    (table("filter", "-A FORWARD -m set --match-set pv-list dst,dst -j DROP"), "pod", "tcp", 41008, "192.168.0.40", 80, SETS),
    (table("filter", "-A FORWARD -m set --match-set pv-ipport dst -j DROP"), "pod", "tcp", 41009, "192.168.0.40", 80, SETS),
    # owner: a local socket's uid (0 here); forwarded packets have no socket
    (table("filter", "-A OUTPUT -m owner --uid-owner 0 -j DROP"), "node", "udp", 41010, "192.168.0.40", 53),
    (table("filter", "-A OUTPUT -m owner --uid-owner 1000-2000 -j DROP"), "node", "udp", 41011, "192.168.0.40", 53),
    (table("mangle", "-A POSTROUTING -m owner ! --uid-owner 1000 -j MARK --set-mark 1",
           ) + nat("-A POSTROUTING -m mark --mark 1 -j MASQUERADE"), "pod", "tcp", 41012, "192.168.0.40", 80),
    # connmark: set on the connection, read back by a later table
    (table("mangle", "-A PREROUTING -j CONNMARK --set-mark 0x5") + nat(
        "-A PREROUTING -m connmark --mark 0x5 -p tcp -j DNAT --to-destination 192.168.0.30"),
     "pod", "tcp", 41013, "192.168.0.40", 80),
    (table("mangle", "-A PREROUTING -j MARK --set-mark 0x7", "-A PREROUTING -j CONNMARK --save-mark",
           "-A PREROUTING -j MARK --set-mark 0", "-A PREROUTING -j CONNMARK --restore-mark") + nat(
        "-A PREROUTING -m mark --mark 0x7 -p tcp -j DNAT --to-destination 192.168.0.31"),
     "pod", "tcp", 41014, "192.168.0.40", 80),
    # conntrack in full: the original and reply tuples, status, direction
    (nat("-A PREROUTING -p tcp -j DNAT --to-destination 192.168.0.32") + table(
        "filter", "-A FORWARD -m conntrack --ctorigdst 192.168.0.40 --ctreplsrc 192.168.0.32 -j DROP"),
     "pod", "tcp", 41015, "192.168.0.40", 80),
    (table("filter", "-A FORWARD -m conntrack --ctdir ORIGINAL --ctproto udp -j DROP"),
     "pod", "udp", 41016, "192.168.0.40", 53),
    (table("filter", "-A FORWARD -m conntrack --ctstatus NONE -j DROP"), "pod", "udp", 41046, "192.168.0.40", 53),
    (table("filter", "-A FORWARD -m conntrack ! --ctstatus CONFIRMED -j DROP"), "pod", "udp", 41047,
     "192.168.0.40", 53),
    (table("filter", "-A FORWARD -m conntrack --ctstatus CONFIRMED -j DROP"), "pod", "udp", 41017, "192.168.0.40", 53),
    # header facts: TTL (64 from the client, one less once routed), length of a SYN, packet type
    (table("filter", "-A FORWARD -m ttl --ttl-lt 64 -j DROP"), "pod", "tcp", 41018, "192.168.0.40", 80),
    (table("mangle", "-A PREROUTING -m ttl --ttl-eq 64 -j MARK --set-mark 2") + nat(
        "-A POSTROUTING -m mark --mark 2 -j MASQUERADE"), "pod", "tcp", 41019, "192.168.0.40", 80),
    (table("filter", "-A FORWARD -p tcp -m length --length 0:100 -j DROP"), "pod", "tcp", 41020, "192.168.0.40", 80),
    (table("filter", "-A FORWARD -m pkttype --pkt-type unicast -j DROP"), "pod", "tcp", 41021, "192.168.0.40", 80),
    (table("filter", "-A FORWARD -m pkttype --pkt-type broadcast -j DROP"), "pod", "tcp", 41022, "192.168.0.40", 80),
    # fresh-flow answers: limit and connlimit on a first packet, no IPsec policy, no helper
    (table("filter", "-A FORWARD -m limit --limit 1/hour --limit-burst 1 -j DROP"), "pod", "tcp", 41023,
     "192.168.0.40", 80),
    (table("filter", "-A FORWARD -p tcp -m connlimit --connlimit-above 0 -j DROP"), "pod", "tcp", 41024,
     "192.168.0.40", 80),
    # a one-token limit used by the packet is empty for REJECT's answer (campaign seed 4242)
    (table("filter", "-A OUTPUT -m limit --limit 10/sec --limit-burst 1 -j REJECT --reject-with icmp-host-prohibited"),
     "node", "tcp", 41053, "192.168.0.40", 443),
    (table("filter", "-A OUTPUT -m limit --limit 10/sec --limit-burst 2 -j REJECT --reject-with icmp-host-prohibited"),
     "node", "tcp", 41054, "192.168.0.40", 443),
    (table("filter", "-A FORWARD -m policy --dir in --pol none -j DROP"), "pod", "tcp", 41025, "192.168.0.40", 80),
    (table("filter", "-A FORWARD -m helper --helper ftp -j DROP"), "pod", "tcp", 41026, "192.168.0.40", 21),
    # rpfilter: the pod's source is routed back out of cni0 (strict passes); lan's too
    (table("raw", "-A PREROUTING -m rpfilter --invert -j DROP"), "pod", "tcp", 41027, "192.168.0.40", 80),
    (table("mangle", "-A PREROUTING -m rpfilter -j MARK --set-mark 3") + nat(
        "-A POSTROUTING -m mark --mark 3 -j MASQUERADE"), "lan", "tcp", 41028, "10.0.0.20", 80),
    # physdev on a routed packet: no bridge port, so only inverted options match
    (table("filter", "-A FORWARD -m physdev --physdev-is-bridged -j DROP"), "pod", "tcp", 41029, "192.168.0.40", 80),
    (table("filter", "-A FORWARD -m physdev ! --physdev-is-bridged -j DROP"), "pod", "tcp", 41030, "192.168.0.40", 80),
    # NOTRACK / CT --notrack: no connection, so no NAT
    (table("raw", "-A PREROUTING -p tcp -j CT --notrack") + nat("-A PREROUTING -p tcp -j DNAT --to-destination 192.168.0.33"),
     "pod", "tcp", 41031, "192.168.0.40", 80),
    (table("raw", "-A PREROUTING -p tcp -j CT --notrack") + table("filter", "-A FORWARD -m conntrack --ctstate UNTRACKED -j DROP"),
     "pod", "tcp", 41032, "192.168.0.40", 80),
    # TTL target: set to 1, then forwarding answers time-exceeded
    (table("mangle", "-A PREROUTING -j TTL --ttl-set 1"), "pod", "tcp", 41033, "192.168.0.40", 80),
    (table("mangle", "-A PREROUTING -j TTL --ttl-inc 1"), "pod", "udp", 41034, "192.168.0.40", 53),
    # ... and the kernel's own ICMP error crosses OUTPUT, where a DROP policy silences it (campaign seed 2026)
    (table("mangle", "-A PREROUTING -j TTL --ttl-set 1") + table("filter", chains=":OUTPUT DROP [0:0]\n"),
     "pod", "tcp", 41052, "192.168.0.40", 80),
    # the security table, after filter
    (table("security", "-A FORWARD -p tcp --dport 80 -j DROP"), "pod", "tcp", 41035, "192.168.0.40", 80),
    (table("filter", "-A FORWARD -p tcp -j ACCEPT") + table("security", "-A FORWARD -p tcp -j DROP"),
     "pod", "tcp", 41036, "192.168.0.40", 80),
    # non-terminating targets: the packet goes on
    (table("mangle", "-A FORWARD -p tcp -j TCPMSS --clamp-mss-to-pmtu", "-A POSTROUTING -j CHECKSUM --checksum-fill",
           "-A POSTROUTING -j CLASSIFY --set-class 1:1", "-A POSTROUTING -j DSCP --set-dscp 10")
     + table("filter", "-A FORWARD -j TRACE"), "pod", "tcp", 41037, "192.168.0.40", 80),
    # NFQUEUE with nobody listening: dropped, unless --queue-bypass
    (table("filter", "-A FORWARD -p udp -j NFQUEUE --queue-num 3 --queue-bypass"), "pod", "udp", 41038,
     "192.168.0.40", 53),
    # fragments: pktverify's packets are whole, so -f never matches and ! -f always does
    (table("filter", "-A FORWARD -f -j DROP"), "pod", "tcp", 41048, "192.168.0.40", 80),
    (table("filter", "-A FORWARD ! -f -p udp -j DROP"), "pod", "udp", 41049, "192.168.0.40", 53),
    # NETMAP: the host bits are kept
    (nat("-A PREROUTING -d 10.96.0.0/24 -j NETMAP --to 192.168.0.0/24"), "pod", "tcp", 41050, "10.96.0.44", 80),
    (nat("-A POSTROUTING -s 10.0.0.0/24 -o eth0 -j NETMAP --to 192.168.0.0/24"), "pod", "tcp", 41051,
     "192.168.0.40", 80),
    # kernel refusals: table and hook limits of the new extensions
    (table("filter", "-A INPUT -j CHECKSUM --checksum-fill"), "pod", "tcp", 41039, "192.168.0.40", 80),
    (table("filter", "-A INPUT -m owner --uid-owner 0 -j DROP"), "pod", "tcp", 41040, "192.168.0.40", 80),
    (table("filter", "-A INPUT -m rpfilter -j DROP"), "pod", "tcp", 41041, "192.168.0.40", 80),
    (table("mangle", "-A INPUT -p tcp -j TPROXY --on-port 1"), "pod", "tcp", 41042, "192.168.0.40", 80),
    (table("filter", "-A INPUT -j NOTRACK"), "pod", "tcp", 41043, "192.168.0.40", 80),
    (table("mangle", "-A PREROUTING -j TCPMSS --clamp-mss-to-pmtu"), "pod", "tcp", 41044, "192.168.0.40", 80),
    (table("filter", ":CT - [0:0]", "-A INPUT -j CT"), "pod", "tcp", 41045, "192.168.0.40", 80),
]


@pytest.mark.parametrize("case", EXTENSIONS, ids=[f"{c[0].splitlines()[-2][:60]}-{c[3]}" for c in EXTENSIONS])
def test_extension_agrees_with_kernel(lab, case):
    rules, client, proto, sport, dst, dport, *sets = case
    res = run_probe(lab, Probe(rules, client, proto, sport, dst, dport, sets[0] if sets else ""))
    assert res.agrees, f"{res.explanation}\n{res.probe.reproducer()}"


# Policy routing: ip rules (fwmark set in mangle, from/to, iif lo for local packets, goto) and tables.
ROUTED = [
    (table("mangle", "-A PREROUTING -p tcp --dport 81 -j MARK --set-mark 0x1"), "pod", "tcp", 41060, "192.168.0.40", 81,
     (("rule", "add", "fwmark", "0x1", "lookup", "100", "pref", "100"), ("route", "add", "unreachable", "default", "table", "100"))),
    (table("mangle", "-A PREROUTING -p tcp --dport 81 -j MARK --set-mark 0x1"), "pod", "tcp", 41061, "192.168.0.40", 80,
     (("rule", "add", "fwmark", "0x1", "lookup", "100", "pref", "100"), ("route", "add", "unreachable", "default", "table", "100"))),
    (table("filter"), "pod", "tcp", 41062, "192.168.0.40", 80,
     (("rule", "add", "from", "10.0.0.9", "to", "192.168.0.40", "blackhole", "pref", "200"),)),
    (table("filter"), "pod", "tcp", 41063, "192.168.0.41", 80,
     (("rule", "add", "from", "10.0.0.9", "to", "192.168.0.40", "blackhole", "pref", "200"),)),
    (table("filter"), "pod", "tcp", 41064, "192.168.0.40", 80,
     (("rule", "add", "iif", "cni0", "lookup", "101", "pref", "100"), ("route", "add", "prohibit", "192.168.0.40", "table", "101"))),
    (table("filter"), "node", "tcp", 41065, "192.168.0.40", 80,
     (("rule", "add", "iif", "lo", "lookup", "102", "pref", "100"), ("route", "add", "unreachable", "192.168.0.40", "table", "102"))),
    (table("filter"), "pod", "tcp", 41066, "192.168.0.40", 80,
     (("rule", "add", "goto", "32766", "pref", "50"), ("rule", "add", "from", "all", "blackhole", "pref", "100"))),
    # A goto lands on the rule of exactly its target priority; with none ("unresolved") the kernel
    # passes over it (the blackhole at 100 then decides), it does not jump to the next priority.
    (table("filter"), "pod", "tcp", 41072, "192.168.0.40", 80,
     (("rule", "add", "goto", "300", "pref", "50"), ("rule", "add", "from", "all", "blackhole", "pref", "100"),
      ("rule", "add", "from", "all", "lookup", "main", "pref", "301"))),
    (table("filter"), "pod", "tcp", 41073, "192.168.0.40", 80,
     (("rule", "add", "goto", "300", "pref", "50"), ("rule", "add", "from", "all", "blackhole", "pref", "100"),
      ("rule", "add", "from", "all", "lookup", "main", "pref", "300"))),
    (table("filter"), "pod", "tcp", 41067, "192.168.0.40", 80,
     (("rule", "add", "lookup", "100", "pref", "100"), ("route", "add", "throw", "192.168.0.0/24", "table", "100"),
      ("route", "add", "unreachable", "default", "table", "100"))),
    # multipath: the kernel's flow hash picks one nexthop; pktverify gives both with their weights
    (table("filter"), "pod", "tcp", 41069, "172.16.0.5", 80,
     (("route", "add", "172.16.0.0/16", "nexthop", "via", "192.168.0.9", "dev", "eth0", "weight", "1",
       "nexthop", "via", "10.0.0.9", "dev", "cni0", "weight", "3"),)),
    (table("filter"), "node", "udp", 41071, "172.16.0.5", 53,
     (("route", "add", "172.16.0.0/16", "nexthop", "via", "192.168.0.9", "dev", "eth0", "weight", "2",
       "nexthop", "via", "10.0.0.9", "dev", "cni0", "weight", "1"),)),
    (table("mangle", "-A OUTPUT -p udp -j MARK --set-mark 0x2"), "node", "udp", 41068, "192.168.0.40", 53,
     (("rule", "add", "fwmark", "0x2", "lookup", "100", "pref", "100"), ("route", "add", "blackhole", "default", "table", "100"))),
]


@pytest.mark.parametrize("case", ROUTED, ids=[f"{c[6][0][2:5]}-{c[3]}" for c in ROUTED])
def test_policy_routing_agrees_with_kernel(lab, case):
    rules, client, proto, sport, dst, dport, routing = case
    res = run_probe(lab, Probe(rules, client, proto, sport, dst, dport, routing=routing))
    assert res.agrees, f"{res.explanation}\n{res.probe.reproducer()}"



def _clock(seconds: int) -> str:
    seconds %= 86400
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}"


@pytest.mark.parametrize("offsets,verdict_drop", [((-600, 600), True), ((7200, 10800), False), ((600, -600), False)])
def test_time_match_agrees_with_kernel_at_the_probe_time(lab, offsets, verdict_drop):
    import datetime as dt
    import time as clock
    now = int(clock.time())
    start, stop = _clock(now + offsets[0]), _clock(now + offsets[1])
    weekday = dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%a")
    rules = table("filter", f"-A FORWARD -m time --timestart {start} --timestop {stop} --weekdays {weekday} -j DROP")
    at = dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    res = run_probe(lab, Probe(rules, "pod", "tcp", 41070, "192.168.0.40", 80, at=at))
    assert res.agrees, f"{res.explanation}\n{res.probe.reproducer()}"
    assert (res.kernel.verdict == "drop") == verdict_drop
