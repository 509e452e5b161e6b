"""A node's IPv4 sysctls that decide a packet's fate, and the values pktverify assumes without them.

Without a ``sysctl.txt`` beside a node's dumps pktverify assumes what a Kubernetes node has
(``ASSUMED``): ``ip_forward=1`` (kubelet and every CNI need it), ``rp_filter=0`` (the kernel's
default; distributions' sysctl.d may set 2, loose, which changes nothing for routes a node
has), ``arp_ignore=0`` (the kernel's: ARP answered for an address on any interface),
``route_localnet=0`` (kube-proxy sets 1 for localhost NodePorts), ``accept_local=0``, and
``net.bridge.bridge-nf-call-iptables=1`` (kube-proxy and kubelet require br_netfilter). A pod's
network namespace copies the host's ``all``/``default`` values when it is made
(``net.core.devconf_inherit_init_net=0``), which matters little there: a pod's one interface
carries its default route, so its reverse-path check passes for every unicast source.

Per-interface values combine as the kernel combines them: ``rp_filter`` and ``arp_ignore`` are
the larger of ``all`` and the interface's (an interface not in the dump has ``default``'s),
``route_localnet`` is ``all`` or the interface's.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Sysctls", "ASSUMED", "KNOWN"]

ASSUMED = {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0,
           "net.ipv4.conf.all.arp_ignore": 0, "net.ipv4.conf.default.arp_ignore": 0,
           "net.ipv4.conf.all.route_localnet": 0, "net.ipv4.conf.all.accept_local": 0,
           "net.bridge.bridge-nf-call-iptables": 1}
KNOWN = ("rp_filter", "arp_ignore", "route_localnet", "accept_local")    # per-interface keys that are read


@dataclass(frozen=True)
class Sysctls:
    """The sysctls read from a node's ``sysctl.txt`` (name -> value); ``source`` names the file."""
    values: tuple[tuple[str, int], ...] = ()
    source: str = ""

    def get(self, name: str) -> int:
        """The value of ``name`` as read, else the one pktverify assumes."""
        for key, value in self.values:
            if key == name:
                return value
        return ASSUMED.get(name, 0)

    def conf(self, iface: str, key: str) -> int:
        """``net.ipv4.conf.IFACE.KEY``: as read, else ``default``'s (what a new interface copies)."""
        for name, value in self.values:
            if name == f"net.ipv4.conf.{iface}.{key}":
                return value
        return self.get(f"net.ipv4.conf.default.{key}")

    @property
    def ip_forward(self) -> bool:
        return bool(self.get("net.ipv4.ip_forward"))

    @property
    def bridge_nf_call_iptables(self) -> bool:
        return bool(self.get("net.bridge.bridge-nf-call-iptables"))

    @property
    def route_localnet(self) -> bool:
        """``all.route_localnet`` (what kube-proxy sets; pktverify's node model has one value)."""
        return bool(self.get("net.ipv4.conf.all.route_localnet"))

    def rp_filter(self, iface: str) -> int:
        """0 off, 1 strict, 2 loose on ``iface``: max(all, the interface's)."""
        return max(self.get("net.ipv4.conf.all.rp_filter"), self.conf(iface, "rp_filter"))

    def arp_ignore(self, iface: str) -> int:
        return max(self.get("net.ipv4.conf.all.arp_ignore"), self.conf(iface, "arp_ignore"))

    def accept_local(self, iface: str) -> bool:
        return bool(self.get("net.ipv4.conf.all.accept_local") or self.conf(iface, "accept_local"))

    def differences(self) -> list[str]:
        """``name=value`` for each value read that is not what pktverify assumes."""
        return [f"{k}={v}" for k, v in self.values if v != ASSUMED.get(k, ASSUMED.get(_as_default(k), 0))]


def _as_default(name: str) -> str:
    """``net.ipv4.conf.IFACE.KEY`` as its ``default`` key (what is assumed for every interface)."""
    return f"net.ipv4.conf.default.{name.rsplit('.', 1)[-1]}" if name.startswith("net.ipv4.conf.") else name
