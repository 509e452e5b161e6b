"""Upstream's NetworkPolicy e2e cases as data (tests/corpus/netpol/), for the tests that check
pktverify's reading of NetworkPolicy objects and the rules it generates for them against upstream's
expected truth tables (issue #26). See tests/corpus/netpol/README.md for the source, the license,
the model and the file format.

``load_model()`` is the default model (namespaces x, y, z; pods a, b, c in each); ``load_cases()``
the case files, one per upstream ``It(...)`` step; ``expand(probe, pods)`` a probe's expectations as
upstream's Reachability builds them: every (from, to) pair starts at the probe's ``default`` and each
rule, in order, overrides the pairs its selectors match.

Upstream ignores loopback pairs (from == to) when it compares observed with expected connectivity
(``ignoreLoopback = true`` in network_policy.go); ``expand`` still gives them the value the rules
set, and ``LOOPBACK_IGNORED`` says a consumer should not hold a dataplane to them."""

from __future__ import annotations

from pathlib import Path

import yaml

NETPOL_CORPUS = Path(__file__).resolve().parent / "netpol"
LOOPBACK_IGNORED = True


def load_model() -> dict:
    """The default model: ``{"namespaces": {ns: {"labels": ...}}, "pods": {"ns/pod": {...}}, ...}``."""
    return yaml.safe_load((NETPOL_CORPUS / "model.yaml").read_text())


def load_cases() -> list[dict]:
    """Every case file, sorted by file name; each dict as written, plus ``file`` (its file name)."""
    out = []
    for path in sorted((NETPOL_CORPUS / "cases").glob("*.yaml")):
        case = yaml.safe_load(path.read_text())
        case["file"] = path.name
        out.append(case)
    return out


def pod_names(model: dict) -> list[str]:
    """The model's pods as "ns/pod", in upstream's order (x/a, x/b, ..., z/c)."""
    return list(model["pods"])


def selector_matches(selector: str, pod: str) -> bool:
    """Whether a rule selector ("ns/pod", either part "*") matches the pod "ns/pod" (upstream's Peer.Matches)."""
    sel_ns, sep, sel_pod = selector.partition("/")
    if not sep or not sel_ns or not sel_pod or "/" in sel_pod:
        raise ValueError(f"bad selector {selector!r}: want NS/POD with '*' for any")
    ns, _, name = pod.partition("/")
    return sel_ns in ("*", ns) and sel_pod in ("*", name)


def expand(probe: dict, pods: list[str]) -> dict[tuple[str, str], bool]:
    """The full truth table of one probe over ``pods``: (from, to) -> allowed."""
    table = {(src, dst): bool(probe["default"]) for src in pods for dst in pods}
    for rule in probe.get("expect") or []:
        for src in pods:
            if not selector_matches(rule["from"], src):
                continue
            for dst in pods:
                if selector_matches(rule["to"], dst):
                    table[(src, dst)] = bool(rule["allowed"])
    return table


def namespace_labels(case: dict, model: dict) -> dict[str, dict[str, str]]:
    """Each namespace's labels at the case's step (the case's ``namespace_labels`` replace the model's)."""
    out = {ns: dict(info["labels"]) for ns, info in model["namespaces"].items()}
    out.update({ns: dict(labels) for ns, labels in (case.get("namespace_labels") or {}).items()})
    return out


def pod_labels(case: dict, model: dict) -> dict[str, dict[str, str]]:
    """Each pod's labels at the case's step (the case's ``pod_labels`` replace the model's)."""
    out = {pod: dict(info["labels"]) for pod, info in model["pods"].items()}
    out.update({pod: dict(labels) for pod, labels in (case.get("pod_labels") or {}).items()})
    return out
