"""New gaps across days: a synthetic query log over several days with a known new cluster, judged with the
real embedder and the shipped index; the setting's window decides what counts as before."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sopilot.author.daily import daily_report, to_markdown
from sopilot.index.querylog import QueryLog

pytestmark = pytest.mark.slow
DAY = date(2026, 11, 21)
BILLING = [
    "How do I get a refund for a double charge on my invoice?",
    "I was billed twice this month, can I get my money back?",
    "Refund request: my credit card was charged two times",
]
LANGUAGE = [
    "How can I switch the language of the app to German?",
    "Change the display language of the app to Spanish",
    "Where is the setting for the UI language?",
]
PRINTER = ["The office printer on floor 3 is jammed", "Paper jam in the third floor printer again"]


def _at(day: date, hour: int, minute: int = 0) -> float:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def store(shipped_index, embedder):
    from sopilot.index.store import VectorStore, make_client

    return VectorStore.open(make_client(shipped_index), shipped_index.collection, embedder.name, embedder.dimension)


@pytest.fixture
def log(tmp_path: Path) -> QueryLog:
    """Billing asked (and abstained) the day before and today; printer three days before and today; the app's
    language only today: the one new gap within a week, two within one day."""
    log = QueryLog(tmp_path / "querylog.sqlite3")
    for minute, q in enumerate(BILLING):
        log.record_query(kind="answer", question=q, covered=False, ts=_at(date(2026, 11, 20), 15, minute))
        log.record_query(kind="answer", question=q, covered=False, ts=_at(DAY, 9, minute))
    log.record_query(kind="answer", question=PRINTER[0], covered=False, ts=_at(date(2026, 11, 18), 8))
    log.record_query(kind="answer", question=PRINTER[1], covered=False, ts=_at(DAY, 11))
    for minute, q in enumerate(LANGUAGE):
        log.record_query(kind="answer", question=q, covered=False, ts=_at(DAY, 14, minute))
    return log


def _report(log, embedder, store, tmp_path: Path, days: int):
    return daily_report(log, DAY, embedder, store, tmp_path / "no-kb", new_gap_days=days)


def topic(cluster) -> str:
    text = " ".join(cluster.representatives).lower()
    return "billing" if "refund" in text else "language" if "language" in text else "printer"


def test_a_cluster_is_new_when_none_of_its_questions_was_a_gap_in_the_days_before(
    log, embedder, store, tmp_path
) -> None:
    report = _report(log, embedder, store, tmp_path, days=7)
    by_topic = {topic(g): g for g in report.gaps}
    assert set(by_topic) == {"billing", "language", "printer"}, [g.representatives for g in report.gaps]
    assert by_topic["billing"].size == 3  # today's questions only: yesterday's are not today's gaps
    assert {t: g.new for t, g in by_topic.items()} == {"billing": False, "language": True, "printer": False}
    assert [topic(g) for g in report.new_gaps] == ["language"]
    md = to_markdown(report)
    assert "3 cluster(s) among today's questions, 1 new" in md and "in the 7 day(s) before" in md
    assert md.count("NEW **") == 1 and "NEW **" + by_topic["language"].representatives[0] in md
    assert report.to_dict()["new_gaps"] == 1


def test_the_window_decides_what_was_before(log, embedder, store, tmp_path) -> None:
    one_day = {topic(g): g.new for g in _report(log, embedder, store, tmp_path, days=1).gaps}
    assert one_day == {"billing": False, "language": True, "printer": True}  # the printer was 3 days ago
    unjudged = _report(log, embedder, store, tmp_path, days=0)
    assert {g.new for g in unjudged.gaps} == {None} and unjudged.new_gaps == []
