"""Wiring for one ingest run: open the index the settings name and sync the KB into it.

With a Chroma server (``SOPILOT_CHROMA_URL``) several replicas share the store but each has its own index
folder: the run then also holds the server's ingest lease (``index/lease.py``), publishes the generation in
the server (``index/generation.py``) with its delta (the chunk ids it wrote or deleted), and first brings this
folder's manifest and lexical index in step with the store when another replica's ingest came after this
folder's last one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sopilot.core.errors import ConfigError, SopilotError
from sopilot.core.settings import Settings
from sopilot.index.embedder import Embedder
from sopilot.index.folder import index_write_error, ingest_lock, open_lexical
from sopilot.index.generation import Delta, Generation, GenerationMarker, StoreMarker, marker_for
from sopilot.index.lease import StoreLease, store_lease
from sopilot.index.lexical import LexicalIndex, to_lexical
from sopilot.index.store import RecordingStore, VectorStore, make_client
from sopilot.ingest.manifest import IN_STEP_KEY, Manifest, records_from_store
from sopilot.ingest.sync import IngestReport, Syncer

log = logging.getLogger(__name__)
MANIFEST_FILE = "manifest.sqlite3"


def run_ingest(settings: Settings, embedder: Embedder, *, rebuild: bool = False, progress: bool = True) -> IngestReport:
    """Sync ``settings.kb_dir`` into the index; ``rebuild`` drops the index first (e.g. a new embedder).

    Holds the index folder's ingest lock (and, with a Chroma server, its ingest lease): a second ingest at once
    raises ``IngestRunningError``. When the index changed, writes a new generation marker so serving processes
    reopen it. Raises IndexWriteError when the index folder cannot be written (disk full, read-only): the sync
    stops where it was, what the index held stays searchable, and the next run after the fix finishes the job.
    ``rebuild`` with a Chroma server raises ConfigError: dropping the shared collection would leave every
    replica answering errors until it is embedded again."""
    if rebuild and settings.chroma_url:
        raise ConfigError(
            f"a rebuild would drop the collection {settings.collection!r} that every replica of the Chroma server "
            f"at {settings.chroma_url} serves from, and they would answer errors until it is embedded again. "
            "Build a new collection beside it instead (SOPILOT_COLLECTION=NEW sopilot ingest --index NEW_DIR), then "
            "switch the replicas to it: docs/deploy.md, 'Changing the embedder or rebuilding'"
        )
    try:
        with ingest_guard(settings) as lease:
            return _sync(settings, embedder, marker_for(settings), lease, rebuild=rebuild, progress=progress)
    except SopilotError:
        raise
    except Exception as exc:
        error = index_write_error(exc, settings.index_dir)
        if error is None:
            raise
        raise error from exc


@contextmanager
def ingest_guard(settings: Settings) -> Iterator[StoreLease | None]:
    """The index folder's lock, and with a Chroma server the server's ingest lease too (yielded)."""
    with ingest_lock(settings.index_dir):
        if not settings.chroma_url:
            yield None
            return
        with store_lease(settings, make_client(settings)) as lease:
            yield lease


def _sync(
    settings: Settings,
    embedder: Embedder,
    marker: GenerationMarker,
    lease: StoreLease | None,
    *,
    rebuild: bool,
    progress: bool,
) -> IngestReport:
    client = make_client(settings)
    manifest = Manifest(settings.index_dir / MANIFEST_FILE)
    lexical = open_lexical(settings)
    shared = settings.chroma_url is not None  # then never ``rebuild``: ``run_ingest`` refused it
    published_clean = True
    try:
        if shared and isinstance(marker, StoreMarker):  # before any write
            published_clean = marker.open_ingest(marker.read(fresh=True).value)
        if rebuild:
            VectorStore.drop(client, settings.collection)
            manifest.clear()
            lexical.clear()
        store = VectorStore.open(client, settings.collection, embedder.name, embedder.dimension)
        recorder: RecordingStore | None = None
        if shared:
            generation = marker.read(fresh=True)
            _catch_up(manifest, lexical, store, generation)
            manifest.set(IN_STEP_KEY, "")  # until this run finishes, the folder is in step with no generation
            recorder = RecordingStore(store)
        syncer = Syncer(
            settings.kb_dir,
            recorder or store,
            manifest,
            embedder,
            max_file_bytes=settings.max_file_bytes,
            chunk_max_tokens=settings.chunk_max_tokens,
            ignore=tuple(settings.ignore),
            embed_group=settings.embed_group,
            lexical=lexical,
            progress=progress,
        )
        report = syncer.run()
        if rebuild or report.added or report.updated or report.removed or not published_clean:
            if lease is not None:
                lease.check()
            delta = None
            if recorder is not None:
                known = published_clean and generation.value
                delta = Delta(generation.value, tuple(sorted(recorder.touched)) if known else None)
            generation = marker.bump(probe=report.probe, kb_version=report.kb_version, delta=delta)
        if shared:
            if isinstance(marker, StoreMarker):
                marker.close_ingest()
            manifest.set(IN_STEP_KEY, generation.value)
        return report
    finally:
        manifest.close()
        lexical.close()


def _catch_up(manifest: Manifest, lexical: LexicalIndex, store: VectorStore, generation: Generation) -> None:
    """Another replica ingested since this folder's last ingest: read its manifest and lexical index back from
    the store, so the sync plans against what the store holds (it then parses every file once more)."""
    if (manifest.get(IN_STEP_KEY) or "") == generation.value:
        return
    log.info("this index folder is behind the Chroma server's generation %s: reading it back", generation.value)
    manifest.replace_files(records_from_store(store))
    manifest.set("state", "dirty")
    refresh_lexical(lexical, store)


def in_step_generation(settings: Settings) -> str:
    """The shared store's generation this folder's manifest and lexical index reflect ("" when none)."""
    path = settings.index_dir / MANIFEST_FILE
    if not path.is_file():
        return ""
    manifest = Manifest(path)
    try:
        return manifest.get(IN_STEP_KEY) or ""
    finally:
        manifest.close()


def current_kb_version(settings: Settings) -> str:
    """The KB version the index was last synced to (empty before the first ingest): with a Chroma server the
    one its generation marker names (another replica may have synced it), else this folder's manifest's."""
    from sopilot.ingest.sync import kb_version

    if settings.chroma_url:
        return marker_for(settings).read(fresh=True).kb_version
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
    with ingest_guard(settings):
        count = _rebuild_lexical(settings, embedder_name, dimension)
        marker_for(settings).bump(kb_version=current_kb_version(settings))
        return count


def _rebuild_lexical(settings: Settings, embedder_name: str, dimension: int) -> int:
    store = VectorStore.open(make_client(settings), settings.collection, embedder_name, dimension, create=False)
    lexical = open_lexical(settings)
    try:
        return fill_lexical(lexical, store)
    finally:
        lexical.close()


def fill_lexical(lexical: LexicalIndex, store: VectorStore) -> int:
    """Make ``lexical`` hold exactly what ``store`` holds; returns the number of chunks."""
    lexical.clear()
    batch = []
    for chunk in store.all_chunks():
        batch.append(to_lexical(chunk.id, chunk.text, chunk.metadata))
        if len(batch) >= 2000:
            lexical.upsert(batch)
            batch = []
    lexical.upsert(batch)
    return lexical.count()


def refresh_lexical(lexical: LexicalIndex, store: VectorStore) -> int:
    """Make ``lexical`` hold exactly what ``store`` holds without emptying it first: each chunk is replaced in
    place and the ids the store lacks are deleted last, so searches this replica serves from it meanwhile keep
    finding every chunk (at its old or new version). Returns the number of chunks."""
    had = lexical.ids()
    seen: set[str] = set()
    batch = []
    for chunk in store.all_chunks():
        seen.add(chunk.id)
        batch.append(to_lexical(chunk.id, chunk.text, chunk.metadata))
        if len(batch) >= 2000:
            lexical.upsert(batch)
            batch = []
    lexical.upsert(batch)
    if had - seen:
        lexical.delete(sorted(had - seen))
    return lexical.count()
