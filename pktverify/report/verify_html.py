"""``pktverify verify --html FILE``: one self-contained page a person reads at a glance.

The cluster first (its nodes and pod CIDRs as a picture, its services, which invariants hold),
then every cause of violations, biggest first, each with its example flows drawn as a path:
one box per observation point, left to right (the client's namespace, the bridge, the node's
tables, the wire, the next node, the receiver), the packet's tuple under each, the hop where a
NAT rewrote it and the rule that did it highlighted, drops and rejects in red, the reply's path
beneath. Everything is inline (CSS, SVG): no script, no font, no address is fetched — a
Content-Security-Policy says so to the browser — and every name from the input is escaped.
"""

from __future__ import annotations

from html import escape

from ..check.causes import REWRITES, Group, ending_step, group_violations
from ..check.invariants import InvariantResult, Violation
from ..eval.walk_notes import step_label
from ..model.addresses import format_ip, format_network
from ..model.cluster import DUMP_KINDS, ClusterSpec
from .node_warnings import NodeWarning, node_list

__all__ = ["verify_to_html", "page_head", "path_html"]

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}h3{font-size:15px;margin:0 0 6px}
.verdict{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;color:#fff}
.holds{background:#2e7d32}.fails{background:#c62828}.muted{color:#5f6b7a}
table{border-collapse:collapse;margin:6px 0 12px;background:#fff}
th,td{border:1px solid #d9dee5;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eef1f5}
.group{background:#fff;border:1px solid #d9dee5;border-left:5px solid #c62828;border-radius:6px;padding:12px 14px;
margin:14px 0}.loc{font-family:ui-monospace,monospace;font-size:12px;color:#5f6b7a}
.example{margin:10px 0 4px}.message{margin:4px 0 8px}
.path{display:flex;flex-wrap:wrap;align-items:stretch;row-gap:8px;padding:4px 0 8px}
.hop{flex:0 0 auto;width:178px;border:1px solid #b8c2cf;border-radius:6px;background:#f6f8fa;
padding:6px 8px;font-size:12px}.hop .point{font-weight:600;word-break:break-all}
.hop .tuple{font-family:ui-monospace,monospace;font-size:11px;white-space:nowrap;margin-top:3px}
.hop .rules{margin:4px 0 0;padding-left:14px;color:#5f6b7a}.hop .rules li.nat{color:#8a4b00;font-weight:600}
.hop.nat{background:#fff4e0;border-color:#e69500}.hop.stop{background:#fdecea;border-color:#c62828}
.hop .stopped{margin:4px 0 2px;padding:3px 5px;border-radius:4px;background:#c62828;color:#fff;font-weight:700;
font-size:13px;word-break:break-word}.hop .stopped .loc{display:block;color:#fde0dc;font-weight:400;font-size:11px}
.hop.stop:has(.stopped){width:260px;border-width:2px}
.hop.end{background:#e8f4ea;border-color:#2e7d32}.hop.wire{background:#eef1f5;border-style:dashed}
.arrow{flex:0 0 auto;align-self:center;color:#8593a3;font-size:18px;padding:0 4px}
.row-label{font-size:12px;font-weight:600;color:#5f6b7a;margin-top:6px}
svg text{font:12px system-ui,sans-serif}
"""


def page_head(title: str) -> list[str]:
    """The opening lines of a self-contained page: no script, nothing fetched (the
    Content-Security-Policy says so), the shared style, ``title`` escaped."""
    return ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"]


def verify_to_html(cluster: ClusterSpec, results: list[InvariantResult], *, max_violations: int = 2,
                   captures: dict | None = None, node_warnings: list[NodeWarning] = ()) -> str:
    """The page for one verify run (``max_violations`` example flows per cause; 0: all);
    ``captures``: the capture files of each violation (see ``capture_names``), named by its example;
    ``node_warnings`` (:func:`.node_warnings.fold_node_warnings`) listed under the invariants."""
    groups = group_violations(results)
    names = {(r.name, id(v)): [str(p) for p in captures.get((r.name, n), ())]
             for r in results for n, v in enumerate(r.violations)} if captures else {}
    holds = all(r.holds for r in results)
    out = [*page_head(f"pktverify: {cluster.source}"),
           f"<h1>pktverify verify {escape(cluster.source)} "
           f"<span class=\"verdict {'holds' if holds else 'fails'}\" id=\"verdict\">"
           f"{'every invariant holds' if holds else f'{len(groups)} cause(s) of violations'}</span></h1>",
           f"<p class=\"muted\">{len(cluster.nodes)} node(s), {len(cluster.pods)} pod(s), {len(cluster.services)} "
           f"service(s), kube-proxy {escape(cluster.proxy_mode)} mode; cluster CIDR "
           f"{format_network(*cluster.cidr)}, service CIDR {format_network(*cluster.service_cidr)}</p>"]
    out += _invariants(results)
    if node_warnings:
        out.append("<h2>Warnings on the nodes' dumps</h2><p class=\"muted\">What pktverify left out.</p>"
                   "<ul id=\"node-warnings\">")
        out += [f"<li><b>{escape(node_list(nodes))}</b>: {escape(text)}</li>" for nodes, text in node_warnings]
        out.append("</ul>")
    out.append("<h2>The cluster</h2>")
    out.append(_topology(cluster, groups[0] if groups else None))
    out += _dumps(cluster)
    out += _services(cluster)
    out.append("<h2>Causes, biggest first</h2>" if groups else "<h2>Causes</h2><p>None: nothing to fix.</p>")
    for n, group in enumerate(groups, 1):
        out += _group(n, group, max_violations, names)
    notes = [(r.name, note) for r in results for note in r.notes]
    if notes:
        out.append("<h2>Notes</h2><ul>")
        out += [f"<li><b>{escape(name)}</b>: {escape(note)}</li>" for name, note in notes]
        out.append("</ul>")
    out.append("</body></html>\n")
    return "\n".join(out)


def _invariants(results: list[InvariantResult]) -> list[str]:
    rows = [f"<tr class=\"invariant\"><td>{escape(r.name)}</td><td><span class=\"verdict "
            f"{'holds' if r.holds else 'fails'}\">{'holds' if r.holds else 'FAILS'}</span></td>"
            f"<td>{r.checked}</td><td>{r.violating}</td></tr>" for r in results]
    return ["<table id=\"invariants\"><tr><th>invariant</th><th>result</th><th>flows checked</th>"
            "<th>violating flows</th></tr>", *rows, "</table>"]


def _topology(cluster: ClusterSpec, biggest: Group | None = None) -> str:
    """The nodes side by side on their network, each with its address, bridge, pod CIDR, every dump
    it was given (and which are generated) and its pods; the node(s) where the biggest cause acts
    are drawn in red, marked "cause 1"."""
    width, gap, top = 220, 24, 40
    per_node = {n.name: [p for p in cluster.pods if p.node == n.name] for n in cluster.nodes}
    labels = _pod_labels(cluster.pods)
    shown = min(8, max((len(v) for v in per_node.values()), default=0))
    height = 108 + 16 * shown
    per_row = min(_PER_ROW, max(1, len(cluster.nodes)))      # rows of nodes: the page never scrolls sideways
    rows = -(-len(cluster.nodes) // per_row) or 1
    total = per_row * (width + gap) + gap
    row_height = top + height + 20
    marked = set(biggest.nodes) if biggest is not None else set()
    parts = [f'<svg id="topology" role="img" aria-label="nodes and pod CIDRs" width="{total}" '
             f'height="{rows * row_height}" viewBox="0 0 {total} {rows * row_height}">',
             '<text x="8" y="12" fill="#5f6b7a">node network</text>']
    for r in range(rows):
        parts.append(f'<line x1="{gap}" y1="{18 + r * row_height}" x2="{total - gap}" y2="{18 + r * row_height}" '
                     'stroke="#8593a3" stroke-width="3"/>')
    for i, node in enumerate(cluster.nodes):
        x = gap + (i % per_row) * (width + gap)
        y0 = (i // per_row) * row_height
        pods = per_node[node.name]
        given = [k for k in DUMP_KINDS if node.has_dump(k)]
        generated = [k for k in _GENERATED if k not in given]
        hot = node.name in marked
        stroke = 'stroke="#c62828" stroke-width="3"' if hot else 'stroke="#8593a3"'
        parts += [f'<line x1="{x + width / 2}" y1="{18 + y0}" x2="{x + width / 2}" y2="{top + y0}" stroke="#8593a3"/>',
                  f'<g class="node{" cause" if hot else ""}"><title>{escape(node.name)}</title>'
                  f'<rect x="{x}" y="{top + y0}" width="{width}" height="{height}" rx="6" '
                  f'fill="{"#fdecea" if hot else "#fff"}" {stroke}/>',
                  f'<text x="{x + 8}" y="{top + y0 + 18}" font-weight="600">{escape(_cut(node.name, 22))}</text>']
        if hot:
            parts.append(f'<text class="cause-mark" x="{x + width - 8}" y="{top + y0 + 18}" text-anchor="end" '
                         'fill="#c62828" font-weight="700">cause 1</text>')
        parts += [f'<text x="{x + 8}" y="{top + y0 + 34}">{format_ip(node.ip)}/{node.prefixlen}</text>',
                  f'<text x="{x + 8}" y="{top + y0 + 50}">{escape(_cut(node.bridge, 12))} '
                  f'{format_network(*node.pod_cidr)}</text>',
                  f'<text class="dumps" x="{x + 8}" y="{top + y0 + 66}" fill="#5f6b7a">dumps: '
                  f'{escape(", ".join(given)) if given else "none given"}</text>',
                  f'<text x="{x + 8}" y="{top + y0 + 82}" fill="#5f6b7a">generated: '
                  f'{escape(", ".join(generated)) if generated else "none"}</text>']
        for j, pod in enumerate(pods[:shown]):
            more = j == shown - 1 and len(pods) > shown
            label = f"... and {len(pods) - shown + 1} more" if more else labels[id(pod)]
            parts.append(f'<text class="pod" x="{x + 14}" y="{top + y0 + 100 + 16 * j}">'
                         + ("" if more else f"<title>{escape(pod.key)} {format_ip(pod.ip)}</title>")
                         + f"{escape(label)}</text>")
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


_GENERATED = ("iptables", "addrs", "routes")      # what pktverify writes for a node that does not give it
_PER_ROW = 5                                       # nodes side by side (5 x 244 px fit a laptop's page)
_LABEL = 28                                        # characters a pod's line holds in its node's box


def _cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: its middle left out (both ends tell names apart)."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]


def _pod_labels(pods) -> dict[int, str]:
    """Each pod's line, ``ns/name IP`` shortened to fit (the address whole, the name cut in the
    middle), no two the same: pods whose shortened lines collide are numbered."""
    labels: dict[int, str] = {}
    for pod in pods:
        ip = format_ip(pod.ip)
        labels[id(pod)] = f"{_cut(pod.key, max(8, _LABEL - len(ip) - 1))} {ip}"
    seen: dict[str, int] = {}
    for label in labels.values():
        seen[label] = seen.get(label, 0) + 1
    count: dict[str, int] = {}
    for pod in pods:
        label = labels[id(pod)]
        if seen[label] > 1:
            count[label] = count.get(label, 0) + 1
            labels[id(pod)] = f"{label} #{count[label]}"
    return labels


def _dumps(cluster: ClusterSpec) -> list[str]:
    """Every dump each node was read from: its file, inline text (and where in the cluster file),
    or generated by pktverify (the nft column only when a node gives an nftables dump)."""
    kinds = [k for k in DUMP_KINDS if k != "nft" or any(n.has_dump("nft") for n in cluster.nodes)]
    rows = []
    for node in cluster.nodes:
        lines = dict(node.inline_lines)
        cells = []
        for kind in kinds:
            path = getattr(node, kind, None)
            if path is not None:
                cells.append(f"<code>{escape(str(path))}</code>")
            elif node.dump_text(kind) is not None:
                at = f" line {lines[kind]}" if kind in lines else ""
                cells.append(f"inline in <code>{escape(cluster.source)}</code>{at}")
            else:
                cells.append("generated" if kind in _GENERATED else "—")
        rows.append(f"<tr><td>{escape(node.name)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{k}</th>" for k in kinds)
    state = " open" if len(cluster.nodes) <= 20 else ""      # a long list folded
    return [f'<details id="dumps"{state}><summary>Dumps read, node by node</summary><table><tr><th>node</th>{head}</tr>',
            *rows, "</table></details>"]


def _services(cluster: ClusterSpec) -> list[str]:
    if not cluster.services:
        return ["<p class=\"muted\">No services.</p>"]
    rows = []
    for svc in cluster.services:
        ports = ", ".join(f"{p.port}/{p.protocol}" + (f" (node {p.node_port})" if p.node_port else "")
                          for p in svc.ports)
        doors = [format_ip(svc.cluster_ip)] + [f"external {format_ip(ip)}" for ip in svc.external_ips]
        doors += [f"LB {format_ip(ip)}" for ip in svc.lb_ips]
        policy = []
        if svc.external_policy == "Local":
            policy.append("external: Local")
        if svc.internal_policy == "Local":
            policy.append("internal: Local")
        if svc.affinity_timeout:
            policy.append(f"ClientIP affinity {svc.affinity_timeout}s")
        endpoints = len({label for sp in svc.ports for label, _ip, _port in cluster.port_endpoints(svc, sp)})
        rows.append(f"<tr><td>{escape(svc.key)}</td><td>{escape(svc.type)}</td><td>{escape(', '.join(doors))}</td>"
                    f"<td>{escape(ports)}</td><td>{endpoints}</td><td>{escape('; '.join(policy)) or '—'}</td></tr>")
    return ["<table id=\"services\"><tr><th>service</th><th>type</th><th>addresses</th><th>ports</th>"
            "<th>ready endpoints</th><th>policies</th></tr>", *rows, "</table>"]


def _group(n: int, group: Group, max_violations: int, names: dict) -> list[str]:
    where = f' <span class="loc">{escape(group.location)}</span>' if group.location else ""
    out = [f'<section class="group" id="cause-{n}"><h3>{n}. {escape(group.cause)}{where}</h3>',
           f'<div class="muted">{group.flows} flow(s) ({len(group.members)} violation(s)): '
           f'{escape(", ".join(group.invariants))}'
           + (f'; on node(s) {escape(", ".join(group.nodes))}' if group.nodes else "") + '</div>']
    shown = group.examples(max_violations)
    for invariant, v in shown:
        out += _example(invariant, v, names.get((invariant, id(v)), ()))
    if len(shown) < len(group.members):
        out.append(f'<div class="muted">... and {len(group.members) - len(shown)} more like it '
                   "(verify --max-violations 0, or --all, shows every one)</div>")
    out.append("</section>")
    return out


def _example(invariant: str, v: Violation, captures=()) -> list[str]:
    out = ['<div class="example">', f'<div class="message"><b>{escape(invariant)}</b>: {escape(v.message)}</div>']
    if captures:
        out.append('<div class="capture muted">capture: ' + ", ".join(f"<code>{escape(c)}</code>" for c in captures)
                   + "</div>")
    if v.end is None:
        out.append("</div>")
        return out
    out.append('<div class="row-label">the flow</div>')
    out.append(path_html(v.end.hops, v.end.kind, reason=v.end.reason))
    for back in v.replies:
        answered = v.client is not None and v.packet is not None and back.answers(v.client, v.packet)
        out.append('<div class="row-label">its reply' + ("" if answered else ": not what the client expects") + "</div>")
        out.append(path_html(back.hops, back.kind if answered else "wrong", reply=True,
                             reason=back.reason if back.kind != "arrived" else ""))
    out.append("</div>")
    return out


def path_html(hops, end_kind: str, *, reply: bool = False, reason: str = "") -> str:
    """One path as boxes and arrows; ``end_kind`` colours the last box (arrived or a failure). A
    box where the packet was stopped says first what stopped it (or, for the last box of a path
    that failed past the node's tables — it left the cluster, looped —, ``reason``)."""
    boxes = []
    before = None
    for i, hop in enumerate(hops):
        pkt = hop.packet
        rewritten = before is not None and (pkt.src, pkt.sport, pkt.dst, pkt.dport) != before
        before = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
        rules = []
        if hop.outcome is not None:
            stop = ending_step(hop.outcome)
            for s in hop.outcome.steps:
                if s.table is None or s.action.startswith(("jump", "goto")) or s.action in ("policy ACCEPT", "RETURN"):
                    continue          # what passed the packet on unchanged: the tooltip has it all
                if s is stop:
                    continue          # shown first, in bold
                nat = s.action.split(" ")[0] in REWRITES
                rules.append(f'<li class="{"nat" if nat else "rule"}">{escape(step_label(s))}</li>')
        last = i == len(hops) - 1
        kind = ["hop"]
        if hop.point == "wire":
            kind.append("wire")
        if rewritten:
            kind.append("nat")
        if hop.outcome is not None and hop.outcome.verdict in ("drop", "reject"):
            kind.append("stop")
        elif last and end_kind == "arrived":
            kind.append("end")
        elif last:
            kind.append("stop")
        title = escape(hop.note)
        stopped = _stopped(hop.outcome)
        if not stopped and last and end_kind != "arrived" and reason:
            stopped = f'<div class="stopped">{escape(reason)}</div>'
        boxes.append(f'<div class="{" ".join(kind)}" title="{title}"><div class="point">{escape(hop.point)}</div>'
                     + stopped + f'<div class="tuple">{_tuple(pkt.describe())}</div>'
                     + (f'<ul class="rules">{"".join(rules[:6])}</ul>' if rules else "") + "</div>")
    arrow = '<div class="arrow">→</div>'
    return f'<div class="path{" reply" if reply else ""}">' + arrow.join(boxes) + "</div>"


def _stopped(outcome) -> str:
    """For a hop where the packet was dropped or rejected: what did it, first and in bold (the
    rule, the chain's policy, the ``ip rule`` or route, with its ``file:line``)."""
    if outcome is None or outcome.verdict not in ("drop", "reject"):
        return ""
    s = ending_step(outcome)
    if s is None:
        what, where = f"{outcome.verdict}: {outcome.reason}", ""
    else:
        if s.table is not None:
            what = step_label(s)
        elif s.rule:             # the ip rule ("100: from all ... blackhole") or route that refused it
            what = f"ip rule {s.rule}" if s.rule[:1].isdigit() else f"route {s.rule}"
        else:
            what = s.action.removeprefix("route: ")
        where = f"{s.source}:{s.line}" if s.source and s.line else (f"line {s.line}" if s.line else "")
    loc = f'<span class="loc">{escape(where)}</span>' if where else ""
    return f'<div class="stopped">{escape(what)}{loc}</div>'


def _tuple(text: str) -> str:
    """``tcp 10.1.30.7:40000 > 192.168.1.20:30080`` as two lines: the protocol and source, then the
    destination (a box is narrow; an address is never broken)."""
    head, sep, dst = text.partition(" > ")
    if not sep:
        return escape(text)
    return f"{escape(head)}<br>&gt; {escape(dst)}"
