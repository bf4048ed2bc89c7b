"""The manifest: what each file looked like when last indexed, so unchanged files are not parsed again.

SQLite in the index folder. It is a cache of the store, never the truth: a missing or stale manifest costs
parsing time, not correctness, because the sync always reconciles chunk ids with the store.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = "1"


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
