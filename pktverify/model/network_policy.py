"""NetworkPolicy objects (``networking.k8s.io/v1``) and namespaces with labels, as immutable records.

The records hold a policy as the API server stores it after defaulting: ``policy_types`` is the
effective list (``Ingress`` always, ``Egress`` iff there are egress rules, when the object does not
say), a port's protocol is always set (TCP by default), a namespace always carries the
``kubernetes.io/metadata.name`` label the API server adds. Empty and absent ``from``/``to``/``ports``
mean the same (every peer, every port), so both are the empty tuple. What the policies *mean* for a
connection is :mod:`pktverify.check.policy_meaning`; reading them is :mod:`pktverify.parse.network_policy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .addresses import in_network

__all__ = ["SelectorRequirement", "LabelSelector", "IPBlock", "PolicyPeer", "PolicyPort", "PolicyRule",
           "NetworkPolicy", "NamespaceSpec", "NAMESPACE_NAME_LABEL", "SELECTOR_OPERATORS", "POLICY_PROTOCOLS"]

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"    # set on every namespace by the API server (1.21+)
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
POLICY_PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True)
class SelectorRequirement:
    """One ``matchExpressions`` entry."""
    key: str
    operator: str                       # In | NotIn | Exists | DoesNotExist
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """As ``labels.Requirement.Matches``: NotIn and DoesNotExist hold for objects without the key."""
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True)
class LabelSelector:
    """A label selector: every matchLabels pair and every expression must hold (an empty one selects all)."""
    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[SelectorRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with ``labels`` is selected."""
        return all(labels.get(k) == v for k, v in self.match_labels) \
            and all(e.matches(labels) for e in self.match_expressions)

    @property
    def selects_all(self) -> bool:
        return not self.match_labels and not self.match_expressions


@dataclass(frozen=True)
class IPBlock:
    """``ipBlock``: ``cidr`` minus each ``except``. ``cidr`` None: an IPv6 block, which no IPv4
    address is in (pktverify models IPv4); ``text`` is the CIDR as written, for messages."""
    cidr: tuple[int, int] | None
    excepts: tuple[tuple[int, int], ...] = ()
    text: str = ""

    def contains(self, ip: int) -> bool:
        """Whether the IPv4 address ``ip`` is in the block."""
        return self.cidr is not None and in_network(ip, *self.cidr) \
            and not any(in_network(ip, *e) for e in self.excepts)


@dataclass(frozen=True)
class PolicyPeer:
    """One ``from``/``to`` entry: a pod selector, a namespace selector, both (pods matching the
    first in namespaces matching the second), or an IP block alone."""
    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True)
class PolicyPort:
    """One ``ports`` entry. ``port``: a number, a container port's name (resolved per destination
    pod), or None (every port of the protocol); ``end_port``: the range's last port (numbers only)."""
    protocol: str = "TCP"              # TCP | UDP | SCTP, as the API writes them
    port: int | str | None = None
    end_port: int | None = None


@dataclass(frozen=True)
class PolicyRule:
    """An ingress or egress rule: a connection matches if one peer and one port match (empty: any)."""
    peers: tuple[PolicyPeer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class NetworkPolicy:
    """A NetworkPolicy. ``policy_types``: the effective ones (inferred when the object has none);
    rules of a direction not in ``policy_types`` have no effect."""
    name: str
    namespace: str
    pod_selector: LabelSelector
    policy_types: tuple[str, ...]
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()
    line: int = field(default=0, compare=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class NamespaceSpec:
    """A namespace and its labels (``kubernetes.io/metadata.name`` included)."""
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    line: int = field(default=0, compare=False)
