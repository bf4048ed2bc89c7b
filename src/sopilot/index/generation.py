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
Chroma's default embedding function): the marker here, the ingest lease (``lease.py``), and with each generation
its ``Delta`` (the chunk ids that ingest wrote or deleted, and the generation it applies to) so a replica one or
a few generations behind updates a copy of its lexical index instead of rebuilding it (``ingest/replica.py``).
"""

from __future__ import annotations

import hashlib
import json
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
OPEN_ID = "ingest-open"  # written when a shared ingest starts, deleted when it publishes: left over = it crashed
DELTA_PREFIX = "delta-"
KEEP_DELTAS = 8  # the newest deltas kept in the side collection: a replica further behind rebuilds
MAX_DELTA_IDS = 20_000  # a larger change is published as "rebuild" (a copy and 20,000 reads cost about as much)
# Every side record's vector (one record per call): the side collection is read by id, never searched.
SIDE_VECTOR: list[Sequence[float]] = [[1.0]]


@dataclass(frozen=True, slots=True)
class Generation:
    """One generation of the index: ``value`` changes with every ingest that changed it ("" before the
    first); ``probe`` is a chunk that ingest wrote; ``kb_version`` the KB version it synced to."""

    value: str = ""
    probe: str = ""
    kb_version: str = ""


@dataclass(frozen=True, slots=True)
class Delta:
    """What the ingest that made a generation changed: every chunk id it wrote or deleted in the store, and the
    generation it started from. ``ids`` is None when the change is unknown or too large (rebuild instead)."""

    previous: str
    ids: tuple[str, ...] | None


class GenerationMarker(Protocol):
    def read(self, *, fresh: bool = False) -> Generation:
        """The current generation; ``fresh`` skips any poll interval (after this process's own ingest)."""
        ...

    def bump(self, *, probe: str = "", kb_version: str = "", delta: Delta | None = None) -> Generation:
        """Write a new generation (with a Chroma server, after its ``delta`` when given) and return it."""
        ...


class FileMarker:
    """The marker file in the index folder (the embedded store's processes share that folder)."""

    def __init__(self, settings: Settings) -> None:
        self._dir = settings.index_dir

    def read(self, *, fresh: bool = False) -> Generation:
        return Generation(*read_marker(self._dir))

    def bump(self, *, probe: str = "", kb_version: str = "", delta: Delta | None = None) -> Generation:
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

    def bump(self, *, probe: str = "", kb_version: str = "", delta: Delta | None = None) -> Generation:
        generation = Generation(uuid.uuid4().hex, probe, kb_version)
        metadata = {"value": generation.value, "probe": probe, "kb": kb_version}
        with self._lock:
            if delta is not None:
                self._write_delta(generation.value, delta)
            self._side().upsert(ids=[MARKER_ID], embeddings=SIDE_VECTOR, metadatas=[metadata])  # type: ignore[list-item]
            self._cached, self._read_at = generation, time.monotonic()
        return generation

    def _write_delta(self, value: str, delta: Delta) -> None:
        ids = None if delta.ids is None or len(delta.ids) > MAX_DELTA_IDS else list(delta.ids)
        document = json.dumps({"previous": delta.previous, "ids": ids})
        metadata = {"kind": "delta", "previous": delta.previous, "at": time.time()}
        side = self._side()
        side.upsert(ids=[DELTA_PREFIX + value], embeddings=SIDE_VECTOR, documents=[document], metadatas=[metadata])  # type: ignore[list-item]
        held = side.get(where={"kind": "delta"}, include=["metadatas"])
        rows = zip(held["ids"], held["metadatas"] or [], strict=True)
        previous = {rid: str((meta or {}).get("previous", "")) for rid, meta in rows}
        keep = chain_of_deltas(previous, value)
        stale = [rid for rid in previous if rid not in keep]
        if stale:
            side.delete(ids=stale)

    def delta(self, value: str) -> Delta | None:
        """The delta that made generation ``value``, or None when it was not published or no longer kept."""
        got = self._side().get(ids=[DELTA_PREFIX + value], include=["documents"])
        documents = got["documents"] or []
        if not documents or not documents[0]:
            return None
        data = json.loads(documents[0])
        ids = data.get("ids")
        return Delta(str(data.get("previous", "")), None if ids is None else tuple(ids))

    def open_ingest(self, previous: str) -> bool:
        """Note that an ingest starts writing the store at generation ``previous``. Returns False when an
        earlier ingest from that same generation wrote without publishing (it crashed): its writes are not in
        any delta, so the next generation's delta must say "rebuild"."""
        side = self._side()
        got = side.get(ids=[OPEN_ID], include=["metadatas"])
        metas = got["metadatas"] or []
        clean = not metas or (metas[0] or {}).get("previous") != previous
        side.upsert(ids=[OPEN_ID], embeddings=SIDE_VECTOR, metadatas=[{"previous": previous}])  # type: ignore[list-item]
        return clean

    def close_ingest(self) -> None:
        """The ingest published its generation (or wrote nothing): no unpublished writes are left."""
        self._side().delete(ids=[OPEN_ID])


def chain_of_deltas(previous: dict[str, str], newest: str) -> set[str]:
    """The delta records to keep: ``newest``'s and those it leads back to, ``KEEP_DELTAS`` in all, found by
    following each delta's ``previous`` (``previous`` maps a record id to the generation it started from).
    What a replica can use is this chain; replicas' clocks never decide it, so a writer whose clock is behind
    cannot prune the delta it just published."""
    keep: set[str] = set()
    value = newest
    while value and len(keep) < KEEP_DELTAS:
        record = DELTA_PREFIX + value
        if record not in previous or record in keep:
            break
        keep.add(record)
        value = previous[record]
    return keep


def marker_for(settings: Settings) -> GenerationMarker:
    """The store's marker with a Chroma server (``SOPILOT_CHROMA_URL``), else the index folder's file."""
    return StoreMarker(settings) if settings.chroma_url else FileMarker(settings)
