"""A NetworkPolicy object (``networking.k8s.io/v1``, as users write it or kubectl prints it) →
:class:`~pktverify.model.network_policy.NetworkPolicy`, validated as the API server validates it.

The checks and their wording follow ``ValidateNetworkPolicySpec`` and its helpers in
kubernetes/kubernetes ``pkg/apis/networking/validation/validation.go`` and
``ValidateLabelSelector`` (apimachinery): every selector's keys, values and operators; a peer names
something, and an ``ipBlock`` stands alone; ``ipBlock.cidr`` is a CIDR and each ``except`` a strict
subset of it; a port's protocol is TCP, UDP or SCTP, its number 1-65535 or its name an IANA service
name, ``endPort`` only after a numeric ``port`` and not below it; at most two ``policyTypes``, each
Ingress or Egress. Unknown keys are refused too (kubectl's strict field validation), so a typo does
not silently widen a policy. The reader works on plain decoded values (YAML or JSON alike) and
raises :class:`PolicyProblem` with the path of the offending field; the callers turn the path into
``FILE:LINE`` (:mod:`.cluster_yaml_policies`, :mod:`pktverify.load.cluster_kubectl`). A ``null``
counts as absent, as in the API's decoding.
"""

from __future__ import annotations

from ..model.addresses import AddressError, parse_network
from ..model.network_policy import (
    POLICY_PROTOCOLS,
    SELECTOR_OPERATORS,
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    SelectorRequirement,
)
from .k8s_names import dns1123_label, dns1123_subdomain, iana_svc_name, label_key, label_value

__all__ = ["PolicyProblem", "network_policy", "Path", "field_path", "POLICIES_NOTE"]

# Until the nodes' enforcement is checked (issue #26), verify says what it read and did not check.
POLICIES_NOTE = "{} NetworkPolicy object(s) read; whether the nodes enforce them is not checked yet"

Path = tuple            # keys and list indexes from the policy object down to a field


class PolicyProblem(ValueError):
    """What the API server would refuse, at ``path`` inside the object."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


def field_path(path: Path) -> str:
    """``spec.ingress[0].ports[1]`` from ``("spec", "ingress", 0, "ports", 1)``."""
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


_SPEC_KEYS = {"podSelector", "policyTypes", "ingress", "egress"}
_META_IGNORED = {"labels", "annotations", "uid", "resourceVersion", "generation", "creationTimestamp",
                 "managedFields", "selfLink", "finalizers", "ownerReferences", "deletionTimestamp", "generateName"}


def network_policy(obj, *, default_namespace: str = "default", line: int = 0) -> NetworkPolicy:
    """The policy ``obj`` (a mapping with ``metadata`` and ``spec``) says; PolicyProblem if the API
    server would refuse it. ``line``: where the object starts (kept on the record)."""
    _mapping(obj, ())
    _only(obj, {"apiVersion", "kind", "metadata", "spec", "status"}, (), "a NetworkPolicy")
    if obj.get("apiVersion") not in (None, "networking.k8s.io/v1"):
        raise PolicyProblem(("apiVersion",), f"apiVersion must be networking.k8s.io/v1, not {obj['apiVersion']!r}")
    if obj.get("kind") not in (None, "NetworkPolicy"):
        raise PolicyProblem(("kind",), f"kind must be NetworkPolicy, not {obj['kind']!r}")
    meta = _mapping(obj.get("metadata"), ("metadata",), required=True)
    _only(meta, {"name", "namespace"} | _META_IGNORED, ("metadata",), "metadata")
    name = _string(meta, "name", ("metadata",), required=True)
    why = dns1123_subdomain(name)
    if why:
        raise PolicyProblem(("metadata", "name"), f"name {name!r} {why}")
    namespace = _string(meta, "namespace", ("metadata",)) or default_namespace
    why = dns1123_label(namespace)
    if why:
        raise PolicyProblem(("metadata", "namespace"), f"namespace {namespace!r} {why}")
    spec = _mapping(obj.get("spec"), ("spec",), required=True)
    _only(spec, _SPEC_KEYS, ("spec",), "a NetworkPolicy spec")
    # Absent: the empty selector (every pod of the namespace), as the API server decodes it
    # (kubernetes/kubernetes#131354 documents the field as optional).
    selector = label_selector(spec.get("podSelector") or {}, ("spec", "podSelector"))
    rules = {}
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        rules[direction] = tuple(_rule(r, ("spec", direction, i), peers_key)
                                 for i, r in enumerate(_list(spec, direction, ("spec",))))
    return NetworkPolicy(name, namespace, selector, _policy_types(spec, rules), rules["ingress"], rules["egress"],
                         line)


def _policy_types(spec, rules: dict) -> tuple[str, ...]:
    """The given policyTypes (at most two, each Ingress or Egress), else the API server's default:
    Ingress, and Egress if there are egress rules."""
    given = _list(spec, "policyTypes", ("spec",))
    if "policyTypes" not in spec or spec["policyTypes"] is None or not given:
        return ("Ingress", "Egress") if rules["egress"] else ("Ingress",)
    if len(given) > 2:
        raise PolicyProblem(("spec", "policyTypes"), "spec.policyTypes: Invalid value: may not specify more than "
                                                     "two policyTypes")
    for i, kind in enumerate(given):
        if kind not in ("Ingress", "Egress"):
            raise PolicyProblem(("spec", "policyTypes", i), f"spec.policyTypes[{i}]: Unsupported value: {kind!r}: "
                                                            "supported values: \"Ingress\", \"Egress\"")
    return tuple(t for t in ("Ingress", "Egress") if t in given)


def _rule(rule, path: Path, peers_key: str) -> PolicyRule:
    _mapping(rule, path, required=True)
    _only(rule, {peers_key, "ports"}, path, "a rule")
    peers = tuple(_peer(p, (*path, peers_key, i)) for i, p in enumerate(_list(rule, peers_key, path)))
    ports = tuple(_port(p, (*path, "ports", i)) for i, p in enumerate(_list(rule, "ports", path)))
    return PolicyRule(peers, ports, getattr(rule, "line", 0))


def _peer(peer, path: Path) -> PolicyPeer:
    _mapping(peer, path, required=True)
    _only(peer, {"podSelector", "namespaceSelector", "ipBlock"}, path, "a peer")
    given = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(k) is not None]
    if not given:
        raise PolicyProblem(path, f"{field_path(path)}: Required value: must specify a peer")
    pods = label_selector(peer["podSelector"], (*path, "podSelector")) if "podSelector" in given else None
    namespaces = label_selector(peer["namespaceSelector"], (*path, "namespaceSelector")) \
        if "namespaceSelector" in given else None
    block = _ip_block(peer["ipBlock"], (*path, "ipBlock")) if "ipBlock" in given else None
    if block is not None and len(given) > 1:
        raise PolicyProblem(path, f"{field_path(path)}: Forbidden: may not specify both ipBlock and another peer")
    return PolicyPeer(pods, namespaces, block)


def _ip_block(block, path: Path) -> IPBlock:
    _mapping(block, path, required=True)
    _only(block, {"cidr", "except"}, path, "an ipBlock")
    text = _string(block, "cidr", path)
    if not text:
        raise PolicyProblem((*path, "cidr"), f"{field_path((*path, 'cidr'))}: Required value")
    cidr = _cidr(text, (*path, "cidr"))
    excepts = []
    for i, item in enumerate(_list(block, "except", path)):
        where = (*path, "except", i)
        if not isinstance(item, str):
            raise PolicyProblem(where, f"{field_path(where)}: must be a CIDR string, not {type(item).__name__}")
        net = _cidr(item, where)
        inside = (cidr is None) == (net is None) and (
            cidr is None and _v6_subset(item, text) or
            cidr is not None and net[1] > cidr[1] and net[0] & cidr[1] == cidr[0])
        if not inside:
            raise PolicyProblem(where, f"{field_path(where)}: Invalid value: {item!r}: must be a strict subset of "
                                       f"`cidr` ({text})")
        if net is not None:
            excepts.append(net)
    return IPBlock(cidr, tuple(excepts), text)


def _cidr(text: str, path: Path) -> tuple[int, int] | None:
    """An IPv4 CIDR as (network, mask) (host bits cleared, as ParseCIDRSloppy does), None for a
    valid IPv6 one; PolicyProblem otherwise."""
    if "/" not in text:
        raise PolicyProblem(path, f"{field_path(path)}: Invalid value: {text!r}: must be a valid CIDR value, "
                                  "(e.g. 10.9.8.0/24 or 2001:db8::/64)")
    if ":" in text:
        import ipaddress
        try:
            ipaddress.IPv6Network(text, strict=False)
        except ValueError as exc:
            raise PolicyProblem(path, f"{field_path(path)}: Invalid value: {text!r}: {exc}") from None
        return None
    try:
        return parse_network(text)
    except AddressError as exc:
        raise PolicyProblem(path, f"{field_path(path)}: Invalid value: {text!r}: {exc}") from None


def _v6_subset(inner: str, outer: str) -> bool:
    import ipaddress
    a, b = ipaddress.IPv6Network(inner, strict=False), ipaddress.IPv6Network(outer, strict=False)
    return a.prefixlen > b.prefixlen and a.subnet_of(b)


def _port(port, path: Path) -> PolicyPort:
    _mapping(port, path, required=True)
    _only(port, {"protocol", "port", "endPort"}, path, "a port")
    proto = port.get("protocol") or "TCP"
    if proto not in POLICY_PROTOCOLS:
        raise PolicyProblem((*path, "protocol"), f"{field_path((*path, 'protocol'))}: Unsupported value: "
                                                 f"{proto!r}: supported values: \"TCP\", \"UDP\", \"SCTP\"")
    number, end = port.get("port"), port.get("endPort")
    where, end_where = field_path((*path, "port")), (*path, "endPort")
    if end is not None and (type(end) is not int):
        raise PolicyProblem(end_where, f"{field_path(end_where)}: must be an integer, not {type(end).__name__}")
    if number is None:
        if end is not None:
            raise PolicyProblem(end_where, f"{field_path(end_where)}: Invalid value: {end}: may not be specified "
                                           "when `port` is not specified")
    elif type(number) is int:
        if not 0 < number < 65536:
            raise PolicyProblem((*path, "port"), f"{where}: Invalid value: {number}: must be between 1 and 65535, "
                                                 "inclusive")
        if end is not None and end < number:
            raise PolicyProblem(end_where, f"{field_path(end_where)}: Invalid value: {number}: must be greater "
                                           "than or equal to `port`")
        if end is not None and not 0 < end < 65536:
            raise PolicyProblem(end_where, f"{field_path(end_where)}: Invalid value: {end}: must be between 1 and "
                                           "65535, inclusive")
    elif isinstance(number, str):
        if end is not None:
            raise PolicyProblem(end_where, f"{field_path(end_where)}: Invalid value: {end}: may not be specified "
                                           "when `port` is non-numeric")
        why = iana_svc_name(number)
        if why:
            raise PolicyProblem((*path, "port"), f"{where}: Invalid value: {number!r}: {why}")
    else:
        raise PolicyProblem((*path, "port"), f"{where}: must be a number or a port name, not "
                                             f"{type(number).__name__}")
    return PolicyPort(proto, number, end)


def label_selector(selector, path: Path) -> LabelSelector:
    """A label selector (matchLabels, matchExpressions) as ``ValidateLabelSelector`` accepts it."""
    _mapping(selector, path, required=True)
    _only(selector, {"matchLabels", "matchExpressions"}, path, "a label selector")
    labels = _mapping(selector.get("matchLabels"), (*path, "matchLabels")) or {}
    pairs = []
    for k, v in labels.items():
        where = (*path, "matchLabels", k)
        if not isinstance(k, str) or not isinstance(v, str):
            raise PolicyProblem(where, f"{field_path(path)}.matchLabels: keys and values must be strings (quote "
                                       f"values such as 'true' or '1'), not {type(k).__name__}: {type(v).__name__}")
        why = label_key(k) or label_value(v)
        if why:
            raise PolicyProblem(where, f"{field_path(path)}.matchLabels: {k}={v!r}: {why}")
        pairs.append((k, v))
    expressions = []
    for i, e in enumerate(_list(selector, "matchExpressions", path)):
        expressions.append(_requirement(e, (*path, "matchExpressions", i)))
    return LabelSelector(tuple(sorted(pairs)), tuple(expressions))


def _requirement(e, path: Path) -> SelectorRequirement:
    _mapping(e, path, required=True)
    _only(e, {"key", "operator", "values"}, path, "a selector requirement")
    key = _string(e, "key", path, required=True)
    why = label_key(key)
    if why:
        raise PolicyProblem((*path, "key"), f"{field_path((*path, 'key'))}: Invalid value: {key!r}: {why}")
    op = _string(e, "operator", path, required=True)
    if op not in SELECTOR_OPERATORS:
        raise PolicyProblem((*path, "operator"), f"{field_path((*path, 'operator'))}: Invalid value: {op!r}: not a "
                                                 "valid selector operator (In, NotIn, Exists, DoesNotExist)")
    values = _list(e, "values", path)
    if op in ("In", "NotIn") and not values:
        raise PolicyProblem(path, f"{field_path((*path, 'values'))}: Required value: must be specified when "
                                  "`operator` is 'In' or 'NotIn'")
    if op in ("Exists", "DoesNotExist") and values:
        raise PolicyProblem((*path, "values"), f"{field_path((*path, 'values'))}: Forbidden: may not be specified "
                                               "when `operator` is 'Exists' or 'DoesNotExist'")
    for j, v in enumerate(values):
        why = label_value(v) if isinstance(v, str) else "must be a string (quote values such as 'true' or '1')"
        if why:
            raise PolicyProblem((*path, "values", j), f"{field_path((*path, 'values', j))}: Invalid value: "
                                                      f"{v!r}: {why}")
    return SelectorRequirement(key, op, tuple(values))


def _mapping(value, path: Path, *, required: bool = False):
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        what = field_path(path) or "a NetworkPolicy"
        raise PolicyProblem(path, f"{what} must be a mapping, not {type(value).__name__}")
    return value


def _list(m, key: str, path: Path) -> list:
    value = m.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PolicyProblem((*path, key), f"{field_path((*path, key))} must be a list, not {type(value).__name__}")
    return value


def _string(m, key: str, path: Path, *, required: bool = False) -> str | None:
    value = m.get(key)
    if value is None:
        if required:
            raise PolicyProblem(path, f"{field_path((*path, key))}: Required value")
        return None
    if not isinstance(value, str):
        raise PolicyProblem((*path, key), f"{field_path((*path, key))} must be a string, not {type(value).__name__}")
    return value


def _only(m, allowed: set[str], path: Path, what: str) -> None:
    for key in m:
        if key not in allowed:
            raise PolicyProblem((*path, key), f"unknown key {key!r} in {what} (valid: {', '.join(sorted(allowed))})")
