"""Kubernetes' own value rules (``pkg/apis/core/validation``) for addresses and numbers read from input.

What the API server refuses never reaches a cluster, so a cluster description that holds it
describes no cluster: pktverify refuses it too, with the API server's reason, instead of
verifying something that cannot exist. The rules here are the ones kubectl input and the YAML
description share:

* ``ValidateNonSpecialIP`` (external IPs, Endpoints and EndpointSlice addresses): not
  unspecified (0.0.0.0, ::), not loopback (127.0.0.0/8, ::1), not link-local (169.254.0.0/16,
  fe80::/10), not link-local multicast (224.0.0.0/24, ff02::/16). Other multicast and the
  limited broadcast address pass, as they pass the API server.
* An IPv6 text must be an address (Go's ``net.ParseIP``: no zone, no brackets); pktverify models
  IPv4, so a valid IPv6 address is skipped (and said so) but an invalid one is an error. An
  IPv4-mapped IPv6 address (``::ffff:10.0.0.1``) is refused: Kubernetes reads it as IPv4 in some
  places and as IPv6 in others, and 1.33's strict validation refuses it.
* ``sessionAffinity`` None or ClientIP; ``timeoutSeconds`` 1-86400 (``validateAffinityTimeout``).
* Numbers written as text (``node_port_range``) are ASCII digits only, and short: ``str.isdigit``
  and ``int()`` accept other scripts' digits, and ``int()`` of thousands of digits fails with
  Python's own message.

Each check returns None when the value is valid, or the reason it is not.
"""

from __future__ import annotations

import ipaddress
import re

from collections.abc import Iterable, Mapping

from ..model.addresses import AddressError, format_ip, parse_ip
from ..model.cluster import ServiceSpec

__all__ = ["special_ip_reason", "ipv6_reason", "ip_text", "is_ip_sloppy", "ascii_number", "affinity_timeout_reason",
           "note_shared_addresses", "AFFINITY_TYPES", "MAX_AFFINITY_TIMEOUT", "DEFAULT_AFFINITY_TIMEOUT",
           "MAX_SHARED_NOTES"]

AFFINITY_TYPES = ("None", "ClientIP")
MAX_AFFINITY_TIMEOUT = 86400            # core.MaxClientIPServiceAffinitySeconds
DEFAULT_AFFINITY_TIMEOUT = 10800        # core.DefaultClientIPServiceAffinitySeconds

MAX_SHARED_NOTES = 10                   # notes about shared external IPs; the rest are counted in one more

_ASCII_NUMBER = re.compile(r"[0-9]{1,9}\Z")
_LOOPBACK6, _UNSPECIFIED6 = 1, 0


def special_ip_reason(ip: int) -> str | None:
    """Why the API server refuses IPv4 ``ip`` as an external IP or endpoint address, or None."""
    if ip == 0:
        return "may not be unspecified (0.0.0.0)"
    if ip >> 24 == 127:
        return "may not be in the loopback range (127.0.0.0/8, ::1/128)"
    if ip >> 16 == 0xA9FE:
        return "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
    if ip >> 8 == 0xE00000:
        return "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
    return None


def ipv6_reason(text: str, *, non_special: bool = False) -> str | None:
    """Why ``text`` (which holds a ':') is not an IPv6 address the API server accepts, or None.
    ``non_special``: also apply ``ValidateNonSpecialIP``'s IPv6 ranges."""
    if "%" in text or len(text) > 45:       # Go's ParseIP reads no zone; 45 is the longest form
        return f"{_short(text)} is not a valid IP address"
    try:
        addr = ipaddress.IPv6Address(text)
    except ValueError:
        return f"{_short(text)} is not a valid IP address"
    if addr.ipv4_mapped is not None:
        return (f"{text} is an IPv4-mapped IPv6 address: write the IPv4 address {addr.ipv4_mapped} (Kubernetes reads "
                "the mapped form inconsistently; 1.33's strict validation refuses it)")
    if not non_special:
        return None
    value = int(addr)
    if value == _UNSPECIFIED6:
        return f"may not be unspecified ({text})"
    if value == _LOOPBACK6:
        return "may not be in the loopback range (127.0.0.0/8, ::1/128)"
    if value >> 118 == 0x3FA:                          # fe80::/10
        return "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
    if value >> 120 == 0xFF and (value >> 112) & 0x0F == 0x02:   # Go's IsLinkLocalMulticast: ff?2::
        return "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
    return None


def ip_text(text: str, *, non_special: bool = False) -> tuple[int | None, str | None]:
    """Read an address the API server holds as text: ``(ip, None)`` for IPv4, ``(None, None)`` for a
    valid IPv6 address (not modelled: the caller skips it and says so), ``(None, reason)`` when the
    API server would refuse it. ``non_special``: the rules of external IPs and endpoint addresses."""
    if ":" in text:
        return None, ipv6_reason(text, non_special=non_special)
    try:
        ip = parse_ip(text)
    except AddressError as exc:
        return None, str(exc)
    why = special_ip_reason(ip) if non_special else None
    return (None, f"{text} {why}") if why else (ip, None)


def is_ip_sloppy(text: str) -> bool:
    """Whether Go's ``netutils.ParseIPSloppy`` reads ``text`` as an address (IPv4 octets may have
    leading zeros there): a load balancer hostname that is one is refused."""
    if ":" in text:
        return ipv6_reason(text) is None or "IPv4-mapped" in (ipv6_reason(text) or "")
    parts = text.split(".")
    return len(parts) == 4 and all(p.isascii() and p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts)


def note_shared_addresses(services: Iterable[ServiceSpec], node_ips: Mapping[int, str], notes: list[str]) -> None:
    """Append notes for external IPs that are a node's address or another service's ClusterIP.

    The API server accepts both (it does not know node addresses and checks no external IP
    against ClusterIPs) and kube-proxy writes its rules for them in KUBE-SERVICES, which the nat
    table meets before anything delivers a packet to the node: on the service's ports such an
    address leads to the service's endpoints, not to the node, and a ClusterIP shared this way
    leads to whichever service kube-proxy wrote first (what CVE-2020-8554, intercepting traffic
    with externalIPs, is about). pktverify verifies them as written and says so here, at most ``MAX_SHARED_NOTES``
    notes and a count of the rest. ``node_ips``: node address -> node name. One pass: O(addresses)."""
    services = list(services)
    cluster_ips = {}
    for svc in services:
        cluster_ips.setdefault(svc.cluster_ip, svc.key)
    found = []
    for svc in services:
        ports = ", ".join(f"{p.port}/{p.protocol}" for p in svc.ports[:4]) + (", ..." if len(svc.ports) > 4 else "")
        for ip in svc.external_ips:
            if ip in node_ips:
                found.append(f"service {svc.key}: external IP {format_ip(ip)} is node {node_ips[ip]}'s address: "
                             f"kube-proxy on every node sends what is addressed to it on the service's ports "
                             f"({ports}) to the service's endpoints, not to the node's own sockets (accepted by the "
                             "API server, which does not know node addresses; CVE-2020-8554)")
            elif cluster_ips.get(ip, svc.key) != svc.key:
                found.append(f"service {svc.key}: external IP {format_ip(ip)} is the ClusterIP of service "
                             f"{cluster_ips[ip]}: on a port both use, which service a packet reaches depends on "
                             "the order of kube-proxy's rules (accepted by the API server; CVE-2020-8554)")
    notes += found[:MAX_SHARED_NOTES]
    if len(found) > MAX_SHARED_NOTES:
        notes.append(f"{len(found) - MAX_SHARED_NOTES} more external IP(s) are a node's address or another "
                     "service's ClusterIP (see the notes above)")


def ascii_number(text: str) -> int | None:
    """``text`` as a number when it is 1-9 ASCII digits (surrounding blanks allowed), else None."""
    text = text.strip(" \t")
    return int(text) if _ASCII_NUMBER.match(text) else None


def affinity_timeout_reason(seconds: int) -> str | None:
    """Why the API server refuses ``sessionAffinityConfig.clientIP.timeoutSeconds``, or None."""
    if not 0 < seconds <= MAX_AFFINITY_TIMEOUT:
        return f"timeoutSeconds {seconds} must be greater than 0 and at most {MAX_AFFINITY_TIMEOUT}"
    return None


def _short(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:57]) + "..."
