"""Route and address dumps in every accepted format, and the kernel's derived routes."""

from __future__ import annotations

import json

import pytest

from pktverify.errors import InputError
from pktverify.model.addresses import parse_ip
from pktverify.parse.ipaddr import parse_ip_addr
from pktverify.parse.iproute import parse_routes

from ..helpers import only, pkt, tables, tracer

ADDR_JSON = json.dumps([
    {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"], "addr_info": [
        {"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}]},
    {"ifindex": 2, "ifname": "eth0", "flags": ["UP"], "addr_info": [
        {"family": "inet", "local": "192.168.1.10", "prefixlen": 24, "broadcast": "192.168.1.255", "scope": "global"},
        {"family": "inet", "local": "192.168.1.11", "prefixlen": 24, "scope": "global", "secondary": True},
        {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]},
    {"ifindex": 3, "ifname": "cbr0", "flags": ["UP"], "addr_info": [
        {"family": "inet", "local": "10.1.10.1", "prefixlen": 24, "scope": "global"}]},
])


def test_ip_addr_json_and_text_agree():
    text = ("1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
            "2: eth0    inet 192.168.1.10/24 brd 192.168.1.255 scope global eth0\\ valid_lft forever\n"
            "2: eth0    inet 192.168.1.11/24 scope global secondary eth0\n"
            "2: eth0    inet6 fe80::1/64 scope link\n"
            "3: cbr0    inet 10.1.10.1/24 scope global cbr0\n")
    assert parse_ip_addr(ADDR_JSON) == parse_ip_addr(text)
    assert parse_ip_addr(ADDR_JSON)["eth0"].addresses[1].secondary


def test_legacy_route_add_lines_as_in_the_seed_notes():
    legacy = ("route add -net 10.1.20.0 netmask 255.255.255.0 gw 192.168.1.20\n"
              "route add -net 10.1.30.0 netmask 255.255.255.0 gw 192.168.1.30\n")
    dump = parse_routes(legacy)
    assert dump.legacy and len(dump.routes) == 2
    t = tracer(tables(), addrs=ADDR_JSON, routes=legacy)
    out = only(t.trace(pkt("10.1.10.5", "10.1.30.7"), in_iface="cbr0"))
    assert out.out_iface == "eth0" and out.next_hop == parse_ip("192.168.1.30")
    # connected routes come from the addresses, as the kernel adds them
    assert only(t.trace(pkt("192.168.1.20", "10.1.10.5"), in_iface="eth0")).out_iface == "cbr0"


def test_ip_route_json_and_text_agree():
    js = json.dumps([{"dst": "default", "gateway": "192.168.1.1", "dev": "eth0", "flags": []},
                     {"dst": "192.168.1.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link",
                      "prefsrc": "192.168.1.10", "flags": []},
                     {"type": "blackhole", "dst": "10.9.0.0/16", "flags": []}])
    text = ("default via 192.168.1.1 dev eth0 proto static metric 0\n"
            "192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.10\n"
            "blackhole 10.9.0.0/16\n")
    a, b = parse_routes(js).routes, parse_routes(text).routes
    assert [(r.network, r.mask, r.kind, r.gateway, r.dev, r.metric) for r in a] == \
        [(r.network, r.mask, r.kind, r.gateway, r.dev, r.metric) for r in b]


@pytest.mark.parametrize("text,fragment", [
    ("10.1.2.300/24 dev eth0\n", "bad destination"),
    ("10.0.0.0/8 dev eth0 frobnicate 3\n", "unknown route attribute"),
    ("route add -net 10.1.20.5 netmask 255.255.255.0 gw 192.168.1.20\n", "host bits"),
    ("[{\"dst\": \"10.0.0.0/33\"}]", "bad address"),
])
def test_bad_route_input(text, fragment):
    with pytest.raises(InputError) as info:
        parse_routes(text, source="r.txt")
    assert fragment in str(info.value) and str(info.value).startswith("r.txt:1: ")


def test_gateway_on_no_connected_subnet_is_refused():
    with pytest.raises(InputError, match="no connected subnet"):
        tracer(tables(), addrs=ADDR_JSON, routes="default via 172.31.0.1 dev eth0\n")


def test_multipath_routes_give_one_outcome_per_nexthop_with_its_weight_share():
    from ..helpers import pkt, tables, tracer
    routes = ("default via 192.168.0.1 dev eth0\n192.168.0.0/24 dev eth0 proto kernel scope link src 192.168.0.2\n"
              "10.0.0.0/8 dev cni0 proto kernel scope link src 10.0.0.1\n"
              "172.16.0.0/16 proto static\n\tnexthop via 192.168.0.9 dev eth0 weight 1\n"
              "\tnexthop via 10.0.0.9 dev cni0 weight 3\n")
    outs = tracer(tables(), routes=routes).trace(pkt("10.0.0.5", "172.16.0.5"), in_iface="cni0").outcomes
    shares = {(o.out_iface, o.next_hop): o.probability for o in outs}
    assert shares == {("cni0", 0x0A000009): 0.75, ("eth0", 0xC0A80009): 0.25}
    assert all(o.exact for o in outs) and any("flow hash" in s.action for o in outs for s in o.steps)


def test_local_packets_on_a_multipath_route_whose_nexthops_share_a_device_keep_their_nexthop():
    # ECMP to two gateways on one link: each outcome must leave for its own gateway, also after
    # OUTPUT DNAT re-routes the packet (ip_route_me_harder) onto another such route.
    routes = ("192.168.0.0/24 dev eth0 proto kernel scope link src 192.168.0.2\n"
              "172.16.0.0/16 proto static\n\tnexthop via 192.168.0.9 dev eth0 weight 1\n"
              "\tnexthop via 192.168.0.8 dev eth0 weight 1\n"
              "172.17.0.0/16 proto static\n\tnexthop via 192.168.0.7 dev eth0 weight 3\n"
              "\tnexthop via 192.168.0.6 dev eth0 weight 1\n")
    addrs = ("1: lo    inet 127.0.0.1/8 scope host lo\n"
             "2: eth0    inet 192.168.0.2/24 brd 192.168.0.255 scope global eth0\n")
    plain = tracer(tables(), addrs=addrs, routes=routes).trace(pkt("192.168.0.2", "172.16.0.5"), in_iface=None)
    assert {(o.out_iface, o.next_hop): o.probability for o in plain.outcomes} == {
        ("eth0", 0xC0A80009): 0.5, ("eth0", 0xC0A80008): 0.5}
    nat = tables(nat="-A OUTPUT -d 172.16.0.5 -j DNAT --to-destination 172.17.0.5")
    moved = tracer(nat, addrs=addrs, routes=routes).trace(pkt("192.168.0.2", "172.16.0.5"), in_iface=None)
    assert {(o.out_iface, o.next_hop): o.probability for o in moved.outcomes} == {
        ("eth0", 0xC0A80007): 0.75, ("eth0", 0xC0A80006): 0.25}


def test_ipv6_addresses_are_a_note_not_an_error():
    from pktverify.parse.ipaddr import ipv6_note
    text = "1: lo    inet 127.0.0.1/8 scope host lo\n1: lo    inet6 ::1/128 scope host\n2: eth0    inet6 fe80::1/64 scope link\n"
    assert parse_ip_addr(text)["eth0"].addresses == ()
    assert ipv6_note(text, "a") == ("a: 2 IPv6 address(es) skipped (pktverify models IPv4)",)
    assert ipv6_note("1: lo    inet 127.0.0.1/8 scope host lo\n", "a") == ()
