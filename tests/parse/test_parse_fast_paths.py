"""The parser's fast paths give exactly what the general paths give, and refuse what iptables refuses."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from pktverify.errors import InputError
from pktverify.model.rules import Jump, UnknownTarget
from pktverify.parse import tokens
from pktverify.parse.iptables_rule import RuleParser, RuleSyntaxError, parse_rule_args
from pktverify.parse.iptables_save import parse_iptables_save

_LINE_CHARS = st.sampled_from(list('ab -"\t'))


@given(st.text(_LINE_CHARS, max_size=30))
def test_quote_fast_path_agrees_with_general_tokenizer(line):
    fast = tokens._split_whole_word_quotes(line)
    if fast is None:
        return      # the general path decides; nothing to compare
    assert tokens._LINE.fullmatch(line) is not None
    general = [tokens._QUOTED.sub(tokens._unquote, t) if '"' in t else t for t in tokens._TOKEN.findall(line)]
    assert fast == general


@pytest.mark.parametrize("line,expected", [
    ('-A X -m comment --comment "a b" -j Y', ["-A", "X", "-m", "comment", "--comment", "a b", "-j", "Y"]),
    ('--comment "a""b"', ["--comment", "ab"]),          # touching quotes concatenate
    ('--comment x"a b"', ["--comment", "xa b"]),        # a quote may open mid-word
    ('--comment ""', ["--comment", ""]),
])
def test_split_args_quote_forms(line, expected):
    assert tokens.split_args(line) == expected


@pytest.mark.parametrize("rule", [
    "-m comment --comment hello -j ACCEPT",
    "-p tcp -m comment --comment x -m tcp --dport 80 -j ACCEPT",
    "-m comment --comment a -m mark --mark 0x1 -j ACCEPT",
])
def test_comment_fast_path_equals_general_module_path(rule):
    fast = parse_rule_args(rule.split())
    # "--comment" given through the general module path (the same module loaded as "--match").
    general = parse_rule_args(rule.replace("-m comment", "--match comment").split())
    assert fast == general


def test_parser_shares_equal_matches_and_targets_across_rules():
    parser = RuleParser()
    first = parser.parse("-p tcp -m statistic --mode random --probability 0.5 -j KUBE-SEP-A".split())
    second = parser.parse("-p tcp -m statistic --mode random --probability 0.5 -j KUBE-SEP-B".split())
    assert first.matches[1] is second.matches[1]
    assert first.target != second.target


@pytest.mark.parametrize("rule,fragment", [
    ("-p tcp -m tcp --dport 80 --dport 81 -j DROP", "given twice"),
    ("-m comment ! --comment x -j DROP", "cannot be negated"),
    ("-m comment --comment a --comment b -j DROP", "given twice"),
    ("-m comment --comment a -p tcp --comment b -j DROP", "--comment"),
])
def test_options_iptables_refuses_are_refused(rule, fragment):
    # Each of these is refused by iptables-restore v1.8.9 ("can only be used once", "cannot be inverted").
    with pytest.raises(RuleSyntaxError, match=fragment):
        parse_rule_args(rule.split())


def test_lenient_undeclared_uppercase_jump_becomes_unknown_target_with_warning():
    text = "*filter\n-A INPUT -j NOSUCHT\n-A INPUT -j ACCEPT\nCOMMIT\n"
    with pytest.raises(InputError, match="undeclared chain NOSUCHT"):
        parse_iptables_save(text, source="f")
    rs = parse_iptables_save(text, source="f", lenient=True)
    rules = rs.tables["filter"].chains["INPUT"].rules
    assert rules[0].target == UnknownTarget("NOSUCHT")
    assert rules[0].index == 1 and rules[1].index == 2
    assert any(w.startswith("f:2:") and "NOSUCHT" in w for w in rs.warnings)


def test_lenient_keeps_declared_user_chain_jumps():
    rs = parse_iptables_save("*filter\n:CT - [0:0]\n-A INPUT -j CT\nCOMMIT\n", lenient=True)
    assert rs.tables["filter"].chains["INPUT"].rules[0].target == Jump("CT", False)


@pytest.mark.parametrize("rule", ["-s 1.1.1.1 -s 2.2.2.2 -j DROP", "-d 1.1.1.1 ! -d 2.2.2.2 -j DROP",
                                  "-i eth0 -i eth1 -j DROP", "-o eth0 --out-interface eth1 -j DROP"])
def test_repeated_core_address_and_interface_options_are_refused(rule):
    # Found by the kernel campaign: iptables-restore says "multiple -s flags not allowed".
    with pytest.raises(RuleSyntaxError, match="multiple"):
        parse_rule_args(rule.split())


# Rule shapes with holes; a hole takes a value drawn below, sometimes an option's own name,
# so that a blanked token is now and then not a value at all and the plan must not be shared.
_SHAPES = [
    "-s {} -m comment --comment {} -j {}",
    "-p tcp -m comment --comment {} -m tcp -j DNAT --to-destination {}",
    "-m comment --comment {} -m statistic --mode {} --probability {} -j {}",
    "! -s {} -d {} -p tcp -m comment --comment {} -m tcp --dport {} -j {}",
    "-p udp -m udp --dport {} -m multiport --sports {} -j {}",
    "-m conntrack --ctstate {} --ctorigdst {} -j {}",
    "-p tcp -j REDIRECT --to-ports {}",
    "-m mark --mark {} -j MARK --set-xmark {}",
]
_HOLE = st.sampled_from(["10.1.2.3", "10.1.0.0/16", "010.0.0.1", "10.1", "80", "010", "0x50", "8080:8090",
                         "random", "nth", "0.5", "KUBE-SEP-A", "KUBE-SVC-B", "ACCEPT", "DROP", "RETURN",
                         "KUBE-MARK-MASQ", "NEW", "NEW,ESTABLISHED", "0x4000/0x4000", "a b", "-s", "-j",
                         "--comment", "--dport", "!", "-m", "tcp", "10.0.0.1:8080", ""])


def _outcome(parser, args):
    try:
        return parser.parse(args)
    except RuleSyntaxError as exc:
        return str(exc)


@given(st.sampled_from(_SHAPES), st.data())
def test_a_shared_shape_plan_parses_exactly_as_a_fresh_parser(shape, data):
    """The per-shape plan (values blanked, decided once) gives what parsing the rule afresh gives."""
    holes = shape.count("{}")
    first = shape.format(*data.draw(st.lists(_HOLE, min_size=holes, max_size=holes))).split(" ")
    second = shape.format(*data.draw(st.lists(_HOLE, min_size=holes, max_size=holes))).split(" ")
    shared = RuleParser()
    _outcome(shared, first)
    assert _outcome(shared, second) == _outcome(RuleParser(), second)


def test_a_blanked_token_that_was_no_value_keeps_the_plan_private():
    # "--comment -s 1.2.3.4": the shape blanks 1.2.3.4 (after "-s"), but here "-s" is the comment.
    parser = RuleParser()
    with pytest.raises(RuleSyntaxError, match="unexpected argument"):
        parser.parse("-m comment --comment -s 1.2.3.4 -j ACCEPT".split())
    assert not parser._plans
    parser.parse("-s 1.2.3.4 -m comment --comment x -j KUBE-SEP-A".split())
    again = parser.parse("-s 5.6.7.8 -m comment --comment y -j KUBE-SEP-B".split())
    assert len(parser._plans) == 1
    assert again == RuleParser().parse("-s 5.6.7.8 -m comment --comment y -j KUBE-SEP-B".split())
