"""Small helpers for building nodes and packets in tests."""

from __future__ import annotations

from pktverify.eval.node_trace import NodeTracer
from pktverify.load.node import build_node
from pktverify.model.addresses import format_ip, parse_ip
from pktverify.model.packet import PROTO_NUMBERS, Packet
from pktverify.parse.ipaddr import parse_ip_addr
from pktverify.parse.iproute import parse_routes
from pktverify.parse.iptables_save import parse_iptables_save

from .conftest import STANDARD_ADDRS, STANDARD_ROUTES


def tables(nat: str = "", filter: str = "", mangle: str = "", raw: str = "", security: str = "") -> str:
    """An iptables-save text with the given rule lines per table (chains declared as needed)."""
    out = []
    for name, body in (("raw", raw), ("mangle", mangle), ("nat", nat), ("filter", filter), ("security", security)):
        if not body.strip():
            continue
        lines = [line.strip() for line in body.strip().splitlines()]
        decls = [line for line in lines if line.startswith(":")]
        rules = [line for line in lines if not line.startswith(":")]
        out.append(f"*{name}\n" + "\n".join(decls + rules) + "\nCOMMIT\n")
    return "".join(out) or "*filter\nCOMMIT\n"


def tracer(iptables: str, addrs: str = STANDARD_ADDRS, routes: str = STANDARD_ROUTES, **kw) -> NodeTracer:
    ruleset = parse_iptables_save(iptables, source="rules.txt", lenient=kw.pop("lenient", False))
    dump = parse_routes(routes)
    node = build_node("node", parse_ip_addr(addrs), dump.routes, ruleset, legacy_routes=dump.legacy, **kw)
    return NodeTracer(node)


def pkt(src: str, dst: str, dport: int = 80, proto: str = "tcp", sport: int = 40000, **kw) -> Packet:
    return Packet(PROTO_NUMBERS[proto], parse_ip(src), parse_ip(dst), sport, dport, **kw)


def only(trace):
    """The single outcome of a deterministic trace."""
    assert len(trace.outcomes) == 1, [(o.verdict, o.probability, o.packet.describe()) for o in trace.outcomes]
    return trace.outcomes[0]


def endpoint(outcome) -> str:
    return f"{format_ip(outcome.packet.dst)}:{outcome.packet.dport}"


def assert_fast_equals_exhaustive(cluster, walker) -> None:
    """Checking flows by class (the default) and one by one give, per invariant, the same verdict,
    the same number of flows checked and the same number of violating flows (a class violation
    counts for its class)."""
    from pktverify.check.invariants import check_all

    fast = check_all(cluster, walker)
    slow = check_all(cluster, walker, exhaustive=True)
    for f, s in zip(fast, slow):
        assert (f.name, f.holds, f.checked) == (s.name, s.holds, s.checked)
        assert sum(v.covers for v in f.violations) == len(s.violations), (f.name, [v.message for v in s.violations])
