"""Every ``-m`` match module and ``-j`` target pktverify reads: its options and its builder.

One entry per module or target: ``name: ({option: number of arguments}, builder)``.
The router (:mod:`.iptables_route`) reads the options to give each option to its
owner; :func:`build_match` and :func:`build_target` call the builder with what was
given.  Adding a match or target is one builder (in :mod:`.iptables_matches`,
:mod:`.iptables_ext_matches` or :mod:`.iptables_targets`) and one entry here.
"""

from __future__ import annotations

from ..model import rules as m
from . import iptables_ext_matches as ext
from . import iptables_matches as core
from . import iptables_targets as tg
from .iptables_kit import MatchBuilder, MatchModule, RuleSyntaxError, TargetBuilder, TargetOptions
from .iptables_targets import noop

__all__ = ["MATCHES", "TARGETS", "MATCH_OPTIONS", "TARGET_OPTIONS", "build_match", "build_target", "unknown_target"]

_PORTS = {"--sport": 1, "--source-port": 1, "--dport": 1, "--destination-port": 1}
_CHAIN_OR_VERDICT = ("ACCEPT", "DROP", "RETURN")

MATCHES: dict[str, tuple[dict[str, int], MatchBuilder]] = {
    # iptables' own modules (kube-proxy's set and a few more)
    "tcp": ({**_PORTS, "--tcp-flags": 2, "--syn": 0, "--tcp-option": 1}, core.ports),
    "udp": (_PORTS, core.ports),
    "sctp": (_PORTS, core.ports),
    "multiport": ({"--dports": 1, "--destination-ports": 1, "--sports": 1, "--source-ports": 1, "--ports": 1},
                  core.multiport),
    "comment": ({"--comment": 1}, core.comment),
    "addrtype": ({"--src-type": 1, "--dst-type": 1, "--limit-iface-in": 0, "--limit-iface-out": 0}, core.addrtype),
    "statistic": ({"--mode": 1, "--probability": 1, "--every": 1, "--packet": 1}, core.statistic),
    "mark": ({"--mark": 1}, core.mark),
    "conntrack": ({"--ctstate": 1, "--ctproto": 1, "--ctorigsrc": 1, "--ctorigdst": 1, "--ctreplsrc": 1,
                   "--ctrepldst": 1, "--ctorigsrcport": 1, "--ctorigdstport": 1, "--ctreplsrcport": 1,
                   "--ctrepldstport": 1, "--ctstatus": 1, "--ctexpire": 1, "--ctdir": 1}, core.ctstate),
    "state": ({"--state": 1}, core.ctstate),
    "iprange": ({"--src-range": 1, "--dst-range": 1}, core.iprange),
    "icmp": ({"--icmp-type": 1}, core.icmp),
    "recent": ({"--name": 1, "--set": 0, "--rcheck": 0, "--update": 0, "--remove": 0, "--seconds": 1, "--reap": 0,
                "--hitcount": 1, "--rttl": 0, "--rsource": 0, "--rdest": 0, "--mask": 1}, core.recent),
    # what CNIs, IPVS mode, istio, docker and home routers add
    "set": ({"--match-set": 2, "--set": 2, "--return-nomatch": 0, "--update-counters": 0, "--update-subcounters": 0,
             "--packets-eq": 1, "--packets-lt": 1, "--packets-gt": 1, "--bytes-eq": 1, "--bytes-lt": 1,
             "--bytes-gt": 1}, ext.set_match),
    "physdev": ({"--physdev-in": 1, "--physdev-out": 1, "--physdev-is-in": 0, "--physdev-is-out": 0,
                 "--physdev-is-bridged": 0}, ext.physdev),
    "owner": ({"--uid-owner": 1, "--gid-owner": 1, "--socket-exists": 0, "--suppl-groups": 0}, ext.owner),
    "limit": ({"--limit": 1, "--limit-burst": 1}, ext.limit),
    "hashlimit": ({"--hashlimit-upto": 1, "--hashlimit-above": 1, "--hashlimit": 1, "--hashlimit-burst": 1,
                   "--hashlimit-mode": 1, "--hashlimit-srcmask": 1, "--hashlimit-dstmask": 1, "--hashlimit-name": 1,
                   "--hashlimit-htable-size": 1, "--hashlimit-htable-max": 1, "--hashlimit-htable-expire": 1,
                   "--hashlimit-htable-gcinterval": 1, "--hashlimit-rate-match": 0,
                   "--hashlimit-rate-interval": 1}, ext.hashlimit),
    "connlimit": ({"--connlimit-upto": 1, "--connlimit-above": 1, "--connlimit-mask": 1, "--connlimit-saddr": 0,
                   "--connlimit-daddr": 0}, ext.connlimit),
    "quota": ({"--quota": 1}, ext.quota),
    "connbytes": ({"--connbytes": 1, "--connbytes-dir": 1, "--connbytes-mode": 1}, ext.connbytes),
    "pkttype": ({"--pkt-type": 1}, ext.pkttype),
    "rpfilter": ({"--loose": 0, "--validmark": 0, "--accept-local": 0, "--invert": 0}, ext.rpfilter),
    "time": ({"--datestart": 1, "--datestop": 1, "--timestart": 1, "--timestop": 1, "--monthdays": 1,
              "--weekdays": 1, "--kerneltz": 0, "--utc": 0, "--localtz": 0, "--contiguous": 0}, ext.time),
    "connmark": ({"--mark": 1}, ext.connmark),
    "length": ({"--length": 1}, ext.length),
    "ttl": ({"--ttl-eq": 1, "--ttl-lt": 1, "--ttl-gt": 1}, ext.ttl),
    "tos": ({"--tos": 1}, ext.tos),
    "dscp": ({"--dscp": 1, "--dscp-class": 1}, ext.dscp),
    "ecn": ({"--ecn-tcp-cwr": 0, "--ecn-tcp-ece": 0, "--ecn-ip-ect": 1}, ext.ecn),
    "tcpmss": ({"--mss": 1}, ext.tcpmss),
    "helper": ({"--helper": 1}, ext.helper),
    "policy": ({"--dir": 1, "--pol": 1, "--strict": 0, "--reqid": 1, "--spi": 1, "--proto": 1, "--mode": 1,
                "--tunnel-src": 1, "--tunnel-dst": 1, "--next": 0}, ext.policy),
    "devgroup": ({"--src-group": 1, "--dst-group": 1}, ext.devgroup),
    # answers no dump holds: "may match", saying why
    "ipvs": ({"--ipvs": 0, "--vproto": 1, "--vaddr": 1, "--vport": 1, "--vdir": 1, "--vmethod": 1, "--vportctl": 1},
             ext.maybe("IPVS is not modelled yet (its virtual services are not in iptables-save)")),
    "socket": ({"--transparent": 0, "--nowildcard": 0, "--restore-skmark": 0},
               ext.maybe("whether a local socket takes this packet is not in any dump")),
    "cgroup": ({"--path": 1, "--cgroup": 1}, ext.maybe("the sending process's cgroup is not in any dump")),
    "bpf": ({"--bytecode": 1, "--object-pinned": 1}, ext.maybe("the BPF program's answer is not evaluated")),
    "u32": ({"--u32": 1}, ext.maybe("u32 reads packet bytes pktverify does not model")),
    "mac": ({"--mac-source": 1}, ext.maybe("link-layer addresses are not in the dumps")),
    "string": ({"--algo": 1, "--from": 1, "--to": 1, "--string": 1, "--hex-string": 1, "--icase": 0},
               ext.maybe("packet payload is not modelled")),
    "esp": ({"--espspi": 1}, ext.maybe("IPsec is not modelled")),
    "ah": ({"--ahspi": 1}, ext.maybe("IPsec is not modelled")),
    "realm": ({"--realm": 1}, ext.maybe("route realms are not in the dumps")),
    "cpu": ({"--cpu": 1}, ext.maybe("the CPU that handles the packet is not known")),
    "osf": ({"--genre": 1, "--ttl": 1, "--log": 1}, ext.maybe("the sender's OS fingerprint is not modelled")),
}

TARGETS: dict[str, tuple[dict[str, int], TargetBuilder]] = {
    "ACCEPT": ({}, tg.verdict), "DROP": ({}, tg.verdict), "RETURN": ({}, tg.verdict),
    "REJECT": ({"--reject-with": 1}, tg.reject),
    "DNAT": ({"--to-destination": 1, "--random": 0, "--persistent": 0}, tg.dnat),
    "SNAT": ({"--to-source": 1, "--random": 0, "--random-fully": 0, "--persistent": 0}, tg.snat),
    "MASQUERADE": ({"--to-ports": 1, "--random": 0, "--random-fully": 0}, tg.masquerade),
    "REDIRECT": ({"--to-ports": 1, "--random": 0}, tg.redirect),
    "MARK": ({"--set-xmark": 1, "--set-mark": 1, "--or-mark": 1, "--and-mark": 1, "--xor-mark": 1}, tg.mark),
    "LOG": ({"--log-prefix": 1, "--log-level": 1, "--log-tcp-sequence": 0, "--log-tcp-options": 0,
             "--log-ip-options": 0, "--log-uid": 0, "--log-macdecode": 0}, tg.log),
    "NFLOG": ({"--nflog-group": 1, "--nflog-prefix": 1, "--nflog-range": 1, "--nflog-threshold": 1,
               "--nflog-size": 1}, tg.nflog),
    "CONNMARK": ({"--set-xmark": 1, "--set-mark": 1, "--save-mark": 0, "--restore-mark": 0, "--and-mark": 1,
                  "--or-mark": 1, "--xor-mark": 1, "--nfmask": 1, "--ctmask": 1, "--mask": 1}, tg.connmark),
    "CT": ({"--notrack": 0, "--zone": 1, "--zone-orig": 1, "--zone-reply": 1, "--helper": 1, "--ctevents": 1,
            "--expevents": 1, "--timeout": 1}, tg.ct),
    "NOTRACK": ({}, tg.notrack),
    "TPROXY": ({"--on-port": 1, "--on-ip": 1, "--tproxy-mark": 1}, tg.tproxy),
    "TTL": ({"--ttl-set": 1, "--ttl-dec": 1, "--ttl-inc": 1}, tg.ttl),
    "NFQUEUE": ({"--queue-num": 1, "--queue-balance": 1, "--queue-bypass": 0, "--fail-open": 0,
                 "--queue-cpu-fanout": 0}, tg.nfqueue),
    "QUEUE": ({}, tg.nfqueue),
    "NETMAP": ({"--to": 1}, tg.netmap),
    "SET": ({"--add-set": 2, "--del-set": 2, "--map-set": 2, "--exist": 0, "--timeout": 1, "--map-mark": 0,
             "--map-prio": 0, "--map-queue": 0}, tg.set_target),
    "TCPMSS": ({"--set-mss": 1, "--clamp-mss-to-pmtu": 0}, tg.tcpmss),
    # targets that leave the packet's path alone
    "CHECKSUM": ({"--checksum-fill": 0}, noop("fills in the checksum")),
    "DSCP": ({"--set-dscp": 1, "--set-dscp-class": 1}, noop("rewrites DSCP")),
    "TOS": ({"--set-tos": 1, "--and-tos": 1, "--or-tos": 1, "--xor-tos": 1}, noop("rewrites TOS")),
    "ECN": ({"--ecn-tcp-remove": 0}, noop("clears ECN bits")),
    "CLASSIFY": ({"--set-class": 1}, noop("sets the traffic-control class")),
    "TRACE": ({}, noop("marks the packet for tracing")),
    "AUDIT": ({"--type": 1}, noop("writes an audit record")),
    "SECMARK": ({"--selctx": 1}, noop("sets a security mark")),
    "CONNSECMARK": ({"--save": 0, "--restore": 0}, noop("copies the security mark")),
    "IDLETIMER": ({"--timeout": 1, "--label": 1, "--alarm": 0}, noop("restarts a timer")),
    "TCPOPTSTRIP": ({"--strip-options": 1}, noop("strips TCP options")),
    "TEE": ({"--gateway": 1, "--oif": 1}, noop("sends a copy to another host (the original goes on)")),
    "LED": ({"--led-trigger-id": 1, "--led-delay": 1, "--led-always-blink": 0}, noop("blinks an LED")),
    "RATEEST": ({"--rateest-name": 1, "--rateest-interval": 1, "--rateest-ewmalog": 1},
                noop("counts the packet for a rate estimator")),
    "ULOG": ({"--ulog-nlgroup": 1, "--ulog-prefix": 1, "--ulog-cprange": 1, "--ulog-qthreshold": 1},
             noop("logs to userspace (the pre-3.17 netlink logger)")),
}

# The routing view: name -> {option: number of arguments}.
MATCH_OPTIONS: dict[str, dict[str, int]] = {name: options for name, (options, _build) in MATCHES.items()}
TARGET_OPTIONS: dict[str, dict[str, int]] = {name: options for name, (options, _build) in TARGETS.items()}
_MATCH_BUILDERS = {name: build for name, (_options, build) in MATCHES.items()}
_TARGET_BUILDERS = {name: build for name, (_options, build) in TARGETS.items()}


def build_match(module: MatchModule, proto: int | None) -> list[object]:
    """The model matches of one ``-m`` module (an unknown one, read leniently: an UnknownMatch)."""
    if not module.known:
        return [m.UnknownMatch(module.name, " ".join([f"-m {module.name}", *module.raw]))]
    return _MATCH_BUILDERS[module.name](module, proto)


def build_target(name: str, goto: bool, opts: TargetOptions, proto: int | None,
                 lenient: bool) -> object:
    """The model target of ``-j NAME`` or ``-g NAME`` with ``opts`` as ``(option, values, invert)``."""
    if name not in TARGETS:
        if name.startswith("-") or not name:
            raise RuleSyntaxError(f"-j needs a target name, got {name!r}")
        # A user chain takes no options; options mean an unsupported target extension.
        return m.Jump(name, goto) if not opts else unknown_target(name, opts, lenient)
    if goto and name not in _CHAIN_OR_VERDICT:
        raise RuleSyntaxError(f"-g needs a chain, not the target {name}")
    if any(inv for _opt, _vals, inv in opts):
        raise RuleSyntaxError(f"target {name} options cannot be negated with '!'")
    return _TARGET_BUILDERS[name](name, opts, proto)


def unknown_target(name: str, opts: object, lenient: bool) -> m.UnknownTarget:
    """An unsupported target: an error, or read leniently an UnknownTarget the walk treats as unknown."""
    if not lenient:
        raise RuleSyntaxError(
            f"unsupported target {name!r} (supported: {', '.join(sorted(TARGETS))} and user chains;"
            " --lenient treats it as unknown)")
    return m.UnknownTarget(name)
