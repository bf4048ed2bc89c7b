"""The query log: questions, answers and verdicts in SQLite, redacted before they are written."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sopilot.index.querylog import (
    LoggedCitation,
    LoggedPassage,
    QueryLog,
    Redactor,
    UnknownAnswerError,
    querylog_path,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+ops@example.co.uk now", "mail [email] now"),
        ("call +44 20 7946 0958 or (555) 123-4567", "call [phone] or [phone]"),
        ("Authorization: Bearer abc.DEF-123_xyz", "Authorization: [token]"),
        ("key sk-live_4f9a8b7c6d5e4f3a2b1c", "key [token]"),
        ("password=hunter2 please", "[token] please"),
        ("jwt eyJhbGciOi.eyJzdWIiOiIx.SflKxwRJSM", "jwt [token]"),
        ("hash 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b", "hash [token]"),
    ],
)
def test_redactor_removes_contacts_and_secrets(text: str, expected: str) -> None:
    assert Redactor()(text) == expected


def test_redactor_keeps_what_support_needs() -> None:
    text = "Error 429 on /v2/queues since 2026-11-30 14:05, item aud_4k2m9x7q1c, version 1.4.2, queue 12"
    assert Redactor()(text) == text


def test_redactor_is_configurable() -> None:
    assert Redactor(["email"])("a@b.io +1 415 555 0100") == "[email] +1 415 555 0100"
    assert Redactor([])("a@b.io") == "a@b.io"
    with pytest.raises(ValueError, match="unknown redaction"):
        Redactor(["ssn"])


def test_answers_and_feedback_round_trip(tmp_path: Path) -> None:
    log = QueryLog(querylog_path(tmp_path))
    passage = LoggedPassage("c1-a", "access/mfa.md", "resolution", ("MFA", "Resolution"), 0.42, "resolve")
    cite = LoggedCitation(1, "c1-a", "access/mfa.md", "resolution", ("MFA", "Resolution"))
    aid = log.record_query(
        kind="answer",
        question="reviewer jane@corp.example lost her phone",
        covered=True,
        tone="user",
        filters={"team": ["uops"]},
        passages=[passage],
        citations=[cite],
        draft="Hi, reset at https://x [1]. Call 415 555 0100",
        drafter="extractive",
        latency_ms=12.5,
        ts=1000.0,
    )
    record = log.get(aid)
    assert record is not None
    assert record.question == "reviewer [email] lost her phone"
    assert record.draft.endswith("Call [phone]")
    assert record.top == passage and record.citations == (cite,)
    assert record.filters == {"team": ["uops"]} and record.covered is True
    log.record_feedback(aid, "edited", sent_text="sent to jane@corp.example", comment="fixed step 2", ts=1001.0)
    log.record_feedback(aid, "accepted", ts=1002.0)
    (first, second) = list(log.feedback())
    assert first.sent_text == "sent to [email]" and first.verdict == "edited"
    assert log.latest_verdicts() == {aid: "accepted"}
    assert [q.id for q in log.queries(since=999, until=1000.5)] == [aid]
    assert list(log.queries(since=1000.5)) == []
    assert log.counts() == {"queries": 1, "feedback": 2}
    log.close()


def test_feedback_for_an_unknown_answer_or_verdict_is_refused(tmp_path: Path) -> None:
    log = QueryLog(querylog_path(tmp_path))
    with pytest.raises(UnknownAnswerError, match="no answer with id"):
        log.record_feedback("nope", "accepted")
    aid = log.record_query(kind="search", question="q", covered=None)
    with pytest.raises(ValueError, match="verdict must be one of"):
        log.record_feedback(aid, "liked")
    assert log.counts() == {"queries": 1, "feedback": 0}


def test_one_log_serves_several_threads(tmp_path: Path) -> None:
    log = QueryLog(querylog_path(tmp_path))

    def work(n: int) -> None:
        for i in range(25):
            aid = log.record_query(kind="answer", question=f"q{n}-{i}", covered=True)
            log.record_feedback(aid, "accepted")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.counts() == {"queries": 100, "feedback": 100}
    reopened = QueryLog(querylog_path(tmp_path))
    assert len(list(reopened.queries())) == 100
