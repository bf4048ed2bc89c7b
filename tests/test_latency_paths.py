"""The fast search paths give the results of the plain ones: ids-only store queries, filters checked against the
lexical index's facts, documents read for the returned head only, one-thread query embedding, the query window."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.conftest import SAMPLE_SOPS, sop, write_kb

from sopilot.core.settings import Settings
from sopilot.index.embedder import window
from sopilot.index.folder import open_lexical
from sopilot.index.lexical import LexicalIndex, to_lexical
from sopilot.index.store import StoredChunk, VectorStore
from sopilot.ingest.run import run_ingest
from sopilot.retrieval.search import Retriever, SearchParams, open_retriever

EXTRA = {
    "api/old-limits.md": sop(
        "T-API-OLD",
        "Old rate limits",
        "## Limits\n\nPartners could send 100 requests per minute.\n\n## Escalation\n\nAsk #api-oncall.\n",
        status="deprecated",
        tags="[api, legacy]",
    ),
    "api/draft-webhooks.md": sop(
        "T-API-DRAFT",
        "Webhook retries",
        "## Retries\n\nWebhooks are retried 5 times with backoff.\n\n## Symptoms\n\nDuplicate deliveries.\n",
        status="draft",
        tags="[api, webhooks]",
    ),
    "access/long-section.md": sop(
        "T-ACC-LONG",
        "Two-factor recovery",
        "## Recovery steps\n\n"
        + "\n\n".join(
            f"{i}. Step {i}: confirm the reviewer's identity with the {word} check before resetting two-factor."
            for i, word in enumerate(["badge", "manager", "video", "ticket", "phone", "email"] * 12, 1)
        )
        + "\n",
    ),
}
QUESTIONS = [
    "Retry-After header on 429",
    "reviewer lost her phone, cannot pass two-factor",
    "how many times are webhooks retried",
    "SAML response not valid when opening Review Console",
    "priority queue backlog older than one hour",
    "partners requests per minute",
]
FILTERS: list[dict[str, Any] | None] = [
    None,
    {"status": "all"},
    {"status": "draft"},
    {"status": ["active", "deprecated"]},
    {"tags": "api", "status": "all"},
]


class NoFacts:
    """The lexical index as it was before it kept facts: search must fall back to reading the store."""

    def __init__(self, inner: LexicalIndex) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def facts(self, ids: Sequence[str], filters: dict[str, Any] | None = None) -> dict[str, Any]:
        return {}


class RecordingStore(VectorStore):
    """The real store, recording which ids it reads documents for and which queries it answers."""

    def __init__(self, inner: VectorStore) -> None:
        super().__init__(inner._collection, inner.embedder_name, inner.dimension)
        self.read: list[str] = []
        self.queries: list[tuple[int, Any]] = []

    def get(self, ids: Sequence[str]) -> dict[str, StoredChunk]:
        self.read.extend(ids)
        return super().get(ids)

    def nearest(self, embedding: np.ndarray, n: int, where: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        self.queries.append((n, where))
        return super().nearest(embedding, n, where)


@pytest.fixture
def indexed(tmp_path: Path, embedder) -> Settings:
    kb = write_kb(tmp_path / "kb", {**SAMPLE_SOPS, **EXTRA})
    settings = Settings(kb_dir=kb, index_dir=tmp_path / "index", candidate_depth=8)
    assert run_ingest(settings, embedder, progress=False).ok
    return settings


def _plain(fast: Retriever, settings: Settings, embedder) -> Retriever:
    return Retriever(fast.store, NoFacts(open_lexical(settings)), embedder, SearchParams.from_settings(settings))  # type: ignore[arg-type]


def test_results_are_the_same_with_and_without_the_facts(indexed: Settings, embedder) -> None:
    fast = open_retriever(indexed, embedder)
    plain = _plain(fast, indexed, embedder)
    for filters in FILTERS:
        for question in QUESTIONS:
            for k in (1, 3, 10):
                got = fast.search(question, k=k, filters=filters).to_dict()
                assert got == plain.search(question, k=k, filters=filters).to_dict(), (question, k, filters)


def test_documents_are_read_for_the_returned_sections_only(indexed: Settings, embedder) -> None:
    fast = open_retriever(indexed, embedder)
    store = RecordingStore(fast.store)
    retriever = Retriever(store, open_lexical(indexed), embedder, SearchParams.from_settings(indexed))
    result = retriever.search("reviewer lost her phone, cannot pass two-factor", k=2)
    returned = {(p.path, p.anchor) for p in result.passages}
    read = store.get(list(dict.fromkeys(store.read)))
    assert {(c.metadata["path"], c.metadata["anchor"]) for c in read.values()} == returned
    merged = [p for p in result.passages if p.scores.get("merged_chunks", 1) > 1]
    assert merged, "the long section's chunks are merged into one passage"
    assert len(set(store.read)) == sum(int(p.scores.get("merged_chunks", 1)) for p in result.passages)


def test_the_default_filter_is_checked_after_an_unfiltered_query(indexed: Settings, embedder) -> None:
    fast = open_retriever(indexed, embedder)
    store = RecordingStore(fast.store)
    retriever = Retriever(store, open_lexical(indexed), embedder, SearchParams.from_settings(indexed))
    result = retriever.search("how many times are webhooks retried", k=2)  # depth 8
    assert store.queries == [(16, None)]  # twice the depth, no where clause
    assert "api/draft-webhooks.md" not in {p.path for p in result.passages}
    store.queries.clear()
    drafts = retriever.search("how many times are webhooks retried", k=2, filters={"status": "draft"})
    # too few drafts among the nearest: a deeper unfiltered query finds them, with no metadata scan
    assert store.queries == [(16, None), (128, None)]
    assert {p.path for p in drafts.passages} == {"api/draft-webhooks.md"}


def test_a_chunk_gone_from_the_store_is_skipped_and_the_head_refilled(indexed: Settings, embedder) -> None:
    retriever = open_retriever(indexed, embedder)
    before = retriever.search("Retry-After header on 429", k=3)
    gone = before.passages[0].chunk_id
    retriever.store.delete([gone])  # the lexical index still holds it, as after a crash between the two writes
    after = retriever.search("Retry-After header on 429", k=3)
    assert gone not in {p.chunk_id for p in after.passages}
    assert len(after.passages) == 3


def test_facts_follow_upserts_deletes_and_filters(tmp_path: Path) -> None:
    index = LexicalIndex(tmp_path / "lexical.sqlite3")
    meta = {"path": "a.md", "anchor": "steps", "heading_path": "A > Steps", "status": "draft", "tags": ["x", "y"]}
    index.upsert(iter([to_lexical("c1", "text one", meta), to_lexical("c2", "text two", {**meta, "status": "active"})]))
    facts = index.facts(["c1", "c2", "nope"], {"status": ["active"]})
    assert set(facts) == {"c1", "c2"}
    assert (facts["c1"].path, facts["c1"].anchor, facts["c1"].heading_path) == ("a.md", "steps", "A > Steps")
    assert (facts["c1"].passes, facts["c2"].passes) == (False, True)
    assert index.facts(["c1"], {"tags": ["y"], "status": ["draft"]})["c1"].passes
    assert not index.facts(["c1"], {"tags": ["xy"]})["c1"].passes
    index.upsert([to_lexical("c1", "text one", {**meta, "anchor": "moved"})])
    assert index.facts(["c1"])["c1"].anchor == "moved"
    index.delete(["c1"])
    assert set(index.facts(["c1", "c2"])) == {"c2"}
    index.clear()
    assert index.facts(["c2"]) == {}


def test_torch_query_embedding_runs_on_its_threads_and_restores_the_setting() -> None:
    import torch

    from sopilot.index.embedder import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(runtime="torch", query_threads=1)
    seen: list[int] = []
    model = embedder.model
    original = model.encode_query

    def probe(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    model.encode_query = probe
    try:
        vector = embedder.embed_query("reviewer cannot log in")
    finally:
        del model.encode_query
        threads_after = torch.get_num_threads()
        torch.set_num_threads(before)
    assert seen == [1] and threads_after == 2
    assert vector.shape == (embedder.dimension,)


def test_the_query_window_keeps_what_the_model_reads(embedder) -> None:
    long = " ".join(f"word{i % 50} reviewer login" for i in range(2000))
    cut = window(long, embedder.max_tokens)
    assert len(cut.split()) == 2 * embedder.max_tokens and long.startswith(cut)
    assert window("short question", embedder.max_tokens) == "short question"
    full = embedder.model.encode_query(long, normalize_embeddings=True)  # type: ignore[attr-defined]
    assert np.allclose(embedder.embed_query(long), full, atol=1e-6)
