"""The lexical index: SQLite FTS5 with BM25 ranking and Porter stemming, kept in step with the vector store.

Local Chroma has no sparse index, so hybrid search keeps this one beside it. It holds only what the store
holds (text, title, heading path and the filter fields) and can be rebuilt from the store at any time.
Questions are never parsed as FTS5 syntax: they are cut into words and each word is quoted.

Beside the FTS5 table, ``chunk_facts`` holds per chunk id what search needs before it reads any document:
the section a chunk belongs to (path, anchor, heading path) and the filter fields. Written in the same
transactions as the FTS5 rows, it lets search filter the store's nearest ids and merge sections without
reading metadata from the store (docs/retrieval.md, "Latency").
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sopilot.index.bm25_memory import MemoryBm25

_T = TypeVar("_T")
SCHEMA_VERSION = "4"
TOKENIZE = "porter unicode61 remove_diacritics 2"
MAX_QUERY_TERMS = 48
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "hi",
        "hello",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "please",
        "so",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "too",
        "up",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "thanks",
        "thank",
        "hey",
    ]
)


@dataclass(frozen=True, slots=True)
class ChunkFacts:
    """What search knows about a chunk before reading it: its section and whether it passes the filters."""

    path: str
    anchor: str
    heading_path: str
    passes: bool
    role: str = ""


@dataclass(frozen=True, slots=True)
class LexicalDoc:
    chunk_id: str
    title: str
    heading: str
    text: str
    metadata: dict[str, Any]


def words_of(text: str) -> list[str]:
    """Distinct lowercased words of a text, stop words out, in order of first use."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if word not in STOP_WORDS and (len(word) > 1 or word.isdigit()):
            seen.setdefault(word, None)
    return list(seen)


def query_terms(query: str) -> list[str]:
    """Distinct lowercased words of a question, stop words out, in order; at most ``MAX_QUERY_TERMS``."""
    return words_of(query)[:MAX_QUERY_TERMS]


def match_expression(terms: Sequence[str]) -> str:
    """An FTS5 MATCH string that can only mean "any of these words": every term is a quoted string."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def _serialized(method: Callable[..., _T]) -> Callable[..., _T]:
    """Run a LexicalIndex method under the index's lock. SQLite serialises calls on one connection, but a
    read from another thread in the middle of ``upsert`` would run inside its open transaction and see half of
    it; with the lock, reads wait for the write to commit."""

    @functools.wraps(method)
    def locked(self: LexicalIndex, *args: Any, **kwargs: Any) -> _T:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class LexicalIndex:
    """FTS5 table of chunks; column weights favour the title and headings over the body.

    Unfiltered rankings are computed from postings cached in memory (``MemoryBm25``: FTS5's own scores and
    order, without scoring every matching row in SQL) unless ``memory_postings`` is 0. One index can be shared
    by the threads of a server: its connection is used under a lock, the in-memory ranking has its own.
    """

    def __init__(
        self, path: Path, weights: tuple[float, float, float] = (3.0, 2.0, 1.0), memory_postings: int = 5_000_000
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._weights = weights
        self._memory_postings = memory_postings
        self._memory: MemoryBm25 | None = None
        self._lock = threading.RLock()  # one connection, shared by the threads of a server
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if str(version) != SCHEMA_VERSION:
            self._db.executescript("DROP TABLE IF EXISTS chunks; DROP TABLE IF EXISTS chunk_facts;")
        self._db.executescript(
            f"""
            CREATE VIRTUAL TABLE IF NOT EXISTS chunks USING fts5(
                chunk_id UNINDEXED, title, heading, body,
                path UNINDEXED, status UNINDEXED, owner UNINDEXED, tags UNINDEXED, products UNINDEXED,
                tokenize = '{TOKENIZE}');
            CREATE TABLE IF NOT EXISTS chunk_facts (
                chunk_id TEXT PRIMARY KEY, fts_rowid INTEGER, path TEXT, anchor TEXT, heading_path TEXT,
                status TEXT, owner TEXT, tags TEXT, products TEXT, role TEXT) WITHOUT ROWID;
            PRAGMA user_version = {SCHEMA_VERSION};
            """
        )

    @_serialized
    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()
        self._db.close()

    @_serialized
    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    @_serialized
    def ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT chunk_id FROM chunks")}

    @_serialized
    def upsert(self, docs: Iterable[LexicalDoc]) -> None:
        docs = list({d.chunk_id: d for d in docs}.values())
        with self._db:
            self._remove([d.chunk_id for d in docs])
            start = int(self._db.execute("SELECT coalesce(max(rowid), 0) + 1 FROM chunks").fetchone()[0])
            rows = self._rows(docs, start)
            self._db.executemany(
                "INSERT INTO chunks (rowid, chunk_id, title, heading, body, path, status, owner, tags, products) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            facts = [
                (
                    d.chunk_id,
                    row[0],
                    d.metadata.get("path", ""),
                    d.metadata.get("anchor", ""),
                    d.metadata.get("heading_path", ""),
                    *row[6:],
                    d.metadata.get("role", ""),
                )
                for d, row in zip(docs, rows, strict=True)
            ]
            self._db.executemany("INSERT OR REPLACE INTO chunk_facts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", facts)

    @staticmethod
    def _rows(docs: list[LexicalDoc], start: int) -> list[tuple[Any, ...]]:
        return [
            (
                start + i,
                d.chunk_id,
                d.title,
                d.heading,
                d.text,
                d.metadata.get("path", ""),
                d.metadata.get("status", ""),
                d.metadata.get("owner", ""),
                _joined(d.metadata.get("tags")),
                _joined(d.metadata.get("products")),
            )
            for i, d in enumerate(docs)
        ]

    def _remove(self, ids: Sequence[str]) -> None:
        """Delete chunks by the FTS5 rowid their facts record: ``chunk_id`` is not indexed in FTS5, so deleting
        by it scans the whole table once per id (minutes for a 50,000-chunk rebuild)."""
        for start in range(0, len(ids), _ID_BATCH):
            part = list(ids[start : start + _ID_BATCH])
            marks = ", ".join("?" for _ in part)
            rowids = self._db.execute(f"SELECT fts_rowid FROM chunk_facts WHERE chunk_id IN ({marks})", part)
            self._db.executemany("DELETE FROM chunks WHERE rowid = ?", rowids.fetchall())
            self._db.execute(f"DELETE FROM chunk_facts WHERE chunk_id IN ({marks})", part)

    @_serialized
    def delete(self, ids: Iterable[str]) -> None:
        with self._db:
            self._remove(list(ids))

    @_serialized
    def clear(self) -> None:
        with self._db:
            self._db.execute("DELETE FROM chunks")
            self._db.execute("DELETE FROM chunk_facts")

    @_serialized
    def facts(self, ids: Sequence[str], filters: dict[str, Any] | None = None) -> dict[str, ChunkFacts]:
        """Section and filter verdict of each known id (ids the index does not hold are left out)."""
        wanted = list(dict.fromkeys(ids))
        clauses, params = _filter_sql(filters or {})
        passes = " AND ".join(clauses) or "1"
        out: dict[str, ChunkFacts] = {}
        for start in range(0, len(wanted), _ID_BATCH):
            part = wanted[start : start + _ID_BATCH]
            sql = (
                f"SELECT chunk_id, path, anchor, heading_path, {passes}, role FROM chunk_facts "
                f"WHERE chunk_id IN ({', '.join('?' for _ in part)})"
            )
            for cid, path, anchor, heading, ok, role in self._db.execute(sql, [*params, *part]):
                out[cid] = ChunkFacts(path or "", anchor or "", heading or "", bool(ok), role or "")
        return out

    def search(self, query: str, n: int, filters: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        """Best ``n`` chunk ids with their BM25 score (higher is better), filtered like the dense search.

        BM25 does not depend on the WHERE clause, so the filtered ranking is the unfiltered one without the
        chunks that fail the filters. The in-memory ranking leaves them out by a mask of the rows the filters
        select (read from the FTS5 table once per filter and version of the index, so a filter many rows fail
        costs no deeper ranking and no FTS5 query). Without it, the unfiltered ranking is taken
        ``FILTER_OVERFETCH`` times deeper and checked against the facts: a filter on the FTS5 table reads the
        filter columns of every matching row, most of the query's time on a large index. When too few pass (or
        the facts miss an id), the filtered query answers; either way the result is the filtered query's.
        """
        terms = query_terms(query)
        if not terms or n <= 0:
            return []
        memory = self._memory_ranker() if filters else None
        if filters and memory is not None:  # the filter as a mask over the rows, read once per filter
            clauses, params = _filter_sql(filters)
            return memory.rank(terms, n, (" AND ".join(clauses), params))
        if filters:
            asked = n * FILTER_OVERFETCH
            rows = self._unfiltered(terms, asked)
            kept = keep_passing(rows, self.facts([cid for cid, _ in rows], filters), n, asked)
            if kept is not None:
                return kept
            return self.ranked(match_expression(terms), n, filters)
        return self._unfiltered(terms, n)

    def warm(self) -> int:
        """Load the postings the in-memory ranking needs up front (see ``MemoryBm25.warm``); 0 when it is off."""
        memory = self._memory_ranker()
        return memory.warm() if memory is not None else 0

    def _unfiltered(self, terms: Sequence[str], n: int) -> list[tuple[str, float]]:
        memory = self._memory_ranker()
        return memory.rank(terms, n) if memory is not None else self.ranked(match_expression(terms), n)

    @_serialized
    def _memory_ranker(self) -> MemoryBm25 | None:
        if self._memory is None and self._memory_postings > 0:
            title, heading, body = self._weights
            weights = {"title": title, "heading": heading, "body": body}
            self._memory = MemoryBm25(self.path, "chunks", TOKENIZE, weights, self._memory_postings)
        return self._memory

    @_serialized
    def ranked(self, match: str, n: int, filters: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        """The FTS5 query itself: ``n`` best ids for a MATCH expression, filters in its WHERE clause."""
        clauses, params = _filter_sql(filters or {})
        w_title, w_heading, w_body = self._weights
        sql = (
            f"SELECT chunk_id, bm25(chunks, 0, {w_title}, {w_heading}, {w_body}) AS rank FROM chunks "
            f"WHERE chunks MATCH ? {''.join(' AND ' + c for c in clauses)} ORDER BY rank LIMIT ?"
        )
        rows = self._db.execute(sql, [match, *params, n]).fetchall()
        return [(cid, -float(rank)) for cid, rank in rows]

    @_serialized
    def unknown_terms(self, terms: Sequence[str], except_path: str | None = None) -> list[str]:
        """The terms (stemmed as the index stems them) that occur in no indexed chunk, whatever the filters;
        with ``except_path``, in no chunk of another SOP (as if that SOP were not indexed)."""
        if except_path is None:
            sql, extra = "SELECT 1 FROM chunks WHERE chunks MATCH ? LIMIT 1", []
        else:
            sql, extra = "SELECT 1 FROM chunks WHERE chunks MATCH ? AND path != ? LIMIT 1", [except_path]
        return [t for t in terms if self._db.execute(sql, [match_expression([t]), *extra]).fetchone() is None]


_ID_BATCH = 500  # ids per SQL statement (SQLite caps bound parameters)
FILTER_OVERFETCH = 2  # unfiltered ranking depth per wanted id when filters are checked against the facts


def keep_passing(
    ranked: Sequence[tuple[str, float]], facts: Mapping[str, ChunkFacts], n: int, asked: int
) -> list[tuple[str, float]] | None:
    """The first ``n`` ids of an unfiltered ranking (cut at ``asked``) that pass the filters, or None when the
    facts cannot tell: an id they do not know, or fewer than ``n`` passing in a ranking that was cut."""
    if any(cid not in facts for cid, _ in ranked):
        return None
    kept = [(cid, score) for cid, score in ranked if facts[cid].passes]
    return kept[:n] if len(kept) >= n or len(ranked) < asked else None


def _joined(values: Any) -> str:
    """List fields stored as ``|a|b|`` so that a filter can match one whole value."""
    if not values:
        return ""
    return "|" + "|".join(str(v) for v in values) + "|"


def _filter_sql(filters: dict[str, Any]) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for field, wanted in filters.items():
        values = list(wanted) if isinstance(wanted, list | tuple | set) else [wanted]
        if field in ("tags", "products"):
            clauses.append("(" + " OR ".join(f"instr({field}, ?) > 0" for _ in values) + ")")
            params.extend(f"|{v}|" for v in values)
        else:
            clauses.append(f"{field} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
    return clauses, params


def to_lexical(chunk_id: str, text: str, metadata: dict[str, Any]) -> LexicalDoc:
    heading = str(metadata.get("heading_path", ""))
    title = str(metadata.get("title", ""))
    return LexicalDoc(chunk_id, title, heading.removeprefix(title).lstrip(" >"), text, metadata)


def dumps_filters(filters: dict[str, Any]) -> str:
    return json.dumps(filters, sort_keys=True)
