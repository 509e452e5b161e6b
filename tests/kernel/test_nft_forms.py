"""The three forms of one nftables ruleset read into one model, checked on what the kernel lists.

Each script (every kube-proxy-nft corpus ruleset, and hand-written ones with every construct the
readers know) is loaded with ``nft -f`` in a network namespace of this test's own, listed back as
``nft -a list ruleset`` and ``nft -j list ruleset``, and the script, the listing and the JSON are
read: the three models must be equal (records compare without handles, lines and rule text), and
the listing's and the JSON's handles must agree. nft runs only through ``ip netns exec``: the
host's ruleset is never touched.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from pktverify.errors import InputError
from pktverify.model import nft as m
from pktverify.parse.nft_json import parse_nft_json
from pktverify.parse.nft_text import parse_nft_text

from ..conftest import SHARED
from .nft_netns import netns_fixture
from .nft_netns import nft as _nft

pytestmark = pytest.mark.kernel

CORPUS = SHARED / "corpus" / "kube-proxy-nft"

# Every construct of the rule grammar, in listing (block) form. nft 1.0.6 here had no flowtable
# or queue support in the kernel (both are unit-tested from strings), and reads no ':' in a chain
# name, quoted or not (kube-proxy's names use '/' and '.').
HAND = """\
table ip t1 {
	set s4 {
		type ipv4_addr
		flags interval
		elements = { 10.0.0.0/8, 192.168.1.1-192.168.1.9, 172.16.0.1 }
	}
	set cs {
		type ipv4_addr . inet_proto . inet_service
		flags constant
		elements = { 10.1.1.1 . tcp . 80, 10.1.1.2 . udp . 53 }
	}
	set dyn {
		type ipv4_addr
		size 65535
		flags dynamic,timeout
		timeout 3h
	}
	map m1 {
		type ipv4_addr : ipv4_addr
		elements = { 10.0.0.1 : 10.9.9.9 }
	}
	map pm {
		type inet_service : ipv4_addr . inet_service
		elements = { 80 : 10.0.0.2 . 8080 }
	}
	map vm {
		type ipv4_addr . inet_service : verdict
		elements = { 10.0.0.3 . 22 : drop, 10.0.0.4 . 23 : jump c2 }
	}
	map mk {
		type mark : ipv4_addr
		elements = { 0x1 : 10.5.5.5 }
	}
	counter cnt1 {
	}
	chain pre {
		type nat hook prerouting priority dstnat + 5; policy accept;
		ip saddr 10.0.0.0/8 tcp dport { 80, 443 } counter
		ip daddr . meta l4proto . th dport vmap { 10.0.0.9 . tcp . 80 : accept }
		ip daddr 10.0.0.1 tcp dport 80 dnat to 10.0.0.2:8080
		ip daddr 10.0.0.10 meta l4proto tcp dnat to 10.0.0.11-10.0.0.12:80-90 persistent,random
		dnat to ip daddr map @m1
		dnat to tcp dport map @pm
		meta mark 0x1 dnat to meta mark map @mk
		tcp dport 8081 redirect to :8080
		udp dport 53 dnat to numgen inc mod 2 map { 0 : 10.0.0.20, 1 : 10.0.0.21 }
		dnat to jhash ip saddr . tcp sport mod 2 seed 0xdead map { 0 : 10.0.0.22, 1 : 10.0.0.23 }
		ip daddr . meta l4proto . tcp dport @cs accept
	}
	chain post {
		type nat hook postrouting priority srcnat - 3; policy accept;
		oifname "eth*" masquerade random,persistent
		ip saddr 10.0.0.0/8 snat to 1.2.3.4
		ip saddr 10.1.0.0/16 meta l4proto udp snat to 1.2.3.4-1.2.3.9:1000-2000 fully-random
		meta l4proto tcp masquerade to :1024-65535
	}
	chain fwdc {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		ct state invalid drop
		ct status dnat accept
		ct direction original ct mark 0x5 accept
		ct original ip saddr 10.0.0.1 accept
		ct zone 3 accept
		fib daddr type local accept
		fib saddr . iif oif missing drop
		fib daddr . mark type != unicast drop
		meta l4proto icmp icmp type echo-request limit rate 10/second accept
		icmp type destination-unreachable icmp code port-unreachable accept
		tcp flags & (syn|ack) == syn counter packets 0 bytes 0 log prefix "syn " level info
		tcp flags syn / syn,ack,rst drop
		tcp flags ! syn,ack accept
		ct status ! dnat accept
		ct state ! established,related accept
		ct status ! dnat,0x100 drop
		ct status & dnat == dnat accept
		ct status & 0x100 == 0x100 drop
		ct status & 0x100 != 0x100 accept
		ct status 0x100,dying / 0x100,dying drop
		ct status != dnat / snat,dnat accept
		ct status 0x4000 / 0x100,0x4000 drop
		ct status 0x100,0x4000 accept
		tcp flags syn / fin,syn,rst,ack drop
		iifname "lo" accept
		iif "lo" oif "lo" accept
		meta skuid 1000 meta skgid 1000 accept
		meta pkttype broadcast drop
		ip ttl < 5 drop
		ip length 100-200 drop
		ip dscp cs1 accept
		ip protocol != { tcp, udp } drop
		ip saddr != @s4 drop
		ip saddr @dyn accept
		update @dyn { ip saddr timeout 1h } accept
		add @dyn { ip daddr }
		meta mark set 0x10
		meta mark set meta mark & 0xff00 | 0x4
		ct mark set meta mark
		ct mark set 0x7
		sctp dport 9 reject with icmp type host-unreachable
		tcp dport 10 reject with tcp reset
		udp dport 11 reject with icmp type admin-prohibited
		udp dport 12 reject
		quota over 10 mbytes drop
		ct count over 20 drop
		ip saddr 1.1.1.3 goto c2
		ip saddr 1.1.1.4 jump c2
		ip saddr 1.1.1.5 continue
		meta l4proto tcp tcp dport 1-1023 counter name "cnt1"
		numgen random mod 3 offset 1 vmap { 1 : accept, 2 : drop, 3 : jump c2 }
		symhash mod 2 vmap { 0 : accept, 1 : drop }
		ip daddr vmap @vm2
		ip saddr 9.9.9.9 accept comment "a comment"
		ip daddr 9.9.9.9 notrack
		meta iifname . ip saddr { "eth0" . 1.2.3.4 } drop
	}
	map vm2 {
		type ipv4_addr : verdict
		elements = { 10.0.0.5 : accept }
	}
	chain c2 {
		return
	}
	chain raw {
		type filter hook prerouting priority raw; policy accept;
		ip daddr 9.9.9.8 notrack
		ct zone set 4
		ip saddr 1.2.3.4 ct zone set 7
	}
	chain mangle {
		type route hook output priority mangle; policy accept;
		meta mark set 0x1
	}
}
table inet fw {
	chain in {
		type filter hook input priority 10; policy accept;
		meta nfproto ipv4 ip saddr 1.1.1.1 drop
		tcp dport ssh accept
	}
}
table bridge br {
	chain f {
		type filter hook forward priority -200; policy accept;
	}
}
table netdev nd {
	chain ing {
		type filter hook ingress device "lo" priority -500; policy accept;
	}
}
"""

# Script commands as knftables writes them, plus insert / flush / delete, across families.
COMMANDS = """\
add table inet fw
add chain inet fw in { type filter hook input priority filter + 10 ; policy drop ; }
add chain inet fw c/x.y_z
add set inet fw allowed { type ipv4_addr . inet_service ; flags interval ; }
add element inet fw allowed { 10.0.0.0/8 . 22, 192.168.1.1-192.168.1.20 . 1000-2000 }
add rule inet fw in meta nfproto ipv4 ip saddr . tcp dport @allowed accept
add rule inet fw in jump c/x.y_z
insert rule inet fw in ct state established,related accept
add rule inet fw c/x.y_z meta l4proto tcp reject with tcp reset
add rule inet fw c/x.y_z reject
add rule inet fw c/x.y_z ip protocol udp udp dport 53 accept
add rule inet fw c/x.y_z tcp flags & (fin|syn|rst|ack) == syn counter
add rule inet fw c/x.y_z ct status ! dnat accept
add rule inet fw c/x.y_z tcp flags & (syn|ack) == 0 accept
add rule inet fw c/x.y_z tcp dport ssh ip daddr 10.1.0.0-10.1.255.255 ip saddr { 10.2.0.0/16 } accept
add chain inet fw gone
add rule inet fw gone drop
flush chain inet fw gone
delete chain inet fw gone
add table ip nat2
add chain ip nat2 post { type nat hook postrouting priority srcnat ; }
add rule ip nat2 post oifname "eth0" masquerade
add rule ip nat2 post ip saddr 10.0.0.0/8 meta l4proto tcp snat to 1.2.3.4:1000-2000
add map ip nat2 m { type ipv4_addr : ipv4_addr ; }
add element ip nat2 m { 10.0.0.1 : 1.1.1.1 }
add chain ip nat2 pre { type nat hook prerouting priority dstnat ; }
add rule ip nat2 pre dnat to ip daddr map @m
add rule ip nat2 pre mark set mark and 0xff00 or 0x4
add element ip nat2 m { 10.0.0.2 : 1.1.1.2 }
delete element ip nat2 m { 10.0.0.2 }
add set ip nat2 aff { type ipv4_addr ; flags timeout ; timeout 1h ; }
add rule ip nat2 pre ip saddr @aff accept
add rule ip nat2 pre update @aff { ip saddr }
add table bridge br
add chain bridge br f { type filter hook forward priority filter + 1 ; }
add table ip gone
delete table ip gone
"""


netns = netns_fixture("pv-nft", scope="module", lab=False)      # this module's own namespace


def _load(ns: str, script: str) -> subprocess.CompletedProcess:
    assert _nft(ns, "flush", "ruleset").returncode == 0
    return _nft(ns, "-f", "-", script=script)


def _three_forms(ns: str, script: str, name: str) -> None:
    listing = _nft(ns, "-a", "list", "ruleset").stdout
    dump = _nft(ns, "-j", "list", "ruleset").stdout
    from_script = parse_nft_text(script, f"{name}.nft")
    from_text = parse_nft_text(listing, f"{name}.txt")
    from_json = parse_nft_json(dump, f"{name}.json")
    assert from_text.form == "text" and from_json.form == "json"
    assert from_script == from_text, name
    assert from_text == from_json, name
    for t_text, t_json in zip(from_text.tables, from_json.tables):
        assert t_text.handle == t_json.handle
        for c_text, c_json in zip(t_text.chains, t_json.chains):
            assert c_text.handle == c_json.handle
            assert [r.handle for r in c_text.rules] == [r.handle for r in c_json.rules]
            assert [r.text for r in c_text.rules] == [r.text for r in c_json.rules]
            lines = listing.split("\n")
            for rule in c_text.rules:
                assert rule.text and rule.text in lines[rule.line - 1], (name, rule.text)


@pytest.mark.parametrize("name,script", [("hand", HAND), ("commands", COMMANDS)])
def test_hand_written_forms_agree(netns, name, script):
    loaded = _load(netns, script)
    assert loaded.returncode == 0, loaded.stderr
    _three_forms(netns, script, name)


def _corpus_rulesets() -> list:
    if not CORPUS.is_dir():
        return []
    out = []
    for path in sorted(CORPUS.glob("*.json")):
        case = json.loads(path.read_text())
        if case.get("nft_ruleset"):
            out.append(pytest.param(case, id=path.stem))
    return out


@pytest.mark.parametrize("case", _corpus_rulesets())
def test_kube_proxy_corpus_forms_agree(netns, case):
    """The test-order text declares some chains after the rules that jump to them, which nft
    refuses (corpus README); the same objects in knftables' dump order load."""
    script = case["nft_ruleset"]
    loaded = _load(netns, script)
    if loaded.returncode != 0:
        assert "No such file or directory" in loaded.stderr
        script = case["nft_ruleset_dump_order"]
        loaded = _load(netns, script)
    assert loaded.returncode == 0, loaded.stderr
    _three_forms(netns, script, case["source"]["test_function"])


def test_corpus_is_there():
    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} is missing")
    assert len(_corpus_rulesets()) >= 14


def test_terse_listing_is_refused(netns):
    assert _load(netns, HAND).returncode == 0
    terse = _nft(netns, "-t", "list", "ruleset").stdout
    with pytest.raises(InputError, match="terse listing"):
        parse_nft_text(terse, "terse.txt")


def test_iptables_nft_tables(netns):
    """Tables iptables-nft wrote: the JSON shows their matches and targets as ``xt`` statements
    (names only: the arguments are read from iptables-save); the listing translates what it can
    (``ct state new``, ``dnat to``; comments dropped) and shows the rest as ``xt match NAME``."""
    if shutil.which("iptables-nft") is None:
        pytest.skip("iptables-nft is not installed")
    assert _nft(netns, "flush", "ruleset").returncode == 0
    for rule in (["-A", "INPUT", "-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "c", "-j",
                  "ACCEPT"],
                 ["-A", "INPUT", "-m", "recent", "--name", "x", "--rcheck", "-j", "DROP"],
                 ["-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination",
                  "10.0.0.1:80"]):
        subprocess.run(["ip", "netns", "exec", netns, "iptables-nft", *rule], check=True, capture_output=True)
    listing = parse_nft_text(_nft(netns, "list", "ruleset").stdout, "ipt.txt")
    dump = parse_nft_json(_nft(netns, "-j", "list", "ruleset").stdout, "ipt.json")
    json_xt = {s.name for t in dump.tables for c in t.chains for r in c.rules for s in r.exprs
               if isinstance(s, m.Xt)}
    text_xt = {s.name for t in listing.tables for c in t.chains for r in c.rules for s in r.exprs
               if isinstance(s, m.Xt)}
    assert {"conntrack", "comment", "recent", "DNAT"} <= json_xt
    assert "recent" in text_xt and "conntrack" not in text_xt
