"""Wiring for one ingest run: open the index the settings name and sync the KB into it."""

from __future__ import annotations

from sopilot.core.errors import SopilotError
from sopilot.core.settings import Settings
from sopilot.index.embedder import Embedder
from sopilot.index.folder import bump_generation, index_write_error, ingest_lock, open_lexical
from sopilot.index.lexical import to_lexical
from sopilot.index.store import VectorStore, make_client
from sopilot.ingest.manifest import Manifest
from sopilot.ingest.sync import IngestReport, Syncer

MANIFEST_FILE = "manifest.sqlite3"


def run_ingest(settings: Settings, embedder: Embedder, *, rebuild: bool = False, progress: bool = True) -> IngestReport:
    """Sync ``settings.kb_dir`` into the index; ``rebuild`` drops the index first (e.g. a new embedder).

    Holds the index folder's ingest lock (a second ingest at once raises ``IngestRunningError``) and, when
    the index changed, writes a new generation marker so serving processes reopen it. Raises IndexWriteError
    when the index folder cannot be written (disk full, read-only): the sync stops where it was, what the index
    held stays searchable, and the next run after the fix finishes the job."""
    try:
        with ingest_lock(settings.index_dir):
            report = _sync(settings, embedder, rebuild=rebuild, progress=progress)
            if rebuild or report.added or report.updated or report.removed:
                bump_generation(settings.index_dir, probe=report.probe)
            return report
    except SopilotError:
        raise
    except Exception as exc:
        error = index_write_error(exc, settings.index_dir)
        if error is None:
            raise
        raise error from exc


def _sync(settings: Settings, embedder: Embedder, *, rebuild: bool, progress: bool) -> IngestReport:
    client = make_client(settings)
    manifest = Manifest(settings.index_dir / MANIFEST_FILE)
    lexical = open_lexical(settings)
    try:
        if rebuild:
            VectorStore.drop(client, settings.collection)
            manifest.clear()
            lexical.clear()
        store = VectorStore.open(client, settings.collection, embedder.name, embedder.dimension)
        syncer = Syncer(
            settings.kb_dir,
            store,
            manifest,
            embedder,
            max_file_bytes=settings.max_file_bytes,
            chunk_max_tokens=settings.chunk_max_tokens,
            ignore=tuple(settings.ignore),
            embed_group=settings.embed_group,
            lexical=lexical,
            progress=progress,
        )
        return syncer.run()
    finally:
        manifest.close()
        lexical.close()


def current_kb_version(settings: Settings) -> str:
    """The KB version the index was last synced to (empty before the first ingest)."""
    from sopilot.ingest.sync import kb_version

    path = settings.index_dir / MANIFEST_FILE
    if not path.is_file():
        return ""
    manifest = Manifest(path)
    try:
        return kb_version(manifest.files().values())
    finally:
        manifest.close()


def rebuild_lexical(settings: Settings, embedder_name: str, dimension: int) -> int:
    """Rebuild the lexical index from what the store holds; returns the number of chunks."""
    with ingest_lock(settings.index_dir):
        count = _rebuild_lexical(settings, embedder_name, dimension)
        bump_generation(settings.index_dir)
        return count


def _rebuild_lexical(settings: Settings, embedder_name: str, dimension: int) -> int:
    store = VectorStore.open(make_client(settings), settings.collection, embedder_name, dimension, create=False)
    lexical = open_lexical(settings)
    try:
        lexical.clear()
        batch = []
        for chunk in store.all_chunks():
            batch.append(to_lexical(chunk.id, chunk.text, chunk.metadata))
            if len(batch) >= 2000:
                lexical.upsert(batch)
                batch = []
        lexical.upsert(batch)
        return lexical.count()
    finally:
        lexical.close()
