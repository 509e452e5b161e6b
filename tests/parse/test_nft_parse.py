"""nftables rulesets read from their three forms (issue #24's first brick): each construct of the
rule grammar and of set/map/chain declarations, scripts' commands, and every error with its
``FILE:LINE`` (text, scripts) or ``FILE: <json path>`` (JSON). Checked-in strings only (no root);
tests/kernel/test_nft_forms.py checks the same against what the kernel lists back.
"""

from __future__ import annotations

import json

import pytest

from pktverify.errors import InputError
from pktverify.model import nft as m
from pktverify.model.addresses import parse_ip
from pktverify.parse.nft_format import format_rule
from pktverify.parse.nft_json import looks_like_nft_json, parse_nft_json
from pktverify.parse.nft_text import looks_like_nft_text, parse_nft_text

from ..conftest import SHARED

# (family, the rule as `nft list ruleset` prints it, the same rule's "expr" in `nft -j list ruleset`):
# listed by nft 1.0.6 on kernel 6.x from the hand-written ruleset of tests/kernel/test_nft_forms.py.
PAIRS = [
    ('ip', 'ip saddr 10.0.0.0/8 tcp dport { 80, 443 } counter packets 0 bytes 0',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"prefix":{"addr":"10.0.0.0","len":8}}}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":{"set":[80,443]}}},{"counter":{"packets":0,"bytes":0}}]'),
    ('ip', 'ip daddr . meta l4proto . th dport vmap { 10.0.0.9 . tcp . 80 : accept }',
     '[{"vmap":{"key":{"concat":[{"payload":{"protocol":"ip","field":"daddr"}},{"meta":{"key":"l4proto"}},{"payload":{"protocol":"th","field":"dport"}}]},"data":{"set":[[{"concat":["10.0.0.9","tcp",80]},{"accept":null}]]}}}]'),
    ('ip', 'ip daddr 10.0.0.1 tcp dport 80 dnat to 10.0.0.2:8080',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"daddr"}},"right":"10.0.0.1"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":80}},{"dnat":{"addr":"10.0.0.2","port":8080}}]'),
    ('ip', 'ip daddr 10.0.0.10 meta l4proto tcp dnat to 10.0.0.11-10.0.0.12:80-90 random,persistent',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"daddr"}},"right":"10.0.0.10"}},{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"tcp"}},{"dnat":{"addr":{"range":["10.0.0.11","10.0.0.12"]},"port":{"range":[80,90]},"flags":["random","persistent"]}}]'),
    ('ip', 'dnat to ip daddr map @m1',
     '[{"dnat":{"addr":{"map":{"key":{"payload":{"protocol":"ip","field":"daddr"}},"data":"@m1"}}}}]'),
    ('ip', 'dnat ip to tcp dport map @pm',
     '[{"dnat":{"family":"ip","addr":{"map":{"key":{"payload":{"protocol":"tcp","field":"dport"}},"data":"@pm"}}}}]'),
    ('ip', 'meta mark 0x00000001 dnat to meta mark map @mk',
     '[{"match":{"op":"==","left":{"meta":{"key":"mark"}},"right":1}},{"dnat":{"addr":{"map":{"key":{"meta":{"key":"mark"}},"data":"@mk"}}}}]'),
    ('ip', 'tcp dport 8081 redirect to :8080',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":8081}},{"redirect":{"port":8080}}]'),
    ('ip', 'udp dport 53 dnat to numgen inc mod 2 map { 0 : 10.0.0.20, 1 : 10.0.0.21 }',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"udp","field":"dport"}},"right":53}},{"dnat":{"addr":{"map":{"key":{"numgen":{"mode":"inc","mod":2,"offset":0}},"data":{"set":[[0,"10.0.0.20"],[1,"10.0.0.21"]]}}}}}]'),
    ('ip', 'dnat to jhash ip saddr . tcp sport mod 2 seed 0xdead map { 0 : 10.0.0.22, 1 : 10.0.0.23 }',
     '[{"dnat":{"addr":{"map":{"key":{"jhash":{"mod":2,"seed":57005,"expr":{"concat":[{"payload":{"protocol":"ip","field":"saddr"}},{"payload":{"protocol":"tcp","field":"sport"}}]}}},"data":{"set":[[0,"10.0.0.22"],[1,"10.0.0.23"]]}}}}}]'),
    ('ip', 'ip daddr . meta l4proto . tcp dport @cs accept',
     '[{"match":{"op":"==","left":{"concat":[{"payload":{"protocol":"ip","field":"daddr"}},{"meta":{"key":"l4proto"}},{"payload":{"protocol":"tcp","field":"dport"}}]},"right":"@cs"}},{"accept":null}]'),
    ('ip', 'oifname "eth*" masquerade random,persistent',
     '[{"match":{"op":"==","left":{"meta":{"key":"oifname"}},"right":"eth*"}},{"masquerade":{"flags":["random","persistent"]}}]'),
    ('ip', 'ip saddr 10.0.0.0/8 snat to 1.2.3.4',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"prefix":{"addr":"10.0.0.0","len":8}}}},{"snat":{"addr":"1.2.3.4"}}]'),
    ('ip', 'ip saddr 10.1.0.0/16 meta l4proto udp snat to 1.2.3.4-1.2.3.9:1000-2000 fully-random',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"prefix":{"addr":"10.1.0.0","len":16}}}},{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"udp"}},{"snat":{"addr":{"range":["1.2.3.4","1.2.3.9"]},"port":{"range":[1000,2000]},"flags":"fully-random"}}]'),
    ('ip', 'meta l4proto tcp masquerade to :1024-65535',
     '[{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"tcp"}},{"masquerade":{"port":{"range":[1024,65535]}}}]'),
    ('ip', 'ct state established,related accept',
     '[{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":["established","related"]}},{"accept":null}]'),
    ('ip', 'ct state invalid drop',
     '[{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":"invalid"}},{"drop":null}]'),
    ('ip', 'ct status dnat accept',
     '[{"match":{"op":"in","left":{"ct":{"key":"status"}},"right":"dnat"}},{"accept":null}]'),
    ('ip', 'ct direction original ct mark 0x00000005 accept',
     '[{"match":{"op":"==","left":{"ct":{"key":"direction"}},"right":"original"}},{"match":{"op":"==","left":{"ct":{"key":"mark"}},"right":5}},{"accept":null}]'),
    ('ip', 'ct original ip saddr 10.0.0.1 accept',
     '[{"match":{"op":"==","left":{"ct":{"key":"ip saddr","dir":"original"}},"right":"10.0.0.1"}},{"accept":null}]'),
    ('ip', 'ct zone 3 accept',
     '[{"match":{"op":"==","left":{"ct":{"key":"zone"}},"right":3}},{"accept":null}]'),
    ('ip', 'fib daddr type local accept',
     '[{"match":{"op":"==","left":{"fib":{"result":"type","flags":["daddr"]}},"right":"local"}},{"accept":null}]'),
    ('ip', 'fib saddr . iif oif missing drop',
     '[{"match":{"op":"==","left":{"fib":{"result":"oif","flags":["saddr","iif"]}},"right":false}},{"drop":null}]'),
    ('ip', 'fib daddr . mark type != unicast drop',
     '[{"match":{"op":"!=","left":{"fib":{"result":"type","flags":["daddr","mark"]}},"right":"unicast"}},{"drop":null}]'),
    ('ip', 'icmp type echo-request limit rate 10/second accept',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"icmp","field":"type"}},"right":"echo-request"}},{"limit":{"rate":10,"burst":5,"per":"second"}},{"accept":null}]'),
    ('ip', 'icmp type destination-unreachable icmp code port-unreachable accept',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"icmp","field":"type"}},"right":"destination-unreachable"}},{"match":{"op":"==","left":{"payload":{"protocol":"icmp","field":"code"}},"right":"port-unreachable"}},{"accept":null}]'),
    ('ip', 'tcp flags syn / syn,ack counter packets 0 bytes 0 log prefix "syn " level info',
     '[{"match":{"op":"==","left":{"&":[{"payload":{"protocol":"tcp","field":"flags"}},["syn","ack"]]},"right":"syn"}},{"counter":{"packets":0,"bytes":0}},{"log":{"prefix":"syn ","level":"info"}}]'),
    ('ip', 'tcp flags syn / syn,rst,ack drop',
     '[{"match":{"op":"==","left":{"&":[{"payload":{"protocol":"tcp","field":"flags"}},["syn","rst","ack"]]},"right":"syn"}},{"drop":null}]'),
    # nft 1.0 lists `x & FLAGS == 0` (none of the flags set) as `x ! FLAGS`, JSON op "!" (kernel-checked listings)
    ('ip', 'tcp flags ! syn,ack accept',
     '[{"match":{"op":"!","left":{"payload":{"protocol":"tcp","field":"flags"}},"right":["syn","ack"]}},{"accept":null}]'),
    ('ip', 'ct status ! dnat accept',
     '[{"match":{"op":"!","left":{"ct":{"key":"status"}},"right":"dnat"}},{"accept":null}]'),
    ('ip', 'ct state ! established,related accept',
     '[{"match":{"op":"!","left":{"ct":{"key":"state"}},"right":["established","related"]}},{"accept":null}]'),
    ('ip', 'iifname "lo" accept',
     '[{"match":{"op":"==","left":{"meta":{"key":"iifname"}},"right":"lo"}},{"accept":null}]'),
    ('ip', 'iif "lo" oif "lo" accept',
     '[{"match":{"op":"==","left":{"meta":{"key":"iif"}},"right":"lo"}},{"match":{"op":"==","left":{"meta":{"key":"oif"}},"right":"lo"}},{"accept":null}]'),
    ('ip', 'meta skuid 1000 meta skgid 1000 accept',
     '[{"match":{"op":"==","left":{"meta":{"key":"skuid"}},"right":1000}},{"match":{"op":"==","left":{"meta":{"key":"skgid"}},"right":1000}},{"accept":null}]'),
    ('ip', 'meta pkttype broadcast drop',
     '[{"match":{"op":"==","left":{"meta":{"key":"pkttype"}},"right":"broadcast"}},{"drop":null}]'),
    ('ip', 'ip ttl < 5 drop',
     '[{"match":{"op":"<","left":{"payload":{"protocol":"ip","field":"ttl"}},"right":5}},{"drop":null}]'),
    ('ip', 'ip length 100-200 drop',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"length"}},"right":{"range":[100,200]}}},{"drop":null}]'),
    ('ip', 'ip dscp cs1 accept',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"dscp"}},"right":"cs1"}},{"accept":null}]'),
    ('ip', 'ip protocol != { tcp, udp } drop',
     '[{"match":{"op":"!=","left":{"payload":{"protocol":"ip","field":"protocol"}},"right":{"set":["tcp","udp"]}}},{"drop":null}]'),
    ('ip', 'ip saddr != @s4 drop',
     '[{"match":{"op":"!=","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@s4"}},{"drop":null}]'),
    ('ip', 'ip saddr @dyn accept',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@dyn"}},{"accept":null}]'),
    ('ip', 'update @dyn { ip saddr timeout 1h } accept',
     '[{"set":{"op":"update","elem":{"elem":{"val":{"payload":{"protocol":"ip","field":"saddr"}},"timeout":3600}},"set":"@dyn"}},{"accept":null}]'),
    ('ip', 'add @dyn { ip daddr }',
     '[{"set":{"op":"add","elem":{"payload":{"protocol":"ip","field":"daddr"}},"set":"@dyn"}}]'),
    ('ip', 'meta mark set 0x00000010',
     '[{"mangle":{"key":{"meta":{"key":"mark"}},"value":16}}]'),
    ('ip', 'meta mark set meta mark & 0x0000ff04 | 0x00000004',
     '[{"mangle":{"key":{"meta":{"key":"mark"}},"value":{"|":[{"&":[{"meta":{"key":"mark"}},65284]},4]}}}]'),
    ('ip', 'ct mark set meta mark',
     '[{"mangle":{"key":{"ct":{"key":"mark"}},"value":{"meta":{"key":"mark"}}}}]'),
    ('ip', 'ct mark set 0x00000007',
     '[{"mangle":{"key":{"ct":{"key":"mark"}},"value":7}}]'),
    ('ip', 'sctp dport 9 reject with icmp host-unreachable',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"sctp","field":"dport"}},"right":9}},{"reject":{"type":"icmp","expr":"host-unreachable"}}]'),
    ('ip', 'tcp dport 10 reject with tcp reset',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":10}},{"reject":{"type":"tcp reset"}}]'),
    ('ip', 'udp dport 11 reject with icmp admin-prohibited',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"udp","field":"dport"}},"right":11}},{"reject":{"type":"icmp","expr":"admin-prohibited"}}]'),
    ('ip', 'udp dport 12 reject',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"udp","field":"dport"}},"right":12}},{"reject":{"type":"icmp","expr":"port-unreachable"}}]'),
    ('ip', 'quota over 10 mbytes drop',
     '[{"quota":{"val":10,"val_unit":"mbytes","inv":true}},{"drop":null}]'),
    ('ip', 'ct count over 20 drop',
     '[{"ct count":{"val":20,"inv":true}},{"drop":null}]'),
    ('ip', 'ip saddr 1.1.1.3 goto c2',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"1.1.1.3"}},{"goto":{"target":"c2"}}]'),
    ('ip', 'ip saddr 1.1.1.4 jump c2',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"1.1.1.4"}},{"jump":{"target":"c2"}}]'),
    ('ip', 'ip saddr 1.1.1.5 continue',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"1.1.1.5"}},{"continue":null}]'),
    ('ip', 'tcp dport 1-1023 counter name "cnt1"',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":{"range":[1,1023]}}},{"counter":"cnt1"}]'),
    ('ip', 'numgen random mod 3 offset 1 vmap { 1 : accept, 2 : drop, 3 : jump c2 }',
     '[{"vmap":{"key":{"numgen":{"mode":"random","mod":3,"offset":1}},"data":{"set":[[1,{"accept":null}],[2,{"drop":null}],[3,{"jump":{"target":"c2"}}]]}}}]'),
    ('ip', 'symhash mod 2 vmap { 0 : accept, 1 : drop }',
     '[{"vmap":{"key":{"symhash":{"mod":2}},"data":{"set":[[0,{"accept":null}],[1,{"drop":null}]]}}}]'),
    ('ip', 'ip daddr vmap @vm2',
     '[{"vmap":{"key":{"payload":{"protocol":"ip","field":"daddr"}},"data":"@vm2"}}]'),
    ('ip', 'ip saddr 9.9.9.9 accept comment "a comment"',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"9.9.9.9"}},{"accept":null}]'),
    ('ip', 'ip daddr 9.9.9.9 notrack',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"daddr"}},"right":"9.9.9.9"}},{"notrack":null}]'),
    ('ip', 'iifname . ip saddr { "eth0" . 1.2.3.4 } drop',
     '[{"match":{"op":"==","left":{"concat":[{"meta":{"key":"iifname"}},{"payload":{"protocol":"ip","field":"saddr"}}]},"right":{"set":[{"concat":["eth0","1.2.3.4"]}]}}},{"drop":null}]'),
    ('ip', 'return',
     '[{"return":null}]'),
    ('ip', 'ip daddr 9.9.9.8 notrack',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"daddr"}},"right":"9.9.9.8"}},{"notrack":null}]'),
    ('ip', 'ct zone set 4',
     '[{"mangle":{"key":{"ct":{"key":"zone"}},"value":4}}]'),
    ('ip', 'ip saddr 1.2.3.4 ct zone set 7',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"1.2.3.4"}},{"mangle":{"key":{"ct":{"key":"zone"}},"value":7}}]'),
    ('ip', 'meta mark set 0x00000001',
     '[{"mangle":{"key":{"meta":{"key":"mark"}},"value":1}}]'),
    ('inet', 'ip saddr 1.1.1.1 drop',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"1.1.1.1"}},{"drop":null}]'),
    ('inet', 'tcp dport 22 accept',
     '[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":22}},{"accept":null}]'),
]


def _script_rule(family: str, text: str) -> m.NftRule:
    script = f"add table {family} t\nadd chain {family} t c\nadd rule {family} t c {text}\n"
    rs = parse_nft_text(script, "s.nft")
    assert rs.form == "script"
    return rs.tables[0].chains[0].rules[0]


def _json_rule(family: str, exprs: list) -> m.NftRule:
    doc = {"nftables": [{"metainfo": {"json_schema_version": 1}}, {"table": {"family": family, "name": "t"}},
                        {"chain": {"family": family, "table": "t", "name": "c"}},
                        {"rule": {"family": family, "table": "t", "chain": "c", "handle": 7, "expr": exprs}}]}
    return parse_nft_json(json.dumps(doc), "r.json").tables[0].chains[0].rules[0]


@pytest.mark.parametrize("family,text,exprs", PAIRS, ids=[p[1][:50] for p in PAIRS])
def test_text_and_json_of_one_rule_give_one_model(family, text, exprs):
    from_text = _script_rule(family, text)
    from_json = _json_rule(family, json.loads(exprs))
    assert from_text.exprs == from_json.exprs
    assert not any(isinstance(e, m.NftUnknown) for e in from_text.exprs)
    if " ip to " not in text:           # `dnat ip to ... map @m`: the map's data type (not in this doc) says "ip"
        # the JSON form's rule text is written as nft lists the rule (the comment is the rule's, not in "expr")
        assert from_json.text == text.split(' comment "')[0]


def _one(text: str, family: str = "ip") -> tuple:
    return _script_rule(family, text).exprs


IP = parse_ip
TCP_DPORT = m.Payload("tcp", "dport")


@pytest.mark.parametrize("text,expected", [
    ("ip saddr 10.0.0.0/8", (m.Match(m.Payload("ip", "saddr"), "==", m.Prefix(IP("10.0.0.0"), 8)),)),
    ("ip saddr 10.1.2.3/8", (m.Match(m.Payload("ip", "saddr"), "==", m.Prefix(IP("10.0.0.0"), 8)),)),
    ("ip daddr 10.0.0.1/32", (m.Match(m.Payload("ip", "daddr"), "==", IP("10.0.0.1")),)),
    ("ip daddr != 127.0.0.0/8", (m.Match(m.Payload("ip", "daddr"), "!=", m.Prefix(IP("127.0.0.0"), 8)),)),
    ("ip saddr != { 10.0.0.0/8 } drop",              # a one-element set is listed as a plain compare
     (m.Match(m.Payload("ip", "saddr"), "!=", m.Prefix(IP("10.0.0.0"), 8)), m.NftVerdict("drop"))),
    ("tcp dport { 443, 80 }", (m.Match(TCP_DPORT, "==", m.AnonSet((m.Element(80), m.Element(443)))),)),
    ("tcp dport ssh", (m.Match(TCP_DPORT, "==", 22),)),
    ("tcp dport 1-1023", (m.Match(TCP_DPORT, "==", m.Range(1, 1023)),)),
    ("ip daddr 10.0.0.0-10.0.0.255",                 # a range stays one (nft lists it so) ...
     (m.Match(m.Payload("ip", "daddr"), "==", m.Range(IP("10.0.0.0"), IP("10.0.0.255"))),)),
    ("ip daddr { 10.0.0.0-10.0.0.255 }",             # ... also alone in braces
     (m.Match(m.Payload("ip", "daddr"), "==", m.Range(IP("10.0.0.0"), IP("10.0.0.255"))),)),
    ("ip daddr { 10.0.0.0-10.0.0.255, 10.1.0.0-10.1.0.9 }",     # ... but a set element is listed as a prefix
     (m.Match(m.Payload("ip", "daddr"), "==", m.AnonSet((m.Element(m.Prefix(IP("10.0.0.0"), 24)),
                                                          m.Element(m.Range(IP("10.1.0.0"), IP("10.1.0.9")))))),)),
    ("iifname . ip saddr { \"eth0\" . 1.2.3.4 }",       # one concatenated element stays a set
     (m.Match(m.Concat((m.Meta("iifname"), m.Payload("ip", "saddr"))), "==",
              m.AnonSet((m.Element(("eth0", IP("1.2.3.4"))),))),)),
    ("meta l4proto tcp", (m.Match(m.Meta("l4proto"), "==", 6),)),
    ("meta l4proto 17", (m.Match(m.Meta("l4proto"), "==", 17),)),
    ("meta l4proto tcp tcp dport 80", (m.Match(TCP_DPORT, "==", 80),)),     # the dependency nft leaves out
    ("ip protocol udp udp dport 53", (m.Match(m.Payload("udp", "dport"), "==", 53),)),
    ("meta l4proto tcp th dport 80",
     (m.Match(m.Meta("l4proto"), "==", 6), m.Match(m.Payload("th", "dport"), "==", 80))),
    ("ct state established,related accept", (m.Match(m.Ct("state"), "in", 6), m.NftVerdict("accept"))),
    ("ct state != invalid", (m.Match(m.Ct("state"), "!=", 1),)),
    ("ct original ip saddr 10.0.0.1", (m.Match(m.Ct("ip saddr", "original"), "==", IP("10.0.0.1")),)),
    ("fib daddr type local", (m.Match(m.Fib(("daddr",), "type"), "==", "local"),)),
    ("fib saddr . iif oif missing", (m.Match(m.Fib(("saddr", "iif"), "oif"), "==", False),)),
    ("mark and 0x4000 == 0 return", (m.Match(m.Bitwise(m.Meta("mark"), 0x4000, 0), "==", 0), m.NftVerdict("return"))),
    ("meta mark & 0x00004000 == 0x00000000", (m.Match(m.Bitwise(m.Meta("mark"), 0x4000, 0), "==", 0),)),
    ("mark set mark or 0x4000", (m.Mangle(m.Meta("mark"), m.Bitwise(m.Meta("mark"), 0xFFFFBFFF, 0x4000)),)),
    ("meta mark set meta mark | 0x00004000",
     (m.Mangle(m.Meta("mark"), m.Bitwise(m.Meta("mark"), 0xFFFFBFFF, 0x4000)),)),
    ("meta mark set meta mark xor 0x4000", (m.Mangle(m.Meta("mark"), m.Bitwise(m.Meta("mark"), 0xFFFFFFFF, 0x4000)),)),
    ("meta mark set 0x10", (m.Mangle(m.Meta("mark"), 0x10),)),
    ("ct mark set meta mark", (m.Mangle(m.Ct("mark"), m.Meta("mark")),)),
    ("ct zone set 4", (m.Mangle(m.Ct("zone"), 4),)),
    ("tcp flags syn / syn,ack", (m.Match(m.Bitwise(m.Payload("tcp", "flags"), 0x12, 0), "==", 2),)),
    ("tcp flags & (syn|ack) == syn", (m.Match(m.Bitwise(m.Payload("tcp", "flags"), 0x12, 0), "==", 2),)),
    ("iifname \"eth*\" accept", (m.Match(m.Meta("iifname"), "==", "eth*"), m.NftVerdict("accept"))),
    ("ip daddr . meta l4proto . th dport vmap @service-ips",
     (m.Vmap(m.Concat((m.Payload("ip", "daddr"), m.Meta("l4proto"), m.Payload("th", "dport"))),
             m.SetRef("service-ips")),)),
    ("numgen random mod 2 vmap { 0 : goto a, 1 : goto b/c.d:e }",
     (m.Vmap(m.Numgen("random", 2), m.AnonSet((m.Element(0, m.NftVerdict("goto", "a")),
                                                m.Element(1, m.NftVerdict("goto", "b/c.d:e"))))),)),
    ("numgen inc mod 3 offset 1 vmap { 1 : accept, 2 : drop, 3 : continue }",
     (m.Vmap(m.Numgen("inc", 3, 1), m.AnonSet((m.Element(1, m.NftVerdict("accept")), m.Element(2, m.NftVerdict("drop")),
                                               m.Element(3, m.NftVerdict("continue"))))),)),
    ("jhash ip saddr . tcp sport mod 2 seed 0xdead vmap { 0 : accept, 1 : drop }",
     (m.Vmap(m.Hash("jhash", 2, m.Concat((m.Payload("ip", "saddr"), m.Payload("tcp", "sport"))), 0xdead),
             m.AnonSet((m.Element(0, m.NftVerdict("accept")), m.Element(1, m.NftVerdict("drop"))))),)),
    ("dnat to 10.0.0.1:80", (m.Nat("dnat", IP("10.0.0.1"), 80),)),
    ("dnat to 10.0.0.1", (m.Nat("dnat", IP("10.0.0.1")),)),
    ("meta l4proto tcp dnat to 10.0.0.1-10.0.0.3:80-90 random,persistent",
     (m.Match(m.Meta("l4proto"), "==", 6),
      m.Nat("dnat", m.Range(IP("10.0.0.1"), IP("10.0.0.3")), m.Range(80, 90), ("persistent", "random")))),
    ("dnat to ip daddr map @m1", (m.Nat("dnat", m.MapLookup(m.Payload("ip", "daddr"), m.SetRef("m1"))),)),
    ("dnat ip to tcp dport map @pm", (m.Nat("dnat", m.MapLookup(TCP_DPORT, m.SetRef("pm"))),)),
    ("snat to 1.2.3.4", (m.Nat("snat", IP("1.2.3.4")),)),
    ("masquerade fully-random", (m.Nat("masquerade", flags=("fully-random",)),)),
    ("meta l4proto tcp masquerade to :1024-65535", (m.Match(m.Meta("l4proto"), "==", 6),
                                                    m.Nat("masquerade", port=m.Range(1024, 65535)))),
    ("tcp dport 8081 redirect to :8080", (m.Match(TCP_DPORT, "==", 8081), m.Nat("redirect", port=8080))),
    ("redirect", (m.Nat("redirect"),)),
    ("reject", (m.Reject("icmp", "port-unreachable"),)),
    ("reject with icmp type host-unreachable", (m.Reject("icmp", "host-unreachable"),)),
    ("reject with icmp host-unreachable", (m.Reject("icmp", "host-unreachable"),)),
    ("reject with tcp reset", (m.Reject("tcp reset"),)),
    ("jump mark-for-masquerade", (m.NftVerdict("jump", "mark-for-masquerade"),)),
    ("goto x", (m.NftVerdict("goto", "x"),)),
    ("queue num 1-3 bypass,fanout", (m.Queue(1, 3, ("bypass", "fanout")),)),
    ("queue", (m.Queue(),)),
    ("notrack", (m.NoTrack(),)),
    ("counter packets 5 bytes 300", (m.Counter(),)),
    ("counter name \"c1\"", (m.Counter("c1"),)),
    ("log prefix \"x \" level info", (m.Log("x ", "info"),)),
    ("log", (m.Log(),)),
    ("limit rate 10/second", (m.Limit(10, "second"),)),
    ("limit rate over 1 mbytes/second", (m.Limit(1048576, "second", 0, "bytes", True),)),
    ("quota over 10 mbytes", (m.Quota(10485760, True),)),
    ("ct count over 20", (m.CtCount(20, True),)),
    ("update @aff { ip saddr timeout 3h }", (m.SetUpdate("update", "aff", m.Payload("ip", "saddr"), 10800000),)),
    ("add @dyn { ip daddr }", (m.SetUpdate("add", "dyn", m.Payload("ip", "daddr")),)),
    ("flow add @ft", (m.FlowAdd("ft"),)),
    ("socket transparent 1 accept", (m.NftUnknown("socket transparent 1"), m.NftVerdict("accept"))),
    ("meta mark 0x1 osf name \"Linux\" drop", (m.Match(m.Meta("mark"), "==", 1), m.NftUnknown('osf name "Linux"'),
                                              m.NftVerdict("drop"))),
])
def test_rule_construct(text, expected):
    assert _one(text) == expected


@pytest.mark.parametrize("script", ["tcp flags ! syn,ack", "tcp flags ! (syn|ack)", "tcp flags ! syn|ack",
                                    "tcp flags & (syn|ack) == 0"])
def test_none_of_the_flags_set_is_the_kernels_bitwise_compare(script):
    """``x ! FLAGS`` is ``(x & FLAGS) == 0``, as the kernel stores it (bitwise, cmp eq 0): every way of
    writing it gives one model, listed back as nft 1.0 lists it; bits without a name are kept."""
    rule = _script_rule("ip", f"{script} accept")
    tcp_flags = m.Payload("tcp", "flags")
    assert rule.exprs[0] == m.Match(m.Bitwise(tcp_flags, 0x12, 0), "==", 0)
    assert format_rule(rule.exprs, None, "ip") == "tcp flags ! syn,ack accept"
    odd = _script_rule("ip", "ct status ! dnat|0x100 drop")
    assert odd.exprs[0] == m.Match(m.Bitwise(m.Ct("status"), 0x120, 0), "==", 0)
    assert format_rule(odd.exprs, None, "ip") == "ct status ! dnat,0x100 drop"


@pytest.mark.parametrize("text", ["tcp dport ! 80", "ip saddr ! 10.0.0.1", "meta mark ! 0x1", "tcp flags ! 0"])
def test_none_of_the_flags_set_takes_flags_only(text):
    with pytest.raises(InputError, match=r"^n.nft:3: '!' \(none of the flags set\) takes a flag field"):
        parse_nft_text(f"add table ip t\nadd chain ip t c\nadd rule ip t c {text} accept\n", "n.nft")
    exprs = [{"match": {"op": "!", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80}}]
    with pytest.raises(InputError, match=r"none of the flags set"):
        _json_rule("ip", exprs)


def test_rule_comment_and_text():
    rule = _script_rule("ip", 'ip saddr 10.0.0.0/8 goto x comment "short-circuit pod traffic"')
    assert rule.comment == "short-circuit pod traffic"
    assert rule.text == 'ip saddr 10.0.0.0/8 goto x comment "short-circuit pod traffic"'
    assert rule.line == 3


def test_family_defaults():
    assert _one("reject", "inet") == (m.Reject("icmpx", "port-unreachable"),)
    assert _one("reject", "ip6") == (m.Reject("icmpv6", "port-unreachable"),)
    assert _one("meta nfproto ipv4 ip saddr 1.1.1.1", "inet") == \
        (m.Match(m.Payload("ip", "saddr"), "==", IP("1.1.1.1")),)
    assert _one("dnat ip to 10.0.0.1", "inet") == (m.Nat("dnat", IP("10.0.0.1"), family="ip"),)


LISTING = """table ip t { # handle 3
\tcomment "a table"
\tset s4 { # handle 2
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 10.0.0.0/8, 172.16.0.1,
\t\t\t     192.168.1.1-192.168.1.9 }
\t}

\tmap svc { # handle 4
\t\ttype ipv4_addr . inet_proto . inet_service : verdict
\t\telements = { 10.1.1.1 . tcp . 80 comment "ns/a:p" : goto c/x.y:z,
\t\t\t     10.1.1.2 . udp . 53 : drop }
\t}

\tset aff { # handle 5
\t\ttype ipv4_addr
\t\tsize 65535
\t\tflags dynamic,timeout
\t\ttimeout 3h
\t}

\tchain pre { # handle 1
\t\ttype nat hook prerouting priority dstnat + 5; policy accept;
\t\tip daddr . meta l4proto . th dport vmap @svc # handle 8
\t}

\tchain c/x.y:z { # handle 6
\t\tupdate @aff { ip saddr } # handle 9
\t\tip saddr @s4 drop # handle 10
\t}
}
table bridge b {
\tchain f {
\t\ttype filter hook forward priority filter - 10; policy drop;
\t}
}
table netdev n {
\tchain ing {
\t\ttype filter hook ingress device "lo" priority -500; policy accept;
\t}
}
"""


def test_listing_structure():
    rs = parse_nft_text(LISTING, "l.txt")
    assert rs.form == "text" and looks_like_nft_text(LISTING)
    t = rs.table("ip", "t")
    assert (t.handle, t.line, t.comment) == (3, 1, "a table")
    pre = t.chain("pre")
    assert (pre.type, pre.hook, pre.priority, pre.policy, pre.handle, pre.is_base) == \
        ("nat", "prerouting", -95, "accept", 1, True)
    assert pre.rules[0].handle == 8 and pre.rules[0].line == 25
    assert pre.rules[0].text == "ip daddr . meta l4proto . th dport vmap @svc"
    assert not t.chain("c/x.y:z").is_base and t.chain("c/x.y:z").policy is None
    s4 = t.set("s4")
    assert s4.flags == ("interval",) and not s4.is_map
    assert s4.elements == (m.Element(IP("172.16.0.1")), m.Element(m.Prefix(IP("10.0.0.0"), 8)),
                           m.Element(m.Range(IP("192.168.1.1"), IP("192.168.1.9"))))
    svc = t.set("svc")
    assert svc.key_type == ("ipv4_addr", "inet_proto", "inet_service") and svc.data == ("verdict",)
    assert svc.elements[0] == m.Element((IP("10.1.1.1"), 6, 80), m.NftVerdict("goto", "c/x.y:z"), None, "ns/a:p")
    aff = t.set("aff")
    assert (aff.flags, aff.timeout, aff.size) == (("dynamic", "timeout"), 10800000, None)
    assert rs.table("bridge", "b").chains[0].priority == -210
    ing = rs.table("netdev", "n").chains[0]
    assert (ing.hook, ing.devices, ing.priority) == ("ingress", ("lo",), -500)


def test_terse_listing_is_refused():
    terse = LISTING.replace("""\t\telements = { 10.0.0.0/8, 172.16.0.1,
\t\t\t     192.168.1.1-192.168.1.9 }
""", "").replace("""\t\telements = { 10.1.1.1 . tcp . 80 comment "ns/a:p" : goto c/x.y:z,
\t\t\t     10.1.1.2 . udp . 53 : drop }
""", "")
    with pytest.raises(InputError, match=r"^t.txt: no set or map shows its elements: a terse listing"):
        parse_nft_text(terse, "t.txt")


SCRIPT = """add table ip kube-proxy { comment "rules for kube-proxy" ; }
add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
add chain ip kube-proxy services
add chain ip kube-proxy stale
add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "x" ; }
add set ip kube-proxy ips { type ipv4_addr ; flags interval ; }
add rule ip kube-proxy nat-prerouting jump services
add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
insert rule ip kube-proxy services counter
add rule ip kube-proxy stale drop
add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto stale }
add element ip kube-proxy service-ips { 172.30.0.42 . tcp . 80 : drop }
add element ip kube-proxy ips { 10.0.0.0/8, 192.168.0.0/16 }
delete element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 }
flush set ip kube-proxy ips
flush chain ip kube-proxy stale
delete chain ip kube-proxy stale
add table ip other
delete table ip other
"""


def test_script_commands():
    rs = parse_nft_text(SCRIPT, "k.nft")
    assert rs.form == "script"
    (t,) = rs.tables
    assert [c.name for c in t.chains] == ["nat-prerouting", "services"]
    assert t.chain("nat-prerouting").priority == -100 and t.chain("nat-prerouting").policy == "accept"
    assert [r.exprs[0] for r in t.chain("services").rules][0] == m.Counter()
    assert t.chain("services").rules[1].text == "ip daddr . meta l4proto . th dport vmap @service-ips"
    assert t.set("service-ips").elements == (m.Element((IP("172.30.0.42"), 6, 80), m.NftVerdict("drop")),)
    assert t.set("ips").elements == ()
    assert parse_nft_text(SCRIPT + "flush ruleset\n", "k.nft").tables == ()


def test_kube_proxy_corpus_scripts_read():
    corpus = SHARED / "corpus" / "kube-proxy-nft"
    if not corpus.is_dir():
        pytest.skip(f"{corpus} is missing")
    read = 0
    for path in sorted(corpus.glob("*.json")):
        case = json.loads(path.read_text())
        for key in ("nft_ruleset", "nft_ruleset_dump_order"):
            if case.get(key):
                rs = parse_nft_text(case[key], path.name)
                rules = [r for t in rs.tables for c in t.chains for r in c.rules]
                assert len(rules) == case["object_counts"]["rules"], path.name
                assert not [r for r in rules if any(isinstance(e, m.NftUnknown) for e in r.exprs)]
                read += 1
    assert read >= 28


@pytest.mark.parametrize("text,where", [
    ("add table ip t\nadd chain ip t c\nadd rule ip t c ip saddr 10.0.0.300 drop\n",
     r"^e.nft:3: octet 300 out of range 0-255 in '10.0.0.300': add rule ip t c ip saddr 10.0.0.300 drop$"),
    ("add table ip t\nadd rule ip t nochain accept\n", r"^e.nft:2: no chain 'nochain' in table ip t: "),
    ("add chain ip t c\n", r"^e.nft:1: no table ip t: "),
    ("add table ip t\nadd element ip t s { 1.2.3.4 }\n", r"^e.nft:2: no set or map 's' in table ip t"),
    ("table ip t {\n\tchain c {\n\t\ttype filter hook input priority sideways; policy accept;\n\t}\n}\n",
     r"^e.nft:3: unknown priority 'sideways' \(names for ip: raw, "),
    ("table ip t {\n\tchain c {\n\t\tip saddr 1.1.1.1 accept\n", r"^e.nft:4: chain 'c' is not closed"),
    ("iptables -A INPUT -j ACCEPT\n", r"^e.nft:1: not an nft command or listing: 'iptables'"),
    ("add table ip t\nadd chain ip t c\nadd rule ip t c ct state bogus accept\n",
     r"^e.nft:3: unknown ct state 'bogus'"),
    ("add table ip t\nadd chain ip t c\nadd rule ip t c tcp dport nosuchservice\n",
     r"^e.nft:3: unknown service name 'nosuchservice'"),
    ("add table ip t\nadd chain ip t c\nadd rule ip t c jump\n", r"^e.nft:3: the rule ends where a chain name"),
    ("add table ip t\nadd chain ip t c\nadd rule ip t c ip saddr 1.1.1.1 }\n", r"^e.nft:3: unexpected '}' in a rule"),
    ("add table ip t\nadd set ip t s { flags interval ; }\n", r"^e.nft:2: set s has no type"),
    ("add table foo t\n", r"^e.nft:1: unknown family 'foo'"),
])
def test_text_errors(text, where):
    with pytest.raises(InputError, match=where):
        parse_nft_text(text, "e.nft")


def _doc(*objects, meta: dict | None = None) -> str:
    head = [{"metainfo": meta or {"json_schema_version": 1}}]
    return json.dumps({"nftables": head + [{"table": {"family": "ip", "name": "t"}}] + list(objects)})


def test_json_structure_and_xt():
    text = _doc({"chain": {"family": "ip", "table": "t", "name": "c", "type": "filter", "hook": "input",
                           "prio": -5, "policy": "drop", "handle": 2}},
                {"set": {"family": "ip", "table": "t", "name": "s", "type": ["ipv4_addr", "inet_service"],
                         "flags": "interval", "elem": [{"concat": [{"prefix": {"addr": "10.0.0.0", "len": 8}},
                                                                   {"range": [80, 90]}]}]}},
                {"map": {"family": "ip", "table": "t", "name": "mm", "type": "mark", "map": "ipv4_addr . inet_service",
                         "elem": [[1, {"concat": ["10.0.0.1", 80]}]]}},
                {"element": {"family": "ip", "table": "t", "name": "mm", "elem": [[2, {"concat": ["10.0.0.2", 81]}]]}},
                {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 9, "comment": "x",
                          "expr": [{"xt": {"type": "match", "name": "conntrack"}}, {"xt": None}, {"accept": None}]}})
    assert looks_like_nft_json(text)
    rs = parse_nft_json(text, "r.json")
    t = rs.tables[0]
    c = t.chains[0]
    assert (c.priority, c.policy, c.handle) == (-5, "drop", 2)
    assert c.rules[0].exprs == (m.Xt("match", "conntrack"), m.Xt("", ""), m.NftVerdict("accept"))
    assert (c.rules[0].handle, c.rules[0].line, c.rules[0].comment) == (9, 6, "x")
    assert t.sets[0].elements == (m.Element((m.Prefix(IP("10.0.0.0"), 8), m.Range(80, 90))),)
    assert t.maps[0].data == ("ipv4_addr", "inet_service")
    assert [e.data for e in t.maps[0].elements] == [(IP("10.0.0.1"), 80), (IP("10.0.0.2"), 81)]


def test_json_unknown_expression_is_kept():
    rule = _json_rule("ip", [{"match": {"op": "==", "left": {"socket": {"key": "transparent"}}, "right": 1}},
                             {"tproxy": {"port": 1}}, {"drop": None}])
    assert rule.exprs == (m.Match(m.NftUnknown('{"socket":{"key":"transparent"}}'), "==", 1),
                          m.NftUnknown('{"tproxy":{"port":1}}'), m.NftVerdict("drop"))


@pytest.mark.parametrize("text,where", [
    ('{"nftables": [}', r"^j.json:1: invalid JSON \(nft -j list ruleset\?\)"),
    ('{"x": 1}', r'^j.json: the document: not `nft -j list ruleset` output \(no "nftables" list\)$'),
    (_doc(meta={"json_schema_version": 2}), r"^j.json: nftables\[0\].metainfo: json_schema_version 2"),
    (_doc({"bogus": {}}), r"^j.json: nftables\[2\].bogus: unknown object 'bogus'"),
    (_doc({"chain": {"family": "ip", "table": "t"}}), r"^j.json: nftables\[2\].chain.name: missing$"),
    (_doc({"rule": {"family": "ip", "table": "t", "chain": "nope", "expr": []}}),
     r"^j.json: nftables\[2\]: no chain 'nope' in table ip t$"),
    (_doc({"chain": {"family": "ip", "table": "t", "name": "c"}},
          {"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [{"accept": None}, {"match": {"op": "=="}}]}}),
     r"^j.json: nftables\[3\].rule.expr\[1\].match: malformed match \(KeyError: 'left'\)$"),
    (_doc({"chain": {"family": "ip", "table": "t", "name": "c"}},
          {"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [
              {"match": {"op": "~", "left": {"meta": {"key": "mark"}}, "right": 1}}]}}),
     r"^j.json: nftables\[3\].rule.expr\[0\].match.op: unknown operator '~'$"),
    (_doc({"chain": {"family": "ip", "table": "t", "name": "c"}},
          {"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [
              {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                         "right": "1.2.3.999"}}]}}),
     r"^j.json: nftables\[3\].rule.expr\[0\].match: octet 999 out of range"),
    (_doc({"set": {"family": "ip", "table": "t", "name": "s", "type": "ipv4_addr", "elem": [["1.1.1.1"]]}}),
     r"^j.json: nftables\[2\].set.elem\[0\]: a map element is \[key, data\]$"),
])
def test_json_errors(text, where):
    with pytest.raises(InputError, match=where):
        parse_nft_json(text, "j.json")


def test_flowtable_objects_and_typeof():
    text = """table inet f {
\tflowtable ft {
\t\thook ingress priority filter
\t\tdevices = { eth0, lo }
\t}

\tcounter c1 {
\t\tpackets 0 bytes 0
\t}

\tset st {
\t\ttypeof ip daddr . tcp dport
\t\telements = { 10.0.0.1 . 80 }
\t}

\tchain fw {
\t\ttype filter hook forward priority filter; policy accept;
\t\tflow add @ft
\t}
}
"""
    t = parse_nft_text(text, "f.txt").tables[0]
    assert t.flowtables == (m.Flowtable("ft", "ingress", 0, ("eth0", "lo")),)
    assert t.objects == (m.NamedObject("counter", "c1"),)
    assert t.set("st").key_type == ("ipv4_addr", "inet_service")
    assert t.set("st").elements == (m.Element((IP("10.0.0.1"), 80)),)
    doc = json.dumps({"nftables": [
        {"table": {"family": "inet", "name": "f"}},
        {"flowtable": {"family": "inet", "table": "f", "name": "ft", "hook": "ingress", "prio": 0,
                       "dev": ["eth0", "lo"]}},
        {"counter": {"family": "inet", "table": "f", "name": "c1", "packets": 0, "bytes": 0}},
        {"set": {"family": "inet", "table": "f", "name": "st", "type": ["ipv4_addr", "inet_service"],
                 "elem": [{"concat": ["10.0.0.1", 80]}]}},
        {"chain": {"family": "inet", "table": "f", "name": "fw", "type": "filter", "hook": "forward", "prio": 0,
                   "policy": "accept"}},
        {"rule": {"family": "inet", "table": "f", "chain": "fw", "expr": [{"flow": {"op": "add",
                                                                                      "flowtable": "@ft"}}]}}]})
    assert parse_nft_json(doc, "f.json").tables[0] == t


def test_a_word_where_a_number_belongs_is_said_in_words():
    """``counter packets x``: the line and the word, not Python's int() message."""
    text = "table ip t {\n chain c {\n  type filter hook input priority 0; policy accept;\n  counter packets x bytes 0 accept\n }\n}\n"
    with pytest.raises(InputError) as err:
        parse_nft_text(text, source="f")
    assert str(err.value).startswith("f:4: 'x' is not a number")


@pytest.mark.parametrize("member, value, message", [
    ("prio", None, "nftables[2].chain.prio: must be int or str, not None"),
    ("hook", 5, "nftables[2].chain.hook: must be a string, not 5"),
    ("handle", "x", "nftables[2].chain.handle: must be int, not 'x'"),
])
def test_a_chain_member_of_the_wrong_type_is_one_line(member, value, message):
    """Found by tests/parse/test_fuzz_inputs.py: a null prio was an AttributeError (an internal error)."""
    chain = {"family": "ip", "table": "t", "name": "c", "handle": 1, "type": "filter", "hook": "input", "prio": 0,
             "policy": "accept", member: value}
    doc = {"nftables": [{"metainfo": {"json_schema_version": 1}}, {"table": {"family": "ip", "name": "t"}},
                        {"chain": chain}]}
    with pytest.raises(InputError) as err:
        parse_nft_json(json.dumps(doc), "f.json")
    assert str(err.value).startswith(f"f.json: {message}")
