"""The generation marker: which version of the index serving processes should answer from.

Every ingest that changed the index writes a new ``Generation`` (a fresh value, a probe chunk it wrote, the KB
version it synced to); serving processes read it before each request and reopen the index when the value
changed. Where it lives follows the store:

- ``FileMarker``: the ``generation`` file of the index folder (``folder.py``), for the embedded store, whose
  readers are the processes sharing that folder. Read on every request (one small file read).
- ``StoreMarker``: one record in a side collection ``<collection>.generation`` of the Chroma server, for
  replicas on several machines sharing that server, each with its own index folder. Read from the server at
  most every ``SOPILOT_MARKER_POLL_SECONDS``, so requests do not each cost a round trip.

The side collection holds records SOPilot writes itself, each with a one-dimensional vector it supplies (never
Chroma's default embedding function): the marker here, and the ingest lease (``lease.py``).
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sopilot.core.errors import StoreUnavailableError
from sopilot.core.settings import Settings
from sopilot.index.folder import bump_generation, read_marker

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

MARKER_ID = "generation"
# Every side record's vector (one record per call): the side collection is read by id, never searched.
SIDE_VECTOR: list[Sequence[float]] = [[1.0]]


@dataclass(frozen=True, slots=True)
class Generation:
    """One generation of the index: ``value`` changes with every ingest that changed it ("" before the
    first); ``probe`` is a chunk that ingest wrote; ``kb_version`` the KB version it synced to."""

    value: str = ""
    probe: str = ""
    kb_version: str = ""


class GenerationMarker(Protocol):
    def read(self, *, fresh: bool = False) -> Generation:
        """The current generation; ``fresh`` skips any poll interval (after this process's own ingest)."""
        ...

    def bump(self, *, probe: str = "", kb_version: str = "") -> Generation:
        """Write a new generation and return it."""
        ...


class FileMarker:
    """The marker file in the index folder (the embedded store's processes share that folder)."""

    def __init__(self, settings: Settings) -> None:
        self._dir = settings.index_dir

    def read(self, *, fresh: bool = False) -> Generation:
        return Generation(*read_marker(self._dir))

    def bump(self, *, probe: str = "", kb_version: str = "") -> Generation:
        value = bump_generation(self._dir, probe=probe, kb_version=kb_version)
        return Generation(value, probe, kb_version)


def side_collection_name(collection: str) -> str:
    """``<collection>.generation``, shortened with a digest when that exceeds Chroma's 63 characters."""
    name = f"{collection}.generation"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(collection.encode()).hexdigest()[:8]
    return f"{collection[:43]}-{digest}.generation"


def side_collection(client: ClientAPI, settings: Settings) -> Collection:
    """The side collection of the settings' collection on the Chroma server (created when missing)."""
    return client.get_or_create_collection(side_collection_name(settings.collection), embedding_function=None)


class StoreMarker:
    """The marker as a record of the Chroma server's side collection, polled at most every
    ``poll_seconds`` (a ``fresh`` read always asks the server)."""

    def __init__(self, settings: Settings, client: ClientAPI | None = None) -> None:
        self._settings = settings
        self._client = client
        self._collection: Collection | None = None
        self._poll = settings.marker_poll_seconds
        self._cached: Generation | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def _side(self) -> Collection:
        if self._collection is None:
            if self._client is None:
                from sopilot.index.store import make_client

                self._client = make_client(self._settings)
            self._collection = side_collection(self._client, self._settings)
        return self._collection

    def read(self, *, fresh: bool = False) -> Generation:
        now = time.monotonic()
        cached = self._cached
        if not fresh and cached is not None and now - self._read_at < self._poll:
            return cached
        with self._lock:
            if not fresh and self._cached is not None and time.monotonic() - self._read_at < self._poll:
                return self._cached
            try:
                got = self._side().get(ids=[MARKER_ID], include=["metadatas"])
            except StoreUnavailableError:
                raise
            except Exception as exc:  # chromadb raises plain exceptions when the server is away
                raise StoreUnavailableError(
                    f"cannot read the index generation from the Chroma server at {self._settings.chroma_url}: "
                    f"{exc}. Check the server is running and reachable from this replica"
                ) from exc
            metas = got["metadatas"] or []
            meta = (metas[0] if metas else None) or {}
            generation = Generation(str(meta.get("value", "")), str(meta.get("probe", "")), str(meta.get("kb", "")))
            self._cached, self._read_at = generation, time.monotonic()
            return generation

    def bump(self, *, probe: str = "", kb_version: str = "") -> Generation:
        generation = Generation(uuid.uuid4().hex, probe, kb_version)
        metadata = {"value": generation.value, "probe": probe, "kb": kb_version}
        with self._lock:
            self._side().upsert(ids=[MARKER_ID], embeddings=SIDE_VECTOR, metadatas=[metadata])  # type: ignore[list-item]
            self._cached, self._read_at = generation, time.monotonic()
        return generation


def marker_for(settings: Settings) -> GenerationMarker:
    """The store's marker with a Chroma server (``SOPILOT_CHROMA_URL``), else the index folder's file."""
    return StoreMarker(settings) if settings.chroma_url else FileMarker(settings)
