"""Search results and drafts flag passages of SOPs past their review date; ranking demotes them only when asked."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from sopilot.core.settings import Settings
from sopilot.draft.factory import open_drafter
from sopilot.index.embedder import Embedder
from sopilot.retrieval.search import open_retriever

QUESTION = (
    "whole floor at site B blocked: AUTH-451: Source IP not allowed. "
    "site IT says the ISP switched them to the backup line"
)
OVERDUE_SOP = "access/vendor-ip-allowlist.md"  # due 2026-05-19 (kb/README.md, planted)
PLANTED = {OVERDUE_SOP, "access/okta-verify-lost-device.md"}  # the overdue SOPs this question can reach


@pytest.mark.slow
def test_overdue_passages_and_citations_are_flagged(shipped_index: Settings, embedder: Embedder) -> None:
    settings = shipped_index.model_copy(update={"today": date(2026, 11, 25)})
    retriever = open_retriever(settings, embedder)
    result = retriever.search(QUESTION, k=5)
    assert OVERDUE_SOP in {p.path for p in result.passages}
    assert all(p.review_overdue == (p.path in PLANTED) for p in result.passages)
    assert any(p["review_overdue"] for p in result.to_dict()["passages"])
    overdue_only = replace(result, passages=[p for p in result.passages if p.path == OVERDUE_SOP])
    draft = open_drafter(settings, retriever.store, tone="internal", embedder=embedder).draft(QUESTION, overdue_only)
    assert draft.covered and all(c.review_overdue for c in draft.citations if c.path == OVERDUE_SOP)
    assert OVERDUE_SOP in draft.review_overdue and draft.to_dict()["review_overdue"] == list(draft.review_overdue)
    # before its due date the same SOP is not flagged
    early = open_retriever(shipped_index.model_copy(update={"today": date(2026, 5, 1)}), embedder)
    assert not any(p.review_overdue for p in early.search(QUESTION, k=5).passages if p.path == OVERDUE_SOP)


@pytest.mark.slow
def test_overdue_weight_demotes_only_when_set(shipped_index: Settings, embedder: Embedder) -> None:
    base = shipped_index.model_copy(update={"today": date(2026, 11, 25)})
    plain = open_retriever(base, embedder).search(QUESTION, k=5).passages
    assert all("overdue_weight" not in p.scores for p in plain)
    demoted = open_retriever(base.model_copy(update={"overdue_weight": 0.01}), embedder).search(QUESTION, k=5)
    assert any(p.review_overdue for p in plain[:2])  # the site-IP section of the overdue SOP ranks high
    flags = [p.review_overdue for p in demoted.passages]
    assert flags == sorted(flags)  # every overdue passage below every current one
    assert all(p.scores.get("overdue_weight") == 0.01 for p in demoted.passages if p.review_overdue)
