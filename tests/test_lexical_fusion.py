"""Lexical index (real SQLite FTS5), fusion and filters: unit behaviour and hostile queries."""

from __future__ import annotations

from pathlib import Path

import pytest

from sopilot.core.errors import InvalidQueryError
from sopilot.index.lexical import LexicalDoc, LexicalIndex, match_expression, query_terms
from sopilot.retrieval.filters import chroma_where, normalize_filters
from sopilot.retrieval.fusion import rrf


def _doc(cid: str, text: str, **meta) -> LexicalDoc:
    return LexicalDoc(cid, meta.pop("title", "T"), meta.pop("heading", "H"), text, {"path": f"{cid}.md", **meta})


@pytest.fixture
def lexical(tmp_path: Path) -> LexicalIndex:
    index = LexicalIndex(tmp_path / "lex.sqlite3")
    index.upsert(
        [
            _doc(
                "a",
                "Partners get 429 Too Many Requests when they exceed the rate limit.",
                status="active",
                tags=["api", "429"],
                owner="uops-partner-support",
            ),
            _doc(
                "b",
                "Reset two-factor authentication after the reviewer lost a phone.",
                status="active",
                tags=["2fa"],
                owner="uops-access",
            ),
            _doc("c", "Old paging by phone bridge.", status="deprecated", tags=["paging"], owner="uops-incident"),
            _doc("d", "Rate limiting of exports in Export Center.", status="draft", tags=["export"], owner="uops-data"),
        ]
    )
    return index


def test_bm25_ranks_and_porter_stems(lexical: LexicalIndex) -> None:
    hits = lexical.search("partner exceeded rate limits", 10, {"status": ["active", "draft"]})
    assert [cid for cid, _ in hits][:2] == ["a", "d"]
    assert hits[0][1] > hits[1][1] > 0
    assert [cid for cid, _ in lexical.search("resetting phones", 5, {"status": ["active"]})] == ["b"]


@pytest.mark.parametrize(
    "hostile",
    [
        '"unbalanced quote',
        "rate* AND (limit",
        "NEAR(rate limit)",
        "rate-limit -exports",
        "a OR b NOT c",
        "col:rate",
        "^rate",
        "'; DROP TABLE chunks; --",
        "🔥🔥 rate",
        "限流 rate",
        "\x00rate",
    ],
)
def test_queries_are_never_fts_syntax(lexical: LexicalIndex, hostile: str) -> None:
    hits = lexical.search(hostile, 5, {"status": ["active", "draft"]})
    assert all(isinstance(cid, str) for cid, _ in hits)
    assert lexical.count() == 4


def test_query_terms_and_match_expression() -> None:
    assert query_terms("Hi! How do I reset 2FA? Thanks, Ana") == ["reset", "2fa", "ana"]
    assert match_expression(['say "hi"', "x"]) == '"say ""hi""" OR "x"'
    assert query_terms("the and of") == []


def test_filters_apply_to_lexical_search(lexical: LexicalIndex) -> None:
    assert [c for c, _ in lexical.search("phone", 5, {"status": ["active"]})] == ["b"]
    assert {c for c, _ in lexical.search("phone", 5, {"status": ["active", "deprecated"]})} == {"b", "c"}
    assert [c for c, _ in lexical.search("rate", 5, {"status": ["active", "draft"], "tags": ["export"]})] == ["d"]
    assert [c for c, _ in lexical.search("rate", 5, {"owner": ["uops-partner-support"], "status": ["active"]})] == ["a"]


def test_upsert_replaces_and_delete_removes(lexical: LexicalIndex) -> None:
    lexical.upsert([_doc("a", "Completely different text about webhooks.", status="active")])
    assert lexical.count() == 4
    assert lexical.search("429", 5, {"status": ["active"]}) == []
    lexical.delete(["a", "b"])
    assert lexical.ids() == {"c", "d"}


def test_rrf_by_hand() -> None:
    fused = rrf({"dense": ["x", "y", "z"], "lexical": ["y", "w"]}, k=60)
    # y: 1/62 + 1/61; x: 1/61; w: 1/62; z: 1/63
    assert [f.id for f in fused] == ["y", "x", "w", "z"]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert fused[0].ranks == {"dense": 2, "lexical": 1}
    weighted = rrf({"dense": ["x"], "lexical": ["w"]}, {"dense": 1.0, "lexical": 2.0}, k=1)
    assert [f.id for f in weighted] == ["w", "x"]
    assert rrf({}) == [] and rrf({"dense": ["a", "a"]})[0].ranks == {"dense": 1}


def test_filters_validate_and_default_to_active() -> None:
    assert normalize_filters(None) == {"status": ["active"]}
    assert normalize_filters({"team": "uops-access", "tag": ["sso", "2fa"], "status": "all"}) == {
        "owner": ["uops-access"],
        "tags": ["sso", "2fa"],
        "status": ["active", "draft", "deprecated"],
    }
    with pytest.raises(InvalidQueryError, match="unknown filter 'colour'"):
        normalize_filters({"colour": "red"})
    with pytest.raises(InvalidQueryError, match="unknown status"):
        normalize_filters({"status": "archived"})
    with pytest.raises(InvalidQueryError, match="non-empty"):
        normalize_filters({"tags": []})
    where = chroma_where({"tags": ["a", "b"], "status": ["active"]})
    assert where == {
        "$and": [{"$or": [{"tags": {"$contains": "a"}}, {"tags": {"$contains": "b"}}]}, {"status": {"$in": ["active"]}}]
    }
    assert chroma_where({"status": ["active", "draft", "deprecated"]}) is None


@pytest.mark.parametrize(
    "filters",
    [
        {"status": ["active"]},
        {"status": ["draft", "deprecated"]},
        {"tags": ["api"], "status": ["active", "draft"]},
        {"owner": ["uops-data"]},
        {"status": ["active"], "products": ["nothing-has-this"]},
    ],
)
@pytest.mark.parametrize("n", [1, 2, 3, 10])
def test_filtered_search_equals_the_filtered_query(tmp_path: Path, filters: dict, n: int) -> None:
    """Filters checked after an over-fetched unfiltered ranking give exactly the filtered FTS5 query's result,
    also when the unfiltered head is mostly chunks that fail (the fallback)."""
    index = LexicalIndex(tmp_path / "lex.sqlite3")
    docs = []
    for i in range(30):  # the best-matching chunks are drafts: an over-fetch of 2n holds few active ones
        status = "draft" if i < 12 else ("deprecated" if i % 5 == 0 else "active")
        owner = "uops-data" if i % 3 == 0 else "uops-access"
        tags = ["api"] if i % 2 else ["2fa"]
        text = "rate limit " * max(1, 12 - i // 3) + f"export queue item {i}"
        docs.append(_doc(f"c{i:02d}", text, status=status, owner=owner, tags=tags))
    index.upsert(docs)
    for query in ("rate limit", "export queue", "item 17 rate"):
        expected = index.ranked(match_expression(query_terms(query)), n, filters)
        assert index.search(query, n, filters) == expected, (query, filters, n)
