"""lint and diff on adversarial shapes: a verdict within a bound counted in work (cells built, rule
pairs compared), or an explicit inexact / not-analysed result; never "same" or "clean" by silence.
And every output format escapes what comes from input."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace

from pktverify.check.diff import diff_rulesets
from pktverify.check.diff.compare import _fate
from pktverify.cli import main
from pktverify.eval.node_trace import NodeTracer
from pktverify.parse.iptables_save import parse_iptables_save

from ..helpers import pkt, tables, tracer


def _ip(n: int) -> str:
    return str(ipaddress.IPv4Address(n))


def _filter(body: str, forward: str = "ACCEPT") -> str:
    return (f"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD {forward} [0:0]\n:OUTPUT ACCEPT [0:0]\n{body}COMMIT\n")


# 600 source/destination pairs behind a /1: their product is 1.4 million cells; the change (TCP from
# source port 65535 dropped) only shows for sources at or above 128.0.0.0, the last ones a product
# enumerates. The old diff stopped at 200,000 cells and said "no packet is treated differently".
PAIRS = "-A FORWARD -s 0.0.0.0/1 -j ACCEPT\n" + "".join(
    f"-A FORWARD -s {_ip(0x0A000000 + i)}/32 -d {_ip(0x0B000000 + i)}/32 -j ACCEPT\n" for i in range(1, 600))
SPORT_DROP = "-A FORWARD -p tcp --sport 65535 -j DROP\n"


def _write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_source_port_65535_drop_behind_600_pairs_is_found_exactly_in_few_cells():
    node = tracer(_filter(PAIRS)).node
    result = diff_rulesets(node, replace(node, ruleset=parse_iptables_save(_filter(PAIRS + SPORT_DROP), source="new")))
    assert result.complete and result.verdict == "different"
    assert result.cells <= 2_000                      # the work bound: cells built (was 200,000 and more)
    assert result.classes
    for cls in result.classes:                        # one per way out (eth0, cni0, ...)
        assert cls.new == ("drop",) and cls.old[0].startswith("forward")
        assert cls.spans[3] == ((65535, 65535),) and cls.spans[2] == ((6, 6),)
        assert all(lo >= 0x80000000 for lo, _hi in cls.spans[0])          # only sources the /1 does not accept
        assert cls.example.sport == 65535


def test_a_bound_reached_is_never_same_but_inexact_exit_2_with_one_line(tmp_path, capsys):
    old, new = _write(tmp_path, "old.rules", _filter(PAIRS)), _write(tmp_path, "new.rules", _filter(PAIRS + SPORT_DROP))
    assert main(["diff", old, new, "--max-cells", "3"]) == 2
    captured = capsys.readouterr()
    assert "no packet is treated differently" not in captured.out
    assert captured.out.startswith("inexact: no difference found in the 3 cells compared")
    assert "not compared: the rest of the packets reaching" in captured.out and "new.rules:605" in captured.out
    err = captured.err.strip().split("\n")
    assert len(err) == 1 and err[0].startswith("inexact:")
    assert main(["diff", old, new, "--max-cells", "3", "--format", "json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "inexact" and doc["same"] is False and doc["complete"] is False and doc["cells"] == 3
    # Without the bound the same diff is exact: one class, exit 1.
    assert main(["diff", old, new, "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "different" and doc["complete"] is True and doc["classes"]


def test_a_10000_rule_blocklist_against_the_same_plus_one_accept_in_few_cells(tmp_path, capsys):
    block = "".join(f"-A INPUT -s {_ip(0x0A000000 + 3 * i)}/32 -j DROP\n" for i in range(10_000))
    node = tracer(_filter(block)).node
    plus = _filter(block + "-A INPUT -p tcp --dport 22 -j ACCEPT\n")
    result = diff_rulesets(node, replace(node, ruleset=parse_iptables_save(plus, source="new")))
    assert result.verdict == "same" and result.complete
    assert result.cells <= 500 and result.work <= 2_000_000
    # ... and a real change behind the blocklist is still found, for the blocked-out addresses only.
    dropped = _filter(block + "-A INPUT -p tcp --dport 22 -j DROP\n")
    result = diff_rulesets(node, replace(node, ruleset=parse_iptables_save(dropped, source="new")))
    assert result.complete and result.cells <= 500
    assert {c.new for c in result.classes} == {("drop",)}
    blocked = pkt("10.0.0.3", "192.168.0.2", dport=22)
    assert not any(lo <= blocked.src <= hi for c in result.classes for lo, hi in c.spans[0])


def test_cells_after_a_dnat_are_cut_by_the_rules_that_see_the_translated_packet():
    # Hypothesis found it: the rules after the DNAT tell 10/8 sources apart; a cell of the DNAT's
    # packets that lumped 10.0.0.5 with 1.0.0.1 (both to 192.168.0.40) gave a class that did not hold it.
    new = ("*nat\n-A PREROUTING -d 192.168.0.0/16 -p tcp -j DNAT --to-destination 10.1.2.7:8080\nCOMMIT\n"
           "*filter\n-A FORWARD -p tcp --dport 80 -j ACCEPT\n-A FORWARD -d 10.0.0.0/8 -s 10.0.0.0/8 -j ACCEPT\n"
           "-A FORWARD -j DROP\nCOMMIT\n")
    node_a = tracer("*filter\nCOMMIT\n").node
    node_b = replace(node_a, ruleset=parse_iptables_save(new, source="b.txt"))
    result = diff_rulesets(node_a, node_b)
    ta, tb = NodeTracer(node_a), NodeTracer(node_b)
    for src in ("10.0.0.5", "1.0.0.1"):
        p = pkt(src, "192.168.0.40", dport=80)
        fa, fb = _fate(p, ta.trace(p, in_iface="eth0").outcomes), _fate(p, tb.trace(p, in_iface="eth0").outcomes)
        assert fa != fb
        assert any(c.old == fa and c.new == fb and all(any(lo <= v <= hi for lo, hi in span) for v, span in
                                                       zip((p.src, p.dst, p.proto, p.sport, p.dport), c.spans))
                   for c in result.classes), (src, fa, fb)


def test_same_rules_stay_same(tmp_path):
    assert diff_rulesets(tracer(tables(filter=PAIRS)).node, tracer(tables(filter=PAIRS)).node).verdict == "same"


# ------------------------------------------------------------------ lint: shadowing at scale
from pktverify.check.lint import lint_text  # noqa: E402
from pktverify.check.lint import reachability as lint_reachability  # noqa: E402
from pktverify.check.lint.cover_index import ShadowWork  # noqa: E402

BLOCK = "".join(f"-A INPUT -s {_ip(0x0A000000 + 3 * i)}/32 -j DROP\n" for i in range(10_000))


def _reach(text: str) -> tuple[list, ShadowWork]:
    work = ShadowWork()
    return lint_reachability.reachability(parse_iptables_save(text, source="r.rules"), work), work


def test_a_10000_entry_blocklist_compares_no_rule_pair_and_still_finds_shadowing():
    tail = ("-A INPUT -s 10.0.0.3/32 -p tcp --dport 22 -j DROP\n"      # inside blocklist entry 2: shadowed
            "-A INPUT -s 10.0.0.4/32 -j ACCEPT\n"                      # between entries: not
            "-A INPUT -s 10.0.0.0/8 -j DROP\n"
            "-A INPUT -s 10.200.0.1/32 -p tcp -j ACCEPT\n")            # under the /8: shadowed
    findings, work = _reach(_filter(BLOCK + tail))
    shadowed = sorted(f.line for f in findings if f.id == "PV203")
    assert shadowed == [5 + 10_000, 5 + 10_003]
    assert not work.beyond and not work.too_big
    assert work.pairs <= 10                 # an entry is decided by the union of the others, not by pairs
    assert work.intervals <= 100


def test_a_30000_deep_jump_chain_with_a_mark_at_the_bottom_is_walked_once():
    n = 30_000
    text = ("*mangle\n:PREROUTING ACCEPT [0:0]\n" + "".join(f":C{i} - [0:0]\n" for i in range(n))
            + "-A PREROUTING -s 10.0.0.0/8 -j ACCEPT\n-A PREROUTING -j C0\n"
            + "".join(f"-A C{i} -j C{i + 1}\n" for i in range(n - 1)) + f"-A C{n - 1} -j MARK --set-mark 1\n"
            + "-A PREROUTING -s 10.1.0.0/16 -j ACCEPT\nCOMMIT\n")
    table = parse_iptables_save(text, source="deep").tables["mangle"]
    assert lint_reachability.changing_chains(table) == {f"C{i}" for i in range(n)} | {"PREROUTING"}
    findings, _work = _reach(text)          # the jump changes the packet: 10.1/16 after it is no shadow
    assert not [f for f in findings if f.id == "PV203"]


def _interleaved(n: int) -> str:
    """Rules whose corners are covered (the first two) and whose ranges interleave in four fields:
    each cover check cuts many pieces (80 s for 50 such rules before the bound)."""
    body = ("-A FORWARD -p tcp -m iprange --src-range 10.0.0.0-10.0.3.255 --dst-range 10.0.0.0-10.0.3.255 "
            "--sport 0:4100 --dport 0:4100 -j ACCEPT\n"
            "-A FORWARD -p tcp -m iprange --src-range 10.239.0.0-10.241.0.0 --dst-range 10.239.0.0-10.241.0.0 "
            "--sport 50000:65535 --dport 50000:65535 -j ACCEPT\n")
    for i in range(n):
        s, d = 0x0A000000 + i * 7, 0x0A000000 + i * 11
        sp = ",".join(f"{p}:{p + 2000}" for p in range(i * 97 % 4000, 65000, 9000)[:6])
        dp = ",".join(f"{p}:{p + 2000}" for p in range(i * 131 % 4000, 65000, 9000)[:6])
        body += (f"-A FORWARD -p tcp -m iprange --src-range {_ip(s)}-{_ip(s + 0xF00000)} --dst-range "
                 f"{_ip(d)}-{_ip(d + 0xF00000)} -m multiport --sports {sp},64000:65535 -m multiport --dports "
                 f"{dp},64000:65535 -j {'DROP' if i % 2 else 'ACCEPT'}\n")
    return _filter(body)


def test_interleaved_ranges_stop_at_the_work_bound_and_say_how_many_rules_were_not_analysed():
    text = _interleaved(100)
    findings, work = _reach(text)
    assert work.intervals <= work.max_intervals + 1_000 and work.pairs <= work.max_pairs   # + one piece at most
    assert len(work.beyond) + len(work.too_big) > 0
    note = work.note()
    assert note.startswith("PV203 (shadowed-rule) not analysed: ") and "beyond the bound" in note
    notes: list[str] = []
    lint_text(text, "r.rules", notes=notes)
    assert notes == [f"r.rules: {note}"]


def test_the_not_analysed_note_is_in_every_format_and_gone_when_pv203_is_ignored(tmp_path, capsys):
    path = _write(tmp_path, "ranges.rules", _interleaved(100))
    for fmt, where in (("text", "note: "), ("json", '"notes"'), ("sarif", "toolExecutionNotifications"),
                       ("github", "::warning title=pktverify::")):
        assert main(["lint", path, "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert where in out and "PV203 (shadowed-rule) not analysed" in out, fmt
    assert main(["lint", path, "--ignore", "PV203"]) == 0
    assert "not analysed" not in capsys.readouterr().out


def test_the_work_bound_is_inexact_too_whether_hit_while_finding_the_region_or_cutting_it():
    node = tracer(_filter(PAIRS)).node
    new = replace(node, ruleset=parse_iptables_save(_filter(PAIRS + SPORT_DROP), source="new"))
    full = diff_rulesets(node, new)
    assert full.verdict == "different" and full.work > 0
    for bound in (10, full.work // 2):
        result = diff_rulesets(node, new, max_work=bound)
        assert result.verdict in ("inexact", "different") and not result.complete and not result.same
        assert result.not_compared and result.work <= bound + 5_000
    tiny = diff_rulesets(node, new, max_work=10)
    assert tiny.verdict == "inexact" and tiny.cells == 0
