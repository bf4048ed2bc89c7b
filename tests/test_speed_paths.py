"""The fast paths of a search answer exactly what the slow ones do: the question cache of the embedder, the
result cache of the API, the async dependencies (docs/scale.md, "Where a request's CPU goes")."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sopilot.api.app import create_app
from sopilot.api.result_cache import ResultCache
from sopilot.api.state import AppState
from sopilot.core.types import Passage
from sopilot.index.embedder import SentenceTransformerEmbedder
from sopilot.retrieval.search import SearchResult, open_retriever

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [json.loads(line)["question"] for line in (ROOT / "eval/testsets/kb.jsonl").read_text().splitlines()][:6]
ASKED = [(q, 5, None) for q in QUESTIONS] + [
    (QUESTIONS[0], 10, {"status": ["all"]}),
    ("hi team, " + QUESTIONS[1] + " (ticket #48213)", 3, {"team": ["uops-access"]}),
]


def ranking(result: SearchResult) -> list[tuple[str, float, dict[str, float], str]]:
    return [(p.chunk_id, p.score, p.scores, p.text) for p in result.passages]


def test_remembered_question_vectors_are_the_models_own(shipped_index) -> None:
    cached = SentenceTransformerEmbedder(query_cache=4, onnx_cache=shipped_index.index_dir / "models")
    plain = SentenceTransformerEmbedder(onnx_cache=shipped_index.index_dir / "models")
    first = [cached.embed_query(q) for q in QUESTIONS[:3]]
    again = [cached.embed_query(q) for q in QUESTIONS[:3]]
    info = cached.query_cache_info()
    assert info is not None and (info.hits, info.misses) == (3, 3)
    for q, a, b in zip(QUESTIONS, first, again, strict=False):
        assert a is b and np.array_equal(a, plain.embed_query(q))
    with pytest.raises(ValueError):
        again[0][0] = 1.0  # shared by every later caller: read-only
    assert plain.query_cache_info() is None


def test_search_with_the_question_cache_ranks_as_without(shipped_index) -> None:
    models = shipped_index.index_dir / "models"
    plain = open_retriever(shipped_index, SentenceTransformerEmbedder(onnx_cache=models))
    cached = open_retriever(shipped_index, SentenceTransformerEmbedder(query_cache=64, onnx_cache=models))
    for query, k, filters in ASKED * 2:  # the second round answers from the cache
        expected = plain.search(query, k=k, filters=filters)
        got = cached.search(query, k=k, filters=filters)
        assert ranking(got) == ranking(expected) and got.covered == expected.covered and got.reason == expected.reason


def test_api_answers_from_the_result_cache_as_without(api_state) -> None:
    uncached = AppState(api_state.settings.model_copy(update={"result_cache": 0}), api_state.embedder)
    cached = AppState(api_state.settings.model_copy(update={"result_cache": 64}), api_state.embedder)
    try:
        with TestClient(create_app(state=uncached)) as slow, TestClient(create_app(state=cached)) as fast:
            for query, k, filters in ASKED * 2:
                for route, extra in (("/v1/search", {}), ("/v1/answer", {"tone": "user"})):
                    body = {"query": query, "k": k, **({"filters": filters} if filters else {}), **extra}
                    a, b = slow.post(route, json=body), fast.post(route, json=body)
                    assert a.status_code == b.status_code == 200, (a.text, b.text)
                    a_json, b_json = a.json(), b.json()
                    name = "query_id" if route == "/v1/search" else "answer_id"
                    logged = b_json.pop(name)  # each request gets its own id and its own log row
                    assert a_json.pop(name) != logged and cached.querylog is not None
                    assert cached.querylog.get(logged).question == query
                    assert a_json == b_json
        assert cached.results.misses == len(ASKED) and cached.results.hits == 3 * len(ASKED)
        assert uncached.results.hits == uncached.results.misses == 0
    finally:
        uncached.close()
        cached.close()


def test_result_cache_keeps_one_generation_and_day() -> None:
    day = [date(2026, 1, 1)]
    cache = ResultCache(2, today=lambda: day[0])
    runs: list[str] = []

    def run(query: str, k: int, filters: dict) -> SearchResult:
        runs.append(query)
        return SearchResult(query, [])

    first = cache.search("g1", run, "a", 5, {})
    assert cache.search("g1", run, "a", 5, {}) is first and runs == ["a"]
    cache.search("g1", run, "a", 3, {})  # k, filters and day are part of the question
    cache.search("g1", run, "b", 5, {})  # over the size: the least recently used ("a", 5) goes
    assert cache.search("g1", run, "a", 5, {}) is not first and runs == ["a", "a", "b", "a"]
    day[0] = date(2026, 1, 2)
    cache.search("g1", run, "b", 5, {})
    cache.search("g2", run, "b", 5, {})  # a new generation answers anew
    assert runs[-2:] == ["b", "b"]
    assert ResultCache(0).search("g", run, "c", 5, {}) is not ResultCache(0).search("g", run, "c", 5, {})


def test_result_cache_is_bounded_in_passages() -> None:
    cache = ResultCache(4)
    passage = Passage("c", "p.md", "T", ("T",), "t", 1, 2, "text", 1.0)
    runs: list[str] = []

    def run(query: str, k: int, filters: dict) -> SearchResult:
        runs.append(query)
        return SearchResult(query, [passage] * k)

    for query, k in (("a", 1), ("b", 3), ("c", 2), ("b", 3), ("a", 1), ("huge", 5), ("huge", 5)):
        cache.search("g", run, query, k, {})
    # c (2) pushed a (1) and b (3) out; b came back and pushed c out; a fits beside b; huge (5) never fits
    assert runs == ["a", "b", "c", "b", "a", "huge", "huge"]
    cache.search("g", run, "b", 3, {})
    cache.search("g", run, "a", 1, {})
    assert runs[-1] == "huge"
