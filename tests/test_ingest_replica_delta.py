"""A replica's lexical index updated from published deltas equals one rebuilt from the store.

Real Chroma (embedded, in a temp folder) holds the chunks and the side collection; vectors are random (no
embedder needed: the lexical index reads only text and metadata). Each "ingest" writes through a
``RecordingStore`` and publishes its delta with the generation, as ``ingest/run.py`` does.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from sopilot.core.settings import Settings
from sopilot.index.folder import open_lexical, replica_lexical_path
from sopilot.index.generation import Delta, StoreMarker
from sopilot.index.store import RecordingStore, VectorStore, make_client
from sopilot.ingest.replica import build_lexical
from sopilot.ingest.run import fill_lexical

DIM = 8
rng = np.random.default_rng(0)


def _meta(n: int, path: str, status: str = "active") -> dict:
    return {"path": path, "title": f"SOP {path}", "heading_path": f"SOP {path} > step {n}", "status": status}


def _write(store: VectorStore, ids: list[str], texts: list[str], metas: list[dict]) -> None:
    vectors = rng.standard_normal((len(ids), DIM)).astype(np.float32)
    store.upsert(ids, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), texts, metas)


def _rows(path: Path) -> tuple[list[tuple], list[tuple]]:
    db = sqlite3.connect(path)
    try:
        chunks = db.execute(
            "SELECT chunk_id, title, heading, body, path, status, owner, tags, products FROM chunks ORDER BY chunk_id"
        ).fetchall()
        facts = db.execute(
            "SELECT chunk_id, path, anchor, heading_path, status, owner, tags, products, role FROM chunk_facts "
            "ORDER BY chunk_id"
        ).fetchall()
        return chunks, facts
    finally:
        db.close()


def _full(settings: Settings, store: VectorStore, name: str) -> Path:
    path = settings.index_dir / f"{name}.sqlite3"
    lexical = open_lexical(settings, path)
    try:
        fill_lexical(lexical, store)
    finally:
        lexical.close()
    return path


@pytest.fixture
def shared(tmp_path: Path) -> tuple[Settings, VectorStore, StoreMarker]:
    settings = Settings(index_dir=tmp_path / "replica", kb_dir=tmp_path / "kb")
    client = make_client(settings.model_copy(update={"index_dir": tmp_path / "server"}))
    store = VectorStore.open(client, settings.collection, "random", DIM)
    return settings, store, StoreMarker(settings, client)


def test_deltas_give_the_rebuilds_rows_and_fall_back_when_they_cannot(shared) -> None:
    settings, store, marker = shared
    ids = [f"sop{n // 5}.md#step-{n % 5}" for n in range(60)]
    _write(
        store,
        ids,
        [f"reset the quorbal token {n} then restart" for n in range(60)],
        [_meta(n, f"sop{n // 5}.md") for n in range(60)],
    )
    first = marker.bump(kb_version="v1")
    path1 = replica_lexical_path(settings, first.value)
    assert build_lexical(settings, store, marker, first.value, path1) == "rebuild"  # no delta: the first

    # An ingest: a new SOP, an edited chunk (same id, new text), a status change, a removed SOP.
    recorder = RecordingStore(store)
    _write(
        recorder,
        ["new.md#step-0", "new.md#step-1"],
        ["zephyrine credits ledger", "florvex number"],
        [_meta(0, "new.md"), _meta(1, "new.md")],
    )
    _write(recorder, [ids[7]], ["the edited step names the marlow console"], [_meta(7, "sop1.md")])
    recorder.update_metadata([ids[12]], [_meta(12, "sop2.md", status="deprecated")])
    recorder.delete(ids[50:55])
    second = marker.bump(kb_version="v2", delta=Delta(first.value, tuple(sorted(recorder.touched))))
    path2 = replica_lexical_path(settings, second.value)
    assert build_lexical(settings, store, marker, second.value, path2) == "delta"
    assert _rows(path2) == _rows(_full(settings, store, "full2"))
    assert _rows(path2) != _rows(path1)  # the delta did change it

    # Two generations behind: the chain of deltas from the first generation's file.
    recorder = RecordingStore(store)
    recorder.delete(["new.md#step-1"])
    _write(recorder, [ids[0]], ["step zero now says tarnwick"], [_meta(0, "sop0.md")])
    third = marker.bump(kb_version="v3", delta=Delta(second.value, tuple(sorted(recorder.touched))))
    path2.unlink()
    path3 = replica_lexical_path(settings, third.value)
    assert build_lexical(settings, store, marker, third.value, path3) == "delta"
    assert _rows(path3) == _rows(_full(settings, store, "full3"))

    # A change too large or unknown (a rebuild, a crashed ingest) is published without ids: rebuild.
    _write(store, [ids[1]], ["changed outside any recorded ingest"], [_meta(1, "sop0.md")])
    fourth = marker.bump(kb_version="v4", delta=Delta(third.value, None))
    path4 = replica_lexical_path(settings, fourth.value)
    assert build_lexical(settings, store, marker, fourth.value, path4) == "rebuild"
    assert _rows(path4) == _rows(_full(settings, store, "full4"))
    # No delta published at all (e.g. `sopilot ingest --rebuild-lexical`): rebuild.
    fifth = marker.bump(kb_version="v5")
    assert build_lexical(settings, store, marker, fifth.value, replica_lexical_path(settings, fifth.value)) == "rebuild"


def test_an_ingest_that_crashed_before_publishing_is_noticed_by_the_next(shared) -> None:
    _, _, marker = shared
    generation = marker.bump().value
    assert marker.open_ingest(generation)  # a first ingest starts ... and dies without close_ingest
    assert not marker.open_ingest(generation)  # the next from the same generation: its delta must say rebuild
    marker.close_ingest()
    assert marker.open_ingest(generation)


def test_deltas_kept_follow_the_chain_not_the_clock_and_a_replica_too_far_behind_rebuilds(shared, monkeypatch) -> None:
    """Nine ingests after the first generation, the last five published by a replica whose clock is a day
    behind: the eight deltas leading back from the newest generation are kept all the same (by their chain,
    not their time); a replica that slept through eight ingests catches up from them, one that slept through
    nine rebuilds."""
    import time
    from types import SimpleNamespace

    import sopilot.index.generation as generation_module
    from sopilot.index.generation import DELTA_PREFIX, KEEP_DELTAS

    settings, store, marker = shared
    _write(store, ["a.md#0"], ["the first step"], [_meta(0, "a.md")])
    generations = [marker.bump(kb_version="v0")]
    files = [replica_lexical_path(settings, generations[0].value)]
    build_lexical(settings, store, marker, generations[0].value, files[0])
    for n in range(1, 10):
        if n == 5:  # from here on the publishing replica's clock is a day behind
            behind = SimpleNamespace(time=lambda: time.time() - 86_400, monotonic=time.monotonic)
            monkeypatch.setattr(generation_module, "time", behind)
        recorder = RecordingStore(store)
        _write(recorder, [f"a.md#{n}"], [f"step {n} says vorlan{n}"], [_meta(n, "a.md")])
        generations.append(marker.bump(delta=Delta(generations[-1].value, tuple(recorder.touched))))
        if n == 1:  # the second sleeping replica holds generation 1's file
            files.append(replica_lexical_path(settings, generations[1].value))
            build_lexical(settings, store, marker, generations[1].value, files[1])
    held = marker._side().get(where={"kind": "delta"})["ids"]
    assert sorted(held) == sorted(DELTA_PREFIX + g.value for g in generations[-KEEP_DELTAS:])
    newest = generations[-1].value
    target = replica_lexical_path(settings, newest)
    files[1].unlink()  # nine ingests behind: generation 1's delta, the ninth step back, is gone
    assert build_lexical(settings, store, marker, newest, target) == "rebuild"
    target.unlink()
    build_lexical(settings, store, marker, generations[1].value, files[1])  # eight behind
    assert build_lexical(settings, store, marker, newest, target) == "delta"
    assert _rows(target) == _rows(_full(settings, store, "full-newest"))
