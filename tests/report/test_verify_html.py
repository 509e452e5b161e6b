"""``verify --html``: one self-contained page, checked as a file and in a real headless Chromium
(Debian's chromium, driven by Playwright): it renders, the diagram is there, nothing is fetched,
nothing logs an error."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

import pktverify
from pktverify.cli import main

RULES = Path(__file__).resolve().parents[2] / "rules"
BROKEN = RULES / "broken" / "etp-local-node-without-endpoints.yaml"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_page_is_written_with_the_report_and_is_self_contained(tmp_path, capsys):
    page = tmp_path / "report.html"
    assert main(["verify", str(BROKEN), "--html", str(page)]) == 1
    text = page.read_text()
    assert "default/web:80 via NodePort 192.168.1.20:30080 from pod default/client" in text
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    for fetch in ("<script", "http://", "https://", "<link", "@import", "url("):
        assert fetch not in text, fetch
    assert stat.S_IMODE(page.stat().st_mode) & 0o022 == 0


def test_names_from_the_input_are_escaped(tmp_path):
    hostile = tmp_path / "<img src=x onerror=alert(1)>.yaml"
    hostile.write_text(BROKEN.read_text())
    html = pktverify.verify(pktverify.load_cluster(hostile)).to_html()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


@pytest.mark.parametrize("kind", ["fifo", "symlink", "folder"])
def test_an_html_path_that_is_not_a_regular_file_is_refused_before_the_work(tmp_path, capsys, kind):
    target = tmp_path / "out.html"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "symlink":
        (tmp_path / "elsewhere").write_text("keep")
        target.symlink_to(tmp_path / "elsewhere")
    else:
        target.mkdir()
    assert main(["verify", str(BROKEN), "--html", str(target)]) == 2
    assert "refusing to write" in capsys.readouterr().err
    if kind == "symlink":
        assert (tmp_path / "elsewhere").read_text() == "keep"


def test_all_shows_every_example(tmp_path, capsys):
    path = RULES / "broken" / "nodeport-collision.yaml"
    main(["verify", str(path)])
    some = capsys.readouterr().out
    main(["verify", str(path), "--all"])
    every = capsys.readouterr().out
    report = pktverify.verify(pktverify.load_cluster(path))
    assert every.count("    flow: ") == sum(1 for v in report.violations if v.end is not None)
    assert some.count("    flow: ") < every.count("    flow: ")


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium under Playwright; skipped off CI when either is missing, failed on CI."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if CHROMIUM is None or sync_playwright is None:
        why = "chromium is not installed" if CHROMIUM is None else "playwright is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{why}: scripts/test installs both on CI")
        pytest.skip(why)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.mark.parametrize("cluster,causes,replies", [("broken/etp-local-node-without-endpoints.yaml", 1, 1),
                                                    ("broken/session-affinity-broken.yaml", 1, 0),
                                                    ("services/every-service-type.yaml", 0, 0)])
def test_the_page_renders_in_chromium(browser, tmp_path, cluster, causes, replies):
    page_file = tmp_path / "report.html"
    report = pktverify.verify(pktverify.load_cluster(RULES / cluster))
    page_file.write_text(report.to_html())
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_file.as_uri())
    page.wait_for_load_state("load")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert problems == [] and requests == [page_file.as_uri()]
    assert page.locator("#invariants tr.invariant").count() == 4
    assert page.locator("#topology g.node").count() == len(report.cluster.nodes)
    assert page.locator("section.group").count() == causes == len(report.groups)
    if causes:
        hops = page.locator("section.group .path .hop")
        assert hops.count() >= 6
        assert page.locator("section.group .hop.nat li.nat").count() >= 1     # the rewrite and its rule
        assert page.locator("section.group .path.reply").count() == replies   # the (wrong) reply beneath
        box = hops.first.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 30     # laid out, not collapsed
    else:
        assert page.locator("#verdict").inner_text() == "every invariant holds"
    page.close()


# ------------------------------------------------------------------ one cause, shown where it acts
SEED = RULES / "seed" / "cluster-iptables.yaml"


def _dockerised_seed(tmp_path: Path, *, rules: str | None = None) -> Path:
    """The seed cluster on disk, node2 given its generated iptables-save with docker's
    ``:FORWARD DROP`` policy (and ``rules`` as its ``ip rule`` dump, when given)."""
    from pktverify.generate.node_state import generate_node
    cluster = pktverify.load_cluster(SEED)
    node = next(n for n in cluster.nodes if n.name == "node2")
    head, sep, tail = generate_node(cluster, node).iptables.partition("*filter\n")
    (tmp_path / "node2").mkdir()
    (tmp_path / "node2" / "iptables-save.txt").write_text(
        head + sep + tail.replace(":FORWARD ACCEPT [0:0]", ":FORWARD DROP [0:0]", 1))
    extra = ", iptables: node2/iptables-save.txt"
    if rules is not None:
        (tmp_path / "node2" / "ip-rule.txt").write_text(rules)
        extra += ", rules: node2/ip-rule.txt"
    old = "{name: node2, ip: 192.168.1.20/24, pod_cidr: 10.1.20.0/24, bridge: cbr0}"
    (tmp_path / "cluster.yaml").write_text(SEED.read_text().replace(old, old[:-1] + extra + "}"))
    return tmp_path / "cluster.yaml"


def test_the_page_marks_the_node_of_the_biggest_cause_and_its_dropping_step(tmp_path):
    report = pktverify.verify(pktverify.load_cluster(_dockerised_seed(tmp_path)))
    html = report.to_html()
    [group] = report.groups
    marked = [part for part in html.split('<g class="node')[1:] if part.startswith(' cause"')]
    assert len(marked) == 1 and ">node2</text>" in marked[0] and ">cause 1</text>" in marked[0]
    # every stopped box says first, in bold, what stopped it, with the declaration's file:line
    boxes = [b for b in html.split('<div class="hop')[1:] if b.startswith(' stop')]
    assert boxes
    for box in boxes:
        after_point = box.split("</div>", 1)[1]
        assert after_point.startswith('<div class="stopped">filter/FORWARD policy DROP<span class="loc">'
                                      f'{tmp_path / "node2" / "iptables-save.txt"}:3</span></div>')
        assert "<li" not in box or "policy DROP</li>" not in box        # not repeated below


def test_pod_labels_stay_unique_when_shortened():
    from pktverify.report.verify_html import _pod_labels
    from pktverify.model.cluster import PodSpec
    pods = [PodSpec(f"frontend-deployment-7d9f8b6c5-x2k4{c}", "production", "node1", 0x0A010A05 + i, (), (8080,))
            for i, c in enumerate("pq")]
    pods += [PodSpec("a" * 40 + c, "ns", "node1", 0x0A010A09, (), ()) for c in "xy"]     # one address: cut alike
    labels = _pod_labels(pods)
    assert len(set(labels.values())) == len(pods)
    assert all(len(label) <= 32 for label in labels.values())
    assert labels[id(pods[0])].endswith(" 10.1.10.5") and "…" in labels[id(pods[0])]


def test_every_dump_is_listed_and_captures_are_named_next_to_each_example(tmp_path, capsys):
    import json
    rules = "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n"
    cluster = _dockerised_seed(tmp_path, rules=rules)
    page, pcaps = tmp_path / "report.html", tmp_path / "pcaps"
    assert main(["verify", str(cluster), "--html", str(page), "--pcap-dir", str(pcaps)]) == 1
    text = capsys.readouterr().out
    html = page.read_text()
    assert f"<code>{tmp_path / 'node2' / 'ip-rule.txt'}</code>" in html
    assert f"<code>{tmp_path / 'node2' / 'iptables-save.txt'}</code>" in html
    assert "dumps: iptables, rules</text>" in html and "generated: addrs, routes</text>" in html
    shown = [line.split("capture: ", 1)[1] for line in text.split("\n") if line.startswith("    capture: ")]
    assert len(shown) == 2 and all((pcaps / Path(name).name).exists() for name in shown)
    assert all(f"capture: <code>{name}</code>" in html for name in shown)
    assert main(["verify", str(cluster), "--format", "json", "--pcap-dir", str(pcaps)]) == 1
    doc = json.loads(capsys.readouterr().out)
    named = [c for inv in doc["invariants"] for v in inv["violations"] for c in v["captures"]]
    assert set(shown) <= set(named) and all(Path(c).exists() for c in named)
    # the counts read the same in the three outputs
    for inv in doc["invariants"]:
        row = next(line for line in text.split("\n") if line.startswith(inv["name"] + " "))
        assert row.split()[2:] == [str(inv["checked"]), str(inv["violating_flows"])]
        assert f"<td>{inv['checked']}</td><td>{inv['violating_flows']}</td></tr>" in html


def test_the_dropping_step_is_the_most_prominent_thing_in_its_box(browser, tmp_path):
    page_file = tmp_path / "report.html"
    page_file.write_text(pktverify.verify(pktverify.load_cluster(_dockerised_seed(tmp_path))).to_html())
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(page_file.as_uri())
    box = page.locator("section.group .hop.stop").first
    stopped = box.locator(".stopped")
    assert stopped.count() == 1 and stopped.inner_text().startswith("filter/FORWARD policy DROP")
    style = stopped.evaluate("e => [getComputedStyle(e).fontSize, getComputedStyle(e).fontWeight]")
    sizes = box.evaluate("b => [...b.querySelectorAll('.point, .tuple, li')].map(e => "
                         "[parseFloat(getComputedStyle(e).fontSize), +getComputedStyle(e).fontWeight])")
    assert all(float(style[0][:-2]) >= size and int(style[1]) >= weight for size, weight in sizes)
    node = page.locator("#topology g.node.cause")
    assert node.count() == 1 and "node2" in node.inner_html()
    page.close()
