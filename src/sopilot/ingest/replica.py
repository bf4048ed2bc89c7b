"""The lexical index a replica of a shared Chroma server serves a generation from.

The ingest writes the lexical index of the replica that ran it only. Every other replica makes one for each
new generation, into a file of its own (``replica-lexical/<collection>-<generation>``, written under a
temporary name and moved into place whole), so requests still holding the previous engine keep reading the
previous file; files older than that one are deleted.

When the replica holds the lexical index of a generation at most ``KEEP_DELTAS`` before the new one and every
generation between has its published delta (``index/generation.py``), it copies that file (SQLite's backup,
consistent while others read it) and applies the deltas: each chunk id they name is read from the store and
written, or deleted when the store no longer has it. Anything else (too far behind, a delta missing or marked
"rebuild", the first generation) rebuilds the whole file from the store. Both give the same rows.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from pathlib import Path

from sopilot.core.settings import Settings
from sopilot.index.folder import lexical_path, open_lexical, replica_lexical_path
from sopilot.index.generation import KEEP_DELTAS, StoreMarker
from sopilot.index.lexical import LexicalIndex, to_lexical
from sopilot.index.store import VectorStore, make_client
from sopilot.ingest.run import fill_lexical, in_step_generation

log = logging.getLogger(__name__)
KEEP = 2  # this generation's file and the one before it, which requests in flight may still read
ABANDONED_SECONDS = 3600  # a build file untouched this long was left by a worker that died building it


def serving_lexical(settings: Settings, embedder_name: str, dimension: int, generation: str) -> Path:
    """The lexical index in step with ``generation``: this folder's own when its last ingest made that
    generation, else a file made from the store (now, unless another worker already did)."""
    if generation and in_step_generation(settings) == generation and lexical_path(settings).is_file():
        return lexical_path(settings)
    path = replica_lexical_path(settings, generation or "first")
    if path.is_file():
        return path
    client = make_client(settings)
    store = VectorStore.open(client, settings.collection, embedder_name, dimension, create=False)
    build_lexical(settings, store, StoreMarker(settings, client), generation, path)
    return path


def build_lexical(settings: Settings, store: VectorStore, marker: StoreMarker, generation: str, path: Path) -> str:
    """Write ``generation``'s lexical index to ``path`` from deltas when it can, else in full; returns which
    ("delta" or "rebuild")."""
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(f".{path.name}.{os.getpid()}")
    base, base_generation, touched = _delta_base(settings, marker, generation)
    how = "rebuild"
    if base is not None and _copy_sqlite(base, building):
        how = "delta"
        if base == lexical_path(settings) and in_step_generation(settings) != base_generation:
            how = "rebuild"  # this folder's own ingest began writing its file while it was copied
    lexical = open_lexical(settings, building)
    try:
        count = apply_delta(lexical, store, touched) if how == "delta" else fill_lexical(lexical, store)
    finally:
        lexical.close()  # the last connection checkpoints the write-ahead log into the file
    os.replace(building, path)
    log.info(
        "lexical index of generation %s %s from the Chroma server: %d chunks in %.1f s%s",
        generation or "(first)",
        "updated" if how == "delta" else "rebuilt",
        count,
        time.perf_counter() - started,
        f" ({len(touched)} chunks changed)" if how == "delta" else "",
    )
    _delete_older(settings, path)
    return how


def apply_delta(lexical: LexicalIndex, store: VectorStore, touched: set[str]) -> int:
    """Bring ``lexical`` (a copy of an earlier generation's) in step with ``store`` for the ``touched`` ids:
    each is written as the store holds it, or deleted when the store no longer has it. Returns the count."""
    stored = store.get(sorted(touched))
    gone = sorted(touched - stored.keys())
    if gone:
        lexical.delete(gone)
    lexical.upsert(to_lexical(c.id, c.text, c.metadata) for c in stored.values())
    return lexical.count()


def _delta_base(settings: Settings, marker: StoreMarker, generation: str) -> tuple[Path | None, str, set[str]]:
    """The newest lexical file this replica has of a generation the published deltas lead from to
    ``generation``, that generation, and the chunk ids the deltas touch; (None, "", ...) when there is none."""
    touched: set[str] = set()
    value = generation
    for _ in range(KEEP_DELTAS):
        delta = marker.delta(value) if value else None
        if delta is None or delta.ids is None or not delta.previous:
            return None, "", touched
        touched.update(delta.ids)
        value = delta.previous
        own = lexical_path(settings)
        if in_step_generation(settings) == value and own.is_file():
            return own, value, touched
        kept = replica_lexical_path(settings, value)
        if kept.is_file():
            return kept, value, touched
    return None, "", touched


def _copy_sqlite(source: Path, target: Path) -> bool:
    """A consistent copy of a SQLite file others may be reading (the backup API); False when it fails (e.g.
    the file was deleted meanwhile), and the caller rebuilds."""
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        log.warning("cannot copy the lexical index %s (%s): rebuilding it from the store", source, exc)
        target.unlink(missing_ok=True)
        return False
    return True


def _delete_older(settings: Settings, current: Path) -> None:
    name = re.compile(rf"{re.escape(settings.collection)}-([0-9a-f]{{32}}|first)\.sqlite3")
    built = sorted(
        (p for p in current.parent.iterdir() if name.fullmatch(p.name)),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in [p for p in built if p != current][KEEP - 1 :]:
        for part in (old, old.with_name(old.name + "-wal"), old.with_name(old.name + "-shm")):
            part.unlink(missing_ok=True)
    for left in current.parent.glob(f".{settings.collection}-*"):  # builds a killed worker left behind
        if time.time() - left.stat().st_mtime > ABANDONED_SECONDS:
            left.unlink(missing_ok=True)
