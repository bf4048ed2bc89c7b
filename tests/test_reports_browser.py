"""The console's Reports page in a real headless Chromium against a real uvicorn on 127.0.0.1.

An author opens a recorded day: the figures, the hour chart, the gap with its new-SOP stub and the worst
section come from GET /v1/reports/daily; no script error, nothing loaded from elsewhere.
``SOPILOT_REPORTS_SCREENSHOT=docs/img/reports.png`` keeps the screenshot it takes; with
``SOPILOT_REPORTS_DAY_INDEX=DIR`` (an index folder ``benchmarks/simulate_day.py`` wrote) and
``SOPILOT_REPORTS_DAY=YYYY-MM-DD`` the page of that simulated day is checked against the API and is the one kept.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime

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
SIMULATED = os.environ.get("SOPILOT_REPORTS_DAY_INDEX", "")  # an index folder benchmarks/simulate_day.py wrote


@pytest.fixture(scope="module")
def server(shipped_index: Settings, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("reports-browser")
    shutil.copytree(shipped_index.index_dir, base / "index", ignore=shutil.ignore_patterns("querylog.sqlite3*"))
    settings = shipped_index.with_paths(index=base / "index")
    log = QueryLog(querylog_path(settings.index_dir))
    path, anchor = "partner-api/429-troubleshooting.md", "summary"
    heading = ("Troubleshooting 429 Too Many Requests", "Summary")
    for minute, verdict in enumerate(["rejected", "rejected", "accepted"]):
        ts = datetime(2026, 11, 20, 9, minute, tzinfo=UTC).timestamp()
        aid = log.record_query(
            kind="answer", question="partner gets 429 too many requests", covered=True, latency_ms=60,
            passages=[LoggedPassage("c1", path, anchor, heading, 0.9)],
            citations=[LoggedCitation(1, "c1", path, anchor, heading)], ts=ts,
        )  # fmt: skip
        log.record_feedback(aid, verdict, ts=ts + 30)
    for minute, q in enumerate(["how do I turn on dark mode in the mobile app", "the mobile app has no dark theme"]):
        ts = datetime(2026, 11, 20, 15, minute, tzinfo=UTC).timestamp()
        log.record_query(kind="answer", question=q, covered=False, latency_ms=40, ts=ts)
    log.close()
    with test_console_browser._serve(settings, embedder) as url:
        yield url


def test_an_author_reads_a_day_on_the_reports_page(server: str) -> None:
    api = test_console_browser.playwright_api
    with api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(test_console_browser.CHROMIUM), args=test_console_browser.CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1400}, base_url=server)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        failed: list[str] = []
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"/reports?date={DAY}")
        page.get_by_text(f"Report of {DAY} (UTC).").wait_for()

        assert "5 questions; 3 covered, 2 not" in page.locator("#summary").inner_text()
        assert page.locator("#hours .hour").count() == 24
        assert page.locator("#hours .hour").nth(9).get_attribute("title") == "9:00 UTC: 3 questions, 3 covered"
        gap = page.locator("#gaps > li").filter(has_text="dark")
        assert gap.count() == 1 and "status: draft" in gap.locator("pre").inner_text()
        worst = page.locator("#worst tr").first
        assert "Troubleshooting 429" in worst.inner_text() and "67%" in worst.inner_text()
        link = worst.locator("a").get_attribute("href") or ""
        assert link == "/sop/partner-api/429-troubleshooting.md#summary"
        assert page.locator("#stale tr").count() >= 1
        if os.environ.get("SOPILOT_REPORTS_SCREENSHOT") and not SIMULATED:  # else the simulated day's page
            page.screenshot(path=os.environ["SOPILOT_REPORTS_SCREENSHOT"], full_page=True)
        browser.close()
    assert not errors, errors
    assert [f for f in failed if not f.endswith("/favicon.ico")] == [], failed
    assert all(url.startswith(server) for url in requests), requests


@pytest.mark.skipif(not SIMULATED, reason="set SOPILOT_REPORTS_DAY_INDEX (and SOPILOT_REPORTS_DAY) to a simulated day")
def test_the_reports_page_of_a_simulated_day(embedder: Embedder) -> None:
    """The page of a whole simulated day shows what the API reports (and, with SOPILOT_REPORTS_SCREENSHOT, is the
    picture in docs/img/reports.png)."""
    import json
    import urllib.request

    from conftest import ROOT

    day = os.environ.get("SOPILOT_REPORTS_DAY", "2026-12-02")
    settings = Settings(kb_dir=ROOT / "kb", index_dir=SIMULATED)
    api = test_console_browser.playwright_api
    with test_console_browser._serve(settings, embedder) as url:
        with urllib.request.urlopen(f"{url}/v1/reports/daily?date={day}") as response:
            report = json.load(response)
        assert report["questions"] > 0 and report["gaps"], "the index holds no simulated day"
        with api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(test_console_browser.CHROMIUM), args=test_console_browser.CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1280, "height": 1400}, base_url=url)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"/reports?date={day}")
            page.get_by_text(f"Report of {day} (UTC).").wait_for()
            assert f"{report['questions']} questions" in page.locator("#summary").inner_text()
            assert page.locator("#gaps > li").count() == len(report["gaps"])
            assert page.locator("#gaps .new-gap").count() == report["new_gaps"]
            assert page.locator("#gaps-h").inner_text() == f"Gaps ({len(report['gaps'])}, {report['new_gaps']} new)"
            if os.environ.get("SOPILOT_REPORTS_SCREENSHOT"):
                page.screenshot(path=os.environ["SOPILOT_REPORTS_SCREENSHOT"], full_page=True)
            browser.close()
        assert not errors, errors
