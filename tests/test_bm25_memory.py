"""BM25 from cached postings ranks exactly as the FTS5 query does, and follows every change to the index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sopilot.index.lexical import LexicalDoc, LexicalIndex, match_expression, query_terms

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    json.loads(line)["question"] for line in (ROOT / "eval/testsets/kb.jsonl").read_text().splitlines() if line.strip()
]


def kb_docs() -> list[LexicalDoc]:
    """The shipped SOPs cut at their headings: real words, real titles, apostrophes and all."""
    docs = []
    for path in sorted((ROOT / "kb").rglob("*.md")):
        sections = path.read_text(encoding="utf-8").split("\n## ")
        title = path.stem.replace("-", " ")
        for i, section in enumerate(sections):
            heading, _, body = section.partition("\n")
            meta = {"path": str(path.relative_to(ROOT / "kb")), "status": "active"}
            docs.append(LexicalDoc(f"{path.stem}-{i}", title, heading.strip("# "), body, meta))
    return docs


@pytest.fixture(scope="module")
def kb_index(tmp_path_factory: pytest.TempPathFactory) -> LexicalIndex:
    index = LexicalIndex(tmp_path_factory.mktemp("bm25") / "lex.sqlite3")
    index.upsert(kb_docs())
    return index


def expected(index: LexicalIndex, query: str, n: int) -> list[tuple[str, float]]:
    return index.ranked(match_expression(query_terms(query)), n)


@pytest.mark.parametrize("n", [1, 10, 100])
def test_memory_ranking_equals_the_fts5_query_on_every_kb_question(kb_index: LexicalIndex, n: int) -> None:
    assert kb_index.count() > 300
    compared = 0
    for question in QUESTIONS:
        if not query_terms(question):
            continue
        want = expected(kb_index, question, n)
        got = kb_index.search(question, n)
        assert [cid for cid, _ in got] == [cid for cid, _ in want], question
        assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-12), question
        compared += 1
    assert compared == len(QUESTIONS) and kb_index._memory is not None


def test_words_split_by_the_tokenizer_are_phrases(tmp_path: Path) -> None:
    index = LexicalIndex(tmp_path / "lex.sqlite3")
    index.upsert(
        [
            LexicalDoc("phrase", "T", "H", "I don't see the queue, don't ask", {}),
            LexicalDoc("apart", "T", "H", "don and t are far apart: don waits, t", {}),
            LexicalDoc("reversed", "T", "H", "t don then t", {}),
            LexicalDoc("other", "T", "H", "nothing here", {}),
        ]
    )
    for question in ("I don't see it", "don t", "reviewer's queue isn't loading", "don’t"):
        assert index.search(question, 10) == expected(index, question, 10), question
    assert [cid for cid, _ in index.search("don't", 10)] == ["phrase"]


def test_ranking_follows_writes_from_this_and_other_connections(tmp_path: Path) -> None:
    path = tmp_path / "lex.sqlite3"
    index = LexicalIndex(path)
    index.upsert([LexicalDoc("a", "Rate limits", "H", "partners hit the rate limit on exports", {})])
    assert [cid for cid, _ in index.search("rate limit exports", 5)] == ["a"]

    index.upsert([LexicalDoc("b", "Exports", "H", "exports of the rate limit report, exports again", {})])
    assert index.search("rate limit exports", 5) == expected(index, "rate limit exports", 5)
    assert {cid for cid, _ in index.search("rate limit exports", 5)} == {"a", "b"}

    writer = LexicalIndex(path)  # another connection, as a sync in another process would be
    writer.delete(["a"])
    writer.upsert([LexicalDoc("c", "T", "H", "exports exports exports", {})])
    writer.close()
    assert index.search("rate limit exports", 5) == expected(index, "rate limit exports", 5)
    assert {cid for cid, _ in index.search("rate limit exports", 5)} == {"b", "c"}

    index.clear()
    assert index.search("rate limit exports", 5) == []


def test_a_small_postings_budget_evicts_and_stays_exact(tmp_path: Path, kb_index: LexicalIndex) -> None:
    small = LexicalIndex(kb_index.path, memory_postings=50)
    for question in QUESTIONS[:40]:
        assert small.search(question, 10) == expected(kb_index, question, 10), question
    assert small._memory is not None and small._memory._held <= 50 + max(
        len(rows) for rows, _ in small._memory._postings.values()
    )
    small.close()


def test_memory_off_uses_the_fts5_query(tmp_path: Path, kb_index: LexicalIndex) -> None:
    off = LexicalIndex(kb_index.path, memory_postings=0)
    assert off.search(QUESTIONS[0], 10) == expected(kb_index, QUESTIONS[0], 10)
    assert off._memory is None
    off.close()


def test_warm_loads_every_token_once_and_ranks_exactly(kb_index: LexicalIndex, monkeypatch) -> None:
    warm = LexicalIndex(kb_index.path)
    tokens = warm.warm()
    assert tokens > 1000
    memory = warm._memory
    assert memory is not None

    def no_reads(token):
        raise AssertionError(f"{token!r} should have been loaded by warm()")

    monkeypatch.setattr(memory, "_instances", no_reads)
    for question in QUESTIONS:
        if any("'" in word or "’" in word for word in query_terms(question)):
            continue  # phrases are built from their tokens' occurrences, read when first asked
        assert warm.search(question, 10) == expected(kb_index, question, 10), question
    warm.close()


def test_warm_stops_at_the_budget(kb_index: LexicalIndex) -> None:
    small = LexicalIndex(kb_index.path, memory_postings=500)
    small.warm()
    assert small._memory is not None and 0 < small._memory._held <= 500
    assert small.search(QUESTIONS[1], 10) == expected(kb_index, QUESTIONS[1], 10)
    small.close()


def test_eviction_after_a_full_warm_forgets_that_it_was_complete(tmp_path: Path) -> None:
    index = LexicalIndex(tmp_path / "lex.sqlite3", memory_postings=5)
    index.upsert([LexicalDoc("a", "T", "H", "alpha beta", {}), LexicalDoc("b", "T", "H", "gamma delta don't", {})])
    index.warm()
    assert index._memory is not None and index._memory._complete is False  # budget too small to hold all
    big = LexicalIndex(tmp_path / "lex.sqlite3", memory_postings=9)  # t, h: 2 each; 5 words: 1
    big.warm()
    assert big._memory is not None and big._memory._complete
    assert [cid for cid, _ in big.search("don't", 5)] == ["b"]  # a phrase entry evicts a token
    assert big._memory._complete is False
    for word in ("alpha", "beta", "gamma", "delta"):
        assert big.search(word, 5) == expected(big, word, 5), word


def test_index_path_with_characters_special_in_uris(tmp_path: Path) -> None:
    folder = tmp_path / "my SOPs #1 ?draft%20"
    index = LexicalIndex(folder / "lex.sqlite3")
    index.upsert([LexicalDoc("a", "Rate limits", "H", "partners hit the rate limit", {})])
    assert [cid for cid, _ in index.search("rate limit", 5)] == ["a"]
    assert index._memory is not None


def test_ids_come_from_the_fts5_table_itself(tmp_path: Path) -> None:
    """A chunk whose facts row is missing (drift) is still ranked and named as the FTS5 query names it."""
    index = LexicalIndex(tmp_path / "lex.sqlite3")
    index.upsert([LexicalDoc("a", "T", "H", "rate limit", {}), LexicalDoc("b", "T", "H", "rate", {})])
    with index._db:
        index._db.execute("DELETE FROM chunk_facts WHERE chunk_id = 'a'")
    assert index.search("rate limit", 5) == expected(index, "rate limit", 5)
    assert [cid for cid, _ in index.search("rate limit", 5)] == ["a", "b"]


def test_a_token_read_whole_equals_its_rows_read_one_by_one(kb_index: LexicalIndex) -> None:
    ranker = LexicalIndex(kb_index.path)._memory_ranker()
    assert ranker is not None
    for token in ("queue", "partner", "2fa", "nothingsuchword"):
        assert np.array_equal(ranker._instances(token), ranker._instances_by_row(token)), token


def test_a_budget_smaller_than_the_index_holds_the_tokens_of_most_rows(kb_index: LexicalIndex) -> None:
    small = LexicalIndex(kb_index.path, memory_postings=3000)
    small.warm()
    memory = small._memory
    assert memory is not None and 0 < memory._held <= 3000
    rows = dict(memory._db.execute("SELECT term, doc FROM vocab_rows").fetchall())
    held = {key[0] for key in memory._postings}
    skipped = [rows[t] for t in rows if t not in held and rows[t] <= 3000 - memory._held]
    assert not skipped, "a token that still fits was left out"
    assert min(rows[t] for t in held) >= max(r for t, r in rows.items() if t not in held) or memory._held > 2900
    for question in QUESTIONS[:30]:
        assert small.search(question, 10) == expected(kb_index, question, 10), question
    small.close()


def test_a_filter_few_chunks_pass_ranks_as_the_fts5_query_without_asking_it(tmp_path: Path, monkeypatch) -> None:
    index = LexicalIndex(tmp_path / "lex.sqlite3")
    docs = [
        LexicalDoc(
            f"d{i}",
            "Queue",
            "Steps",
            f"drain the queue step {i} " + "queue " * (i % 7),
            {"status": "active" if i % 10 == 0 else "deprecated", "tags": ["ops"] if i % 20 == 0 else []},
        )
        for i in range(300)
    ]
    index.upsert(docs)
    filters = [{"status": ["active"]}, {"status": ["active"], "tags": ["ops"]}, {"status": ["retired"]}]
    wanted = {json.dumps(f): index.ranked(match_expression(["queue"]), 5, f) for f in filters}
    monkeypatch.setattr(index, "ranked", lambda *a, **k: pytest.fail("the filtered FTS5 query was asked"))
    for f in filters:
        assert index.search("queue", 5, f) == wanted[json.dumps(f)], f
    index.upsert([LexicalDoc("late", "Queue", "Steps", "queue queue queue queue", {"status": "active"})])
    assert index.search("queue", 1, {"status": ["active"]})[0][0] == "late"  # the mask follows a write
    index.close()
