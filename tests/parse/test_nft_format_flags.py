"""Flag matches written back as nft 1.0.6 lists them (format_rule: the rule text of JSON dumps).

Each pair is a rule loaded with ``nft -f`` in a network namespace and what ``nft list ruleset``
printed for it (nft 1.0.6, kernel 6.18; tests/kernel/test_nft_forms.py checks the kernel's own
listing against the JSON's text on a ruleset holding most of them): a single flag that must be set
(or not) is kept as ``x & F == F``; several, or a value other than the mask, are ``VALUE / MASK``;
none set ``! MASK``; any set ``MASK``; bits listed lowest first, a bit without a name as its hex.
"""

from __future__ import annotations

import pytest

from pktverify.model import nft as m
from pktverify.parse.nft_format import format_rule
from pktverify.parse.nft_text import parse_nft_text

# (as loaded, as nft 1.0.6 listed it)
LISTED = [
    ("ct status & dnat == dnat", "ct status & dnat == dnat"),
    ("ct status & 0x20 == 0x20", "ct status & dnat == dnat"),
    ("ct status & 0x100 == 0x100", "ct status & 0x100 == 0x100"),
    ("ct status & 0x200 == 0x200", "ct status & dying == dying"),
    ("ct status & 0x80000000 == 0x80000000", "ct status & 0x80000000 == 0x80000000"),
    ("ct status & 0x100 != 0x100", "ct status & 0x100 != 0x100"),
    ("ct status & dnat != dnat", "ct status & dnat != dnat"),
    ("ct state & new == new", "ct state & new == new"),
    ("tcp flags & syn == syn", "tcp flags & syn == syn"),
    ("ct status & (snat|dnat) == dnat", "ct status dnat / snat,dnat"),
    ("ct status & (snat|dnat) != dnat", "ct status != dnat / snat,dnat"),
    ("ct status & (snat|dnat) != 0x30", "ct status != snat,dnat / snat,dnat"),
    ("ct status & 0x300 != 0x300", "ct status != 0x100,dying / 0x100,dying"),
    ("ct status & 0x300 == 0x100", "ct status 0x100 / 0x100,dying"),
    ("ct status & 0x300 == 0x300", "ct status 0x100,dying / 0x100,dying"),
    ("ct status & 0x300 == 0x200", "ct status dying / 0x100,dying"),
    ("ct status & 0x10100 == 0x10100", "ct status 0x100,0x10000 / 0x100,0x10000"),
    ("ct status & 0x4100 == 0x4000", "ct status 0x4000 / 0x100,0x4000"),
    ("ct status & 0xf00000 == 0x100000", "ct status 0x100000 / 0x100000,0x200000,0x400000,0x800000"),
    ("tcp flags & (syn|ack) == 0x12", "tcp flags syn,ack / syn,ack"),
    ("tcp flags & (fin|syn|rst|ack) == syn", "tcp flags syn / fin,syn,rst,ack"),
    ("ct state & (new|established) == 0xa", "ct state established,new / established,new"),
    ("ct state & (new|untracked) == untracked", "ct state untracked / new,untracked"),
    ("ct status & 0x100 == 0", "ct status ! 0x100"),
    ("ct status & (snat|dnat) == 0", "ct status ! snat,dnat"),
    ("ct status & 0x4100 == 0", "ct status ! 0x100,0x4000"),
    ("ct status & 0x100 != 0", "ct status 0x100"),
    ("ct status & 0x4100 != 0", "ct status 0x100,0x4000"),
    ("ct status & (snat|dnat) != 0", "ct status snat,dnat"),
    ("tcp flags & (syn|ack) != 0", "tcp flags syn,ack"),
]


def _rule(text: str) -> m.NftRule:
    ruleset = parse_nft_text(f"add table ip t\nadd chain ip t c\nadd rule ip t c {text} accept\n", "t.nft")
    return ruleset.tables[0].chains[0].rules[0]


@pytest.mark.parametrize("loaded,listed", LISTED, ids=[p[0] for p in LISTED])
def test_a_flag_match_is_written_as_nft_lists_it(loaded, listed):
    assert format_rule(_rule(loaded).exprs, None, "ip") == f"{listed} accept"
    # nft's listing reads back to the same meaning, and is written back unchanged.
    again = _rule(listed)
    assert format_rule(again.exprs, None, "ip") == f"{listed} accept"


def test_the_models_behind_the_forms():
    status = m.Ct("status")
    assert format_rule((m.Match(m.Bitwise(status, 0x100, 0), "==", 0x100),), None, "ip") == "ct status & 0x100 == 0x100"
    assert format_rule((m.Match(m.Bitwise(status, 0x120, 0), "==", 0x120),), None, "ip") == \
        "ct status dnat,0x100 / dnat,0x100"
    assert format_rule((m.Match(m.Bitwise(status, 0x120, 0), "!=", 0),), None, "ip") == "ct status dnat,0x100"
    assert format_rule((m.Match(status, "in", 0x4120),), None, "ip") == "ct status dnat,0x100,0x4000"
    # A mark is no flag field: its bitwise match is written as it is.
    mark = m.Bitwise(m.Meta("mark"), 0x4000, 0)
    assert format_rule((m.Match(mark, "==", 0x4000),), None, "ip") == "meta mark & 0x00004000 == 0x00004000"
