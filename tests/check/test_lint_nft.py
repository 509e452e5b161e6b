"""pktverify lint on nftables rulesets (PV150-PV162): each check's hit and a clean near miss, the
forms (listing, script, JSON) told by content or forced with --nft, parse errors as findings, the
output formats with chain names holding ``/ . :``, and --select/--ignore on the new ids. What the
kernel does with each case is pinned in tests/kernel/test_lint_nft_kernel.py (same cases)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pktverify.check.lint import REGISTRY, lint_files, lint_text
from pktverify.check.lint.nft_structure import NFT_CHECKS
from pktverify.cli import main

from ..conftest import SHARED

NFT_IDS = [c.id for c in NFT_CHECKS]
BASE = "  chain input {\n    type filter hook input priority 0; policy accept;\n%s  }\n"


def table(*chains: str, family: str = "ip") -> str:
    return f"table {family} t {{\n" + "".join(chains) + "}\n"


def chain(name: str, *rules: str, base: str = "") -> str:
    head = f"    {base};\n" if base else ""
    return f"  chain {name} {{\n{head}" + "".join(f"    {r}\n" for r in rules) + "  }\n"


def inp(*rules: str) -> str:
    return chain("input", *rules, base="type filter hook input priority 0; policy accept")


NAT_PRE = "type nat hook prerouting priority dstnat; policy accept"
NAT_POST = "type nat hook postrouting priority srcnat; policy accept"
NAT_OUT = "type nat hook output priority -100; policy accept"
NAT_IN = "type nat hook input priority 100; policy accept"
FILTER_FWD = "type filter hook forward priority 0; policy accept"
FILTER_PRE = "type filter hook prerouting priority 0; policy accept"
FILTER_POST = "type filter hook postrouting priority 0; policy accept"


SCRIPT_HEAD = "add table ip t\nadd chain ip t i { type filter hook input priority 0 ; policy accept ; }\n"


def depth(n: int, verb: str = "jump") -> str:
    chains = [chain(f"c{i}", f"{verb} c{i + 1}") for i in range(n - 1)] + [chain(f"c{n - 1}", "accept")]
    return table(*chains, inp("jump c0"))


def els(kind: str, typ: str, elements: str) -> str:
    return f"table ip t {{\n  {kind} s {{\n    type {typ}\n    elements = {{ {elements} }}\n  }}\n}}\n"


# (name, ruleset, the ids lint finds): every case here is also loaded by nft -f in the kernel test;
# an error id means nft refuses it, no error id that it loads.
CASES = [
    ("undefined-jump", table(inp("jump nochain")), {"PV151"}),
    ("defined-jump", table(chain("svc", "accept"), inp("jump svc")), set()),
    ("undefined-goto", table(inp("goto nochain")), {"PV151"}),
    ("undefined-anon-vmap", table(inp("tcp dport vmap { 80 : jump nochain }")), {"PV151"}),
    ("undefined-map-element",
     "table ip t {\n  map m {\n    type inet_service : verdict\n    elements = { 80 : jump nochain }\n  }\n"
     + inp("tcp dport vmap @m") + "}\n", {"PV151"}),
    ("undefined-set", table(inp("ip saddr @noset drop")), {"PV152"}),
    ("undefined-map", table(inp("tcp dport vmap @nomap")), {"PV152"}),
    ("loop-reached", table(chain("a", "jump b"), chain("b", "jump a"), inp("jump a")), {"PV153"}),
    ("loop-by-goto", table(chain("a", "goto b"), chain("b", "goto a"), inp("jump a")), {"PV153"}),
    ("self-loop-reached", table(chain("a", "ip saddr 10.0.0.1 jump a"), inp("jump a")), {"PV153"}),
    ("loop-through-vmap",
     "table ip t {\n  map m {\n    type inet_service : verdict\n    elements = { 80 : jump a }\n  }\n"
     + chain("a", "tcp dport vmap @m") + inp("jump a") + "}\n", {"PV153"}),
    ("loop-unreached", table(chain("a", "jump b"), chain("b", "jump a"), inp()), {"PV160"}),
    ("depth-15", depth(15), set()),
    ("depth-16", depth(16), {"PV154"}),
    ("depth-16-goto", depth(16, "goto"), {"PV154"}),
    ("dnat-in-filter", table(chain("f", "tcp dport 80 dnat to 10.0.0.1", base=FILTER_FWD)), {"PV155"}),
    ("dnat-via-filter", table(chain("svc", "dnat to 10.0.0.1"), chain("f", "jump svc", base=FILTER_FWD)),
     {"PV155"}),
    ("dnat-unreached", table(chain("svc", "dnat to 10.0.0.1"), chain("f", base=FILTER_FWD)), {"PV160"}),
    ("dnat-via-nat-and-filter", table(chain("svc", "dnat to 10.0.0.1"), chain("p", "jump svc", base=NAT_PRE),
                                      chain("f", "jump svc", base=FILTER_FWD)), {"PV155"}),
    ("dnat-via-nat-only", table(chain("svc", "dnat to 10.0.0.1"), chain("p", "jump svc", base=NAT_PRE),
                                chain("o", "jump svc", base=NAT_OUT)), set()),
    ("dnat-postrouting", table(chain("p", "dnat to 10.0.0.1", base=NAT_POST)), {"PV155"}),
    ("dnat-via-postrouting", table(chain("svc", "dnat to 10.0.0.1"), chain("p", "jump svc", base=NAT_POST)),
     {"PV155"}),
    ("dnat-input", table(chain("i", "dnat to 10.0.0.1", base=NAT_IN)), {"PV155"}),
    ("dnat-output", table(chain("o", "dnat to 10.0.0.1", base=NAT_OUT)), set()),
    ("snat-prerouting", table(chain("p", "snat to 10.0.0.1", base=NAT_PRE)), {"PV155"}),
    ("snat-input", table(chain("i", "snat to 10.0.0.1", base=NAT_IN)), set()),
    ("masquerade-prerouting", table(chain("p", "masquerade", base=NAT_PRE)), {"PV155"}),
    ("masquerade-output", table(chain("o", "masquerade", base=NAT_OUT)), {"PV155"}),
    ("masquerade-postrouting", table(chain("p", "masquerade", base=NAT_POST)), set()),
    ("redirect-postrouting", table(chain("p", "tcp dport 80 redirect to :8080", base=NAT_POST)), {"PV155"}),
    ("redirect-output", table(chain("o", "tcp dport 80 redirect to :8080", base=NAT_OUT)), set()),
    ("dnat-route-chain", table(chain("o", "dnat to 10.0.0.1", base="type route hook output priority 0; "
                                                                   "policy accept")), {"PV155"}),
    ("nat-chain-on-forward", table(chain("f", base="type nat hook forward priority 0; policy accept")),
     {"PV155"}),
    ("inet-dnat-via-nat", table(chain("svc", "meta nfproto ipv4 dnat ip to 10.0.0.1"),
                                chain("p", "jump svc", base=NAT_PRE), family="inet"), set()),
    ("reject-postrouting", table(chain("p", "reject", base=FILTER_POST)), {"PV156"}),
    ("reject-via-postrouting", table(chain("r", "reject"), chain("p", "jump r", base=FILTER_POST)), {"PV156"}),
    ("reject-prerouting", table(chain("p", "reject", base=FILTER_PRE)), set()),
    ("reject-prerouting-inet", table(chain("p", "reject", base=FILTER_PRE), family="inet"), set()),
    ("reject-forward", table(chain("f", "meta l4proto tcp reject with tcp reset", base=FILTER_FWD)), set()),
    ("jump-to-base", table(chain("i", base="type filter hook input priority 0; policy accept"),
                           chain("o", "jump i", base="type filter hook output priority 0; policy accept")),
     {"PV157"}),
    ("element-port-range", els("set", "inet_service", "70000"), {"PV158"}),
    ("element-address-as-port", els("set", "inet_service", "10.0.0.1"), {"PV158"}),
    ("element-concat-short", els("set", "ipv4_addr . inet_service", "10.0.0.1"), {"PV158"}),
    ("element-concat-long", els("set", "ipv4_addr . inet_service", "10.0.0.1 . 80 . 6"), {"PV158"}),
    ("element-name-as-address", els("set", "ipv4_addr", "eth0"), {"PV158"}),
    ("element-data-in-set", els("set", "ipv4_addr", "10.0.0.1 : 80"), {"PV158"}),
    ("element-no-data-in-map", els("map", "ipv4_addr : inet_service", "10.0.0.1"), {"PV158"}),
    ("element-number-in-vmap", els("map", "ipv4_addr : verdict", "10.0.0.1 : 80"), {"PV158"}),
    ("element-verdict-in-map", els("map", "inet_service : ipv4_addr", "80 : accept"), {"PV158"}),
    ("element-number-as-address", els("set", "ipv4_addr", "80"), set()),      # 0.0.0.80: nft takes it
    ("element-ifname", els("set", "ifname", '"eth0"'), set()),
    ("element-concat", els("set", "ipv4_addr . inet_service", "10.0.0.1 . 80"), set()),
    ("nat-policy-drop", table(chain("p", base="type nat hook prerouting priority dstnat; policy drop")),
     {"PV159"}),
    ("unused-chain", table(chain("unused", "drop"), inp()), {"PV160"}),
    ("chain-used-by-map-only",
     "table ip t {\n  map m {\n    type inet_service : verdict\n    elements = { 80 : goto svc }\n  }\n"
     + chain("svc", "accept") + inp("tcp dport vmap @m") + "}\n", set()),
    ("port-out-of-range", table(inp("tcp dport 99999 accept")), {"PV161"}),
    ("port-range-out-of-range", table(inp("udp sport 80-70000 accept")), {"PV161"}),
    ("port-set-out-of-range", table(inp("th dport { 80, 70000 } accept")), {"PV161"}),
    ("ttl-out-of-range", table(inp("ip ttl 300 accept")), {"PV161"}),
    ("mark-out-of-range", table(inp("meta mark 0x100000000 accept")), {"PV161"}),
    ("values-in-range", table(inp("tcp dport 65535 ip ttl 255 meta mark 0xffffffff ip protocol 6 accept")), set()),
    ("not-read-but-nft-knows-it", table(inp("tcp dport 22 socket transparent 1 accept")), {"PV162"}),
    ("kube-proxy-reject-chain", "table ip kube-proxy {\n" + chain("reject-chain", "reject") + "}\n", set()),
    ("script-forward-jump", SCRIPT_HEAD + "add rule ip t i jump later\nadd chain ip t later\n", {"PV151"}),
    ("script-forward-set", SCRIPT_HEAD + "add rule ip t i ip saddr @s drop\nadd set ip t s { type ipv4_addr ; }\n"
     + "add element ip t s { 1.2.3.4 }\n", {"PV152"}),
    ("script-forward-element", "add table ip t\nadd map ip t m { type inet_service : verdict ; }\n"
     + "add element ip t m { 80 : jump later }\nadd chain ip t later\n" + SCRIPT_HEAD.split("\n", 1)[1]
     + "add rule ip t i tcp dport vmap @m\n", {"PV151"}),
    ("script-in-order", "add table ip t\nadd chain ip t later\n" + SCRIPT_HEAD.split("\n", 1)[1]
     + "add rule ip t i jump later\n", set()),
    ("block-forward-jump", table(inp("jump later"), chain("later", "accept")), set()),
    ("block-forward-set", table(inp("ip saddr @s drop"), "  set s {\n    type ipv4_addr\n    elements = { 1.2.3.4 }\n"
                                + "  }\n"), set()),
]


def ids(text: str, **kw) -> set[str]:
    return {f.id for f in lint_text(text, "t.nft", **kw)}


@pytest.mark.parametrize("cid", NFT_IDS)
def test_each_nft_check_fires_on_its_example_and_not_on_the_near_miss(cid):
    check = REGISTRY[cid]
    assert cid in ids(check.bad + "\n"), check.bad
    assert ids(check.good + "\n") == set(), check.good


@pytest.mark.parametrize("name,text,expected", CASES, ids=[c[0] for c in CASES])
def test_case(name, text, expected):
    assert ids(text) == expected


def test_every_nft_id_has_a_case_and_the_registry_has_them_all():
    assert set(NFT_IDS) - {"PV150"} <= set().union(*(c[2] for c in CASES))
    assert {cid for cid in REGISTRY if "PV150" <= cid <= "PV162"} == set(NFT_IDS)
    assert all(REGISTRY[cid].severity == ("warning" if cid in ("PV159", "PV160", "PV162") else "error")
               for cid in NFT_IDS)


def test_a_typo_pktverify_does_not_read_is_a_warning_at_its_line():
    """nft refuses ``acept`` (a syntax error); pktverify cannot tell a typo from a statement it does
    not model, so it warns (PV162) rather than calling the ruleset refused."""
    [finding] = lint_text(table(inp("tcp dport 80 acept")), "t.nft")
    assert (finding.id, finding.line) == ("PV162", 4) and "'acept'" in finding.message


def test_findings_are_at_the_refused_line():
    text = table(chain("a", "jump b"), chain("b", "jump a"), inp("jump a", "jump nochain", "ip saddr @s drop"))
    found = sorted((f.line, f.id) for f in lint_text(text, "t.nft"))
    lines = text.split("\n")
    assert [(lines[n - 1].strip(), cid) for n, cid in found] == [
        ("jump a", "PV153"), ("jump nochain", "PV151"), ("ip saddr @s drop", "PV152")]


def test_parse_error_is_one_pv150_at_its_line():
    text = table(inp("tcp dport 80 accept", "ip saddr 10.0.0.300 drop"))
    [finding] = lint_text(text, "t.nft")
    assert (finding.id, finding.line) == ("PV150", 5) and "10.0.0.300" in finding.message


NFT_JSON = {"nftables": [
    {"metainfo": {"json_schema_version": 1}},
    {"table": {"family": "ip", "name": "t", "handle": 1}},
    {"chain": {"family": "ip", "table": "t", "name": "input", "handle": 1, "type": "filter", "hook": "input",
               "prio": 0, "policy": "accept"}},
    {"chain": {"family": "ip", "table": "t", "name": "svc/ns:p80.x", "handle": 2}},
    {"rule": {"family": "ip", "table": "t", "chain": "input", "handle": 3,
              "expr": [{"jump": {"target": "svc/ns:p81.x"}}]}},
]}


def test_json_ruleset_told_by_content_findings_name_the_entry():
    found = sorted((f.id, f.line, f.message) for f in lint_text(json.dumps(NFT_JSON), "r.json"))
    assert [(cid, line) for cid, line, _m in found] == [("PV151", 1), ("PV160", 1)]
    assert found[0][2].startswith("nftables[4]: jump svc/ns:p81.x in chain input")
    assert found[1][2].startswith("nftables[3]: chain svc/ns:p80.x")


def test_json_parse_error_is_a_finding():
    broken = {"nftables": NFT_JSON["nftables"][:2] + [{"chain": {"family": "ip", "table": "t"}}]}
    [finding] = lint_text(json.dumps(broken), "r.json")
    assert finding.id == "PV150" and "nftables[2]" in finding.message


def test_kube_proxy_corpus_errors_exactly_where_nft_refused():
    """Each corpus ruleset (as the test wrote it, and in dump order) has an error finding exactly
    when nft -f refused it (recorded in the corpus by nft 1.0.6); the first at nft's line."""
    corpus = SHARED / "corpus" / "kube-proxy-nft"
    checked = 0
    for path in sorted(corpus.glob("Test*.json")):
        case = json.loads(path.read_text())
        for key, check in (("nft_ruleset", "as_in_test"), ("nft_ruleset_dump_order", "dump_order")):
            seen = (case.get("nft_check") or {}).get(check)
            if not case.get(key) or not seen:
                continue
            errors = sorted(f.line for f in lint_text(case[key], path.name, nft=True) if f.severity == "error")
            assert bool(errors) != seen["accepted"], (path.name, check, errors)
            if errors:
                assert seen["errors"][0].startswith(f"FILE:{errors[0]}:"), (path.name, errors, seen["errors"][0])
            checked += 1
    assert checked > 20


# ------------------------------------------------------------------ the CLI
@pytest.fixture()
def files(tmp_path):
    def write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write


def test_cli_exit_codes_and_the_nft_option(files, capsys):
    clean = files("clean.nft", table(chain("svc", "accept"), inp("jump svc")))
    unused = files("unused.nft", table(chain("unused", "drop"), inp()))
    refused = files("refused.nft", table(inp("jump nochain")))
    assert main(["lint", clean]) == 0
    assert main(["lint", "--nft", clean]) == 0
    assert main(["lint", unused]) == 0 and main(["lint", unused, "--fail-on", "warning"]) == 1
    assert main(["lint", refused]) == 1
    assert main(["lint", "--nft", refused, clean]) == 1
    assert main(["lint", str(Path(clean).with_name("missing.nft"))]) == 2          # unreadable: bad input
    assert main(["lint"]) == 2
    capsys.readouterr()


def test_nft_option_reads_a_file_as_nft_whatever_it_starts_with(files, capsys):
    odd = files("odd.txt", "define x = 1\n" + table(inp()))
    main(["lint", "--format", "json", odd])
    assert {f["id"] for f in json.loads(capsys.readouterr().out)["findings"]} == {"PV100"}    # iptables-save
    main(["lint", "--format", "json", "--nft", odd])
    assert {f["id"] for f in json.loads(capsys.readouterr().out)["findings"]} == {"PV150"}


def test_cluster_mode_verifies_an_nft_ruleset(files, capsys):
    # The cluster verified with it (tests/check/test_lint_cluster_nft.py has the findings it gives).
    nft = files("r.nft", table(inp()))
    seed = Path(__file__).resolve().parents[2] / "rules" / "seed" / "cluster-iptables.yaml"
    assert main(["lint", nft, "--cluster", str(seed), "--node", "node1"]) == 0
    assert "clean" in capsys.readouterr().out


def test_select_and_ignore_on_the_nft_ids(files):
    path = files("r.nft", table(chain("unused", "drop"), chain("svc", "dnat to 10.0.0.1"),
                                chain("f", "jump svc", "jump nochain", base=FILTER_FWD)))
    every = {f.id for f in lint_files([path]).findings}
    assert every == {"PV151", "PV155", "PV160"}
    assert {f.id for f in lint_files([path], select_ids=["PV16"]).findings} == {"PV160"}
    assert {f.id for f in lint_files([path], select_ids=["PV15"]).findings} == {"PV151", "PV155"}
    assert {f.id for f in lint_files([path], ignore_ids=["PV155", "PV160"]).findings} == {"PV151"}
    assert {f.id for f in lint_files([path], select_ids=["PV2"]).findings} == set()


def test_inline_suppression_on_an_nft_line(files):
    text = table(chain("unused", "drop"), inp()).replace("chain unused {", "chain unused { # pktverify: ignore[PV160]")
    assert lint_files([files("r.nft", text)]).findings == []


HOSTILE = "svc/ns:p80.x"


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github"])
def test_output_formats_with_chain_names_holding_slash_dot_colon(files, capsys, fmt):
    doc = json.loads(json.dumps(NFT_JSON).replace("svc/ns:p80.x", HOSTILE + "\\n::error::x%0A,y"))
    path = files("r.json", json.dumps(doc))
    assert main(["lint", "--format", fmt, path]) == 1
    out = capsys.readouterr().out
    if fmt in ("json", "sarif"):
        parsed = json.loads(out)
        messages = ([f["message"] for f in parsed["findings"]] if fmt == "json"
                    else [r["message"]["text"] for r in parsed["runs"][0]["results"]])
        assert any("svc/ns:p81.x" in m for m in messages) and any(HOSTILE in m for m in messages)
    else:
        assert "svc/ns:p81.x" in out and HOSTILE in out
    lines = out.splitlines()
    assert not any(line.startswith("::error::x") or line.lstrip().startswith("::error::") for line in lines)
    if fmt == "github":
        assert all(line.startswith(("::error ", "::warning ")) for line in lines), lines
        assert len(lines) == 2
