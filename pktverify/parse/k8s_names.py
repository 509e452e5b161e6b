"""Kubernetes' own name rules (apimachinery ``validation.go``), for names read from input.

Names from a cluster description become file names (``generate --out``,
``--dumps``), rule text (comments, chain-name hashes) and capture names, so
they are held to exactly the rules the API server applies before anything is
built from them. Each check returns None when the name is valid, or the
reason it is not (the API server's wording where it has one).
"""

from __future__ import annotations

import re

__all__ = ["dns1123_label", "dns1123_subdomain", "dns1035_label", "iana_svc_name", "label_key",
           "label_value", "interface_name", "KINDS"]

_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(_LABEL + r"\Z")
_DNS1123_SUBDOMAIN = re.compile(_LABEL + r"(?:\." + _LABEL + r")*\Z")
_DNS1035_LABEL = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?\Z")
_IANA_SVC = re.compile(r"[-a-z0-9]+\Z")
_QUALIFIED_NAME = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_IFNAME = re.compile(r"[A-Za-z0-9_.-]+\Z")


def dns1123_label(name: str) -> str | None:
    """Namespaces, container names, service port names: at most 63 characters of a-z, 0-9, '-'."""
    if len(name) > 63:
        return "must be no more than 63 characters"
    if not _DNS1123_LABEL.match(name):
        return ("must be a DNS-1123 label: lower case letters, digits and '-', starting and ending with a "
                "letter or digit")
    return None


def dns1123_subdomain(name: str) -> str | None:
    """Node and pod names: at most 253 characters, DNS-1123 labels joined by '.'."""
    if len(name) > 253:
        return "must be no more than 253 characters"
    if not _DNS1123_SUBDOMAIN.match(name):
        return ("must be a DNS-1123 subdomain: lower case letters, digits, '-' and '.', starting and ending "
                "with a letter or digit")
    return None


def dns1035_label(name: str) -> str | None:
    """Service names: a DNS-1123 label that starts with a letter."""
    if len(name) > 63:
        return "must be no more than 63 characters"
    if not _DNS1035_LABEL.match(name):
        return ("must be a DNS-1035 label: lower case letters, digits and '-', starting with a letter and "
                "ending with a letter or digit")
    return None


def iana_svc_name(name: str) -> str | None:
    """Named container and target ports (IANA_SVC_NAME, RFC 6335)."""
    if len(name) > 15:
        return "must be no more than 15 characters"
    if not _IANA_SVC.match(name):
        return "must contain only lower case letters, digits and '-'"
    if "--" in name:
        return "must not contain consecutive hyphens"
    if not any(c.isalpha() for c in name):
        return "must contain at least one letter"
    if name.startswith("-") or name.endswith("-"):
        return "must not begin or end with a hyphen"
    return None


def label_key(key: str) -> str | None:
    """A label key: an optional DNS-1123 subdomain prefix and '/', then a name of at most 63 characters."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return "prefix part must be non-empty"
        why = dns1123_subdomain(prefix)
        if why:
            return f"prefix part {why}"
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _QUALIFIED_NAME.match(name):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                "with an alphanumeric character")
    return None


def label_value(value: str) -> str | None:
    """A label value: empty, or at most 63 characters of the label-name alphabet."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if value and not _QUALIFIED_NAME.match(value):
        return ("must be empty or consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                "with an alphanumeric character")
    return None


def interface_name(name: str) -> str | None:
    """A Linux interface name as pktverify writes it into rules: 1-15 of A-Z a-z 0-9 _ . -."""
    if not 0 < len(name) <= 15:
        return "must be 1 to 15 characters (the kernel's IFNAMSIZ)"
    if name in (".", "..") or not _IFNAME.match(name):
        return "must consist of letters, digits, '_', '.' and '-' (and not be '.' or '..')"
    return None


# What each kind of name is checked with, as the API server does.
KINDS = {
    "node name": dns1123_subdomain, "pod name": dns1123_subdomain, "namespace": dns1123_label,
    "service name": dns1035_label, "service port name": dns1123_label, "container name": dns1123_label,
    "container port name": iana_svc_name, "target port name": iana_svc_name, "bridge": interface_name,
}
