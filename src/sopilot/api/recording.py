"""Searches and answers written to the query log (redacted there), each under the id the caller gets back."""

from __future__ import annotations

import uuid

from sopilot.core.types import Draft
from sopilot.index.querylog import LoggedCitation, LoggedPassage, QueryLog
from sopilot.retrieval.search import SearchResult


def new_id() -> str:
    return uuid.uuid4().hex


def _passages(result: SearchResult) -> list[LoggedPassage]:
    return [LoggedPassage(p.chunk_id, p.path, p.anchor, p.heading_path, p.score, p.role) for p in result.passages]


def record_search(
    log: QueryLog | None, query_id: str, question: str, result: SearchResult, *, ms: float, kb: str, key_id: str
) -> None:
    if log is None:
        return
    log.record_query(
        kind="search",
        question=question,
        covered=result.covered,
        reason=result.reason,
        filters=result.filters,
        passages=_passages(result),
        latency_ms=ms,
        kb_version=kb,
        key_id=key_id,
        answer_id=query_id,
    )


def record_answer(
    log: QueryLog | None,
    answer_id: str,
    question: str,
    tone: str,
    result: SearchResult,
    draft: Draft,
    *,
    ms: float,
    key_id: str,
) -> None:
    if log is None:
        return
    log.record_query(
        kind="answer",
        question=question,
        covered=draft.covered,
        reason=draft.abstention_reason or result.reason,
        tone=tone,
        filters=result.filters,
        passages=_passages(result),
        citations=[LoggedCitation(c.n, c.chunk_id, c.path, c.anchor, c.heading_path, c.role) for c in draft.citations],
        draft=draft.text,
        drafter=str(draft.provenance.get("drafter", "")),
        latency_ms=ms,
        kb_version=str(draft.provenance.get("kb_version", "")),
        key_id=key_id,
        answer_id=answer_id,
    )
