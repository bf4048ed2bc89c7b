"""The author reports through the API (TestClient over the shipped index, the real model and Chroma)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sopilot.index.querylog import LoggedCitation, LoggedPassage

pytestmark = pytest.mark.slow
DAY = "2026-11-15"  # a day no other test logs questions on


def _at(hour: int, minute: int = 0) -> float:
    return datetime(2026, 11, 15, hour, minute, tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def recorded_day(api_state) -> None:
    log = api_state.querylog
    path, anchor = "access/2fa-reset-lost-phone.md", "verify-the-reviewers-identity-by-video-call"
    heading = ("Resetting 2FA for a reviewer who lost their phone", "Verify the reviewer's identity by video call")
    passage = LoggedPassage("c1-x", path, anchor, heading, 0.9)
    citation = LoggedCitation(1, "c1-x", path, anchor, heading)
    for minute, verdict in enumerate(["rejected", "rejected", "edited", "accepted"]):
        aid = log.record_query(
            kind="answer", question="reviewer lost her phone and cannot pass 2fa", covered=True,
            passages=[passage], citations=[citation], latency_ms=50 + minute, ts=_at(10, minute),
        )  # fmt: skip
        log.record_feedback(aid, verdict, ts=_at(10, minute + 1))
    for minute, question in enumerate(
        [
            "refund for a double charge on my invoice",
            "I was billed twice, money back please",
            "refund my duplicate payment",
        ]
    ):
        log.record_query(kind="answer", question=question, covered=False, latency_ms=30, ts=_at(16, minute))


def test_daily_report_of_a_recorded_day(api_client, recorded_day) -> None:
    response = api_client.get("/v1/reports/daily", params={"date": DAY})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["questions"], body["covered"], body["abstained"]) == (7, 4, 3)
    assert body["by_hour"][10] == 4 and body["by_hour"][16] == 3 and sum(body["by_hour"]) == 7
    assert body["verdicts"] == {"rejected": 2, "edited": 1, "accepted": 1}
    refunds = [g for g in body["gaps"] if "refund" in g["representatives"][0].lower()]
    assert len(refunds) == 1 and refunds[0]["size"] == 3 and refunds[0]["suggestion"] == "new"
    assert body["worst_sections"][0]["path"] == "access/2fa-reset-lost-phone.md"
    assert body["stale"], "the shipped KB has SOPs overdue on that day"

    page = api_client.get("/v1/reports/daily", params={"date": DAY, "format": "html"})
    assert page.headers["content-type"].startswith("text/html") and page.text.count("data:image/png;base64,") == 3
    md = api_client.get("/v1/reports/daily", params={"date": DAY, "format": "md"})
    assert md.text.startswith(f"# SOPilot daily report, {DAY}")


def test_gaps_and_health_over_a_window(api_client, recorded_day) -> None:
    gaps = api_client.get("/v1/reports/gaps", params={"since": DAY, "until": DAY}).json()
    reasons = [g["reasons"] for g in gaps["clusters"]]
    assert {"abstained": 3} in reasons and {"rejected": 2} in reasons
    health = api_client.get("/v1/reports/health", params={"since": DAY, "until": DAY, "min_judged": 2}).json()
    assert health["ranked"] == 1
    section = health["sections"][0]
    assert (section["cited"], section["judged"], section["reject_rate"]) == (4, 4, 0.5)

    bad = api_client.get("/v1/reports/health", params={"since": DAY, "until": "2026-11-01"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_window"


def test_reports_are_for_authors_and_admins(api_client) -> None:
    from sopilot.api.app import create_app

    app = create_app(state=api_client.app.state.sopilot)
    for route in app.routes:
        if getattr(route, "path", "").startswith("/v1/reports/"):
            roles = [getattr(d.call, "roles", None) for d in route.dependant.dependencies]  # type: ignore[attr-defined]
            assert ("admin", "author") in roles, route.path


def test_reports_page_is_served_under_the_console_policy(api_client) -> None:
    page = api_client.get("/reports")
    assert page.status_code == 200 and "/static/reports.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert api_client.get("/static/reports.js").status_code == 200
    assert 'href="/reports"' in api_client.get("/").text
