"""``ct zone set``, dynamic-set updates and the NAT-done status bits as the nft evaluator follows them
(kernel facts pinned in tests/kernel/test_nft_kernel_facts.py: test_ct_zone, test_dynamic_sets,
test_nat_done_bits), without root."""

from __future__ import annotations

import pytest

from pktverify import load_node
from pktverify.eval.node_trace import NodeTracer
from pktverify.model.addresses import parse_ip
from pktverify.model.packet import TCP, Packet

ADDRS = ("1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0    inet 192.168.0.2/24 brd 192.168.0.255 scope global eth0\n"
         "3: cni0    inet 10.0.0.1/24 brd 10.0.0.255 scope global cni0\n")
ROUTES = ("default via 192.168.0.9 dev eth0\n10.0.0.0/24 dev cni0 proto kernel scope link src 10.0.0.1\n"
          "192.168.0.0/24 dev eth0 proto kernel scope link src 192.168.0.2\n")


def _tracer(tmp_path, script: str, iptables: str | None = None) -> NodeTracer:
    for name, text in (("r.nft", script), ("a.txt", ADDRS), ("r.txt", ROUTES), ("i.txt", iptables or "")):
        (tmp_path / name).write_text(text)
    return NodeTracer(load_node(nft=tmp_path / "r.nft", addrs=tmp_path / "a.txt", routes=tmp_path / "r.txt",
                                iptables=tmp_path / "i.txt" if iptables is not None else None))


def _pkt(dst: str = "192.168.0.40", sport: int = 40000) -> Packet:
    return Packet(TCP, parse_ip("10.0.0.9"), parse_ip(dst), sport, 80)


def _zone(raw_rule: str, check: str, prio: str = "-300") -> str:
    return ("add table ip t\n"
            f"add chain ip t r {{ type filter hook prerouting priority {prio} ; policy accept ; }}\n"
            f"add rule ip t r {raw_rule}\n"
            "add chain ip t f { type filter hook forward priority 0 ; policy accept ; }\n"
            f"add rule ip t f {check}\n")


@pytest.mark.parametrize("raw_rule,check,prio,verdict", [
    ("ct zone set 5 ct state new meta mark set 0x1", "meta mark 0x1 drop", "-300", "drop"),
    ("ct zone set 5 ct zone 5 meta mark set 0x1", "meta mark 0x1 drop", "-300", "forward"),
    ("ct zone set 5", "ct zone 5 drop", "-300", "drop"),
    ("ct zone set 5", "ct zone 5 drop", "-199", "forward"),
    ("ct zone set 5 ct zone set 7", "ct zone 7 drop", "-300", "forward"),
    ("ct original zone set 5", "ct reply zone 0 drop", "-300", "drop"),
    ("ct zone set 5 notrack", "ct state untracked drop", "-300", "forward"),
    ("ct zone set 5 ct mark set 0x7", "ct mark 0x7 drop", "-300", "forward"),
])
def test_ct_zone(tmp_path, raw_rule, check, prio, verdict):
    outcomes = _tracer(tmp_path, _zone(raw_rule, check, prio)).trace(_pkt(), in_iface="cni0").outcomes
    assert [o.verdict for o in outcomes] == [verdict]


DYN = ("add table ip t\nadd set ip t s { type ipv4_addr ; flags timeout ; }\n"
       "add chain ip t n { type nat hook prerouting priority dstnat ; }\n"
       "add rule ip t n ip daddr 10.96.0.10 dnat to 192.168.0.40\n"
       "add chain ip t f { type filter hook forward priority 0 ; policy accept ; }\n")


def test_the_adding_packet_sees_its_element(tmp_path):
    tracer = _tracer(tmp_path, DYN + "add rule ip t f update @s { ip saddr timeout 10s }\n"
                                      "add rule ip t f ip saddr @s drop\n")
    assert [o.verdict for o in tracer.trace(_pkt(), in_iface="cni0").outcomes] == ["drop"]


@pytest.mark.parametrize("rules,verdict", [
    ("add @s { ip saddr }\nadd rule ip t f delete @s { ip saddr }\nadd rule ip t f ip saddr @s drop", "forward"),
    ("delete @s { ip saddr }\nadd rule ip t f add @s { ip saddr }\nadd rule ip t f ip saddr @s drop", "drop"),
    ("delete @s { ip saddr } meta mark set 0x1\nadd rule ip t f meta mark 0x1 drop", "drop"),
])
def test_delete_takes_the_key_out(tmp_path, rules, verdict):
    tracer = _tracer(tmp_path, DYN + f"add rule ip t f {rules}\n")
    assert [(o.verdict, o.exact) for o in tracer.trace(_pkt(), in_iface="cni0").outcomes] == [(verdict, True)]


def test_delete_takes_out_an_element_of_the_dump(tmp_path):
    script = DYN + ("add element ip t s { 10.0.0.9 }\nadd rule ip t f delete @s { ip saddr }\n"
                    "add rule ip t f ip saddr @s drop\n")
    (first,) = _tracer(tmp_path, script).trace(_pkt(), in_iface="cni0").outcomes
    assert (first.verdict, first.exact) == ("forward", True)
    assert first.recent == frozenset({("nft ip t @s (deleted)", parse_ip("10.0.0.9"))})


def test_the_next_connection_sees_the_key_as_the_packet_was_at_the_rule(tmp_path):
    """``add @s { ip daddr }`` after DNAT adds the translated address (not the one the packet came with)."""
    tracer = _tracer(tmp_path, DYN + "add rule ip t f ip daddr @s drop\nadd rule ip t f add @s { ip daddr }\n")
    (first,) = tracer.trace(_pkt("10.96.0.10"), in_iface="cni0").outcomes
    assert first.verdict == "forward"
    assert first.recent == frozenset({("nft ip t @s", parse_ip("192.168.0.40"))})
    (second,) = tracer.trace(_pkt(sport=40001), in_iface="cni0", recent=first.recent).outcomes
    assert second.verdict == "drop"
    (fresh,) = tracer.trace(_pkt(sport=40001), in_iface="cni0").outcomes
    assert fresh.verdict == "forward"


def _status(nat_hook: str | None, hook: str, prio: int, test: str) -> str:
    nat = (f"add chain ip t n {{ type nat hook {nat_hook} priority {100 if nat_hook == 'postrouting' else -100} ; }}\n"
           if nat_hook else "")
    return (f"add table ip t\n{nat}add chain ip t c {{ type filter hook {hook} priority {prio} ; policy accept ; }}\n"
            f"add rule ip t c {test} drop\n")


@pytest.mark.parametrize("nat_hook,hook,prio,test,verdict", [
    (None, "forward", 0, "ct status & 0x100 != 0x100 ct status & 0x80 != 0x80", "drop"),
    ("postrouting", "prerouting", -150, "ct status & 0x100 == 0x100", "forward"),
    ("postrouting", "prerouting", -50, "ct status & 0x100 == 0x100", "drop"),
    ("postrouting", "postrouting", 50, "ct status & 0x80 == 0x80", "forward"),
    ("postrouting", "postrouting", 200, "ct status & 0x80 == 0x80", "drop"),
    ("prerouting", "forward", 0, "ct status != 0x100", "forward"),
    (None, "forward", 0, "ct status != 0x100", "drop"),
])
def test_nat_done_bits_follow_the_nat_hooks(tmp_path, nat_hook, hook, prio, test, verdict):
    """Any nat chain makes all four NAT hooks run; each sets its done bit as the packet passes it."""
    outcomes = _tracer(tmp_path, _status(nat_hook, hook, prio, test)).trace(_pkt(), in_iface="cni0").outcomes
    assert [(o.verdict, o.exact) for o in outcomes] == [(verdict, True)]


@pytest.mark.parametrize("iptables,exact", [
    ("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n", True),                         # no nat table: no NAT hooks
    ("*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n", False),                       # empty: base chains made or not
    ("*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -d 1.2.3.4/32 -j MASQUERADE\nCOMMIT\n", True),
])
def test_whether_nat_hooks_run_beside_iptables(tmp_path, iptables, exact):
    """Beside iptables-save: a nat rule in a built-in chain says the NAT hooks run, no nat table that they do
    not; an empty nat table cannot say (iptables-nft may not have made its base chains): may-match."""
    tracer = _tracer(tmp_path, _status(None, "forward", 0, "ct status & 0x100 == 0x100"), iptables)
    outcomes = tracer.trace(_pkt(), in_iface="cni0").outcomes
    assert all(o.exact for o in outcomes) == exact
    if exact:
        assert [o.verdict for o in outcomes] == ["drop" if "MASQUERADE" in iptables else "forward"]


def test_a_mask_on_ct_status_keeps_the_unknown_bits_unknown(tmp_path):
    """``ct status & 0x20 == 0x20`` after DNAT reads the dnat bit only: decided even where the done bits are
    not known (beside an empty iptables nat table); the whole value was compared before (may-match)."""
    script = ("add table ip t\nadd chain ip t n { type nat hook prerouting priority dstnat ; }\n"
              "add rule ip t n ip daddr 10.96.0.10 dnat to 192.168.0.40\n"
              "add chain ip t c { type filter hook forward priority 0 ; policy accept ; }\n"
              "add rule ip t c ct status & 0x20 == 0x20 drop\n")
    tracer = _tracer(tmp_path, script, "*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n")
    assert [(o.verdict, o.exact) for o in tracer.trace(_pkt("10.96.0.10"), in_iface="cni0").outcomes] == \
        [("drop", True)]
