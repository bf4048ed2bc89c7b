"""The manifest: what each file looked like when last indexed, so unchanged files are not parsed again.

SQLite in the index folder. It is a cache of the store, never the truth: a missing or stale manifest costs
parsing time, not correctness, because the sync always reconciles chunk ids with the store. With a Chroma
server shared by several replicas, each replica's manifest records the generation it is in step with
(``IN_STEP_KEY``); one that is behind is read back from the store's chunk metadata (``records_from_store``)
before that replica's next ingest, so it never deletes or re-embeds what another replica wrote.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sopilot.index.store import VectorStore

SCHEMA_VERSION = "1"
IN_STEP_KEY = "generation"  # the shared store's generation this manifest (and the lexical index) reflect


@dataclass(frozen=True, slots=True)
class FileRecord:
    path: str
    content_hash: str
    sop_id: str
    chunk_ids: tuple[str, ...]
    n_sections: int


class Manifest:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path)
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS files (
                path TEXT PRIMARY KEY, content_hash TEXT NOT NULL, sop_id TEXT NOT NULL,
                chunk_ids TEXT NOT NULL, n_sections INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            """
        )
        schema = self.get("schema")
        if schema not in (None, SCHEMA_VERSION):
            self.clear()
        if schema != SCHEMA_VERSION:  # written once: opening an index on a read-only disk writes nothing
            self.set("schema", SCHEMA_VERSION)

    def close(self) -> None:
        self._db.close()

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set(self, key: str, value: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def files(self) -> dict[str, FileRecord]:
        rows = self._db.execute("SELECT path, content_hash, sop_id, chunk_ids, n_sections FROM files")
        return {r[0]: FileRecord(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4]) for r in rows}

    def replace_files(self, records: list[FileRecord]) -> None:
        """Write the whole file table in one transaction."""
        with self._db:
            self._db.execute("DELETE FROM files")
            self._db.executemany(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?)",
                [(r.path, r.content_hash, r.sop_id, json.dumps(list(r.chunk_ids)), r.n_sections) for r in records],
            )

    def clear(self) -> None:
        with self._db:
            self._db.execute("DELETE FROM files")
            self._db.execute("DELETE FROM meta")


def records_from_store(store: VectorStore) -> list[FileRecord]:
    """The file table as the store's chunk metadata tells it. The content hash is not stored with chunks, so
    it is left empty: the next sync parses every file again (embedding only chunk ids the store lacks)."""
    chunks: dict[str, list[tuple[int, str]]] = defaultdict(list)
    sections: dict[str, set[int]] = defaultdict(set)
    sop_ids: dict[str, str] = {}
    for chunk in store.all_chunks():
        path = str(chunk.metadata.get("path", ""))
        if not path:
            continue
        chunks[path].append((int(chunk.metadata.get("chunk_index", 0)), chunk.id))
        sections[path].add(int(chunk.metadata.get("section_start", 0)))
        sop_ids[path] = str(chunk.metadata.get("sop_id", ""))
    return [
        FileRecord(path, "", sop_ids[path], tuple(cid for _, cid in sorted(found)), len(sections[path]))
        for path, found in sorted(chunks.items())
    ]
