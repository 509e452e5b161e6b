"""Adversarial but valid-looking input never runs without bound and never reaches the user as
Python's own message: one FILE:LINE line (issue: bounded and truthful on every new surface)."""

from __future__ import annotations

import pytest

from pktverify.errors import InputError
from pktverify.parse.iprule import parse_ip_rules

RULE_ERRORS = [
    ("0:\tfrom all lookup local\n100:\tfrom all goto 50\n", 2, "rule 100 goes to 50, which is not after it"),
    ("0:\tfrom all lookup local\n100:\tfrom all goto 100\n", 2, "the kernel refuses backward gotos"),
    ('[{"priority": 0, "table": "local"}, {"priority": 100, "goto": 100}]', 1, "rule 100 goes to 100"),
    ('[\n{"priority": 0, "table": "local"},\n{"priority": 300, "goto": 7}\n]', 3, "rule 300 goes to 7"),
    ("1" * 5000 + ":\tfrom all lookup main\n", 1, "not an 'ip rule show' line"),
    ("0:\tfrom all goto " + "2" * 5000 + "\n", 1, "unknown rule word 'goto'"),
]


@pytest.mark.parametrize("text, line, message", RULE_ERRORS)
def test_ip_rule_loops_and_huge_numbers_are_refused_with_the_line(text, line, message):
    with pytest.raises(InputError) as caught:
        parse_ip_rules(text, source="ip-rule.txt")
    assert caught.value.source == "ip-rule.txt" and caught.value.line == line
    assert message in caught.value.message


def test_ip_rule_state_flags_are_read():
    text = "0:\tfrom all lookup local\n100:\tfrom all goto 200 [unresolved]\n32766:\tfrom all lookup main\n"
    rules, _notes = parse_ip_rules(text, source="ip-rule.txt")
    assert [(r.priority, r.action, r.goto) for r in rules] == [(0, "lookup", 0), (100, "goto", 200),
                                                               (32766, "lookup", 0)]
    # as `ip -j rule` writes the same state
    rules, _notes = parse_ip_rules('[{"priority":100,"src":"all","goto":200,"unresolved":null}]', source="r.json")
    assert rules[0].goto == 200


def test_json_elements_are_found_at_their_lines():
    from pktverify.parse.json_input import element_lines
    text = ' [ 1, "a ] , [ {", {"x": [1,\n2], "y": "\\"]"} ,\n\n [3],\n"last"\n]'
    assert element_lines(text) == [1, 1, 1, 4, 5]
    assert element_lines("[]") == [] and element_lines("{}") == [] and element_lines("[1,") == [1]


def test_a_number_of_thousands_of_digits_is_one_line_without_pythons_message():
    from pktverify.parse.json_input import load_json
    with pytest.raises(InputError) as caught:
        load_json('[\n{"priority":\n' + "7" * 5000 + "}]", "ip-rule.json", expect="ip -j rule show")
    assert caught.value.line == 3 and "a number of 5000 digits (at most 40 are read)" in caught.value.message
    assert "sys.set_int_max_str_digits" not in str(caught.value)


@pytest.mark.parametrize("text, message", [
    ("create s hash:ip netmask " + "1" * 5000 + "\n", "netmask must be 1-32"),
    ("create s hash:ip,port\nadd s 10.0.0.1,tcp:" + "9" * 5000 + "\n", "is not a number"),
    ("create s hash:ip,port\nadd s 10.0.0.1,icmp:foo\n", "'foo' is not an ICMP type/code"),
    ("create s hash:ip,port\nadd s 10.0.0.1,icmp:256/0\n", "'256/0' is not an ICMP type/code"),
])
def test_ipset_numbers_and_icmp_names_are_refused_with_the_line(text, message):
    from pktverify.parse.ipset_save import parse_ipset_save
    with pytest.raises(InputError) as caught:
        parse_ipset_save(text, source="ipset-save.txt")
    assert caught.value.line == text.count("\n") and message in caught.value.message


def test_ipset_icmp_entries_as_ipset_7_saves_them():
    from pktverify.parse.ipset_save import parse_ipset_save
    dump = parse_ipset_save("create s hash:ip,port family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1\n"
                            "add s 10.0.0.1,icmp:echo-request\nadd s 10.0.0.1,icmp:8/1\nadd s 10.0.0.1,icmp:TOS-host-redirect\n",
                            source="ipset-save.txt")
    assert [e.values[1] for e in dump.sets["s"].entries] == [(1, 0x0800, 0x0800), (1, 0x0801, 0x0801), (1, 0x0503, 0x0503)]
