"""Numbers and addresses written the odd ways iptables-restore reads: pktverify reads each the
same way the kernel's tools do (``010`` is octal 8, ``10.1`` is a network), or refuses it.

Each rule is loaded into the lab; iptables-save's canonical text of it must parse to the
same matches and target as the odd text.  When iptables-restore refuses a rule, pktverify
must refuse it too.  Found by checking, not by reading: before this test ``-s 010.0.0.1``
and ``--dport 010`` were read as ten, a silent wrong answer.
"""

from __future__ import annotations


import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pktverify.errors import InputError
from pktverify.parse.iptables_save import parse_iptables_save

pytestmark = pytest.mark.kernel

# (table, chain, rule after "-A CHAIN"), each an odd but numeric form.
FORMS = [
    ("filter", "INPUT", "-s 010.0.0.1 -j ACCEPT"),
    ("filter", "INPUT", "-s 10.0.0.010 -j ACCEPT"),
    ("filter", "INPUT", "-d 0x0a.1.2.3 -j ACCEPT"),
    ("filter", "INPUT", "-s +10.0.0.1 -j ACCEPT"),
    ("filter", "INPUT", "-s 10.1/16 -j ACCEPT"),
    ("filter", "INPUT", "-s 10 -j ACCEPT"),
    ("filter", "INPUT", "-s 10.0.0.0/010 -j ACCEPT"),
    ("filter", "INPUT", "-s 10.0.0.0/0x10 -j ACCEPT"),
    ("filter", "INPUT", "-s 10.0.0.1/+8 -j ACCEPT"),
    ("filter", "INPUT", "-s 1.2.3.4/0377.0.0.0 -j ACCEPT"),
    ("filter", "INPUT", "-s 08.0.0.1 -j ACCEPT"),
    ("filter", "INPUT", "-s 256.1.1.1 -j ACCEPT"),
    ("filter", "INPUT", "-s 1.2.3.4.5 -j ACCEPT"),
    ("filter", "INPUT", "-s 1.2.3.4/33 -j ACCEPT"),
    ("filter", "INPUT", "-p tcp -m tcp --sport 010 -j ACCEPT"),
    ("filter", "INPUT", "-p tcp -m tcp --dport 0x50 -j ACCEPT"),
    ("filter", "INPUT", "-p tcp -m tcp --dport +80 -j ACCEPT"),
    ("filter", "INPUT", "-p tcp -m tcp --dport 08 -j ACCEPT"),
    ("filter", "INPUT", "-p tcp -m multiport --dports 1,010,0x50 -j ACCEPT"),
    ("filter", "INPUT", "-m statistic --mode nth --every 010 --packet 0x2 -j ACCEPT"),
    ("filter", "INPUT", "-p 06 -j ACCEPT"),
    ("filter", "INPUT", "-p 017 -j ACCEPT"),
    ("filter", "INPUT", "-p 0x11 -j ACCEPT"),
    ("filter", "INPUT", "-m iprange --src-range 010.0.0.1-10.0.0.9 -j ACCEPT"),
    ("filter", "INPUT", "-m iprange --dst-range 10.1 -j ACCEPT"),
    ("filter", "INPUT", "-m conntrack --ctorigdst 010.0.0.1 -j ACCEPT"),
    ("filter", "INPUT", "-m conntrack --ctorigsrc 10.1 -j ACCEPT"),
    ("filter", "INPUT", "-m conntrack --ctorigsrc 0x0a.0.0.1/+8 -j ACCEPT"),
    ("filter", "INPUT", "-m conntrack --ctorigsrc +10.0.0.1 -j ACCEPT"),
    ("filter", "INPUT", "-m recent --rcheck --mask 10.1 -j ACCEPT"),
    ("filter", "INPUT", "-m recent --rcheck --mask 255.255.0.0/16 -j ACCEPT"),     # getaddrinfo: refused
    ("nat", "PREROUTING", "-p tcp -j DNAT --to-destination 10.0.0.1:010"),
    ("nat", "PREROUTING", "-p tcp -j DNAT --to-destination 10.0.0.1:0x50"),
    ("nat", "PREROUTING", "-p tcp -j DNAT --to-destination 10.0.0.1:08"),
    ("nat", "PREROUTING", "-p tcp -j DNAT --to-destination 010.0.0.1"),
    ("nat", "PREROUTING", "-p tcp -j DNAT --to-destination 10.1:80"),
    ("nat", "PREROUTING", "-p tcp -j REDIRECT --to-ports 010"),
    ("nat", "POSTROUTING", "-j SNAT --to-source 010.0.0.1"),
]


def _rule(text: str, table: str, chain: str):
    rules = parse_iptables_save(text, source="rules").tables[table].chains[chain].rules
    assert len(rules) == 1
    return rules[0].matches, rules[0].target


@pytest.mark.parametrize("table,chain,rule", FORMS, ids=[rule for _t, _c, rule in FORMS])
def test_odd_number_forms_read_as_iptables_reads_them(lab, table, chain, rule):
    text = f"*{table}\n-A {chain} {rule}\nCOMMIT\n"
    try:
        lab.load(text)
    except RuntimeError:        # iptables-restore refused it
        with pytest.raises(InputError):
            parse_iptables_save(text, source="rules")
        return
    saved = lab.dump().iptables_save
    canonical = next(line for line in saved.splitlines() if line.startswith(f"-A {chain} "))
    try:
        ours = _rule(text, table, chain)
    except InputError as exc:
        # Refusing is allowed only with a reason the user can act on (a name we do not resolve).
        assert "does not resolve names" in str(exc), (rule, canonical, str(exc))
        return
    assert ours == _rule(f"*{table}\n{canonical}\nCOMMIT\n", table, chain), (rule, canonical)


def test_an_address_list_is_refused_with_what_iptables_would_do_instead(lab):
    text = "*filter\n-A INPUT -s 10.0.0.1,10.0.0.2 -j ACCEPT\nCOMMIT\n"
    lab.load(text)
    saved = [line for line in lab.dump().iptables_save.splitlines() if line.startswith("-A INPUT")]
    assert saved == ["-A INPUT -s 10.0.0.1/32 -j ACCEPT", "-A INPUT -s 10.0.0.2/32 -j ACCEPT"]
    with pytest.raises(InputError, match="one rule per address"):
        parse_iptables_save(text, source="rules")


def _number(value: int, base: str) -> str:
    return {"dec": str(value), "oct": "0" + format(value, "o"), "hex": hex(value), "plus": f"+{value}"}[base]


_BASES = st.sampled_from(["dec", "dec", "oct", "hex", "plus"])


@st.composite
def _odd_rules(draw) -> tuple[str, str, str]:
    """A rule with one number or address written in a random base and form."""
    kind = draw(st.sampled_from(["sport", "multiport", "proto", "src", "mask", "ctorig", "dnat-port"]))
    if kind in ("sport", "multiport", "dnat-port"):
        text = _number(draw(st.integers(0, 70000)), draw(_BASES))
        if draw(st.integers(0, 9)) == 0:
            text = "0" + str(draw(st.integers(8, 99)))          # not octal: refused
        rule = {"sport": f"-p tcp -m tcp --sport {text} -j ACCEPT",
                "multiport": f"-p udp -m multiport --dports 53,{text} -j ACCEPT",
                "dnat-port": f"-p tcp -j DNAT --to-destination 10.0.0.1:{text}"}[kind]
        return ("nat", "PREROUTING", rule) if kind == "dnat-port" else ("filter", "INPUT", rule)
    if kind == "proto":
        return "filter", "INPUT", f"-p {_number(draw(st.integers(0, 300)), draw(_BASES))} -j ACCEPT"
    octets = draw(st.lists(st.integers(0, 300), min_size=1, max_size=4))
    address = ".".join(_number(o, draw(st.sampled_from(["dec", "dec", "oct", "hex"]))) for o in octets)
    if kind == "mask":
        address += "/" + _number(draw(st.integers(0, 40)), draw(_BASES))
    option = "-m conntrack --ctorigsrc" if kind == "ctorig" else "-s"
    return "filter", "INPUT", f"{option} {address} -j ACCEPT"


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_odd_rules())
def test_random_number_forms_read_as_iptables_reads_them(lab, odd):
    """Drawn ports, protocols, addresses and masks in every base and length iptables takes (the
    same draws on every run): each is read as iptables-save shows the kernel read it, or refused
    where iptables-restore refuses it."""
    test_odd_number_forms_read_as_iptables_reads_them(lab, *odd)
