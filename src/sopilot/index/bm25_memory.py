"""FTS5's BM25 ranking computed from postings held in memory, for questions of plain words.

An FTS5 ``ORDER BY bm25() LIMIT n`` query scores every row that matches any word of the question; at 50,000
chunks a question's common words match over half of them, and that scoring is most of a search's time. This
module reads each word's postings from the index once (through ``fts5vocab``), keeps them in memory and
computes the same score FTS5 computes (fts5_aux.c, ``fts5Bm25Function``) with NumPy:

    score = sum over the question's words of  idf * f * (k1 + 1) / (f + k1 * (1 - b + b * D / avgdl))

where ``f`` is the word's occurrences in the row weighted by column, ``D`` the row's length in tokens,
``idf = ln((N - n + 0.5) / (n + 0.5))`` (1e-6 when not positive), k1 = 1.2 and b = 0.75.

The index stays the source of truth: the cache is dropped whenever the database changes (``PRAGMA
data_version`` on a connection of its own sees every commit, from this process or another). A word that the
tokenizer splits into several tokens (``don't``) is a phrase: its tokens at consecutive offsets.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
K1 = 1.2
B = 0.75
MIN_IDF = 1e-6


@dataclass(frozen=True, slots=True)
class _Stats:
    version: int
    rowids: np.ndarray  # sorted FTS5 rowids
    lengths: np.ndarray  # tokens per row, in rowid order
    avgdl: float
    chunk_ids: dict[int, str]


class MemoryBm25:
    """Ranks rows of an FTS5 table by bm25() from cached postings; thread-safe."""

    def __init__(
        self,
        path: Path,
        table: str,
        tokenize: str,
        weights: dict[str, float],
        max_postings: int = 5_000_000,
    ) -> None:
        self._db = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
        )
        self._db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab USING fts5vocab(main, {table}, instance)")
        self._db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab_rows USING fts5vocab(main, {table}, row)")
        self._table = table
        columns = [row[1] for row in self._db.execute(f"PRAGMA table_info({table})")]
        if len(columns) > _COL_MASK + 1:
            raise ValueError(f"at most {_COL_MASK + 1} columns")
        self._column_index = {name: i for i, name in enumerate(columns)}
        # A token's occurrences packed as ``_instances`` packs them, by SQLite, as one comma-separated text:
        # no Python object per occurrence (a common word occurs hundreds of thousands of times at 500,000 chunks).
        column = " ".join(
            f"WHEN '{name.replace(chr(39), chr(39) * 2)}' THEN {i}" for name, i in self._column_index.items()
        )
        self._packed_sql = (
            f"SELECT group_concat((doc << {_DOC_SHIFT}) | ((CASE col {column} END) << {_COL_SHIFT}) "
            f"| min(offset, {_OFFSET_MASK})) FROM vocab WHERE term = ?"
        )
        self._column_weights = np.asarray([weights.get(name, 0.0) for name in columns])
        self._max_postings = max_postings
        self._stemmer = _Stemmer(tokenize)
        self._lock = threading.Lock()
        self._stats: _Stats | None = None
        self._postings: OrderedDict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._held = 0
        self._complete = False  # set by a warm() that held every token
        self._masks: dict[tuple[str, tuple[Any, ...]], np.ndarray] = {}  # rows each filter selects

    def close(self) -> None:
        self._db.close()

    def rank(self, words: Sequence[str], n: int, where: Where | None = None) -> list[tuple[str, float]]:
        """The ``n`` best chunk ids for rows matching any of ``words`` (each a phrase of its tokens, as
        FTS5 reads a quoted word), with their BM25 score (higher is better), in FTS5's order. ``where`` (an SQL
        condition on the table's columns and its parameters) keeps only the rows it selects, as in the FTS5
        query's WHERE clause: BM25 does not depend on it."""
        tokens = [self._stemmer.tokens(w) for w in words]
        with self._lock, self._snapshot():
            stats = self._current()
            size = len(stats.rowids)
            if size == 0 or n <= 0:
                return []
            allowed = self._allowed(where, stats) if where is not None else None
            scores = np.zeros(size)
            matched = np.zeros(size, dtype=bool)
            for phrase in tokens:
                if not phrase:
                    continue
                rows, freq = self._phrase(phrase, stats)
                if len(rows) == 0:
                    continue
                idf = math.log((size - len(rows) + 0.5) / (len(rows) + 0.5))
                # The operations in fts5_aux.c's order, so that the scores are equal to the last bit.
                norm = K1 * (1.0 - B + B * stats.lengths[rows] / stats.avgdl)
                scores[rows] += max(idf, MIN_IDF) * ((freq * (K1 + 1.0)) / (freq + norm))
                matched[rows] = True
            if allowed is not None:
                matched &= allowed
            hits = np.flatnonzero(matched)
            if len(hits) > n:  # the n best; among rows tied at the cut, the lowest rowids (as FTS5 keeps them)
                negated = -scores[hits]
                cut = np.partition(negated, n - 1)[n - 1]
                better, tied = hits[negated < cut], hits[negated == cut]
                hits = np.concatenate([better, tied[: n - len(better)]])
            order = sorted(hits.tolist(), key=lambda i: (-scores[i], stats.rowids[i]))
            return [(stats.chunk_ids[int(stats.rowids[i])], float(scores[i])) for i in order]

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """One read transaction: the version, row lengths, ids and postings all come from the same commit."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def _allowed(self, where: Where, stats: _Stats) -> np.ndarray:
        """Which rows (positions in ``stats.rowids``) ``where`` selects, read once per condition and version of
        the index: the filter columns of every row are read once, not by each question."""
        key = (where[0], tuple(where[1]))
        mask = self._masks.get(key)
        if mask is None:
            selected = [r for (r,) in self._db.execute(f"SELECT rowid FROM {self._table} WHERE {where[0]}", where[1])]
            mask = np.zeros(len(stats.rowids), dtype=bool)
            mask[np.searchsorted(stats.rowids, np.asarray(selected, dtype=np.int64))] = True
            if len(self._masks) >= _MAX_MASKS:
                self._masks.clear()
            self._masks[key] = mask
        return mask

    def _current(self) -> _Stats:
        version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        if self._stats is None or self._stats.version != version:
            self._masks.clear()
            self._postings.clear()
            self._held = 0
            self._complete = False
            self._stats = self._load_stats(version)
        return self._stats

    def _load_stats(self, version: int) -> _Stats:
        rowids, lengths = [], []
        for rowid, blob in self._db.execute(f"SELECT id, sz FROM {self._table}_docsize ORDER BY id"):
            rowids.append(rowid)
            lengths.append(sum(_varints(blob)))
        length_array = np.asarray(lengths, dtype=np.float64)
        # The FTS5 table's own content (shadow table ``%_content``, column c0 = chunk_id): what its query would
        # return for each rowid, read in 40 ms at 50,000 rows where the virtual table takes 0.9 s.
        chunk_ids = dict(self._db.execute(f"SELECT id, c0 FROM {self._table}_content"))
        # FTS5 divides its integer token total by its row count; summing whole numbers in float64 is exact.
        avgdl = float(length_array.sum()) / len(length_array) if len(length_array) else 1.0
        return _Stats(version, np.asarray(rowids, dtype=np.int64), length_array, avgdl or 1.0, chunk_ids)

    def warm(self) -> int:
        """Read every token's postings in one pass over the index when the budget holds them all; returns the
        tokens held. Seconds at 50,000 chunks (a per-token read costs up to 100 ms for the most common
        words): what a serving process does before its first question. When the budget is smaller than the
        index's postings, the tokens of most rows are held first: they cost a question the most to read,
        and questions meet them the most."""
        with self._lock, self._snapshot():
            stats = self._current()
            frequencies = self._db.execute("SELECT term, doc FROM vocab_rows ORDER BY doc DESC").fetchall()
            postings = sum(rows for _, rows in frequencies)
            if postings > self._max_postings:
                held = self._warm_most_frequent(frequencies, stats)
                log.info(
                    "lexical ranking holds %d of %d tokens (%d of %d postings) in memory; the others are read "
                    "per question: SOPILOT_LEXICAL_MEMORY_POSTINGS=%d holds them all (about %d MB)",
                    held, len(frequencies), self._held, postings, postings, postings * 16 // 2**20,
                )  # fmt: skip
                return held
            term: str | None = None
            docs: list[int] = []
            columns: list[int] = []
            for token, doc, column in self._db.execute("SELECT term, doc, col FROM vocab"):
                if token != term:
                    if term is not None and not self._keep((term,), self._aggregate(docs, columns, stats), False):
                        return len(self._postings)
                    term, docs, columns = token, [], []
                docs.append(doc)
                columns.append(self._column_index[column])
            if term is not None and not self._keep((term,), self._aggregate(docs, columns, stats), False):
                return len(self._postings)
            self._complete = True  # every token of the index is held: one not held occurs nowhere
            return len(self._postings)

    def _warm_most_frequent(self, frequencies: list[tuple[str, int]], stats: _Stats) -> int:
        """Hold the tokens of most rows first, each while it fits the budget (``frequencies``: token and rows,
        most rows first)."""
        for token, rows in frequencies:
            if self._held + rows > self._max_postings:
                continue
            keys = self._instances(token)
            self._keep((token,), self._aggregate(keys >> _DOC_SHIFT, (keys >> _COL_SHIFT) & _COL_MASK, stats), False)
        return len(self._postings)

    def _phrase(self, tokens: tuple[str, ...], stats: _Stats) -> tuple[np.ndarray, np.ndarray]:
        """Row positions (into ``stats.rowids``) holding the phrase and its column-weighted count in each."""
        cached = self._postings.get(tokens)
        if cached is not None:
            self._postings.move_to_end(tokens)
            return cached
        if self._complete and len(tokens) == 1:
            return _NOWHERE
        starts = self._instances(tokens[0])
        for i, token in enumerate(tokens[1:], start=1):  # a phrase: each token right after the one before
            starts = np.intersect1d(starts, self._instances(token) - i, assume_unique=True)
        entry = self._aggregate(starts >> _DOC_SHIFT, (starts >> _COL_SHIFT) & _COL_MASK, stats)
        self._keep(tokens, entry, True)
        return entry

    def _aggregate(self, docs: Any, columns: Any, stats: _Stats) -> tuple[np.ndarray, np.ndarray]:
        """Occurrences (rowid and column index of each) as row positions and column-weighted counts."""
        unique, inverse = np.unique(np.asarray(docs, dtype=np.int64), return_inverse=True)
        weights = self._column_weights[np.asarray(columns, dtype=np.int64)]
        return np.searchsorted(stats.rowids, unique), np.bincount(inverse, weights=weights)

    def _keep(self, key: tuple[str, ...], entry: tuple[np.ndarray, np.ndarray], evict: bool) -> bool:
        """Cache an entry; with ``evict`` the least recently used make room, else False once full."""
        if not evict and self._held + len(entry[0]) > self._max_postings:
            return False
        self._postings[key] = entry
        self._held += len(entry[0])
        while self._held > self._max_postings and len(self._postings) > 1:
            _, (rows, _) = self._postings.popitem(last=False)
            self._held -= len(rows)
            self._complete = False  # a token may have been let go
        return True

    def _instances(self, token: str) -> np.ndarray:
        """Every occurrence of a token as one sortable key: rowid, column and offset packed in an int64."""
        try:
            packed = self._db.execute(self._packed_sql, [token]).fetchone()[0]
        except (sqlite3.DataError, sqlite3.OperationalError):  # longer than SQLite's longest text allows
            return self._instances_by_row(token)
        keys = np.fromstring(packed, dtype=np.int64, sep=",") if packed else np.zeros(0, dtype=np.int64)
        keys.sort()
        return keys

    def _instances_by_row(self, token: str) -> np.ndarray:
        """``_instances`` one row at a time."""
        rows = self._db.execute("SELECT doc, col, offset FROM vocab WHERE term = ?", [token]).fetchall()
        keys = np.fromiter(
            (
                (doc << _DOC_SHIFT) | (self._column_index[col] << _COL_SHIFT) | min(offset, _OFFSET_MASK)
                for doc, col, offset in rows
            ),
            dtype=np.int64,
            count=len(rows),
        )
        keys.sort()
        return keys


Where = tuple[str, Sequence[Any]]  # an SQL condition on the FTS5 table's columns, and its parameters
_MAX_MASKS = 64  # filters whose selected rows are kept (a bool per row each)
_NOWHERE = (np.zeros(0, dtype=np.int64), np.zeros(0))
_COL_SHIFT = 27  # offsets below 2**27 tokens in a column; the column's index in 4 bits above; the rowid above
_DOC_SHIFT = 31
_COL_MASK = 0b1111
_OFFSET_MASK = (1 << _COL_SHIFT) - 1


class _Stemmer:
    """The index's own tokenizer, run on an in-memory FTS5 table: a word's tokens exactly as FTS5 makes them."""

    def __init__(self, tokenize: str) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(f"CREATE VIRTUAL TABLE words USING fts5(w, tokenize = '{tokenize}')")
        self._db.execute("CREATE VIRTUAL TABLE words_vocab USING fts5vocab(words, instance)")
        self._lock = threading.Lock()
        self._known: dict[str, tuple[str, ...]] = {}

    def tokens(self, word: str) -> tuple[str, ...]:
        known = self._known.get(word)
        if known is not None:
            return known
        with self._lock:
            self._db.execute("INSERT INTO words (rowid, w) VALUES (1, ?)", [word])
            rows = self._db.execute("SELECT term FROM words_vocab ORDER BY offset").fetchall()
            self._db.execute("DELETE FROM words")
        found = tuple(term for (term,) in rows)
        if len(self._known) < 100_000:
            self._known[word] = found
        return found


def _varints(blob: bytes) -> list[int]:
    """SQLite's big-endian variable-length integers, as FTS5 writes column sizes in ``%_docsize``: seven bits
    a byte while the high bit is set, and all eight bits of a ninth byte."""
    values, value, used = [], 0, 0
    for byte in blob:
        used += 1
        if used == 9:
            values.append((value << 8) | byte)
            value, used = 0, 0
        elif byte & 0x80:
            value = (value << 7) | (byte & 0x7F)
        else:
            values.append((value << 7) | byte)
            value, used = 0, 0
    return values
