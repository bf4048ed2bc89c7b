"""The ingest lease in a Chroma server: one ingest at a time across replicas that share no folder.

Chroma has no compare-and-swap, but two of its writes behave like one on a single server (measured on
chromadb 1.5.9, docs/deploy.md):

- ``add`` of an id the collection already holds is ignored (no error, the first record stays), so adding the
  lease record is "take it if nobody holds it": of several replicas adding at once, all read back one holder.
- ``delete(ids=..., where={"holder": h})`` deletes the record only while ``h`` still holds it, so a replica
  that finds an expired lease removes exactly that one, never a lease another replica has just taken.

The record names its holder (host, process, index folder) and when it expires. The holder renews it from a
thread every third of ``SOPILOT_INGEST_LEASE_SECONDS``; a holder that crashed stops renewing, and its lease is
taken over once expired. Expiry is compared with the clock of the replica that reads it: replicas' clocks must
agree (NTP) to well within the lease's length.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sopilot.core.errors import IngestRunningError
from sopilot.core.settings import Settings
from sopilot.index.generation import SIDE_VECTOR, side_collection

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

log = logging.getLogger(__name__)
LEASE_ID = "ingest-lease"


class LeaseLostError(IngestRunningError):
    """This ingest's lease expired and another replica took it (this one stalled longer than the lease)."""


class StoreLease:
    """The lease record of one side collection, held by ``holder``."""

    def __init__(self, collection: Collection, holder: str, seconds: float) -> None:
        self._collection = collection
        self.holder = holder
        self._seconds = seconds
        self._stop = threading.Event()
        self._lost = False
        self._thread: threading.Thread | None = None

    def _record(self) -> dict[str, Any] | None:
        got = self._collection.get(ids=[LEASE_ID], include=["metadatas"])
        metas = got["metadatas"] or []
        return dict(metas[0] or {}) if got["ids"] and metas else None

    def acquire(self, where: str) -> None:
        """Take the lease or raise ``IngestRunningError`` naming who holds it; ``where`` names the server."""
        record: dict[str, Any] = {}
        for _ in range(3):  # again only after the lease was released or its expired record removed
            metadata = {"holder": self.holder, "expires": time.time() + self._seconds}
            self._collection.add(ids=[LEASE_ID], embeddings=SIDE_VECTOR, metadatas=[metadata])  # type: ignore[list-item]
            found = self._record()
            if found is None:  # released between our add and our read
                continue
            record = found
            if record.get("holder") == self.holder:
                self._thread = threading.Thread(target=self._renew, name="ingest-lease", daemon=True)
                self._thread.start()
                return
            if float(record.get("expires", 0)) > time.time():
                break
            log.warning("taking over the ingest lease left by %s (expired)", record.get("holder"))
            self._collection.delete(ids=[LEASE_ID], where={"holder": str(record.get("holder", ""))})
        until = datetime.fromtimestamp(float(record.get("expires", 0)), UTC).strftime("%H:%M:%S UTC")
        raise IngestRunningError(
            f"another ingest is running on the Chroma server {where} (held by {record.get('holder', '?')}, "
            f"lease renewed until {until}); wait for it to finish and run this one again (it will only do what "
            "that one left to do)"
        )

    def _renew(self) -> None:
        while not self._stop.wait(self._seconds / 3):
            try:
                record = self._record()
                if record is None or record.get("holder") != self.holder:
                    self._lost = True
                    log.error("the ingest lease was taken by %s", (record or {}).get("holder", "nobody"))
                    return
                self._collection.update(ids=[LEASE_ID], metadatas=[{"expires": time.time() + self._seconds}])
            except Exception:  # the server may be briefly away: keep trying until the lease would lapse
                log.warning("could not renew the ingest lease", exc_info=True)

    def check(self) -> None:
        """Raise ``LeaseLostError`` when another replica holds the lease now (before publishing a generation)."""
        record = self._record()
        if self._lost or record is None or record.get("holder") != self.holder:
            holder = (record or {}).get("holder", "nobody")
            raise LeaseLostError(
                f"this ingest stalled past its lease (SOPILOT_INGEST_LEASE_SECONDS) and {holder} took it over: "
                "nothing was published; run the ingest again once that one finished"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._collection.delete(ids=[LEASE_ID], where={"holder": self.holder})


def holder_name(settings: Settings) -> str:
    """Who holds a lease, for the message another replica shows: host, process, index folder, a nonce."""
    return f"{socket.gethostname()} pid {os.getpid()} ({settings.index_dir.resolve()}) #{uuid.uuid4().hex[:6]}"


@contextmanager
def store_lease(settings: Settings, client: ClientAPI) -> Iterator[StoreLease]:
    """Hold the ingest lease of the settings' collection on the Chroma server for the block."""
    lease = StoreLease(side_collection(client, settings), holder_name(settings), settings.ingest_lease_seconds)
    lease.acquire(settings.chroma_url or "")
    try:
        yield lease
    finally:
        lease.release()
