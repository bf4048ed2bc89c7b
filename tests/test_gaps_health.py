"""Gap clustering on a synthetic query log with known clusters; section health from recorded feedback."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from sopilot.author.gaps import GapParams, cluster_labels, find_gaps
from sopilot.author.health import section_health
from sopilot.index.querylog import LoggedCitation, QueryLog

# Three topics no SOP of the sample KB covers, and one the SSO SOP covers but whose drafts agents reject.
UNCOVERED = {
    "billing": [
        "How do I get a refund for a double charge on my invoice?",
        "I was billed twice this month, can I get my money back?",
        "Refund request: my credit card was charged two times",
        "The invoice shows a duplicate payment, please refund it",
    ],
    "language": [
        "How can I switch the language of the app to German?",
        "Change the display language of the app to Spanish",
        "Where is the setting for the UI language?",
    ],
    "printer": [
        "The office printer on floor 3 is jammed",
        "Printer in the office keeps jamming paper",
        "Paper jam in the third floor printer again",
    ],
}
REJECTED_SSO = [
    "SSO login says SAML response not valid",
    "Reviewer gets SAML response not valid when signing in",
]


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory, embedder):
    from conftest import SAMPLE_SOPS, write_kb
    from sopilot.core.settings import Settings
    from sopilot.index.store import VectorStore, make_client
    from sopilot.ingest.run import run_ingest

    root = tmp_path_factory.mktemp("gaps")
    settings = Settings(kb_dir=write_kb(root / "kb", dict(SAMPLE_SOPS)), index_dir=root / "index")
    run_ingest(settings, embedder, progress=False)
    return VectorStore.open(make_client(settings), settings.collection, embedder.name, embedder.dimension)


def _log(path: Path) -> tuple[QueryLog, dict[str, str]]:
    log = QueryLog(path)
    topic_of: dict[str, str] = {}
    sso = LoggedCitation(1, "c1-x", "access/sso.md", "resolution", ("SSO login fails", "Resolution"))
    ts = 1_700_000_000.0
    for topic, questions in UNCOVERED.items():
        for q in questions:
            ts += 60
            topic_of[log.record_query(kind="answer", question=q, covered=False, ts=ts)] = topic
    for q in REJECTED_SSO:
        ts += 60
        aid = log.record_query(kind="answer", question=q, covered=True, citations=[sso], ts=ts)
        log.record_feedback(aid, "rejected", ts=ts + 5)
        topic_of[aid] = "sso"
    # Answered well: not a gap.
    aid = log.record_query(
        kind="answer",
        question="HTTP 429 answer with a Retry-After header: how many seconds must clients wait?",
        covered=True,
        ts=ts + 90,
    )
    log.record_feedback(aid, "accepted", ts=ts + 95)
    return log, topic_of


def test_gap_clusters_match_the_known_topics(tmp_path: Path, embedder, sample_index) -> None:
    log, topic_of = _log(tmp_path / "q.sqlite3")
    clusters = find_gaps(log.queries(), log.latest_verdicts(), embedder, sample_index, today=date(2026, 12, 3))

    found = sorted(sorted(topic_of[q.answer_id] for q in c.questions) for c in clusters)
    expected = sorted([[t] * len(qs) for t, qs in UNCOVERED.items()] + [["sso"] * len(REJECTED_SSO)])
    assert found == expected
    assert clusters[0].size == 4 and "refund" in clusters[0].representatives[0].lower()

    sso = next(c for c in clusters if topic_of[c.questions[0].answer_id] == "sso")
    assert sso.reasons == {"rejected": 2}
    assert sso.suggestion == "extend" and sso.nearest is not None and sso.nearest.path == "access/sso.md"
    billing = clusters[0]
    assert billing.suggestion == "new" and billing.reasons == {"abstained": 4}
    assert "status: draft" in billing.stub and "last_reviewed: 2026-12-03" in billing.stub
    import yaml

    stub = yaml.safe_load(billing.stub.strip().strip("-"))
    assert stub["title"] and stub["owner"] == "TODO-team"  # nothing related to borrow from


def test_weak_coverage_counts_as_a_gap(tmp_path: Path, embedder, sample_index) -> None:
    log = QueryLog(tmp_path / "q.sqlite3")
    log.record_query(kind="answer", question="Printer paper jam on floor 3", covered=True)
    none = find_gaps(log.queries(), {}, embedder, sample_index, GapParams(weak_below=0.0))
    weak = find_gaps(log.queries(), {}, embedder, sample_index, GapParams(weak_below=0.9))
    assert none == [] and [c.reasons for c in weak] == [{"weak": 1}]


def test_cluster_labels_of_one_and_none() -> None:
    import numpy as np

    assert cluster_labels(np.zeros((0, 3)), 0.4) == []
    assert cluster_labels(np.ones((1, 3)), 0.4) == [0]


def test_section_health_from_recorded_feedback(tmp_path: Path) -> None:
    log = QueryLog(tmp_path / "q.sqlite3")
    good = LoggedCitation(1, "c1-a", "a.md", "fix", ("A", "Fix"))
    bad = LoggedCitation(1, "c1-b", "b.md", "steps", ("B", "Steps"))
    escalation = LoggedCitation(2, "c1-e", "esc.md", "", ("Escalation",), role="escalation")
    plan = [(good, "accepted")] * 4 + [(good, "edited")] + [(bad, "rejected")] * 2 + [(bad, "accepted")]
    plan += [(bad, None)]  # cited, never judged
    for citation, verdict in plan:
        aid = log.record_query(kind="answer", question="q", covered=True, citations=[citation, citation, escalation])
        if verdict:
            log.record_feedback(aid, "rejected" if verdict == "accepted" else verdict)
            if verdict == "accepted":  # the agent corrects the verdict: the last one counts
                log.record_feedback(aid, "accepted")
    rare = log.record_query(
        kind="answer", question="q", covered=True, citations=[LoggedCitation(1, "x", "c.md", "", ())]
    )
    log.record_feedback(rare, "rejected")

    health = section_health(log.queries(), log.latest_verdicts(), min_judged=2)
    assert [h.path for h in health] == ["b.md", "a.md"]  # worst first; c.md judged once; escalation not counted
    b, a = health
    assert (b.cited, b.judged, b.rejected, b.accepted) == (4, 3, 2, 1)
    assert b.to_dict()["reject_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert (a.cited, a.rate("accepted"), a.rate("edited")) == (5, 0.8, 0.2)
