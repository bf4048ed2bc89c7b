"""Hybrid retrieval on real components: Chroma, FTS5 and the packaged embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import SAMPLE_SOPS, sop, write_kb

from sopilot.cli.main import main
from sopilot.core.errors import InvalidQueryError
from sopilot.core.settings import Settings
from sopilot.index.folder import lexical_path
from sopilot.ingest.run import rebuild_lexical, run_ingest
from sopilot.retrieval.search import open_retriever

EXTRA = {
    "api/old-limits.md": sop(
        "T-API-OLD",
        "Old rate limits",
        "## Limits\n\nPartners could send 100 requests per minute.\n",
        status="deprecated",
        tags="[api, legacy]",
    ),
    "api/draft-webhooks.md": sop(
        "T-API-DRAFT",
        "Webhook retries",
        "## Retries\n\nWebhooks are retried 5 times with backoff.\n",
        status="draft",
        tags="[api, webhooks]",
    ),
}


@pytest.fixture
def indexed(tmp_path: Path, embedder) -> Settings:
    kb = write_kb(tmp_path / "kb", {**SAMPLE_SOPS, **EXTRA})
    settings = Settings(kb_dir=kb, index_dir=tmp_path / "index")
    assert run_ingest(settings, embedder, progress=False).ok
    return settings


def test_hybrid_result_explains_its_sources(indexed: Settings, embedder) -> None:
    result = open_retriever(indexed, embedder).search("Retry-After header on 429", k=3)
    top = result.passages[0]
    assert top.path == "api/rate-limits.md" and top.heading_path[-1] == "HTTP 429"
    assert {"fused", "dense", "lexical", "dense_rank", "lexical_rank"} <= set(top.scores)
    assert result.covered is True and "similarity" in result.reason


def test_drafts_and_deprecated_are_excluded_unless_asked(indexed: Settings, embedder) -> None:
    retriever = open_retriever(indexed, embedder)
    default = retriever.search("how many times are webhooks retried", k=10)
    assert {p.path for p in default.passages}.isdisjoint({"api/draft-webhooks.md", "api/old-limits.md"})
    with_drafts = retriever.search("how many times are webhooks retried", k=3, filters={"status": ["active", "draft"]})
    assert with_drafts.passages[0].path == "api/draft-webhooks.md"
    tagged = retriever.search("requests per minute", k=10, filters={"tags": "legacy", "status": "all"})
    assert {p.path for p in tagged.passages} == {"api/old-limits.md"}
    team = retriever.search("requests per minute", k=10, filters={"team": "nobody"})
    assert team.passages == [] and team.covered is False


def test_unanswerable_question_is_not_covered(indexed: Settings, embedder) -> None:
    result = open_retriever(indexed, embedder).search("what is the office parking garage code", k=3)
    assert result.covered is False and "weak evidence" in result.reason


@pytest.mark.parametrize(
    "query",
    [
        "ERROR 2026-11-25T03:12:44Z pod=review-7f9 " + "stack frame at com.aegis.Console.load(Console.java:42) " * 400,
        "レビュー担当者がログインできません SAML",
        "🔥🔥 429 😭 partner api",
        "rate\x00limit\x1b[31m 429\x07",
        '"quoted AND (unbalanced NEAR* -hyphen',
    ],
)
def test_awkward_queries_give_sensible_results(indexed: Settings, embedder, query: str) -> None:
    result = open_retriever(indexed, embedder).search(query, k=5)
    assert len(result.query) <= 20_000 and "\x00" not in result.query
    assert isinstance(result.passages, list) and result.covered in (True, False)


@pytest.mark.parametrize(
    ("query", "k", "filters", "message"),
    [
        ("   \n\t ", 5, None, "query is empty"),
        ("x", 0, None, "k must be a whole number from 1 to 100"),
        ("x", 101, None, "k must be a whole number from 1 to 100"),
        ("x", 5, {"colour": "red"}, "unknown filter 'colour'"),
    ],
)
def test_bad_requests_are_clear_errors(indexed: Settings, embedder, query, k, filters, message) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        open_retriever(indexed, embedder).search(query, k=k, filters=filters)


def test_lexical_index_is_repaired_and_rebuildable(indexed: Settings, counting) -> None:
    lexical_path(indexed).unlink()
    emb = counting()
    report = run_ingest(indexed, emb, progress=False)
    assert emb.embedded == 0 and report.added == 0
    retriever = open_retriever(indexed, emb)
    assert "lexical" in retriever.search("SAML response not valid", k=1).passages[0].scores
    assert rebuild_lexical(indexed, emb.name, emb.dimension) == report.chunks
    (indexed.kb_dir / "queues" / "backlog.md").unlink()
    run_ingest(indexed, emb, progress=False)
    hits = open_retriever(indexed, emb).search("Review Console Staffing senior reviewers", k=10).passages
    assert all(p.path != "queues/backlog.md" for p in hits)


def test_cli_search_filters_and_errors(indexed: Settings, embedder, monkeypatch, capsys) -> None:
    monkeypatch.setattr("sopilot.cli.common.load_embedder", lambda settings: embedder)
    base = ["--kb", str(indexed.kb_dir), "--index", str(indexed.index_dir)]
    assert main(["search", "webhook retries", "--status", "draft", "--json", *base]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["filters"]["status"] == ["draft"] and out["passages"][0]["path"] == "api/draft-webhooks.md"
    assert main(["search", "SAML response", *base]) == 0
    text = capsys.readouterr().out
    assert text.startswith("covered:") and "**SAML**" in text and "access/sso.md#" in text
    assert main(["search", "x", "-k", "500", *base]) == 2
    assert "k must be" in capsys.readouterr().err
    assert main(["reindex", "--lexical", "--json", *base]) == 0
    assert json.loads(capsys.readouterr().out)["lexical_chunks"] > 0


def test_one_retriever_serves_several_threads_at_once(indexed: Settings, embedder) -> None:
    """What an HTTP server does: the same retriever (Chroma, FTS5 and its in-memory ranking, the ONNX query
    encoder) called from several threads gives exactly the results of one thread, filters included."""
    from concurrent.futures import ThreadPoolExecutor

    retriever = open_retriever(indexed, embedder)
    asks = [
        ("reviewer lost phone, reset 2FA", None),
        ("partner gets 429 too many requests", None),
        ("export center rate limit", {"status": ["active", "draft"]}),
        ("queue stuck", {"tags": ["test"]}),
        ("don't see the appeal in my queue", None),
    ] * 6

    def run(ask: tuple[str, dict | None]) -> list[tuple[str, float]]:
        result = retriever.search(ask[0], k=5, filters=ask[1])
        return [(p.chunk_id, p.score) for p in result.passages]

    alone = [run(ask) for ask in asks]
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(run, asks))
    assert together == alone
    assert any(alone)
