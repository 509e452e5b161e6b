"""The cluster YAML's ``namespaces:`` and ``network_policies:``.

``namespaces`` is a mapping of name to labels (``x: {team: a}``; a name with no labels: ``x: {}``
or ``x:``) or a list of ``{name, labels}``. Each namespace gets ``kubernetes.io/metadata.name: NAME``
as the API server sets it (a value given for it is replaced by the name, as the API server does);
namespaces a pod or policy names but the list does not exist with only that label.
``network_policies`` is a list of ``networking.k8s.io/v1`` NetworkPolicy objects as users write
them (``metadata: {name, namespace}``, ``spec``; ``apiVersion`` and ``kind`` optional), validated
as the API server validates them (:mod:`.network_policy`); an error names the line of the
offending field.
"""

from __future__ import annotations

from ..model.network_policy import NAMESPACE_NAME_LABEL, NamespaceSpec, NetworkPolicy
from .network_policy import Path, PolicyProblem, network_policy
from .yaml_doc import YamlContext, YamlMap, labels, mapping_list

__all__ = ["namespaces", "network_policies"]


def namespaces(ctx: YamlContext, doc: YamlMap) -> tuple[NamespaceSpec, ...]:
    """The listed namespaces with their labels (``kubernetes.io/metadata.name`` set to the name)."""
    if "namespaces" not in doc or doc["namespaces"] is None:
        return ()
    value = doc["namespaces"]
    out: dict[str, NamespaceSpec] = {}
    if isinstance(value, YamlMap):
        entries = [(name, value.key_lines[name], value, name) for name in value]
    elif isinstance(value, list):
        entries = []
        for item in mapping_list(ctx, doc, "namespaces"):
            ctx.only(item, {"name", "labels"}, "a namespace")
            entries.append((ctx.name(item, "name", "namespace"), item.line, item, "labels"))
    else:
        raise ctx.error(doc.key_lines["namespaces"], "namespaces is a mapping of name to labels, or a list of "
                                                     "{name, labels}")
    for name, line, holder, key in entries:
        if not isinstance(name, str):
            raise ctx.error(line, f"a namespace name is a string, not {type(name).__name__}")
        ctx.check_name(name, "namespace", line)
        if holder.get(key) is None:
            given = ()
        else:
            given = labels(ctx, holder, key) or ()
        if name in out:
            raise ctx.error(line, f"namespace {name} is described twice (also on line {out[name].line})")
        merged = dict(given)
        merged[NAMESPACE_NAME_LABEL] = name
        out[name] = NamespaceSpec(name, tuple(sorted(merged.items())), line)
    return tuple(out.values())


def network_policies(ctx: YamlContext, doc: YamlMap) -> tuple[NetworkPolicy, ...]:
    """The policies of ``network_policies:``, each validated; one per namespace/name."""
    out: dict[str, NetworkPolicy] = {}
    for item in mapping_list(ctx, doc, "network_policies", required=False):
        try:
            policy = network_policy(item, line=item.line)
        except PolicyProblem as problem:
            raise ctx.error(_line(item, problem.path), f"network policy {_key(item)}: {problem.message}") from None
        if policy.key in out:
            raise ctx.error(item.line, f"network policy {policy.key} is described twice (also on line "
                                       f"{out[policy.key].line})")
        out[policy.key] = policy
    return tuple(out.values())


def _key(item: YamlMap) -> str:
    """The policy's namespace/name as far as it can be read (for an error about it)."""
    meta = item.get("metadata")
    if not isinstance(meta, dict):
        return "(no metadata)"
    name, ns = meta.get("name"), meta.get("namespace") or "default"
    return f"{ns}/{name}" if isinstance(name, str) and isinstance(ns, str) else "(unnamed)"


def _line(item: YamlMap, path: Path) -> int:
    """The line of the deepest field of ``path`` the YAML locates (a key's line, a list item's own)."""
    line, value = item.line, item
    for step in path:
        if isinstance(value, YamlMap) and step in value:
            line, value = value.key_lines[step], value[step]
        elif isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value):
            value = value[step]
            line = value.line if isinstance(value, YamlMap) else line
        else:
            break
    return line
