"""What the kernel does with nftables base chains, pinned by probes in the kernel lab (issue #24).

These are the spec pktverify's nft evaluator follows: each test loads an ``nft -f`` script (some
beside an iptables-restore text) in the lab's node namespace, sends one packet (or a burst of
connections) and asserts what the kernel did. Measured with nft 1.0.6 on kernel 6.18; a newer
kernel that changes one of them fails here first. nft runs only inside the lab's namespaces.
"""

from __future__ import annotations

import collections
import json
import re

import pytest

from pktverify.oracle.kernel_campaign import binomial_consistent

from .nft_netns import netns_fixture, nft

pytestmark = pytest.mark.kernel

MARK_THEN_DROP = ("table ip {first} {{\nchain f {{ type filter hook forward priority 0; {first_rule}; }}\n}}\n"
                  "table ip {second} {{\nchain f {{ type filter hook forward priority 0; {second_rule}; }}\n}}\n")


def _send(lab, nft: str, *, client: str = "pod", dst: str = "192.168.0.40", proto: str = "tcp", dport: int = 80,
          rules: str | None = None, routing: tuple = ()):
    return lab.probe(rules, client=client, proto=proto, sport=40000, dst=dst, dport=dport, nft=nft, routing=routing)


def _table(*chains: str) -> str:
    return "table ip a {\n" + "".join(f"chain {c}\n" for c in chains) + "}\n"


# ------------------------------------------------------------------ order of base chains
@pytest.mark.parametrize("mark_first,verdict", [(True, "forward"), (False, "drop")])
def test_equal_priority_tables_run_in_reverse_registration_order(lab, mark_first, verdict):
    """Base chains of equal hook and priority in two tables run in reverse registration order:
    the table loaded last runs first. (Marker registered first: the dropper runs before the mark
    is set, so the packet passes.)"""
    a, b = ("marker", "dropper") if mark_first else ("dropper", "marker")
    rules = {"marker": "meta mark set 0x1", "dropper": "meta mark 0x1 drop"}
    obs = _send(lab, MARK_THEN_DROP.format(first=a, second=b, first_rule=rules[a], second_rule=rules[b]))
    assert obs.verdict == verdict, obs


@pytest.mark.parametrize("mark_first,verdict", [(True, "forward"), (False, "drop")])
def test_equal_priority_chains_of_one_table_run_in_reverse_order(lab, mark_first, verdict):
    """Within one table too: of two base chains at equal hook and priority, the one declared
    (registered) last runs first."""
    marker = "m { type filter hook forward priority 0; meta mark set 0x1; }"
    dropper = "d { type filter hook forward priority 0; meta mark 0x1 drop; }"
    obs = _send(lab, _table(marker, dropper) if mark_first else _table(dropper, marker))
    assert obs.verdict == verdict, obs


@pytest.mark.parametrize("ipt_marks,verdict", [(True, "forward"), (False, "drop")])
def test_equal_priority_with_iptables_filter_runs_nft_loaded_later_first(lab, ipt_marks, verdict):
    """iptables-nft's filter FORWARD (priority 0) loaded before an nft chain at priority 0: the nft
    chain, registered later, runs first."""
    ipt = "-A FORWARD -j MARK --set-mark 0x1" if ipt_marks else "-A FORWARD -m mark --mark 0x1 -j DROP"
    nft_rule = "meta mark 0x1 drop" if ipt_marks else "meta mark set 0x1"
    obs = _send(lab, f"table ip b {{\nchain f {{ type filter hook forward priority 0; {nft_rule}; }}\n}}\n",
                rules=f"*filter\n:FORWARD ACCEPT [0:0]\n{ipt}\nCOMMIT\n")
    assert obs.verdict == verdict, obs


@pytest.mark.parametrize("marker_prio,verdict", [(-10, "drop"), (10, "forward")])
def test_lower_priority_runs_first(lab, marker_prio, verdict):
    """Base chains on one hook run in ascending priority, whatever the registration order."""
    obs = _send(lab, _table("d { type filter hook forward priority 0; meta mark 0x1 drop; }",
                            f"m {{ type filter hook forward priority {marker_prio}; meta mark set 0x1; }}"))
    assert obs.verdict == verdict, obs


# ------------------------------------------------------------------ accept and drop
@pytest.mark.parametrize("second", ["drop", "policy drop"])
def test_accept_ends_one_base_chain_only(lab, second):
    """``accept`` ends its own base chain only: a later base chain's ``drop`` (another table's, or
    its policy) still drops the packet."""
    obs = _send(lab, "table ip a {\nchain f { type filter hook forward priority 0; accept; }\n}\n"
                     f"table ip b {{\nchain f {{ type filter hook forward priority 10; {second}; }}\n}}\n")
    assert obs.verdict == "drop", obs


def test_accept_then_policy_drop_in_the_same_table(lab):
    """The same within one table: accept in one base chain, policy drop in the next."""
    obs = _send(lab, _table("f { type filter hook forward priority 0; accept; }",
                            "g { type filter hook forward priority 10; policy drop; }"))
    assert obs.verdict == "drop", obs


# ------------------------------------------------------------------ NAT chains on one hook
def test_first_translating_nat_chain_ends_nat_on_the_hook(lab):
    """On a hook, the first nat chain (by priority) that translates ends NAT there: a later nat
    chain does not run at all, not even its non-NAT statements (its mark is never set)."""
    obs = _send(lab, _table("n1 { type nat hook prerouting priority -100; dnat to 192.168.0.41; }",
                            "n2 { type nat hook prerouting priority -90; meta mark set 0x1; dnat to 192.168.0.42; }",
                            "f { type filter hook forward priority 0; meta mark 0x1 drop; }"))
    assert obs.verdict == "forward" and obs.post_nat == ("10.0.0.9", 40000, "192.168.0.41", 80), obs


def test_non_translating_nat_chain_lets_the_next_run(lab):
    """A nat chain that ends in ``accept`` without translating does not end NAT: the next nat
    chain on the hook runs and translates."""
    obs = _send(lab, _table("n1 { type nat hook prerouting priority -100; accept; }",
                            "n2 { type nat hook prerouting priority -90; dnat to 192.168.0.42; }"))
    assert obs.verdict == "forward" and obs.post_nat == ("10.0.0.9", 40000, "192.168.0.42", 80), obs


def test_nft_nat_before_iptables_nat(lab):
    """An nft nat chain at -150 that translates ends NAT before iptables' nat PREROUTING (-100)."""
    obs = _send(lab, _table("n1 { type nat hook prerouting priority -150; dnat to 192.168.0.41; }"),
                rules="*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j DNAT --to-destination 192.168.0.42\nCOMMIT\n")
    assert obs.post_nat == ("10.0.0.9", 40000, "192.168.0.41", 80), obs


def test_second_snat_chain_does_not_run(lab):
    """The same on postrouting: the first snat wins."""
    obs = _send(lab, _table("s1 { type nat hook postrouting priority 100; snat to 192.168.0.60; }",
                            "s2 { type nat hook postrouting priority 110; snat to 192.168.0.61; }"))
    assert obs.post_nat == ("192.168.0.60", 40000, "192.168.0.40", 80), obs


# ------------------------------------------------------------------ jumps
def test_goto_returns_to_the_callers_caller(lab):
    """``return`` in a chain reached by ``goto`` goes back to the chain that jumped to the goto's
    chain (the rule after the jump), not to the chain that did the goto."""
    obs = _send(lab, _table("f { type filter hook forward priority 0; jump c1; meta mark 0x1 drop; }",
                            "c1 { goto c2; meta mark set 0x2; }", "c2 { meta mark set 0x1; return; }"))
    assert obs.verdict == "drop", obs


@pytest.mark.parametrize("policy,verdict", [("drop", "drop"), ("accept", "forward")])
def test_goto_from_a_base_chain_returns_to_its_policy(lab, policy, verdict):
    """``goto`` from a base chain then ``return``: the base chain ends with its policy (the rule
    after the goto never runs)."""
    after = "accept" if policy == "drop" else "drop"
    obs = _send(lab, _table(f"f {{ type filter hook forward priority 0; policy {policy}; goto c2; {after}; }}",
                            "c2 { return; }"))
    assert obs.verdict == verdict, obs


# ------------------------------------------------------------------ numgen
NUMGEN_RANDOM = ("table ip a {\nchain n { type nat hook prerouting priority dstnat; "
                 "dnat to numgen random mod 3 offset 5 map { 5 : 192.168.0.40, 6 : 192.168.0.41, 7 : 192.168.0.42 }; }\n}\n")


def test_numgen_random_shares(lab):
    """``numgen random mod 3 offset 5``: buckets 5, 6, 7 only, each with the share of 32-bit values
    v where floor(v*3/2^32) = i (reciprocal_scale): 1431655765/2^32, 1431655765/2^32, 1431655766/2^32.
    statistic's round(p*2^31) cascade differs from these by under 2^-31 per bucket, far below what
    any number of probes can measure (~2^62 would be needed): the shares are checked here, the exact
    formula is the kernel source's (nft_ng_random_gen)."""
    sports = list(range(30000, 30600))
    seen = lab.post_nat_many(None, client="pod", proto="udp", sports=sports, dst="10.96.0.10", dport=80,
                             nft=NUMGEN_RANDOM)
    got = collections.Counter(post[2] for post in seen if post)
    assert set(got) <= {"192.168.0.40", "192.168.0.41", "192.168.0.42"}, got
    n = sum(got.values())
    assert n >= 0.95 * len(sports), got
    for i, addr in enumerate(["192.168.0.40", "192.168.0.41", "192.168.0.42"]):
        low, high = -(-i * 2 ** 32 // 3), -(-(i + 1) * 2 ** 32 // 3)
        assert binomial_consistent(got[addr], n, (high - low) / 2 ** 32), got


def test_numgen_inc_starts_at_bucket_zero(lab):
    """The first packet after loading takes ``numgen inc`` bucket 0, then 1, 2, 0, ... (one step
    per evaluation of the rule: one per new connection in a nat chain); ``nft -j list ruleset``
    does not show where the counter is."""
    nft = ("table ip a {\nchain n { type nat hook prerouting priority dstnat; "
           "dnat to numgen inc mod 3 map { 0 : 192.168.0.40, 1 : 192.168.0.41, 2 : 192.168.0.42 }; }\n}\n")
    seen = lab.post_nat_many(None, client="pod", proto="tcp", sports=list(range(31000, 31007)), dst="10.96.0.10",
                             dport=80, nft=nft)
    assert [post and post[2] for post in seen] == ["192.168.0.40", "192.168.0.41", "192.168.0.42"] * 2 + [
        "192.168.0.40"]
    # The dump keeps no counter: after seven packets it still shows only mode, modulus and offset.
    dump = lab.dump().nft_json
    found = [json.loads(m) for m in re.findall(r'\{"numgen": \{[^}]*\}\}', dump)]
    assert found and all(set(f["numgen"]) <= {"mode", "mod", "offset"} for f in found), dump


# ------------------------------------------------------------------ redirect
REDIRECT = "table ip a {\nchain n { type nat hook prerouting priority dstnat; meta l4proto tcp redirect to :8080; }\n}\n"


@pytest.mark.parametrize("client,routing,address", [
    ("pod", (), "10.0.0.1"),
    ("lan", (), "192.168.0.2"),
    ("pod", (("addr", "add", "10.0.0.2/24", "dev", "cni0"),), "10.0.0.1"),
    ("pod", (("addr", "del", "10.0.0.1/24", "dev", "cni0"), ("addr", "add", "172.16.5.5/16", "dev", "cni0"),
             ("addr", "add", "10.0.0.1/24", "dev", "cni0")), "172.16.5.5"),
], ids=["pod", "lan", "secondary-after", "other-subnet-first"])
def test_redirect_uses_the_incoming_interfaces_first_address(lab, client, routing, address):
    """``redirect`` rewrites the destination to the incoming interface's first address (as ``ip
    addr`` lists it), even when another address of the interface is in the client's subnet."""
    obs = _send(lab, REDIRECT, client=client, dst="10.96.0.10", routing=routing)
    assert obs.verdict == "local" and obs.post_nat[2:] == (address, 8080), obs


# ------------------------------------------------------------------ fib
ROUTES = (("route", "replace", "unreachable", "10.96.0.0/16"), ("route", "replace", "blackhole", "10.97.0.0/16"),
          ("route", "replace", "prohibit", "10.98.0.0/16"))


def _fib(kind: str) -> str:
    return ("table ip a {\nchain m { type filter hook prerouting priority -150; "
            f"fib daddr type {kind} meta mark set 0x1; }}\n"
            "chain n { type nat hook prerouting priority dstnat; meta mark 0x1 dnat to 192.168.0.40; }\n}\n")


@pytest.mark.parametrize("client,dst,kind,matched", [
    ("pod", "10.96.0.10", "unicast", True), ("pod", "10.96.0.10", "unreachable", False),
    ("pod", "10.97.0.10", "unicast", True), ("pod", "10.97.0.10", "blackhole", False),
    ("pod", "10.98.0.10", "unicast", True), ("pod", "10.98.0.10", "prohibit", False),
    ("pod", "192.168.0.2", "local", True), ("pod", "192.168.0.2", "unicast", False),
    ("lan", "10.0.0.255", "broadcast", True), ("pod", "192.168.0.40", "unicast", True),
])
def test_fib_daddr_type(lab, client, dst, kind, matched):
    """``fib daddr type`` reports only local, broadcast, multicast and unicast: a destination whose
    route is unreachable, blackhole or prohibit is ``unicast``. (Matched: the mark leads to a DNAT
    to 192.168.0.40; unmatched: the route's own answer.)"""
    obs = _send(lab, _fib(kind), client=client, dst=dst, proto="udp", routing=ROUTES)
    if matched:
        assert obs.verdict == "forward" and obs.post_nat[2] == "192.168.0.40", obs
    else:
        assert obs.post_nat is None or obs.post_nat[2] != "192.168.0.40", obs


# ------------------------------------------------------------------ what nft and the kernel refuse
netns = netns_fixture("pv-nftf")


def _loads(ns: str, hook: str, priority: str) -> tuple[bool, str]:
    script = f"table ip t {{\nchain c {{ type nat hook {hook} priority {priority}; }}\n}}\ndelete table ip t\n"
    res = nft(ns, "-f", "-", script=script, timeout=30)
    return res.returncode == 0, res.stderr


@pytest.mark.parametrize("hook,priority,ok,why", [
    ("prerouting", "dstnat", True, ""), ("output", "dstnat", False, "invalid priority expression"),
    ("postrouting", "dstnat", False, "invalid priority expression"), ("postrouting", "srcnat", True, ""),
    ("output", "-100", True, ""), ("output", "-199", True, ""),
    ("output", "-200", False, "Operation not supported"), ("prerouting", "raw", False, "Operation not supported"),
])
def test_nat_chain_priorities_this_nft_and_kernel_accept(netns, hook, priority, ok, why):
    """nft 1.0.6 refuses ``priority dstnat`` outside prerouting (``invalid priority expression value in
    this context``; the number -100 loads on output); the kernel refuses a nat chain at priority
    -200 (conntrack's) or lower with EOPNOTSUPP."""
    loaded, err = _loads(netns, hook, priority)
    assert loaded == ok, err
    assert why in err


def _loads_rule(ns: str, kind: str, hook: str, stmt: str, *, via_jump: bool) -> tuple[bool, str]:
    prio = {"prerouting": -100, "output": -100, "postrouting": 100, "input": 100, "forward": 0}[hook]
    body = "jump d" if via_jump else stmt
    script = (f"table ip t {{\nchain d {{ {stmt if via_jump else 'counter'}; }}\n"
              f"chain c {{ type {kind} hook {hook} priority {prio}; {body}; }}\n}}\n")
    assert nft(ns, "flush", "ruleset").returncode == 0
    res = nft(ns, "-f", "-", script=script, timeout=30)
    return res.returncode == 0, res.stderr


ALLOWED = {"reject": {"prerouting", "input", "forward", "output"},
           "meta l4proto tcp reject with tcp reset": {"prerouting", "input", "forward", "output"},
           "dnat to 10.0.0.20": {"prerouting", "output"}, "redirect": {"prerouting", "output"},
           "snat to 10.0.0.20": {"postrouting", "input"}, "masquerade": {"postrouting"}}


@pytest.mark.parametrize("via_jump", [False, True], ids=["in-base-chain", "via-jump"])
@pytest.mark.parametrize("stmt", list(ALLOWED))
def test_hooks_where_the_kernel_accepts_reject_and_nat(netns, stmt, via_jump):
    """Where the kernel takes each statement (refusing the rest with EOPNOTSUPP, also in a user chain
    a base chain jumps to): reject on prerouting, input, forward and output, not postrouting; dnat and
    redirect on prerouting and output; snat on postrouting and input; masquerade on postrouting only;
    no nat chain on forward at all."""
    kind = "filter" if "reject" in stmt else "nat"
    for hook in ("prerouting", "input", "forward", "output", "postrouting"):
        loaded, err = _loads_rule(netns, kind, hook, stmt, via_jump=via_jump)
        assert loaded == (hook in ALLOWED[stmt]), (hook, err)
        assert loaded or "Operation not supported" in err, (hook, err)


def test_iptables_nat_first_ends_nat_before_a_later_nft_nat_chain(lab):
    """iptables' nat PREROUTING (-100) translates first: an nft nat chain at -90 does not run (its mark
    is never set, so the forward drop on that mark does not fire)."""
    obs = _send(lab, _table("n2 { type nat hook prerouting priority -90; meta mark set 0x1; dnat to 192.168.0.42; }",
                            "f { type filter hook forward priority 0; meta mark 0x1 drop; }"),
                rules="*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j DNAT --to-destination 192.168.0.41\nCOMMIT\n")
    assert obs.verdict == "forward" and obs.post_nat == ("10.0.0.9", 40000, "192.168.0.41", 80), obs


# ------------------------------------------------------------------ ct before conntrack
def _ct_probe(prio: str, match: str, hook: str) -> str:
    return (f"table ip a {{\nchain m {{ type filter hook {hook} priority {prio}; {match} meta mark set 0x1; }}\n"
            "chain f { type filter hook forward priority 0; meta mark 0x1 drop; }\n"
            "chain o { type filter hook postrouting priority 0; meta mark 0x1 drop; }\n}\n")


@pytest.mark.parametrize("client,hook", [("pod", "prerouting"), ("node", "output")])
@pytest.mark.parametrize("prio,match,matched", [
    ("-300", "ct state invalid", True), ("-300", "ct state != new", True), ("-300", "ct state new", False),
    ("-300", "ct state untracked", False), ("-300", "ct mark 0x0", False), ("-300", "ct mark != 0x5", False),
    ("-300", "ct direction original", False), ("-300", "ct status != dnat", False),
    ("-200", "ct state invalid", True), ("-200", "ct mark != 0x5", False),
    ("-199", "ct state new", True), ("-199", "ct state invalid", False), ("-199", "ct mark 0x0", True),
    ("-199", "ct mark != 0x5", True), ("-199", "ct direction original", True), ("-199", "ct status != dnat", True),
])
def test_ct_before_conntrack(lab, client, hook, prio, match, matched):
    """A base chain at priority -200 or lower runs before conntrack has looked at the packet: there
    ``ct state`` is ``invalid`` (so ``ct state != new`` matches), and every other ct key (mark,
    direction, status) matches nothing, not even with ``!=``. From -199 on, a first packet is
    ``new`` with ct mark 0, direction original. (Matched: the mark leads to a drop later.)"""
    obs = _send(lab, _ct_probe(prio, match, hook), client=client)
    assert (obs.verdict == "drop") == matched, obs


# ------------------------------------------------------------------ ct zone (kernel campaign, session 9)
def _zone(raw_rule: str, check: str, prio: str = "-300") -> str:
    return ("add table ip t\n"
            f"add chain ip t r {{ type filter hook prerouting priority {prio} ; policy accept ; }}\n"
            f"add rule ip t r {raw_rule}\n"
            "add chain ip t f { type filter hook forward priority 0 ; policy accept ; }\n"
            f"add rule ip t f {check}\n")


ZONE_FACTS = [
    # Before conntrack `ct zone set` attaches a template: `ct state` reads new there ...
    ("template-state-new", _zone("ct zone set 5 ct state new meta mark set 0x1", "meta mark 0x1 drop"), "drop"),
    ("template-not-invalid", _zone("ct zone set 5 ct state invalid meta mark set 0x1", "meta mark 0x1 drop"),
     "forward"),
    # ... and every other ct key breaks the rule, the zone itself too (nft_ct_get_eval: a template is no connection)
    ("template-zone-unread", _zone("ct zone set 5 ct zone 5 meta mark set 0x1", "meta mark 0x1 drop"), "forward"),
    ("template-mark-unread", _zone("ct zone set 5 ct mark 0 meta mark set 0x1", "meta mark 0x1 drop"), "forward"),
    ("template-direction-unread", _zone("ct zone set 5 ct direction original meta mark set 0x1",
                                        "meta mark 0x1 drop"), "forward"),
    # conntrack makes the connection in the template's zone; without one the zone is 0
    ("zone-after-conntrack", _zone("ct zone set 5", "ct zone 5 drop"), "drop"),
    ("zone-0-without-set", _zone("counter", "ct zone 0 drop"), "drop"),
    ("zone-set-at-minus-200", _zone("ct zone set 5", "ct zone 5 drop", "-200"), "drop"),
    ("zone-set-after-conntrack-no-effect", _zone("ct zone set 5", "ct zone 5 drop", "-199"), "forward"),
    ("zone-set-in-forward-no-effect", _zone("counter", "ct zone set 5 ct zone 5 drop"), "forward"),
    ("first-zone-set-stays", _zone("ct zone set 5 ct zone set 7", "ct zone 7 drop"), "forward"),
    # a zone for one direction: nf_ct_zone_id gives 0 for the other, `ct zone` (no direction) the id
    ("original-zone-read-plain", _zone("ct original zone set 5", "ct zone 5 drop"), "drop"),
    ("original-zone-read-original", _zone("ct original zone set 5", "ct original zone 5 drop"), "drop"),
    ("original-zone-read-reply", _zone("ct original zone set 5", "ct reply zone 5 drop"), "forward"),
    ("reply-zone-read-reply", _zone("ct reply zone set 5", "ct reply zone 0 drop"), "forward"),
    # with a template, notrack and ct mark set do nothing (the packet is not without ct any more)
    ("notrack-after-zone-no-effect", _zone("ct zone set 5 notrack", "ct state untracked drop"), "forward"),
    ("ct-mark-set-on-template-no-effect", _zone("ct zone set 5 ct mark set 0x7", "ct mark 0x7 drop"), "forward"),
]


@pytest.mark.parametrize("name,script,verdict", ZONE_FACTS, ids=[f[0] for f in ZONE_FACTS])
def test_ct_zone(lab, name, script, verdict):
    """What ``ct zone set`` does before and after conntrack, in the kernel, and pktverify agrees."""
    from pktverify.cli import main
    from pktverify.oracle.nft_campaign import NftProbe, run_nft_probe
    res = run_nft_probe(lab, NftProbe(script, None, "pod", "tcp", 40000, "192.168.0.40", 80), main)
    assert res.kernel is not None and res.kernel.verdict == verdict, res.kernel
    assert res.agrees, res.explanation


# ------------------------------------------------------------------ dynamic sets (kernel campaign, session 9)
def _dyn(*rules: str, nat: str = "") -> str:
    return ("add table ip t\nadd set ip t s { type ipv4_addr ; flags timeout ; }\n"
            + (f"add chain ip t n {{ type nat hook prerouting priority dstnat ; }}\nadd rule ip t n {nat}\n"
               if nat else "")
            + "add chain ip t f { type filter hook forward priority 0 ; policy accept ; }\n"
            + "".join(f"add rule ip t f {r}\n" for r in rules))


DYN_FACTS = [
    # the packet that adds an element sees it at once (nft_dynset_eval inserts it then)
    ("same-packet-sees-it", _dyn("update @s { ip saddr timeout 10s }", "ip saddr @s drop"), "drop", None),
    # a lookup before the add misses for the first connection and hits for the next one
    ("next-connection-sees-it", _dyn("ip saddr @s drop", "update @s { ip saddr timeout 10s }"), "forward", "drop"),
    # the key is the packet as it is at the rule: after DNAT, ip daddr is the new address (pktverify took the
    # packet as it entered the node for the next connection: found by the campaign's second connections)
    ("key-after-dnat", _dyn("ip daddr @s drop", "add @s { ip daddr }", nat="ip daddr 10.96.0.10 dnat to 192.168.0.40"),
     "forward", "drop"),
    # delete takes the key out at once; a key the set does not hold: nothing happens and the rule goes on
    ("delete-then-lookup", _dyn("add @s { ip saddr }", "delete @s { ip saddr }", "ip saddr @s drop"), "forward",
     "forward"),
    ("delete-missing-goes-on", _dyn("delete @s { ip saddr } meta mark set 0x1", "meta mark 0x1 drop"), "drop", None),
]


@pytest.mark.parametrize("name,script,first,second", DYN_FACTS, ids=[f[0] for f in DYN_FACTS])
def test_dynamic_sets(lab, name, script, first, second):
    """``add``/``update @set`` from the packet path: the kernel's verdicts for a connection and the
    client's next one (to 192.168.0.40 directly), and pktverify agrees on both."""
    from pktverify.cli import main
    from pktverify.oracle.nft_campaign import NftProbe, run_nft_probe
    dst = "10.96.0.10" if "dnat" in script else "192.168.0.40"
    then = (40001, "192.168.0.40", 80) if second else ()
    res = run_nft_probe(lab, NftProbe(script, None, "pod", "tcp", 40000, dst, 80, then), main)
    assert res.kernel is not None and res.kernel.verdict == first, res.kernel
    assert res.agrees, res.explanation
    if second:
        assert lab.probe(None, client="pod", proto="tcp", sport=40002, dst="192.168.0.40", dport=80, nft=script,
                         reload=False).verdict == second


# ------------------------------------------------------------------ NAT-done status bits (session 9)
def _nat_done(nat_hook: str | None, hook: str, prio: int, test: str) -> str:
    s = "add table ip t\n"
    if nat_hook:
        s += (f"add chain ip t n {{ type nat hook {nat_hook} priority "
              f"{100 if nat_hook in ('postrouting', 'input') else -100} ; }}\n")
    return s + (f"add chain ip t c {{ type filter hook {hook} priority {prio} ; policy accept ; }}\n"
                f"add rule ip t c {test} drop\n")


NAT_DONE_FACTS = [
    # (a nat chain on, client, hook, priority, test, the kernel matches): no nat chain anywhere: no NAT hook runs
    (None, "pod", "forward", 0, "ct status & 0x100 != 0x100 ct status & 0x80 != 0x80", True),
    (None, "node", "postrouting", 200, "ct status & 0x100 != 0x100 ct status & 0x80 != 0x80", True),
    # one nat chain (on any hook) and all four NAT hooks run: each sets its done bit, translated or not
    ("postrouting", "pod", "prerouting", -150, "ct status & 0x100 != 0x100", True),
    ("postrouting", "pod", "prerouting", -50, "ct status & 0x100 == 0x100", True),
    ("postrouting", "pod", "forward", 0, "ct status & 0x100 == 0x100 ct status & 0x80 != 0x80",
     True),
    ("postrouting", "pod", "postrouting", 50, "ct status & 0x80 != 0x80", True),
    ("postrouting", "pod", "postrouting", 200, "ct status & 0x80 == 0x80", True),
    ("prerouting", "pod", "input", 50, "ct status & 0x80 != 0x80", True),
    ("prerouting", "pod", "input", 200, "ct status & 0x100 == 0x100 ct status & 0x80 == 0x80", True),
    ("prerouting", "node", "output", -150, "ct status & 0x100 != 0x100", True),
    ("prerouting", "node", "output", -50, "ct status & 0x100 == 0x100", True),
    # none of the bits set: `& m == 0`, listed by nft as `ct status ! 0x100` (JSON op "!")
    ("prerouting", "pod", "forward", 0, "ct status & 0x100 == 0", False),
    (None, "pod", "forward", 0, "ct status ! 0x100", True),
    ("postrouting", "pod", "forward", 0, "ct status ! 0x100", False),
    # a comparison reads the whole value: the done bits decide it
    ("prerouting", "pod", "forward", 0, "ct status != 0x100", False),
    (None, "pod", "forward", 0, "ct status != 0x100", True),
    ("postrouting", "pod", "forward", 0, "ct status != 0x100", False),
]


@pytest.mark.parametrize("nat_hook,client,hook,prio,test,matched", NAT_DONE_FACTS)
def test_nat_done_bits(lab, nat_hook, client, hook, prio, test, matched):
    """IPS_DST_NAT_DONE / IPS_SRC_NAT_DONE of a first packet: set as each NAT hook passes, and the NAT hooks
    run once any IPv4 nat chain exists (kernel); pktverify agrees, with one exact outcome (no may-match)."""
    from pktverify.cli import main
    from pktverify.oracle.nft_campaign import NftProbe, run_nft_probe
    dst = "10.0.0.1" if hook == "input" else "192.168.0.40"
    res = run_nft_probe(lab, NftProbe(_nat_done(nat_hook, hook, prio, test), None, client, "tcp", 40000, dst, 80),
                        main)
    assert res.kernel is not None and (res.kernel.verdict == "drop") == matched, res.kernel
    assert res.agrees, res.explanation
    assert [o["exact"] for o in res.prediction.outcomes] == [True], res.prediction.outcomes


def test_nat_done_bits_unknown_beside_an_empty_iptables_nat_table(lab):
    """iptables-save showing an empty nat table cannot say whether iptables-nft made its base chains (and so
    whether NAT hooks run): the done bits stay unknown there, and pktverify says may-match, not a verdict."""
    from pktverify.cli import main
    from pktverify.oracle.nft_campaign import NftProbe, run_nft_probe
    ipt = ("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
           "COMMIT\n")
    res = run_nft_probe(lab, NftProbe(_nat_done(None, "forward", 0, "ct status & 0x100 == 0x100"), ipt, "pod", "tcp",
                                      40000, "192.168.0.40", 80), main)
    assert res.kernel is not None and res.kernel.verdict == "drop"      # iptables-nft made them: NAT hooks run
    assert res.agrees, res.explanation
    assert not all(o["exact"] for o in res.prediction.outcomes)


# ------------------------------------------------------------------ none of the flags set: `x ! FLAGS`
NEGATED_FLAG_FACTS = [
    # (test, the kernel matches) on a bare SYN, the first packet of a connection, no NAT anywhere
    ("tcp flags ! syn,ack", False),             # syn is set: `!` is "none of them set", not "not all of them"
    ("tcp flags ! ack,rst", True),
    ("tcp flags ! syn", False),
    ("tcp flags & (syn|ack) == 0", False),      # the same rule: nft lists it as `tcp flags ! syn,ack`
    ("ct status ! dnat", True),
    ("ct state ! established,related", True),
    ("ct state ! new", False),
]


@pytest.mark.parametrize("test,matched", NEGATED_FLAG_FACTS)
def test_none_of_the_flags_set(lab, test, matched):
    """`x ! FLAGS` (nft 1.0's listing of `x & FLAGS == 0`, bitwise then cmp eq 0 in the kernel) matches
    when none of FLAGS is set: a bare SYN misses `tcp flags ! syn,ack`. pktverify agrees, exactly."""
    from pktverify.cli import main
    from pktverify.oracle.nft_campaign import NftProbe, run_nft_probe
    res = run_nft_probe(lab, NftProbe(_nat_done(None, "forward", 0, test), None, "pod", "tcp", 40000, "192.168.0.40",
                                      80), main)
    assert res.kernel is not None and (res.kernel.verdict == "drop") == matched, res.kernel
    assert res.agrees, res.explanation
    assert [o["exact"] for o in res.prediction.outcomes] == [True], res.prediction.outcomes


# ------------------------------------------------------------------ stateless header rewrites
@pytest.mark.parametrize("rewritten,verdict", [(True, "drop"), (False, "forward")])
def test_a_payload_rewrite_is_what_later_chains_see(lab, rewritten, verdict):
    """`tcp dport set 8080` in a prerouting chain: a later forward chain reads the new port (its
    drop of 8080 takes the packet rewritten from 80, not one left at 80). pktverify follows the
    rewrite on the walk and marks the outcome inexact (conntrack, NAT and routing around a
    stateless rewrite are not followed)."""
    pre = "tcp dport 80 tcp dport set 8080" if rewritten else "tcp dport 80 counter"
    obs = _send(lab, "table ip a {\nchain p { type filter hook prerouting priority -150; " + pre + "; }\n"
                     "chain f { type filter hook forward priority 0; tcp dport 8080 drop; }\n}\n")
    assert obs.verdict == verdict, obs
