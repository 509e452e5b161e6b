"""Rebuild the realistic cluster fixture in this folder (run: python3 tests/corpus/realcluster/build.py).

What a user collects from a real three-node cluster (kube-proxy in iptables mode, a bridge CNI with
direct routes between nodes, GKE-style ip-masq-agent):

* ``cluster.json``: ``kubectl get nodes,pods,services,endpointslices -A -o json`` as kubectl writes it
  (managedFields, ownerReferences, conditions, resourceVersions), with hostNetwork pods (kube-proxy,
  the CNI and masquerade daemonsets, the control plane) whose podIP is their node's, coredns and its
  EndpointSlices, a NodePort service, Completed Job pods (Succeeded) and a Failed pod whose old IP a
  Running pod now holds;
* ``<node>/``: what ``scripts/collect-node`` writes on each node: ``iptables-save.txt`` with what
  kubelet (KUBE-KUBELET-CANARY, KUBE-FIREWALL, KUBE-IPTABLES-HINT) and kube-proxy
  (KUBE-PROXY-CANARY, the iptables-mode chains) install, ``ip-addr.json`` (veths, IPv6 link-local
  addresses, lifetimes), ``ip-route.json`` (table all: local and broadcast routes too),
  ``ip-rule.json`` and an empty ``ipset-save.txt``.

kube-proxy's service chains come from ``pktverify generate`` of the equivalent cluster YAML
(``equivalent.yaml`` here, not read by the tests) and are rewritten into iptables-nft-save's layout
(chains sorted, each chain's rules together, marks as ``--set-xmark``). Every iptables-save.txt is
accepted by ``iptables-restore --test`` (checked in a network namespace when this was built).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODES = {"cp-1": ("172.18.0.2", "10.244.0.0/24", "10.244.0.1"),
         "worker-1": ("172.18.0.3", "10.244.1.0/24", "10.244.1.1"),
         "worker-2": ("172.18.0.4", "10.244.2.0/24", "10.244.2.1")}
# Pods with an address of their own: name -> (namespace, node, ip, labels, owner kind/name, ports)
PODS = {
    "coredns-5d78c9869d-4xk2p": ("kube-system", "cp-1", "10.244.0.2", {"k8s-app": "kube-dns"},
                                 ("ReplicaSet", "coredns-5d78c9869d"), [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"),
                                                                        ("metrics", 9153, "TCP")]),
    "coredns-5d78c9869d-9qm7t": ("kube-system", "worker-1", "10.244.1.2", {"k8s-app": "kube-dns"},
                                 ("ReplicaSet", "coredns-5d78c9869d"), [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"),
                                                                        ("metrics", 9153, "TCP")]),
    "web-7c9f8d6b5-h2kqz": ("shop", "worker-1", "10.244.1.5", {"app": "web"}, ("ReplicaSet", "web-7c9f8d6b5"),
                            [("http", 8080, "TCP")]),
    "web-7c9f8d6b5-p8rx4": ("shop", "worker-2", "10.244.2.5", {"app": "web"}, ("ReplicaSet", "web-7c9f8d6b5"),
                            [("http", 8080, "TCP")]),
    "api-0": ("shop", "worker-2", "10.244.2.6", {"app": "api"}, ("StatefulSet", "api"), [("grpc", 9000, "TCP")]),
}
# Host-network pods: name -> (namespace, node, owner kind/name)
HOST_PODS = {
    "etcd-cp-1": ("kube-system", "cp-1", ("Node", "cp-1")),
    "kube-apiserver-cp-1": ("kube-system", "cp-1", ("Node", "cp-1")),
    "kube-controller-manager-cp-1": ("kube-system", "cp-1", ("Node", "cp-1")),
    "kube-scheduler-cp-1": ("kube-system", "cp-1", ("Node", "cp-1")),
    "kube-proxy-8x2lq": ("kube-system", "cp-1", ("DaemonSet", "kube-proxy")),
    "kube-proxy-m4r9w": ("kube-system", "worker-1", ("DaemonSet", "kube-proxy")),
    "kube-proxy-zt6vn": ("kube-system", "worker-2", ("DaemonSet", "kube-proxy")),
    "netd-5qh8c": ("kube-system", "cp-1", ("DaemonSet", "netd")),
    "netd-b7x2m": ("kube-system", "worker-1", ("DaemonSet", "netd")),
    "netd-kw9fp": ("kube-system", "worker-2", ("DaemonSet", "netd")),
    "ip-masq-agent-2nq7d": ("kube-system", "worker-1", ("DaemonSet", "ip-masq-agent")),
    "ip-masq-agent-v8c4j": ("kube-system", "worker-2", ("DaemonSet", "ip-masq-agent")),
}
# Finished pods: name -> (namespace, node, old ip, phase, job). report-...: its IP now api-0's.
DONE_PODS = {
    "db-migrate-28391740-x7k2d": ("shop", "worker-1", "10.244.1.9", "Succeeded", "db-migrate-28391740"),
    "db-migrate-28391755-q4w8n": ("shop", "worker-2", "10.244.2.8", "Succeeded", "db-migrate-28391755"),
    "report-28391700-hm5tz": ("shop", "worker-2", "10.244.2.6", "Failed", "report-28391700"),
}
STAMP = "2024-05-14T09:12:31Z"


def _uid(name: str) -> str:
    import hashlib
    h = hashlib.sha256(name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _meta(name: str, namespace: str | None, labels: dict, *, owner=None, manager="kubelet", rv=1000, **extra) -> dict:
    meta = {"creationTimestamp": STAMP, "labels": labels,
            "managedFields": [{"apiVersion": "v1", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:metadata": {"f:labels": {f"f:{k}": {} for k in labels}}},
                               "manager": manager, "operation": "Update", "time": STAMP}],
            "name": name, "resourceVersion": str(rv), "uid": _uid(name)}
    if namespace:
        meta["namespace"] = namespace
    if owner:
        kind, owner_name = owner
        meta["ownerReferences"] = [{"apiVersion": "v1" if kind == "Node" else "apps/v1" if kind != "Job"
                                    else "batch/v1", "blockOwnerDeletion": True, "controller": True,
                                    "kind": kind, "name": owner_name, "uid": _uid(owner_name)}]
    meta.update(extra)
    return meta


def _conditions(ready: bool, phase: str = "Running") -> list:
    ready_status = "True" if ready else "False"
    out = [{"lastProbeTime": None, "lastTransitionTime": STAMP, "status": "True", "type": "Initialized"},
           {"lastProbeTime": None, "lastTransitionTime": STAMP, "status": ready_status, "type": "Ready"},
           {"lastProbeTime": None, "lastTransitionTime": STAMP, "status": ready_status, "type": "ContainersReady"},
           {"lastProbeTime": None, "lastTransitionTime": STAMP, "status": "True", "type": "PodScheduled"}]
    if phase != "Running":
        out[1]["reason"] = out[2]["reason"] = "PodCompleted" if phase == "Succeeded" else "PodFailed"
    return out


def _container_status(name: str, image: str, phase: str) -> dict:
    if phase == "Running":
        state = {"running": {"startedAt": STAMP}}
    else:
        state = {"terminated": {"containerID": f"containerd://{_uid(name).replace('-', '')}",
                                "exitCode": 0 if phase == "Succeeded" else 1, "finishedAt": STAMP,
                                "reason": "Completed" if phase == "Succeeded" else "Error", "startedAt": STAMP}}
    return {"containerID": f"containerd://{_uid(name).replace('-', '')}", "image": image,
            "imageID": f"{image.split(':')[0]}@sha256:{_uid(image).replace('-', '') * 2}",
            "lastState": {}, "name": name, "ready": phase == "Running", "restartCount": 0,
            "started": phase == "Running", "state": state}


def _pod(name, namespace, node, ip, labels, owner, ports, *, host=False, phase="Running", rv=2000) -> dict:
    container = name.rsplit("-", 2)[0] if owner[0] == "ReplicaSet" else name.rsplit("-", 1)[0]
    image = {"coredns": "registry.k8s.io/coredns/coredns:v1.10.1", "kube-proxy": "registry.k8s.io/kube-proxy:v1.28.4",
             }.get(container, f"registry.example.com/{container}:1.4.2")
    spec = {"containers": [{"image": image, "imagePullPolicy": "IfNotPresent", "name": container,
                            "ports": [{"containerPort": p, "name": n, "protocol": proto} for n, p, proto in ports],
                            "resources": {}, "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File"}],
            "dnsPolicy": "ClusterFirstWithHostNet" if host else "ClusterFirst", "enableServiceLinks": True,
            "nodeName": node, "preemptionPolicy": "PreemptLowerPriority", "priority": 0,
            "restartPolicy": "Always" if phase == "Running" else "Never", "schedulerName": "default-scheduler",
            "securityContext": {}, "serviceAccountName": "default", "terminationGracePeriodSeconds": 30,
            "tolerations": [{"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists",
                             "tolerationSeconds": 300}]}
    if host:
        spec["hostNetwork"] = True
        spec["priorityClassName"] = "system-node-critical"
        spec["priority"] = 2000001000
    node_ip = NODES[node][0]
    status = {"conditions": _conditions(phase == "Running", phase),
              "containerStatuses": [_container_status(container, image, phase)],
              "hostIP": node_ip, "hostIPs": [{"ip": node_ip}], "phase": phase, "podIP": ip, "podIPs": [{"ip": ip}],
              "qosClass": "BestEffort", "startTime": STAMP}
    meta = _meta(name, namespace, labels, owner=owner, rv=rv)
    if owner[0] == "Node":
        meta["annotations"] = {"kubernetes.io/config.hash": _uid(name)[:32], "kubernetes.io/config.source": "file"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def _node(name: str, rv: int) -> dict:
    ip, cidr, _gw = NODES[name]
    labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    spec = {"podCIDR": cidr, "podCIDRs": [cidr], "providerID": f"kind://docker/realcluster/{name}"}
    if name == "cp-1":
        labels["node-role.kubernetes.io/control-plane"] = ""
        spec["taints"] = [{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}]
    conditions = [{"lastHeartbeatTime": STAMP, "lastTransitionTime": STAMP, "message": msg, "reason": reason,
                   "status": status, "type": kind}
                  for kind, status, reason, msg in (
                      ("MemoryPressure", "False", "KubeletHasSufficientMemory",
                       "kubelet has sufficient memory available"),
                      ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                      ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                      ("Ready", "True", "KubeletReady", "kubelet is posting ready status"))]
    resources = {"cpu": "8", "ephemeral-storage": "102625208Ki", "hugepages-2Mi": "0", "memory": "16283424Ki",
                 "pods": "110"}
    status = {"addresses": [{"address": ip, "type": "InternalIP"}, {"address": name, "type": "Hostname"}],
              "allocatable": resources, "capacity": resources, "conditions": conditions,
              "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
              "nodeInfo": {"architecture": "amd64", "bootID": _uid(name + "boot"),
                           "containerRuntimeVersion": "containerd://1.7.13", "kernelVersion": "6.5.0-28-generic",
                           "kubeProxyVersion": "v1.28.4", "kubeletVersion": "v1.28.4",
                           "machineID": _uid(name + "machine").replace("-", ""), "operatingSystem": "linux",
                           "osImage": "Debian GNU/Linux 12 (bookworm)", "systemUUID": _uid(name + "uuid")}}
    meta = _meta(name, None, labels, manager="kubelet", rv=rv,
                 annotations={"kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
                              "node.alpha.kubernetes.io/ttl": "0",
                              "volumes.kubernetes.io/controller-managed-attach-detach": "true"})
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": spec, "status": status}


def _service(name, namespace, cluster_ip, ports, selector, *, kind="ClusterIP", labels=None, rv=3000) -> dict:
    spec = {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "internalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [{"name": n, "port": p, "protocol": proto, "targetPort": t, **({"nodePort": np} if np else {})}
                      for n, p, t, proto, np in ports],
            "sessionAffinity": "None", "type": kind}
    if selector:
        spec["selector"] = selector
    if kind == "NodePort":
        spec["externalTrafficPolicy"] = "Cluster"
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta(name, namespace, labels or {}, manager="kubectl-client-side-apply", rv=rv),
            "spec": spec, "status": {"loadBalancer": {}}}


def _slice(service, namespace, ports, endpoints, *, rv=4000) -> dict:
    name = f"{service}-{_uid(service)[:5]}"
    labels = {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
              "kubernetes.io/service-name": service}
    eps = []
    for ip, pod in endpoints:
        ep = {"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False}}
        if pod:
            ep["nodeName"] = PODS[pod][1]
            ep["targetRef"] = {"kind": "Pod", "name": pod, "namespace": namespace, "uid": _uid(pod)}
        eps.append(ep)
    meta = _meta(name, namespace, labels, owner=None, manager="endpointslice-controller", rv=rv,
                 generateName=f"{service}-",
                 ownerReferences=[{"apiVersion": "v1", "blockOwnerDeletion": True, "controller": True,
                                   "kind": "Service", "name": service, "uid": _uid(service)}])
    return {"addressType": "IPv4", "apiVersion": "discovery.k8s.io/v1", "endpoints": eps, "kind": "EndpointSlice",
            "metadata": meta, "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports]}


def kubectl_list() -> dict:
    items = [_node(name, 500 + i) for i, name in enumerate(NODES)]
    rv = 2000
    for name, (ns, node, ip, labels, owner, ports) in PODS.items():
        rv += 7
        items.append(_pod(name, ns, node, ip, {**labels, "pod-template-hash": owner[1].rsplit("-", 1)[-1]}
                          if owner[0] == "ReplicaSet" else labels, owner, ports, rv=rv))
    for name, (ns, node, owner) in HOST_PODS.items():
        rv += 7
        labels = {"component": name.rsplit("-", 2)[0] if owner[0] == "Node" else owner[1], "tier": "control-plane"} \
            if owner[0] == "Node" else {"k8s-app": owner[1], "controller-revision-hash": "7d8f9c6b4"}
        ports = [("probe-port", 10256, "TCP")] if owner[1] == "kube-proxy" else []
        items.append(_pod(name, ns, node, NODES[node][0], labels, owner, ports, host=True, rv=rv))
    for name, (ns, node, ip, phase, job) in DONE_PODS.items():
        rv += 7
        labels = {"batch.kubernetes.io/job-name": job, "job-name": job,
                  "batch.kubernetes.io/controller-uid": _uid(job), "controller-uid": _uid(job)}
        items.append(_pod(name, ns, node, ip, labels, ("Job", job), [], phase=phase, rv=rv))
    items += [
        _service("kubernetes", "default", "10.96.0.1", [("https", 443, 6443, "TCP", None)], None,
                 labels={"component": "apiserver", "provider": "kubernetes"}),
        _service("kube-dns", "kube-system", "10.96.0.10",
                 [("dns", 53, 53, "UDP", None), ("dns-tcp", 53, 53, "TCP", None), ("metrics", 9153, 9153, "TCP", None)],
                 {"k8s-app": "kube-dns"}, labels={"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                                                  "kubernetes.io/name": "CoreDNS"}),
        _service("web", "shop", "10.96.120.15", [("http", 80, "http", "TCP", 30080)], {"app": "web"}, kind="NodePort",
                 labels={"app": "web"}),
        _service("api", "shop", "10.96.44.2", [("grpc", 9000, 9000, "TCP", None)], {"app": "api"},
                 labels={"app": "api"}),
    ]
    kubernetes = _slice("kubernetes", "default", [("https", 6443, "TCP")], [("172.18.0.2", None)])
    kubernetes["metadata"]["name"] = "kubernetes"
    kubernetes["metadata"]["labels"] = {"kubernetes.io/service-name": "kubernetes"}
    items += [
        kubernetes,
        _slice("kube-dns", "kube-system", [("dns-tcp", 53, "TCP"), ("dns", 53, "UDP"), ("metrics", 9153, "TCP")],
               [("10.244.0.2", "coredns-5d78c9869d-4xk2p"), ("10.244.1.2", "coredns-5d78c9869d-9qm7t")]),
        _slice("web", "shop", [("http", 8080, "TCP")],
               [("10.244.1.5", "web-7c9f8d6b5-h2kqz"), ("10.244.2.5", "web-7c9f8d6b5-p8rx4")]),
        _slice("api", "shop", [("grpc", 9000, "TCP")], [("10.244.2.6", "api-0")]),
    ]
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


# -- node dumps -------------------------------------------------------------------------------------------------

_KUBELET = {"mangle": ["KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY"],
            "filter": ["KUBE-FIREWALL", "KUBE-FORWARD", "KUBE-KUBELET-CANARY", "KUBE-NODEPORTS", "KUBE-PROXY-CANARY"],
            "nat": ["IP-MASQ-AGENT", "KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY"]}
_EXTRA_RULES = {
    "filter": ['-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
               "-A INPUT -j KUBE-FIREWALL",
               '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
               "-A OUTPUT -j KUBE-FIREWALL",
               '-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet '
               'connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
               "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
               '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 '
               '-j ACCEPT',
               '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate '
               'RELATED,ESTABLISHED -j ACCEPT'],
    "nat": ['-A POSTROUTING -m comment --comment "ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL '
            'destination traffic to our custom IP-MASQ-AGENT chain" -m addrtype ! --dst-type LOCAL -j IP-MASQ-AGENT']
    + [f'-A IP-MASQ-AGENT -d {net} -m comment --comment "ip-masq-agent: local traffic is not subject to MASQUERADE" '
       "-j RETURN" for net in ("169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
    + ['-A IP-MASQ-AGENT -m comment --comment "ip-masq-agent: outbound traffic is subject to MASQUERADE (must be '
       'last in chain)" -j MASQUERADE'],
}
_BUILTIN = {"mangle": ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
            "filter": ["INPUT", "FORWARD", "OUTPUT"], "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]}


def _real_iptables(generated: str) -> str:
    """kube-proxy's generated rules plus what kubelet and ip-masq-agent add, as iptables-nft-save prints them."""
    tables: dict[str, tuple[list[str], list[str]]] = {"mangle": ([], [])}
    current = None
    for line in generated.splitlines():
        if line.startswith("*"):
            current = line[1:]
            tables.setdefault(current, ([], []))
        elif line.startswith(":") and not line.split()[0][1:] in _BUILTIN.get(current, ()):
            tables[current][0].append(line.split()[0][1:])
        elif line.startswith("-A "):
            tables[current][1].append(line.replace("--or-mark 0x4000", "--set-xmark 0x4000/0x4000")
                                      .replace("--xor-mark 0x4000", "--set-xmark 0x4000/0x0"))
    out = ["# Generated by iptables-nft-save v1.8.9 (nf_tables) on Tue May 14 09:40:02 2024"]
    for table in ("mangle", "filter", "nat"):
        chains, rules = tables[table]
        chains = sorted(set(chains) | set(_KUBELET[table]))
        rules = rules + _EXTRA_RULES.get(table, [])
        out.append(f"*{table}")
        out += [f":{c} ACCEPT [0:0]" for c in _BUILTIN[table]] + [f":{c} - [0:0]" for c in chains]
        for chain in _BUILTIN[table] + chains:      # iptables-save lists each chain's rules together
            out += [r for r in rules if r.split()[1] == chain]
        out.append("COMMIT")
        out.append("# Completed on Tue May 14 09:40:02 2024")
    return "\n".join(out) + "\n"


def _mac(seed: str) -> str:
    h = _uid(seed).replace("-", "")
    return "02:42:" + ":".join(h[i:i + 2] for i in range(0, 8, 2))


def _addrs(node: str) -> list:
    ip, cidr, gw = NODES[node]
    life = {"valid_life_time": 4294967295, "preferred_life_time": 4294967295}
    out = [{"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "mtu": 65536, "qdisc": "noqueue",
            "operstate": "UNKNOWN", "group": "default", "txqlen": 1000, "link_type": "loopback",
            "address": "00:00:00:00:00:00", "broadcast": "00:00:00:00:00:00",
            "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host", "label": "lo",
                           **life},
                          {"family": "inet6", "local": "::1", "prefixlen": 128, "scope": "host", **life}]},
           {"ifindex": 2, "ifname": "cni0", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], "mtu": 1500,
            "qdisc": "noqueue", "operstate": "UP", "group": "default", "txqlen": 1000, "link_type": "ether",
            "address": _mac(node + "cni0"), "broadcast": "ff:ff:ff:ff:ff:ff",
            "addr_info": [{"family": "inet", "local": gw, "prefixlen": 24,
                           "broadcast": cidr.replace(".0/24", ".255"), "scope": "global", "label": "cni0", **life},
                          {"family": "inet6", "local": "fe80::42:acff:fe12:2", "prefixlen": 64, "scope": "link",
                           **life}]}]
    index = 3
    for pod, (_ns, pod_node, *_rest) in PODS.items():
        if pod_node == node:
            out.append({"ifindex": index, "link_index": 2, "ifname": f"veth{_uid(pod)[:8]}",
                        "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], "mtu": 1500, "qdisc": "noqueue",
                        "master": "cni0", "operstate": "UP", "group": "default", "link_type": "ether",
                        "address": _mac(pod), "broadcast": "ff:ff:ff:ff:ff:ff", "link_netnsid": index - 3,
                        "addr_info": [{"family": "inet6", "local": "fe80::c0a8:ff:fe00:" + str(index), "prefixlen": 64,
                                       "scope": "link", **life}]})
            index += 1
    out.append({"ifindex": index + 20, "link_index": index + 21, "ifname": "eth0",
                "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], "mtu": 1500, "qdisc": "noqueue",
                "operstate": "UP", "group": "default", "link_type": "ether", "address": _mac(node),
                "broadcast": "ff:ff:ff:ff:ff:ff", "link_netnsid": 0,
                "addr_info": [{"family": "inet", "local": ip, "prefixlen": 16, "broadcast": "172.18.255.255",
                               "scope": "global", "label": "eth0", **life},
                              {"family": "inet6", "local": "fc00:f853:ccd:e793::" + ip.rsplit(".", 1)[1],
                               "prefixlen": 64, "scope": "global", "nodad": True, **life}]})
    return out


def _routes(node: str) -> list:
    ip, cidr, gw = NODES[node]
    out = [{"dst": "default", "gateway": "172.18.0.1", "dev": "eth0", "flags": []}]
    for other, (oip, ocidr, _ogw) in NODES.items():
        if other == node:
            out.append({"dst": cidr, "dev": "cni0", "protocol": "kernel", "scope": "link", "prefsrc": gw, "flags": []})
        else:
            out.append({"dst": ocidr, "gateway": oip, "dev": "eth0", "flags": []})
    out.append({"dst": "172.18.0.0/16", "dev": "eth0", "protocol": "kernel", "scope": "link", "prefsrc": ip,
                "flags": []})
    for dst, dev, src, kind, scope in (
            (gw, "cni0", gw, "local", "host"), (cidr.replace(".0/24", ".255"), "cni0", gw, "broadcast", "link"),
            ("127.0.0.0/8", "lo", "127.0.0.1", "local", "host"), ("127.0.0.1", "lo", "127.0.0.1", "local", "host"),
            ("127.255.255.255", "lo", "127.0.0.1", "broadcast", "link"), (ip, "eth0", ip, "local", "host"),
            ("172.18.255.255", "eth0", ip, "broadcast", "link")):
        out.append({"type": kind, "dst": dst, "table": "local", "dev": dev, "protocol": "kernel", "scope": scope,
                    "prefsrc": src, "flags": []})
    return out


_RULES = [{"priority": 0, "src": "all", "table": "local"}, {"priority": 32766, "src": "all", "table": "main"},
          {"priority": 32767, "src": "all", "table": "default"}]


def build() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pktverify", "generate", str(HERE / "equivalent.yaml"), "--out", tmp],
                       check=True)
        for node in NODES:
            folder = HERE / node
            folder.mkdir(exist_ok=True)
            (folder / "iptables-save.txt").write_text(_real_iptables((Path(tmp) / node / "iptables-save.txt")
                                                                     .read_text()))
            (folder / "ip-addr.json").write_text(json.dumps(_addrs(node)) + "\n")
            (folder / "ip-route.json").write_text(json.dumps(_routes(node)) + "\n")
            (folder / "ip-rule.json").write_text(json.dumps(_RULES) + "\n")
            (folder / "ipset-save.txt").write_text("")
    (HERE / "cluster.json").write_text(json.dumps(kubectl_list(), indent=4) + "\n")


if __name__ == "__main__":
    build()
