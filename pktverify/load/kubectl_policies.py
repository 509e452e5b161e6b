"""kubectl input's ``Namespace`` and ``NetworkPolicy`` objects, and pods' container ports.

``kubectl get nodes,namespaces,pods,services,endpointslices,networkpolicies -A -o json`` lists
both kinds. A Namespace's labels are its ``metadata.labels`` (the API server has set
``kubernetes.io/metadata.name``; it is set here too, to the name, for objects written by hand). A
NetworkPolicy is read and validated by :mod:`pktverify.parse.network_policy`, its errors at the
JSON line of the offending field. Container ports keep their names and protocols (TCP, UDP, SCTP),
which named ports in policies resolve against.
"""

from __future__ import annotations

from ..model.network_policy import NAMESPACE_NAME_LABEL, NamespaceSpec, NetworkPolicy
from ..parse.json_input import JsonNode
from ..parse.k8s_names import KINDS, label_key, label_value
from ..parse.network_policy import PolicyProblem, network_policy

__all__ = ["kubectl_namespaces", "kubectl_policies", "container_ports", "object_labels"]


def object_labels(meta: JsonNode, key: str) -> tuple[tuple[str, str], ...]:
    """``meta[key]`` (labels, a selector) as sorted pairs, each key and value checked as the API server does."""
    labels = meta.obj(key)
    out = []
    for k in labels.value:
        v = labels.str(k, default="")
        why = label_key(k) or label_value(v)
        if why:
            raise labels.child(k).error(f"label {k}={v!r}: {why}")
        out.append((k, v))
    return tuple(sorted(out))


def kubectl_namespaces(items: list[JsonNode]) -> tuple[NamespaceSpec, ...]:
    """The Namespace objects, each once, with ``kubernetes.io/metadata.name`` set to the name."""
    out: dict[str, NamespaceSpec] = {}
    for item in items:
        meta = item.obj("metadata", required=True)
        name = meta.str("name", required=True, what=meta.where())
        why = KINDS["namespace"](name)
        if why:
            raise meta.child("name").error(f"namespace {name!r} {why}")
        if name in out:
            raise item.error(f"Namespace {name} appears twice")
        labels = dict(object_labels(meta, "labels"))
        labels[NAMESPACE_NAME_LABEL] = name
        out[name] = NamespaceSpec(name, tuple(sorted(labels.items())))
    return tuple(out.values())


def kubectl_policies(items: list[JsonNode]) -> tuple[NetworkPolicy, ...]:
    """The NetworkPolicy objects, validated; each namespace/name once."""
    out: dict[str, NetworkPolicy] = {}
    for item in items:
        try:
            policy = network_policy(item.value)
        except PolicyProblem as problem:
            node = item
            for step in problem.path:
                if isinstance(node.value, (dict, list)) and _has(node.value, step):
                    node = node.child(step)
                else:
                    break
            raise node.error(f"network policy {_key(item.value)}: {problem.message}") from None
        if policy.key in out:
            raise item.error(f"NetworkPolicy {policy.key} appears twice")
        out[policy.key] = policy
    return tuple(out.values())


def container_ports(spec: JsonNode) -> tuple[tuple[int, ...], tuple[tuple[str, str, int], ...]]:
    """The pod's container port numbers and its named ports as (name, protocol, number)."""
    ports, named = [], []
    for c in spec.list("containers"):
        if c.has("name"):
            name = c.str("name")
            why = KINDS["container name"](name)
            if why:
                raise c.child("name").error(f"container name {name!r} {why}")
        for p in c.list("ports"):
            number = p.int("containerPort", required=True, what="a container port")
            if not 0 < number < 65536:
                raise p.child("containerPort").error(f"container port {number} is not a port number 1-65535")
            ports.append(number)
            protocol = p.str("protocol", default="TCP")
            if protocol not in ("TCP", "UDP", "SCTP"):
                raise p.child("protocol").error(f"protocol must be TCP, UDP or SCTP, not {protocol[:40]!r}")
            if p.has("name"):
                port_name = p.str("name")
                why = KINDS["container port name"](port_name)
                if why:
                    raise p.child("name").error(f"container port name {port_name!r} {why}")
                named.append((port_name, protocol.lower(), number))
    return tuple(ports), tuple(named)


def _has(value, step) -> bool:
    if isinstance(value, dict):
        return step in value
    return isinstance(step, int) and 0 <= step < len(value)


def _key(obj) -> str:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return "(no metadata)"
    name, ns = meta.get("name"), meta.get("namespace") or "default"
    return f"{ns}/{name}" if isinstance(name, str) and isinstance(ns, str) else "(unnamed)"
