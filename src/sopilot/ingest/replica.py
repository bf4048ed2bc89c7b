"""The lexical index a replica of a shared Chroma server serves a generation from.

The ingest writes the lexical index of the replica that ran it only. Every other replica rebuilds one from
the store for each new generation, into a file of its own (``replica-lexical/<collection>-<generation>``,
written under a temporary name and moved into place whole), so requests still holding the previous engine
keep reading the previous file; files older than that one are deleted.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

from sopilot.core.settings import Settings
from sopilot.index.folder import lexical_path, open_lexical, replica_lexical_path
from sopilot.index.store import VectorStore, make_client
from sopilot.ingest.run import fill_lexical, in_step_generation

log = logging.getLogger(__name__)
KEEP = 2  # this generation's file and the one before it, which requests in flight may still read
ABANDONED_SECONDS = 3600  # a build file untouched this long was left by a worker that died building it


def serving_lexical(settings: Settings, embedder_name: str, dimension: int, generation: str) -> Path:
    """The lexical index in step with ``generation``: this folder's own when its last ingest made that
    generation, else a file rebuilt from the store (built now unless another worker already did)."""
    if generation and in_step_generation(settings) == generation and lexical_path(settings).is_file():
        return lexical_path(settings)
    path = replica_lexical_path(settings, generation or "first")
    if path.is_file():
        return path
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(f".{path.name}.{os.getpid()}")
    store = VectorStore.open(make_client(settings), settings.collection, embedder_name, dimension, create=False)
    lexical = open_lexical(settings, building)
    try:
        count = fill_lexical(lexical, store)
    finally:
        lexical.close()  # the last connection checkpoints the write-ahead log into the file
    os.replace(building, path)
    log.info(
        "lexical index of generation %s rebuilt from the Chroma server: %d chunks in %.1f s",
        generation or "(first)",
        count,
        time.perf_counter() - started,
    )
    _delete_older(settings, path)
    return path


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
