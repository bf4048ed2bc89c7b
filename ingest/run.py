"""Wiring for one ingest run: open the index the settings name and sync the KB into it."""

from __future__ import annotations

from ingest.manifest import Manifest
from ingest.sync import IngestReport, Syncer
from retrieval.embedder import Embedder
from retrieval.store import VectorStore, make_client
from sopilot.settings import Settings

MANIFEST_FILE = "manifest.sqlite3"


def run_ingest(
    settings: Settings, embedder: Embedder, *, rebuild: bool = False, progress: bool = True
) -> IngestReport:
    """Sync ``settings.kb_dir`` into the index; ``rebuild`` drops the index first (e.g. a new embedder)."""
    client = make_client(settings)
    manifest = Manifest(settings.index_dir / MANIFEST_FILE)
    try:
        if rebuild:
            VectorStore.drop(client, settings.collection)
            manifest.clear()
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
            progress=progress,
        )
        return syncer.run()
    finally:
        manifest.close()
