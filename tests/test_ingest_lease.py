"""The ingest lease, the generation marker and the pinned store view of a shared Chroma store, on a real Chroma
in a temp folder (the same Rust core `chroma run` serves; tests/test_replicas.py runs them through a server)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sopilot.core.errors import ConfigError, IngestRunningError
from sopilot.core.settings import Settings
from sopilot.index.generation import StoreMarker, side_collection, side_collection_name
from sopilot.index.lease import LEASE_ID, LeaseLostError, StoreLease


@pytest.fixture
def side(tmp_path: Path):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.PersistentClient(str(tmp_path / "chroma"), settings=ChromaSettings(anonymized_telemetry=False))
    settings = Settings(index_dir=tmp_path / "index", chroma_url="http://127.0.0.1:9", marker_poll_seconds=30)
    return client, settings, side_collection(client, settings)


def _crash(lease: StoreLease) -> None:
    """What SIGKILL does to a holder: its renewals stop, its record stays."""
    lease._stop.set()


def test_a_second_holder_is_refused_with_the_holder_named_until_release(side) -> None:
    _, _, collection = side
    first = StoreLease(collection, "host-a pid 1 (/srv/a)", 30)
    first.acquire("http://chroma:8100")
    with pytest.raises(IngestRunningError, match=r"Chroma server http://chroma:8100 \(held by host-a pid 1 \(/srv/a\)"):
        StoreLease(collection, "host-b pid 2 (/srv/b)", 30).acquire("http://chroma:8100")
    first.check()
    first.release()
    second = StoreLease(collection, "host-b pid 2 (/srv/b)", 30)
    second.acquire("http://chroma:8100")
    assert collection.get(ids=[LEASE_ID])["metadatas"][0]["holder"] == "host-b pid 2 (/srv/b)"
    second.release()
    assert collection.get(ids=[LEASE_ID])["ids"] == []


def test_a_crashed_holders_lease_is_taken_once_expired_and_it_cannot_publish(side, caplog) -> None:
    _, _, collection = side
    crashed = StoreLease(collection, "crashed", 0.6)
    crashed.acquire("srv")
    _crash(crashed)
    with pytest.raises(IngestRunningError):  # not expired yet
        StoreLease(collection, "next", 30).acquire("srv")
    time.sleep(0.8)
    successor = StoreLease(collection, "next", 30)
    with caplog.at_level("WARNING", logger="sopilot.index.lease"):
        successor.acquire("srv")
    assert any("left by crashed (expired)" in r.getMessage() for r in caplog.records)
    with pytest.raises(LeaseLostError, match="next took it over"):
        crashed.check()
    crashed.release()  # deletes only its own record: the successor keeps the lease
    assert collection.get(ids=[LEASE_ID])["metadatas"][0]["holder"] == "next"
    successor.release()


def test_the_holder_renews_its_lease_past_its_length(side) -> None:
    _, _, collection = side
    lease = StoreLease(collection, "long ingest", 0.6)
    lease.acquire("srv")
    time.sleep(1.2)  # twice the lease: renewed every 0.2 s
    with pytest.raises(IngestRunningError):
        StoreLease(collection, "other", 30).acquire("srv")
    lease.check()
    lease.release()


def test_the_store_marker_is_polled_and_read_fresh_after_an_ingest(side) -> None:
    client, settings, _ = side
    writer, reader = StoreMarker(settings, client), StoreMarker(settings, client)
    assert reader.read().value == ""
    bumped = writer.bump(probe="a.md#x-0", kb_version="abc")
    assert reader.read().value == ""  # within the poll interval: no round trip to the server
    assert reader.read(fresh=True) == bumped and bumped.kb_version == "abc" and bumped.probe == "a.md#x-0"
    assert writer.read() == bumped


def test_the_side_collection_name_fits_chromas_limit() -> None:
    assert side_collection_name("sopilot") == "sopilot.generation"
    long = side_collection_name("c" * 63)
    assert len(long) <= 63 and long.endswith(".generation") and long != side_collection_name("c" * 62 + "d")


def test_a_pinned_store_shows_one_generation_while_the_next_is_written(side) -> None:
    import numpy as np

    from sopilot.index.store import VectorStore

    client, _, _ = side
    store = VectorStore.open(client, "pinned-test", "tiny", 4)
    vectors = np.eye(4, dtype=np.float32)[:3]
    store.upsert(["old-1", "old-2", "new-1"], vectors, ["a", "b", "c"], [{"path": "x.md"}] * 3)
    pinned = store.pinned({"old-1", "old-2"})  # the generation before "new-1" was written
    assert pinned.count() == 2 and store.count() == 3
    assert [cid for cid, _ in pinned.nearest(vectors[2], 3)] and "new-1" not in dict(pinned.nearest(vectors[2], 3))
    assert pinned.nearest(vectors[0], 1)[0][0] == "old-1"
    assert set(pinned.get(["old-1", "new-1"])) == {"old-1"}
    assert {c.id for c in pinned.by_path("x.md")} == {"old-1", "old-2"}


def test_a_folder_behind_the_store_is_refreshed_in_place(side, tmp_path) -> None:
    """What a replica's ingest does first when another replica ingested since: its lexical index is made to hold
    what the store holds, chunk by chunk, never emptied on the way."""
    import numpy as np

    from sopilot.index.lexical import LexicalIndex, to_lexical
    from sopilot.index.store import VectorStore
    from sopilot.ingest.run import refresh_lexical

    client, _, _ = side
    store = VectorStore.open(client, "refresh-test", "tiny", 4)
    texts = {"kept": "rotate the quorbal key", "edited": "restart the florvex relay", "added": "zephyrine credit"}
    store.upsert(list(texts), np.eye(4, dtype=np.float32)[:3], list(texts.values()), [{"path": "x.md"}] * 3)
    lexical = LexicalIndex(tmp_path / "lexical.sqlite3", (3.0, 2.0, 1.0), 0)
    lexical.upsert([to_lexical("kept", texts["kept"], {"path": "x.md"})])
    lexical.upsert([to_lexical("edited", "an older text", {"path": "x.md"})])
    lexical.upsert([to_lexical("vanished", "deleted by the other replica", {"path": "x.md"})])
    assert refresh_lexical(lexical, store) == 3
    assert lexical.ids() == set(texts)
    assert [cid for cid, _ in lexical.search("florvex relay", 3)] == ["edited"]
    assert lexical.search("older text", 3) == [] and lexical.search("zephyrine", 3)[0][0] == "added"
    lexical.close()


def test_a_rebuild_of_a_shared_collection_is_refused_before_anything_is_touched(tmp_path: Path, embedder) -> None:
    from sopilot.ingest.run import run_ingest

    settings = Settings(kb_dir=tmp_path / "kb", index_dir=tmp_path / "index", chroma_url="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="SOPILOT_COLLECTION=NEW sopilot ingest --index NEW_DIR") as refused:
        run_ingest(settings, embedder, rebuild=True, progress=False)
    assert "http://127.0.0.1:9" in str(refused.value) and "docs/deploy.md" in str(refused.value)
    assert not (tmp_path / "index").exists()  # refused before the lock, the manifest or the server
