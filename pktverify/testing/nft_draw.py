"""Random ``nft -f`` scripts aimed at the kernel lab's node, for property tests and the kernel campaign.

Several tables (``ip`` and ``inet``), each with base chains on the lab's hooks at drawn priorities
(equal ones too: the kernel runs those in reverse registration order), user chains reached by
jump and goto (with return; names with '/' and '.' as kube-proxy writes them, and ':'), named sets (interval,
concatenations), dynamic sets the packet path adds to and deletes from, maps, verdict maps, numgen
random vmaps and maps, jhash and symhash (vmaps, marks, dnat maps), payload / meta / ct / fib
matches, ct zone set and matches, notrack, marks, and nat chains with dnat, snat, masquerade and
redirect. Scripts are in knftables' command form (``add table``, ``add chain``,
``add rule``, ...), so the order of ``add chain`` is the order the kernel registers base chains.
Every draw loads (tests/kernel/test_nft_draw_loads.py): the choices keep to what nft 1.0.6 and
the kernel accept (nat chains above priority -200, ``dstnat`` only on prerouting, ``srcnat`` only
on postrouting, reject not on postrouting, NAT statements only where the kernel takes them,
no chain loops). :func:`mixed_rulesets` adds an optional iptables-restore text on the same hooks.
Addresses and ports come from the pool the lab's probes use, so rules both hit and miss.
"""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["nft_rulesets", "mixed_rulesets", "iptables_beside"]

_ADDRS = ["10.96.0.10", "10.96.0.11", "192.168.0.40", "10.0.0.20", "192.168.0.2", "10.0.0.1", "10.0.0.9",
          "192.168.0.9"]
_NETS = ["10.0.0.0/24", "192.168.0.0/24", "10.96.0.0/16", "192.168.0.40-192.168.0.45", "10.0.0.5-10.0.0.30"]
_PORTS = ["80", "443", "8080", "53"]
# hook -> (filter priorities, nat priorities): names with offsets, and numbers around iptables' own.
_FILTER_PRIOS = ["raw", "mangle", "filter", "security", "0", "-10", "10", "filter + 5", "-150", "-200"]
_NAT_PRIOS = {"prerouting": ["dstnat", "dstnat + 5", "dstnat - 10", "-100", "-150", "-90"],
              "output": ["-100", "-90", "-150", "0"],
              "postrouting": ["srcnat", "srcnat - 5", "100", "110", "200"]}
_REJECTS = ["reject", "reject with icmp type host-prohibited", "meta l4proto tcp reject with tcp reset"]
_IIF = ['"eth0"', '"cni0"', '"eth*"']
_OIF = ['"eth0"', '"cni0"', '"c*"']
_IN_HOOKS = ("prerouting", "input", "forward")           # hooks with an input interface
_OUT_HOOKS = ("forward", "output", "postrouting")        # hooks with an output interface
_SETS = {
    "s_addr": ("type ipv4_addr ; flags interval ;", "192.168.0.40-192.168.0.45, 10.96.0.0/24, 10.0.0.9"),
    "s_cat": ("type ipv4_addr . inet_proto . inet_service ;", "10.96.0.10 . tcp . 80, 192.168.0.40 . udp . 53"),
    "s_icat": ("type ipv4_addr . inet_service ; flags interval ;", "10.0.0.0/24 . 80-443, 192.168.0.0/24 . 53"),
}
# Dynamic sets that rules add to from the packet path (kube-proxy's session affinity): empty, or
# holding the pod client (elements drawn per table).
# (Declared without `dynamic`, which nft adds when a rule updates the set (nft 1.0.6's JSON leaves it out), and
# without a default timeout (its listing leaves `flags timeout` out then).)
_DYN_SETS = {"s_dyn": "type ipv4_addr ; flags timeout ;", "s_dync": "type ipv4_addr . inet_service ;"}
_DYN_ELEMS = {"s_dyn": ["", "", "10.0.0.9", "192.168.0.9"], "s_dync": ["", "", "10.0.0.9 . 80"]}
# User chain names as kube-proxy writes them ('/' and '.'), and with ':' (nft 1.0.6's scripts take a ':' only in
# a name that reads as an IPv6 address: `add chain ip t svc:a` is a syntax error, quoted names too).
_USER_NAMES = [("u0", "u1"), ("service-ULMVA6XW-ns1/svc1/tcp/p80", "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.0.0.20/80"),
               ("dead:beef", "ab:cd")]
_MAPS = {
    "m_nat": ("type ipv4_addr : ipv4_addr ;", "10.96.0.10 : 192.168.0.41, 10.96.0.11 : 10.0.0.20"),
    "m_vm": ("type ipv4_addr : verdict ;", "192.168.0.40 : drop, 10.96.0.11 : accept, 10.0.0.20 : jump u1"),
    "m_pvm": ("type inet_proto . inet_service : verdict ;", "tcp . 80 : accept, udp . 53 : drop"),
}


@st.composite
def _match(draw, hook: str, proto: str) -> str:
    """One match valid on ``hook`` ("user": a user chain, which base chains of any hook reach); a
    protocol it names is the rule's ``proto`` (nft refuses a rule naming two)."""
    neg = draw(st.sampled_from(["", "!= "]))
    kinds = ["saddr", "daddr", "anon", "range", "l4proto", "port", "ports", "th", "mark", "ctstate", "ctdir",
             "ctstatus", "set", "cat", "icat", "fib", "ttl", "protocol", "dyn", "dync", "ctzone"]
    if hook in _IN_HOOKS:
        kinds.append("iif")
    if hook in _OUT_HOOKS:
        kinds.append("oif")
    kind = draw(st.sampled_from(kinds))
    pick = lambda xs: draw(st.sampled_from(xs))       # noqa: E731
    if kind in ("saddr", "daddr"):
        return f"ip {kind} {neg}{pick(_ADDRS)}{pick(['', '/24', '/16'])}"
    if kind == "anon":
        return f"ip {pick(['saddr', 'daddr'])} {neg}{{ {pick(_ADDRS)}, {pick(_NETS)} }}"
    if kind == "range":
        return f"ip daddr {neg}{pick(['10.0.0.5-10.0.0.30', '192.168.0.30-192.168.0.50', '10.96.0.0-10.96.0.10'])}"
    if kind == "l4proto":
        return f"meta l4proto {proto}"
    if kind == "port":
        return f"{proto} dport {neg}{pick(_PORTS)}"
    if kind == "ports":
        return f"{proto} {pick(['dport', 'sport'])} {neg}{{ {pick(_PORTS)}, {pick(_PORTS)}, 1000-2000 }}"
    if kind == "th":
        return f"meta l4proto {proto} th dport {neg}{pick(['80-443', '53', '8080'])}"
    if kind == "mark":
        return f"meta mark {neg}{pick(['0x1', '0x2', '0x0'])}"
    if kind == "ctstate":
        return f"ct state {pick(['new', 'established,related', 'new,established', 'invalid'])}"
    if kind == "ctdir":
        return f"ct direction {pick(['original', 'reply'])}"
    if kind == "ctstatus":
        return f"ct status {neg}{pick(['dnat', 'snat', 'confirmed'])}"
    if kind == "set":
        return f"ip {pick(['saddr', 'daddr'])} {'!= ' if neg else ''}@s_addr"
    if kind == "dyn":
        return f"ip {pick(['saddr', 'saddr', 'daddr'])} {'!= ' if neg else ''}@s_dyn"
    if kind == "dync":
        return f"ip saddr . {proto} dport @s_dync"
    if kind == "ctzone":
        return f"ct {pick(['', 'original ', 'reply '])}zone {neg}{pick(['0', '5', '7'])}"
    if kind == "cat":
        return "ip daddr . meta l4proto . th dport @s_cat"
    if kind == "icat":
        return "ip saddr . th dport @s_icat"
    if kind == "fib":
        return f"fib daddr type {neg}{pick(['local', 'unicast', 'broadcast'])}"
    if kind == "ttl":
        return f"ip ttl {neg}{pick(['64', '63', '1-10'])}"
    if kind == "protocol":
        return f"ip protocol {proto}"
    if kind == "iif":
        return f"iifname {neg}{pick(_IIF)}"
    return f"oifname {neg}{pick(_OIF)}"


def _filter_actions(hook: str, user: list[str]) -> list[str]:
    """Statements and verdicts of a filter rule on ``hook`` (``user``: chains it may jump to; @m_vm
    jumps to u1, so u1 itself may not use it)."""
    # Non-final statements weigh more: several base chains each ending packets would leave few to forward.
    out = ["accept", "accept", "drop", "counter", "counter", "meta mark set 0x1", "meta mark set 0x1",
           "meta mark set meta mark | 0x2", "ct mark set 0x5",
           "continue", "meta l4proto . th dport vmap @m_pvm",
           "numgen random mod 2 vmap { 0 : accept, 1 : drop }",
           "numgen random mod 3 offset 1 vmap { 1 : accept, 2 : drop, 3 : continue }",
           "ip daddr vmap { 192.168.0.40 : drop, 10.96.0.10 : accept }",
           "update @s_dyn { ip saddr timeout 10s }", "add @s_dyn { ip saddr }", "add @s_dyn { ip daddr }",
           "delete @s_dyn { ip saddr }",
           "add @s_dync { ip saddr . PROTO dport }",
           "jhash ip saddr . PROTO sport mod 2 seed 0x7 offset 3 vmap { 3 : accept, 4 : drop }",
           "symhash mod 3 vmap { 0 : accept, 1 : drop, 2 : continue }",
           "meta mark set jhash ip saddr . ip daddr mod 4", "meta mark set symhash mod 2 offset 1"]
    if hook in ("prerouting", "output"):        # before conntrack when the priority is raw or -200
        out += ["ct zone set 5", "ct original zone set 7", "ct zone set 5 notrack", "notrack"]
    if hook in ("prerouting", "input", "forward", "output"):      # the kernel refuses reject on postrouting
        out.append("REJECT")        # one of _REJECTS, drawn by _rules
    if hook != "user" or user:
        out.append("ip daddr vmap @m_vm")
    if hook == "user":
        out += ["return", "return", "meta mark set 0x2 return"]
    out += [f"{how} {chain}" for chain in user for how in ("jump", "goto")]
    return out


def _nat_actions(hook: str, fam: str) -> list[str]:
    """Statements of a nat rule on ``hook`` in a table of family ``fam`` (inet needs ``dnat ip``)."""
    ip = " ip" if fam == "inet" else ""
    if hook == "postrouting":
        return ["masquerade", "masquerade random", f"snat{ip} to 192.168.0.60", f"snat{ip} to 192.168.0.60-192.168.0.70",
                f"meta l4proto tcp snat{ip} to 192.168.0.60:20000-20100", "meta mark set 0x2", "accept", "return"]
    return [f"dnat{ip} to 192.168.0.40", f"meta l4proto tcp dnat{ip} to 192.168.0.40:8080",
            f"dnat{ip} to 192.168.0.20-192.168.0.30", f"dnat{ip} to ip daddr map @m_nat",
            f"dnat{ip} to ip daddr map {{ 10.96.0.10 : 10.0.0.20, 10.96.0.11 : 192.168.0.41 }}",
            f"dnat{ip} to numgen random mod 2 map {{ 0 : 192.168.0.40, 1 : 192.168.0.41 }}",
            f"dnat{ip} to numgen inc mod 2 map {{ 0 : 192.168.0.40, 1 : 10.0.0.20 }}",
            f"dnat{ip} to jhash ip saddr . ip daddr mod 2 map {{ 0 : 192.168.0.40, 1 : 192.168.0.41 }}",
            f"dnat{ip} to symhash mod 2 map {{ 0 : 192.168.0.40, 1 : 10.0.0.20 }}",
            "redirect", "meta l4proto tcp redirect to :15001", "meta mark set 0x1", "accept", "drop"]


@st.composite
def _rules(draw, hook: str, actions: list[str], max_size: int = 3) -> list[str]:
    """Up to ``max_size`` rules: 0-2 matches and one action; a rule names one protocol at most."""
    out = []
    for _ in range(draw(st.integers(0, max_size))):
        proto = draw(st.sampled_from(["tcp", "udp"]))
        matches = draw(st.lists(_match(hook, proto), max_size=2))
        action = draw(st.sampled_from(actions))
        if action == "REJECT":
            action = draw(st.sampled_from(_REJECTS))
        action = action.replace("l4proto tcp", f"l4proto {proto}").replace("PROTO", proto)
        if proto == "udp" and "tcp reset" in action:
            action = "reject"
        out.append(" ".join([*matches, action]))
    return out


@st.composite
def _table(draw, name: str, client: str) -> list[str]:
    """The commands of one table: its sets and maps, user chains, then base chains and their rules."""
    fam = draw(st.sampled_from(["ip", "ip", "inet"]))
    t = f"{fam} {name}"
    u0, u1 = draw(st.sampled_from(_USER_NAMES))
    lines = [f"add table {t}", f"add chain {t} {u0}", f"add chain {t} {u1}"]
    for set_name, (decl, elems) in _SETS.items():
        lines += [f"add set {t} {set_name} {{ {decl} }}", f"add element {t} {set_name} {{ {elems} }}"]
    for set_name, decl in _DYN_SETS.items():
        lines.append(f"add set {t} {set_name} {{ {decl} }}")
        elems = draw(st.sampled_from(_DYN_ELEMS[set_name]))
        lines += [f"add element {t} {set_name} {{ {elems} }}"] if elems else []
    for map_name, (decl, elems) in _MAPS.items():
        lines += [f"add map {t} {map_name} {{ {decl} }}", f"add element {t} {map_name} {{ {elems.replace('u1', u1)} }}"]
    # u1 reaches nothing, u0 only u1: no loops; user chains hold only what every hook allows.
    lines += [f"add rule {t} {u1} {r}" for r in draw(_rules("user", _filter_actions("user", []), 2))]
    lines += [f"add rule {t} {u0} {r}" for r in draw(_rules("user", _filter_actions("user", [u1]), 2))]
    hooks = {"pod": ["prerouting", "forward", "input", "postrouting"], "lan": ["prerouting", "forward", "input",
             "postrouting"], "node": ["output", "postrouting", "input"]}[client]
    for i in range(draw(st.integers(1, 3))):
        hook = draw(st.sampled_from(hooks))
        nat = hook in _NAT_PRIOS and draw(st.booleans())
        prio = draw(st.sampled_from(_NAT_PRIOS[hook] if nat else _FILTER_PRIOS))
        policy = "accept" if nat else draw(st.sampled_from(["accept", "accept", "accept", "accept", "drop"]))
        if client == "node" and hook == "input":
            policy = "accept"
        kind = "nat" if nat else "filter"
        lines.append(f"add chain {t} b{i} {{ type {kind} hook {hook} priority {prio} ; policy {policy} ; }}")
        actions = _nat_actions(hook, fam) + ([f"jump {u0}", f"goto {u1}"] if hook != "postrouting" else []) if nat \
            else _filter_actions(hook, [u0, u1])
        lines += [f"add rule {t} b{i} {r}" for r in draw(_rules(hook, actions))]
    return lines


@st.composite
def nft_rulesets(draw, client: str = "pod") -> str:
    """An ``nft -f`` script of 1-3 tables for the lab's node, aimed at probes from ``client``."""
    lines: list[str] = []
    for i in range(draw(st.integers(1, 3))):
        lines += draw(_table(f"t{i}", client))
    return "\n".join(lines) + "\n"


_IPT_FILTER = ["-A FORWARD -d 192.168.0.40/32 -j DROP", "-A FORWARD -m mark --mark 0x1 -j ACCEPT",
               "-A INPUT -p tcp --dport 80 -j REJECT", "-A OUTPUT -d 10.0.0.20/32 -j DROP",
               "-A FORWARD -j MARK --set-mark 0x2", "-A FORWARD -p udp -j ACCEPT"]
_IPT_NAT = ["-A PREROUTING -d 10.96.0.10/32 -j DNAT --to-destination 192.168.0.42",
            "-A PREROUTING -p tcp --dport 443 -j REDIRECT --to-ports 15002",
            "-A OUTPUT -d 10.96.0.11/32 -j DNAT --to-destination 10.0.0.21",
            "-A POSTROUTING -o eth0 -j MASQUERADE", "-A POSTROUTING -j SNAT --to-source 192.168.0.61"]


@st.composite
def iptables_beside(draw) -> str:
    """A small iptables-restore text (filter and nat) on the hooks the nft draws use too."""
    filt = draw(st.lists(st.sampled_from(_IPT_FILTER), max_size=2))
    nat = draw(st.lists(st.sampled_from(_IPT_NAT), max_size=2))
    policy = draw(st.sampled_from(["ACCEPT", "ACCEPT", "ACCEPT", "DROP"]))
    return ("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
            + "".join(r + "\n" for r in nat) + "COMMIT\n"
            f"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD {policy} [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            + "".join(r + "\n" for r in filt) + "COMMIT\n")


@st.composite
def mixed_rulesets(draw, client: str = "pod") -> tuple[str, str | None]:
    """An nft script and, in about a third of the draws, an iptables-restore text loaded before it."""
    nft = draw(nft_rulesets(client))
    return nft, (draw(iptables_beside()) if draw(st.integers(0, 2)) == 0 else None)
