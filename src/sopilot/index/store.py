"""The Chroma vector store: embedded ``PersistentClient`` by default, a Chroma server when a URL is set.

SOPilot always passes its own embeddings. The collection records which embedder made them and refuses
another, so vectors of two models are never mixed.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np

from sopilot.core.errors import EmbedderMismatchError, IndexNotFoundError, StoreUnavailableError
from sopilot.core.settings import Settings
from sopilot.index.folder import index_write_error

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

SCHEMA = "sopilot-chunk-v1"
_PAGE = 5000  # Chroma caps one call's batch size; page reads and writes


@dataclass(frozen=True, slots=True)
class StoredChunk:
    id: str
    text: str
    metadata: dict[str, Any]


def make_client(settings: Settings, *, fresh: bool = False) -> ClientAPI:
    """The Chroma client the settings name. ``fresh``: a new embedded client even when this process opened one
    on the folder before. An embedded client keeps its vector index in memory and never sees what another
    process wrote, so a serving process opens a fresh one after another process's ingest (the one it had keeps
    serving the requests that hold it: chromadb caches one system per folder, and only that entry is dropped)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        try:
            return chromadb.HttpClient(
                host=url.hostname or "localhost",
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
        except Exception as exc:  # chromadb raises plain exceptions for connection failures
            raise StoreUnavailableError(
                f"cannot reach the Chroma server at {settings.chroma_url}: {exc}. "
                "Start it (`chroma run --path DIR`) or unset SOPILOT_CHROMA_URL to use the embedded store"
            ) from exc
    path = settings.index_dir / "chroma"
    try:
        path.mkdir(parents=True, exist_ok=True)
        if os.statvfs(path).f_flag & os.ST_RDONLY or not os.access(path, os.W_OK):
            # Chroma's embedded store writes as it opens, even to search, and fails with a puzzling error.
            raise OSError(errno.EROFS, f"Chroma's embedded store in {path} must be writable, even to search")
    except OSError as exc:
        raise index_write_error(exc, settings.index_dir) or exc from exc
    if fresh:
        _forget_system(str(path))
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def _forget_system(path: str) -> None:
    from chromadb.api.shared_system_client import SharedSystemClient

    with SharedSystemClient._refcount_lock:
        SharedSystemClient._identifier_to_system.pop(path, None)
        SharedSystemClient._identifier_to_refcount.pop(path, None)


def server_of(client: ClientAPI) -> str | None:
    """The Chroma server a client talks to (``host:port``), or None for the embedded store."""
    settings = client.get_settings()
    if settings.chroma_api_impl.endswith("fastapi.FastAPI"):
        return f"{settings.chroma_server_host}:{settings.chroma_server_http_port}"
    return None


def _mismatch_fix(collection: str, built_with: str, wanted: str, server: str | None) -> str:
    """How to resolve an embedder mismatch: a rebuild in place for an index folder's own store; with a Chroma
    server (which refuses ``--rebuild``: every replica serves that collection) a new collection beside it."""
    if server is None:
        return (
            "Re-index with `sopilot ingest --rebuild` (or use another --index folder), "
            f"or set SOPILOT_EMBEDDER={built_with}"
        )
    return (
        f"Every replica of the Chroma server at {server} must use the embedder that built {collection!r}: set "
        f"SOPILOT_EMBEDDER={built_with}. To move to {wanted!r}, build a new collection beside it "
        f"(SOPILOT_COLLECTION=NEW SOPILOT_EMBEDDER={wanted} sopilot ingest --index NEW_DIR) and switch the "
        "replicas to it: docs/deploy.md, 'Changing the embedder or rebuilding' (`--rebuild` is refused with a "
        "Chroma server)"
    )


class VectorStore:
    """One Chroma collection of SOP chunks, tied to one embedder."""

    def __init__(self, collection: Collection, embedder_name: str, dimension: int) -> None:
        self._collection = collection
        self.embedder_name = embedder_name
        self.dimension = dimension

    @classmethod
    def open(
        cls, client: ClientAPI, name: str, embedder_name: str, dimension: int, *, create: bool = True
    ) -> VectorStore:
        """Open (or create) the collection and refuse it if another embedder built it."""
        metadata = {
            "sopilot_embedder": embedder_name,
            "sopilot_dimension": dimension,
            "sopilot_schema": SCHEMA,
        }
        if create:
            collection = client.get_or_create_collection(
                name, metadata=metadata, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
            )
        else:
            try:
                collection = client.get_collection(name, embedding_function=None)
            except Exception as exc:
                raise IndexNotFoundError(
                    f"no index named {name!r} yet: run `sopilot ingest` first to build it"
                ) from exc
        # get_or_create ignores new metadata on an existing collection: read back what it holds.
        stored = collection.metadata or {}
        have = (stored.get("sopilot_embedder"), stored.get("sopilot_dimension"))
        if have != (embedder_name, dimension):
            raise EmbedderMismatchError(
                f"the index {name!r} was built with embedder {have[0]!r} ({have[1]} dimensions), but the "
                f"settings ask for {embedder_name!r} ({dimension} dimensions). "
                + _mismatch_fix(name, str(have[0]), embedder_name, server_of(client))
            )
        return cls(collection, embedder_name, dimension)

    @staticmethod
    def drop(client: ClientAPI, name: str) -> None:
        if any(c.name == name for c in client.list_collections()):
            client.delete_collection(name)

    def count(self) -> int:
        return self._collection.count()

    def ids(self) -> set[str]:
        """Every chunk id, in one call: pages by offset rescan the rows before each page (quadratic), and a
        listing of ids alone is small (100,000 ids: 0.18 s in one call, 0.53 s in offset pages of 5,000)."""
        return set(self._collection.get(include=[])["ids"])

    def get(self, ids: Sequence[str]) -> dict[str, StoredChunk]:
        out: dict[str, StoredChunk] = {}
        for part in _pages(list(ids)):
            got = self._collection.get(ids=part, include=["documents", "metadatas"])
            for cid, doc, meta in zip(got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True):
                out[cid] = StoredChunk(cid, doc or "", dict(meta or {}))
        return out

    def by_path(self, path: str) -> list[StoredChunk]:
        """Every chunk of one SOP file, in file order."""
        got = self._collection.get(where={"path": path}, include=["documents", "metadatas"])
        chunks = [
            StoredChunk(cid, doc or "", dict(meta or {}))
            for cid, doc, meta in zip(got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True)
        ]
        return sorted(chunks, key=lambda c: int(c.metadata.get("start_line", 0)))

    def all_chunks(self) -> Iterator[StoredChunk]:
        offset = 0
        while True:
            page = self._collection.get(include=["documents", "metadatas"], limit=_PAGE, offset=offset)
            for cid, doc, meta in zip(page["ids"], page["documents"] or [], page["metadatas"] or [], strict=True):
                yield StoredChunk(cid, doc or "", dict(meta or {}))
            if len(page["ids"]) < _PAGE:
                return
            offset += _PAGE

    def all_vectors(self) -> tuple[list[str], list[dict[str, Any]], np.ndarray]:
        """Every chunk's id, metadata and stored vector (what training on the index's own vectors reads)."""
        ids: list[str] = []
        metas: list[dict[str, Any]] = []
        parts: list[np.ndarray] = []
        offset = 0
        while True:
            page = self._collection.get(include=["metadatas", "embeddings"], limit=_PAGE, offset=offset)
            ids += page["ids"]
            metas += [dict(m or {}) for m in page["metadatas"] or []]
            if page["ids"]:
                parts.append(np.asarray(page["embeddings"], dtype=np.float32))
            if len(page["ids"]) < _PAGE:
                break
            offset += _PAGE
        vectors = np.concatenate(parts) if parts else np.zeros((0, self.dimension), dtype=np.float32)
        return ids, metas, vectors

    def iter_vectors(self) -> Iterator[tuple[StoredChunk, np.ndarray]]:
        """Every chunk with the vector it is stored under (for the author tools: no embedding again)."""
        offset = 0
        while True:
            page = self._collection.get(include=["documents", "metadatas", "embeddings"], limit=_PAGE, offset=offset)
            vectors = page["embeddings"] if page["embeddings"] is not None else []
            rows = zip(page["ids"], page["documents"] or [], page["metadatas"] or [], vectors, strict=True)
            for cid, doc, meta, vector in rows:
                yield StoredChunk(cid, doc or "", dict(meta or {})), np.asarray(vector, dtype=np.float32)
            if len(page["ids"]) < _PAGE:
                return
            offset += _PAGE

    def upsert(
        self,
        ids: Sequence[str],
        embeddings: np.ndarray,
        texts: Sequence[str],
        metadatas: Sequence[dict[str, Any]],
    ) -> None:
        if embeddings.shape[1:] != (self.dimension,):
            raise EmbedderMismatchError(
                f"vectors of shape {embeddings.shape} do not fit this index of {self.dimension} dimensions"
            )
        for start in range(0, len(ids), _PAGE):
            end = start + _PAGE
            self._collection.upsert(
                ids=list(ids[start:end]),
                embeddings=embeddings[start:end],
                documents=list(texts[start:end]),
                metadatas=list(metadatas[start:end]),  # type: ignore[arg-type]
            )

    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(ids), _PAGE):
            end = start + _PAGE
            self._collection.update(ids=list(ids[start:end]), metadatas=list(metadatas[start:end]))  # type: ignore[arg-type]

    def delete(self, ids: Sequence[str]) -> None:
        for part in _pages(list(ids)):
            self._collection.delete(ids=part)

    def pinned(self, ids: set[str]) -> VectorStore:
        """This store seen as one generation's chunks (``PinnedStore``)."""
        return PinnedStore(self, ids)

    def holds(self, chunk_id: str) -> bool:
        """Whether this client's view of the store has the chunk and finds it by its own vector: a process
        that opened the store while another process was writing it may see the rows and miss the vector."""
        got = self._collection.get(ids=[chunk_id], include=["embeddings"])
        vectors = got.get("embeddings")
        if not got["ids"] or vectors is None or len(vectors) == 0:
            return False
        return any(cid == chunk_id and dist < 1e-3 for cid, dist in self.nearest(np.asarray(vectors[0]), 5))

    def nearest(self, embedding: np.ndarray, n: int, where: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        """The ``n`` nearest chunk ids with their cosine distance: no documents or metadata read."""
        if n <= 0:
            return []
        result = self._collection.query(
            query_embeddings=[embedding], n_results=n, where=where or None, include=["distances"]
        )
        ids = result["ids"][0]
        dists = (result["distances"] or [[]])[0]
        return [(cid, float(dist)) for cid, dist in zip(ids, dists, strict=True)]


class PinnedStore(VectorStore):
    """A store seen as one generation: only the chunk ids ``ids`` (what that generation's lexical index holds).

    A Chroma server is one live store: while an ingest writes it, every replica's queries see the new chunks
    beside the old ones, and a passage could merge a section's old and new chunks. An embedded store's serving
    processes keep their old vector index until they reopen, which pins them the same way. Nearest-neighbour
    queries ask for twice ``n`` and keep the pinned ids: fewer than ``n`` come back only while an ingest has
    written more than ``n`` new chunks among the nearest."""

    def __init__(self, store: VectorStore, ids: set[str]) -> None:
        super().__init__(store._collection, store.embedder_name, store.dimension)
        self._pinned = frozenset(ids)

    def count(self) -> int:
        return len(self._pinned)

    def ids(self) -> set[str]:
        return set(self._pinned)

    def get(self, ids: Sequence[str]) -> dict[str, StoredChunk]:
        return super().get([cid for cid in ids if cid in self._pinned])

    def by_path(self, path: str) -> list[StoredChunk]:
        return [chunk for chunk in super().by_path(path) if chunk.id in self._pinned]

    def nearest(self, embedding: np.ndarray, n: int, where: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        found = super().nearest(embedding, 2 * n, where)
        return [(cid, dist) for cid, dist in found if cid in self._pinned][:n]


class RecordingStore(VectorStore):
    """A store that notes every chunk id it writes or deletes (``touched``): what one ingest changed, published
    with its generation so other replicas update their lexical index from those chunks alone."""

    def __init__(self, store: VectorStore) -> None:
        super().__init__(store._collection, store.embedder_name, store.dimension)
        self.touched: set[str] = set()

    def upsert(
        self,
        ids: Sequence[str],
        embeddings: np.ndarray,
        texts: Sequence[str],
        metadatas: Sequence[dict[str, Any]],
    ) -> None:
        self.touched.update(ids)
        super().upsert(ids, embeddings, texts, metadatas)

    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        self.touched.update(ids)
        super().update_metadata(ids, metadatas)

    def delete(self, ids: Sequence[str]) -> None:
        self.touched.update(ids)
        super().delete(ids)


def _pages(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _PAGE):
        yield items[start : start + _PAGE]
