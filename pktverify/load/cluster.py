"""Which reader a cluster is for, told by its content: a cluster YAML, or kubectl JSON
(``kubectl get nodes,pods,services,endpointslices -A -o json``) with its per-node dump folders.
The options only kubectl input needs are refused for a YAML, which says them itself."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import InvalidArgument
from ..model.cluster import ClusterSpec

__all__ = ["load_cluster"]


def load_cluster(path: str | Path, *, cluster_cidr: str | None = None, service_cidr: str | None = None,
                 dumps: str | Path | None = None, require_dumps: bool = False,
                 pod_cidrs: Iterable[tuple[str, str]] | None = None) -> ClusterSpec:
    """Read a cluster as ``pktverify verify`` does (a folder: its ``cluster.yaml`` or ``cluster.json``):
    a cluster YAML, or ``kubectl get nodes,pods,services,endpointslices -A -o json`` output
    (told apart by content) with its per-node dumps under ``dumps`` (default: the JSON's folder)
    and the networks kubectl does not show (``cluster_cidr``, ``service_cidr``). kubectl input
    only: ``require_dumps`` makes a node without its dumps an error; ``pod_cidrs``: (node, CIDR)
    pairs for nodes without ``spec.podCIDR``. Raises InputError (``file:line``) on bad input."""
    from .cluster_kubectl import load_kubectl_cluster, looks_like_kubectl
    from ..parse.cluster_yaml import cluster_file
    from ..parse.cluster_yaml import load_cluster as load_yaml
    from ..parse.source import read_bytes

    path = cluster_file(path)
    start = read_bytes(path, head=True, limit=4096).decode("utf-8", "replace")
    if not looks_like_kubectl(start):
        for option, value in (("dumps", dumps), ("cluster_cidr", cluster_cidr), ("service_cidr", service_cidr),
                              ("require_dumps", require_dumps or None), ("pod_cidr", pod_cidrs or None)):
            if value is not None:
                raise InvalidArgument(f"--{option.replace('_', '-')} is for kubectl JSON input, and {path} is not "
                                      "kubectl JSON (no kubectl List: items, apiVersion, kind); a cluster YAML says "
                                      "it itself (cluster: cidr/service_cidr, a node's dump paths)")
        return load_yaml(path)
    if not (cluster_cidr and service_cidr):
        raise InvalidArgument("kubectl JSON does not say the pod and service networks: give --cluster-cidr and"
                              " --service-cidr (the values of kube-controller-manager --cluster-cidr and"
                              " kube-apiserver --service-cluster-ip-range)")
    pod_cidrs = list(pod_cidrs or ())
    pairs = dict(pod_cidrs)
    if len(pairs) != len(pod_cidrs):
        raise InvalidArgument("--pod-cidr names a node twice")
    return load_kubectl_cluster(path, dumps=dumps, cluster_cidr=cluster_cidr, service_cidr=service_cidr,
                                require_dumps=require_dumps, pod_cidrs=pairs)
