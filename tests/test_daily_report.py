"""The daily report from a recorded day: figures by hour, coverage, verdicts, topics, slowest; files written."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from sopilot.author.daily import build_daily, day_bounds, to_markdown, write_daily
from sopilot.index.querylog import LoggedCitation, LoggedPassage, QueryLog

DAY = date(2026, 12, 2)


def _at(hour: int, minute: int = 0, day: date = DAY) -> float:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC).timestamp()


def _recorded_day(path: Path) -> QueryLog:
    log = QueryLog(path)
    sso = LoggedPassage("c1", "access/sso.md", "fix", ("SSO login fails", "Fix"), 0.9)
    api = LoggedPassage("c2", "api/limits.md", "429", ("API limits", "HTTP 429"), 0.8)
    cite_sso = LoggedCitation(1, "c1", "access/sso.md", "fix", ("SSO login fails", "Fix"))
    for minute, verdict in enumerate(["accepted", "accepted", "rejected"]):
        aid = log.record_query(
            kind="answer", question="sso fails", covered=True, passages=[sso], citations=[cite_sso],
            latency_ms=40 + minute, ts=_at(9, minute),
        )  # fmt: skip
        log.record_feedback(aid, verdict, ts=_at(9, minute + 5))
    log.record_query(kind="answer", question="429?", covered=True, passages=[api], latency_ms=900, ts=_at(14))
    log.record_query(kind="answer", question="refund please", covered=False, latency_ms=30, ts=_at(23, 59))
    log.record_query(kind="answer", question="yesterday", covered=False, ts=_at(23, 0, date(2026, 12, 1)))
    return log


def test_daily_figures_from_a_recorded_day(tmp_path: Path) -> None:
    report = build_daily(_recorded_day(tmp_path / "q.sqlite3"), DAY)
    assert report.questions == 5  # the day before is not counted
    assert report.by_hour[9] == 3 and report.by_hour[14] == 1 and report.by_hour[23] == 1 and sum(report.by_hour) == 5
    assert report.covered_by_hour[9] == 3 and report.covered_by_hour[23] == 0
    assert (report.covered, report.abstained, round(report.coverage_rate, 2)) == (4, 1, 0.8)
    assert report.verdicts == {"accepted": 2, "rejected": 1}
    assert report.topics == [("access/sso.md", "SSO login fails", 3), ("api/limits.md", "API limits", 1)]
    assert report.slowest[0].question == "429?" and report.slowest[0].at == "14:00"
    assert [h.link for h in report.worst] == ["access/sso.md#fix"]
    assert day_bounds(DAY)[1] - day_bounds(DAY)[0] == 86400


def test_daily_report_files(tmp_path: Path) -> None:
    report = build_daily(_recorded_day(tmp_path / "q.sqlite3"), DAY)
    written = write_daily(report, tmp_path / "out")
    for name in ("volume.png", "topics.png", "latency.png"):
        assert written[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = written["report.md"].read_text(encoding="utf-8")
    assert "coverage rate **80%**" in md and "](./volume.png)" in md and r"| 14:00 | 900 | 429\? |" in md
    page = written["report.html"].read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 3 and "<table>" in page
    assert "None." in to_markdown(report)  # no gaps and no stale SOPs were given


def test_logged_text_stays_text_in_the_report(tmp_path: Path) -> None:
    """A question's Markdown (an image that would load from elsewhere, a link, a heading mark, a table bar,
    raw HTML) is shown as the words it is, in the Markdown and in the HTML saved beside it."""
    log = QueryLog(tmp_path / "q.sqlite3")
    hostile = "![x](http://evil.example/x.png) [y](http://evil.example) # | <img src=x onerror=alert(1)>"
    log.record_query(kind="answer", question=hostile, covered=True, latency_ms=5000, ts=_at(10))
    report = build_daily(log, DAY)
    page = write_daily(report, tmp_path / "out")["report.html"].read_text(encoding="utf-8")
    assert "evil.example" in page  # the question is there, as text
    assert '<img src="http' not in page and "<img src=x" not in page and "<a href" not in page
    assert "![x](http://evil.example/x.png)" in page  # read back as the agent typed it
