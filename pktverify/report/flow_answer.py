"""``pktverify trace --cluster``: one flow's answer as text, JSON and an HTML page.

The answer comes first (holds, fails with its causes, or "no promise applies"), then every
outcome with its probability: where it ended, what the receiver saw, the reply and whether it
answers the client, then the hops of each. Names from the input are escaped in every format.
"""

from __future__ import annotations

import json
from html import escape

from ..check.causes import group_violations
from ..check.flow_question import FlowAnswer
from ..check.invariants import InvariantResult
from ..errors import one_line
from ..model.path import PathEnd
from .verify_report import hop_json

__all__ = ["flow_answer_to_text", "flow_answer_to_json", "flow_answer_to_html"]


def _verdict(answer: FlowAnswer) -> str:
    if not answer.judged:
        return "no promise applies (not judged)"
    return "HOLDS" if answer.holds else f"FAILS ({len(answer.violations)} problem(s))"


def _causes(answer: FlowAnswer) -> list:
    res = InvariantResult(answer.violations[0].invariant or "flow", violations=list(answer.violations)) \
        if answer.violations else None
    return group_violations([res]) if res is not None else []


def _end_text(end: PathEnd) -> str:
    if end.kind == "arrived" and end.at is not None:
        text = f"arrived at {end.at.label()} as {end.packet.describe()}"
    else:
        text = f"{end.kind}: {end.reason}"
    return text + ("" if end.exact else " (inexact: a rule pktverify does not model may decide)")


def flow_answer_to_text(answer: FlowAnswer, *, captures: dict[int, list[str]] | None = None) -> str:
    """The answer, its causes, then each outcome (probability, end, reply) with its hops.
    ``captures``: outcome number → the capture files written for it."""
    lines = [answer.question, f"sent: {answer.packet.describe()}", "",
             f"answer: {_verdict(answer)}" + (f": {answer.promise}" if answer.promise and answer.holds else "")]
    if answer.violations:
        if answer.promise:
            lines.append(f"  promise: {answer.promise}")
        for v in answer.violations:
            lines.append(f"  - {v.message}")
        causes = _causes(answer)
        lines.append("  cause(s), biggest first:")
        lines += [f"    {n}. {g.summary()}" for n, g in enumerate(causes, 1)]
    for note in answer.notes:
        lines.append(f"note: {note}")
    lines.append(f"\n{len(answer.ends)} outcome(s):")
    for n, (end, backs) in enumerate(answer.ends, 1):
        lines.append(f"  {n}. p={end.probability:.6g}  {_end_text(end)}")
        for back in backs:
            ok = back.answers(answer.client, answer.packet)
            lines.append(f"     reply: {_end_text(back)}"
                         + (" — answers the client" if ok else " — NOT what the client expects"))
        for path in (captures or {}).get(n, []):
            lines.append(f"     capture: {path}")
    for n, (end, backs) in enumerate(answer.ends, 1):
        lines.append(f"\noutcome {n} (p={end.probability:.6g}), hop by hop:")
        lines += [f"  {h.point}: {h.packet.describe()} — {h.note}" for h in end.hops]
        for back in backs:
            lines.append("  its reply:")
            lines += [f"  {h.point}: {h.packet.describe()} — {h.note}" for h in back.hops]
    return "\n".join(one_line(line) for line in "\n".join(lines).split("\n")) + "\n"


def _end_json(end: PathEnd) -> dict:
    return {"kind": end.kind, "probability": end.probability, "exact": end.exact,
            "at": end.at.label() if end.at is not None else None, "reason": end.reason,
            "packet": end.packet.to_json(), "hops": [hop_json(h) for h in end.hops]}


def flow_answer_to_json(answer: FlowAnswer, *, captures: dict[int, list[str]] | None = None) -> str:
    """``{"question", "client", "target", "packet", "judged", "holds", "promise", "violations",
    "causes", "outcomes": [{..., "replies": [...], "answers_client", "captures"}], "notes"}``."""
    t = answer.target
    outcomes = []
    for n, (end, backs) in enumerate(answer.ends, 1):
        item = _end_json(end)
        item["replies"] = [dict(_end_json(b), answers_client=b.answers(answer.client, answer.packet)) for b in backs]
        item["captures"] = (captures or {}).get(n, [])
        outcomes.append(item)
    doc = {"question": answer.question,
           "client": {"kind": answer.client.kind, "name": answer.client.name, "node": answer.client.node},
           "target": {"kind": t.kind, "label": t.label, "protocol": t.protocol,
                      "service": t.service.key if t.service is not None else None,
                      "port": (t.port.name or t.port.port) if t.port is not None else None},
           "packet": answer.packet.to_json(), "judged": answer.judged, "holds": answer.holds,
           "promise": answer.promise,
           "violations": [dict(v.to_json(), invariant=v.invariant) for v in answer.violations],
           "causes": [{"cause": g.cause, "location": g.location, "violations": len(g.members)}
                      for g in _causes(answer)],
           "outcomes": outcomes, "notes": answer.notes}
    return json.dumps(doc, indent=2) + "\n"


def flow_answer_to_html(answer: FlowAnswer, *, source: str = "") -> str:
    """One self-contained page: the answer, then each outcome drawn hop by hop with its reply."""
    from .verify_html import page_head, path_html
    cls = "holds" if answer.holds else "fails"
    out = [*page_head(f"pktverify trace: {answer.question}"),
           f"<h1>{escape(answer.question)} <span class=\"verdict {cls}\" id=\"verdict\">{escape(_verdict(answer))}"
           "</span></h1>",
           f"<p class=\"muted\">{escape(source)}: sent {escape(answer.packet.describe())}</p>"]
    if answer.promise:
        out.append(f"<p>Promise checked: {escape(answer.promise)}.</p>")
    if answer.violations:
        out.append("<h2>Problems</h2><ul>")
        out += [f"<li>{escape(v.message)}</li>" for v in answer.violations]
        out.append("</ul><h2>Causes</h2><ol>")
        out += [f"<li>{escape(g.cause)}" + (f' <span class="loc">{escape(g.location)}</span>' if g.location else "")
                + "</li>" for g in _causes(answer)]
        out.append("</ol>")
    out += [f"<p class=\"muted\">note: {escape(note)}</p>" for note in answer.notes]
    out.append(f"<h2>{len(answer.ends)} outcome(s)</h2>")
    for n, (end, backs) in enumerate(answer.ends, 1):
        out.append(f'<div class="group" id="outcome-{n}"><h3>outcome {n}: p={end.probability:.6g} — '
                   f"{escape(_end_text(end))}</h3>")
        out.append('<div class="row-label">the flow</div>')
        out.append(path_html(end.hops, end.kind, reason=end.reason))
        for back in backs:
            ok = back.answers(answer.client, answer.packet)
            out.append('<div class="row-label">its reply' + ("" if ok else ": not what the client expects") + "</div>")
            out.append(path_html(back.hops, back.kind if ok else "wrong", reply=True,
                                 reason=back.reason if back.kind != "arrived" else ""))
        out.append("</div>")
    out.append("</body></html>\n")
    return "\n".join(out)
