"""XSS in every field that shows user or SOP text, in a real headless Chromium against a real uvicorn.

One SOP carries script and event-handler payloads in its title, owner, tags, escalation, headings and body; the
query log holds questions with payloads (slow answers, unanswered ones that become gaps, rejected drafts citing
the hostile section). The console (ask, passages, citations, draft, a hostile feedback comment), the SOP list,
the SOP page, the reports page and the daily report as HTML (served, and opened as a file with no policy at
all) must show the payloads as text: no injected script runs (``window.__pwned`` stays unset, no dialog), no
Content-Security-Policy violation is reported (nothing the sanitizer let through tried to run), and no element
of the page carries an event-handler attribute, a ``javascript:`` link, an iframe, or a script not our own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from sopilot.core.settings import Settings
from sopilot.index.embedder import Embedder
from sopilot.index.querylog import LoggedCitation, LoggedPassage, QueryLog, querylog_path

test_console_browser = pytest.importorskip("test_console_browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not test_console_browser.CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
DAY = "2026-11-20"
HOSTILE_PATH = "review-tools/widget-xss.md"


def payload(tag: str) -> str:
    """Markup that would run (or load) something if it reached the page as HTML."""
    return (
        f"<img src=x onerror=\"window.__pwned='{tag}'\"><script>window.__pwned='{tag}'</script>"
        f'"><svg onload="window.__pwned=\'{tag}\'"></svg><iframe src="javascript:window.__pwned=\'{tag}\'">'
    )


def yaml_text(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


HOSTILE = f"""---
id: T-XSS-1
title: {yaml_text("Calibrating the widget " + payload("title"))}
owner: {yaml_text("uops-review " + payload("owner"))}
tags: [widget, {yaml_text(payload("tag"))}]
products: [{yaml_text(payload("product"))}]
status: active
last_reviewed: 2025-01-01
review_every_days: 30
escalation:
  team: {yaml_text("Widget on-call " + payload("team"))}
  channel: {yaml_text("#widget " + payload("channel"))}
  when: {yaml_text("Calibration fails twice " + payload("when"))}
---

# Calibrating the widget

## Calibrate the widget {payload("heading")}

1. Open the widget calibration panel {payload("step")} and press Calibrate.
2. [Check the result](javascript:window.__pwned='link') and <a href="#" onclick="window.__pwned='a'">retry</a>.

<details open ontoggle="window.__pwned='details'"><summary>x</summary></details>

## Reply template

Hello, we calibrated your widget. {payload("template")} [Status](javascript:alert(1))
"""
QUESTIONS = [
    f"how do I calibrate the widget {payload('question')}",
    f"widget is broken {payload('gap')} ![seen](http://127.0.0.2/track.png) [help](javascript:window.__pwned=1)",
]
FEEDBACK = f"edited because {payload('comment')}"

# Run in every page before its own scripts: records CSP violations and keeps the page's own scripts apart.
WATCH = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
  e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
"""
# What must not be in any page, whatever it shows.
FIND_ACTIVE = """
() => {
  const found = [];
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      if (attr.name.toLowerCase().startsWith('on')) found.push(el.tagName + ' ' + attr.name);
      const link = ['href', 'src', 'action', 'formaction', 'xlink:href'].includes(attr.name);
      if (link && /^\\s*javascript:/i.test(attr.value))
        found.push(el.tagName + ' ' + attr.name + '=' + attr.value);
    }
    if (['IFRAME', 'OBJECT', 'EMBED', 'FRAME'].includes(el.tagName)) found.push(el.tagName);
    const src = el.getAttribute('src') || '';
    if (el.tagName === 'SCRIPT' && !src.startsWith('/static/')) found.push('script ' + el.outerHTML.slice(0, 80));
    if (el.tagName === 'IMG' && !src.startsWith('data:')) found.push('img ' + src);
  }
  return found;
}
"""


@pytest.fixture(scope="module")
def hostile(shipped_index: Settings, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The shipped KB plus the hostile SOP, a query log of hostile questions, served on 127.0.0.1."""
    import shutil

    from sopilot.ingest.run import run_ingest

    base = tmp_path_factory.mktemp("xss")
    kb = shutil.copytree(test_console_browser.ROOT / "kb", base / "kb")
    (kb / HOSTILE_PATH).write_text(HOSTILE, encoding="utf-8")
    shutil.copytree(shipped_index.index_dir, base / "index", ignore=shutil.ignore_patterns("querylog.sqlite3*"))
    settings = shipped_index.with_paths(kb=kb, index=base / "index")
    report = run_ingest(settings, embedder, progress=False)
    assert not [p for p in report.problems if p.path == HOSTILE_PATH and p.severity.value == "error"], report.problems
    log = QueryLog(querylog_path(settings.index_dir))
    heading = ("Calibrating the widget", f"Calibrate the widget {payload('heading')}")
    for minute in range(3):
        ts = datetime(2026, 11, 20, 10, minute, tzinfo=UTC).timestamp()
        aid = log.record_query(
            kind="answer", question=QUESTIONS[0], covered=True, latency_ms=900 + minute, ts=ts,
            passages=[LoggedPassage("c1", HOSTILE_PATH, "calibrate-the-widget", heading, 0.9)],
            citations=[LoggedCitation(1, "c1", HOSTILE_PATH, "calibrate-the-widget", heading)],
        )  # fmt: skip
        log.record_feedback(aid, "rejected", comment=FEEDBACK, sent_text=payload("sent"), ts=ts + 30)
    for minute in range(2):
        ts = datetime(2026, 11, 20, 15, minute, tzinfo=UTC).timestamp()
        log.record_query(kind="answer", question=QUESTIONS[1], covered=False, latency_ms=40, ts=ts)
    log.close()
    with (
        test_console_browser._serve(settings, embedder) as url,
        test_console_browser.playwright_api.sync_playwright() as p,
    ):
        browser = p.chromium.launch(
            executable_path=str(test_console_browser.CHROMIUM), args=test_console_browser.CHROMIUM_ARGS
        )
        yield url, browser
        browser.close()


class Watched:
    """A page whose script errors, dialogs, policy violations and requests elsewhere are recorded."""

    def __init__(self, browser: Any, url: str) -> None:
        self.context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 1200})
        self.context.add_init_script(WATCH)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("pageerror", lambda exc: self.problems.append(f"script error: {exc}"))
        self.page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))
        self.page.on(
            "request", lambda r: self.problems.append(f"request elsewhere: {r.url}") if not r.url.startswith(url)
            and not r.url.startswith(("data:", "blob:")) else None
        )  # fmt: skip

    def check(self, where: str, shown: str | None = "onerror", blocked_images: bool = False) -> None:
        """``blocked_images``: an image from elsewhere may be in the page if the page's policy blocked it."""
        page = self.page
        page.wait_for_timeout(300)  # let anything that would run, run
        allowed = ("img-src ", "img ") if blocked_images else ()
        assert page.evaluate("window.__pwned") is None, (where, page.evaluate("window.__pwned"))
        seen = page.evaluate("window.__violations")
        blocked = {f"request elsewhere: {v.split(' ', 1)[1]}" for v in seen if v.startswith(allowed)}
        assert [v for v in seen if not v.startswith(allowed)] == [], (where, seen)
        assert [a for a in page.evaluate(FIND_ACTIVE) if not a.startswith(allowed)] == [], where
        problems = [p for p in self.problems if p not in blocked]  # attempted, and blocked by the policy
        assert problems == [], (where, problems)
        if shown is not None:
            assert shown in page.locator("body").inner_text(), f"{where}: the payload is not shown as text"


def test_the_console_shows_hostile_sop_text_questions_and_comments_as_text(hostile) -> None:  # type: ignore[no-untyped-def]
    url, browser = hostile
    w = Watched(browser, url)
    w.page.goto("/")
    w.page.locator("#question").fill(QUESTIONS[0])
    w.page.locator("#ask-button").click()
    w.page.locator("#passages li a.title").first.wait_for()
    assert "Calibrating the widget" in w.page.locator("#passages").inner_text()
    assert "onerror" in w.page.locator("#draft-text").input_value() + w.page.locator("#passages").inner_text()
    w.check("console after the answer")
    w.page.locator("#comment").fill(FEEDBACK)
    with w.page.expect_response("**/v1/feedback") as sent:
        w.page.locator("#reject-button").click()
    assert sent.value.status == 201
    w.check("console after the feedback")
    w.context.close()


def test_the_sop_list_and_the_sop_page_show_hostile_fields_as_text(hostile) -> None:  # type: ignore[no-untyped-def]
    url, browser = hostile
    w = Watched(browser, url)
    w.page.goto("/sops")
    w.page.get_by_text("Calibrating the widget").first.wait_for()
    w.check("the SOP list")
    w.page.goto(f"/sop/{HOSTILE_PATH}")
    w.page.locator("#sop-body h2").first.wait_for()
    assert "window.__pwned='when'" in w.page.locator("body").inner_text()  # the escalation, shown as text
    w.page.get_by_text("Check the result").click()
    w.check("the SOP page")
    w.context.close()


def test_the_reports_page_and_the_daily_report_show_hostile_questions_as_text(hostile) -> None:  # type: ignore[no-untyped-def]
    url, browser = hostile
    w = Watched(browser, url)
    w.page.goto(f"/reports?date={DAY}")
    w.page.get_by_text(f"Report of {DAY} (UTC).").wait_for()
    body = w.page.locator("body").inner_text()
    assert "widget is broken" in body and "Calibrating the widget" in body
    w.check("the reports page")
    w.page.goto(f"/v1/reports/daily?date={DAY}&format=html")
    w.page.get_by_text("widget is broken").first.wait_for()
    w.check("the daily report as served", blocked_images=True)  # its policy blocks the question's image
    w.context.close()


def test_the_daily_report_saved_and_opened_as_a_file_loads_nothing(hostile) -> None:  # type: ignore[no-untyped-def]
    from urllib.request import urlopen

    url, browser = hostile
    with urlopen(f"{url}/v1/reports/daily?date={DAY}&format=html") as response:
        document = response.read().decode()
    bare = Watched(browser, url)  # the same document opened from disk: no policy protects it
    bare.page.set_content(document)
    bare.check("the daily report opened as a file")
    bare.context.close()
