"""BEIR-format benchmarks through SOPilot's own pipeline.

Each corpus document becomes a Markdown file (``# title`` then the text) in a work folder, ingested by the
same sync as a KB; queries go through the same retriever; passages map back to document ids (best chunk
first). The work folder and index are kept, so a second run embeds nothing.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from tqdm import tqdm

from sopilot.core.settings import Settings
from sopilot.eval.testset import TestSetError
from sopilot.index.embedder import Embedder
from sopilot.ingest.run import run_ingest
from sopilot.retrieval.search import open_retriever

DEPTH = 100  # documents ranked per query (Recall@100)


@dataclass(frozen=True, slots=True)
class BeirData:
    corpus: dict[str, tuple[str, str]]  # doc id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> relevance


def load_beir(folder: Path, split: str = "test") -> BeirData:
    paths = {
        "corpus": folder / "corpus.jsonl",
        "queries": folder / "queries.jsonl",
        "qrels": folder / "qrels" / f"{split}.tsv",
    }
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise TestSetError(f"not a BEIR data set, missing: {', '.join(missing)}")
    corpus = {}
    for line in paths["corpus"].read_text(encoding="utf-8").splitlines():
        if line.strip():
            doc = json.loads(line)
            corpus[str(doc["_id"])] = (doc.get("title") or "", doc.get("text") or "")
    queries = {}
    for line in paths["queries"].read_text(encoding="utf-8").splitlines():
        if line.strip():
            q = json.loads(line)
            queries[str(q["_id"])] = q["text"]
    qrels: dict[str, dict[str, int]] = {}
    with paths["qrels"].open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if int(row["score"]) > 0:
                qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    queries = {qid: text for qid, text in queries.items() if qid in qrels}
    return BeirData(corpus, queries, qrels)


def doc_file(doc_id: str) -> str:
    return quote(doc_id, safe="") + ".md"


def doc_id_of(path: str) -> str:
    return unquote(path.removesuffix(".md"))


def materialize(data: BeirData, folder: Path) -> int:
    """Write each document as Markdown; files already holding the same text are left alone."""
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    wanted = set()
    for doc_id, (title, text) in data.corpus.items():
        name = doc_file(doc_id)
        wanted.add(name)
        heading = " ".join(title.split()) or f"Document {doc_id}"
        content = f"# {heading}\n\n{text.strip()}\n"
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
            written += 1
    for stale in folder.glob("*.md"):
        if stale.name not in wanted:
            stale.unlink()
    return written


def ndcg_at_k(ranked: list[str], qrels: dict[str, int], k: int = 10) -> float:
    dcg = sum(qrels.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(qrels.values(), reverse=True)[:k]
    idcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: list[str], qrels: dict[str, int], k: int = 100) -> float:
    return len(set(ranked[:k]) & set(qrels)) / len(qrels) if qrels else 0.0


def mrr_at_k(ranked: list[str], qrels: dict[str, int], k: int = 10) -> float:
    return next((1.0 / (i + 1) for i, doc in enumerate(ranked[:k]) if doc in qrels), 0.0)


def score_beir(results: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    n = len(results)
    return {
        "ndcg@10": round(sum(ndcg_at_k(r, qrels[q]) for q, r in results.items()) / n, 4),
        "recall@100": round(sum(recall_at_k(r, qrels[q]) for q, r in results.items()) / n, 4),
        "mrr@10": round(sum(mrr_at_k(r, qrels[q]) for q, r in results.items()) / n, 4),
    }


def ranked_docs(paths: list[str], depth: int) -> list[str]:
    """Document ids in order of their best chunk."""
    seen: dict[str, None] = {}
    for path in paths:
        seen.setdefault(doc_id_of(path), None)
    return list(seen)[:depth]


def beir_settings(folder: Path, settings: Settings) -> Settings:
    """The settings a BEIR data set runs under: its own KB and index folder under
    ``SOPILOT_INDEX_DIR/beir/NAME``, its own collection, every file indexed, searches deep enough for
    Recall@100. An embedder made from them (``embedder_for``) finds a question model trained on that index."""
    name = folder.resolve().name
    work = settings.index_dir / "beir" / name
    return settings.model_copy(
        update={
            "kb_dir": work / "docs",
            "index_dir": work / "index",
            "collection": f"beir-{name}",
            "max_k": DEPTH * 3,
            "ignore": [],
        }
    )


def run_beir(
    folder: Path, bench: Settings, embedder: Embedder, *, depth: int = DEPTH, progress: bool = True
) -> dict[str, Any]:
    """Ingest and query a BEIR data set under ``bench`` (``beir_settings``); return its scores and timings."""
    data = load_beir(folder)
    name = folder.resolve().name
    materialize(data, bench.kb_dir)
    started = time.perf_counter()
    report = run_ingest(bench, embedder, progress=progress)
    ingest_s = time.perf_counter() - started
    retriever = open_retriever(bench, embedder)
    search: Callable[[str], list[str]] = lambda q: [p.path for p in retriever.search(q, k=depth * 2).passages]  # noqa: E731
    results: dict[str, list[str]] = {}
    latencies = []
    for qid, text in tqdm(data.queries.items(), desc=f"{name} queries", unit="q", disable=not progress):
        t = time.perf_counter()
        results[qid] = ranked_docs(search(text), depth)
        latencies.append((time.perf_counter() - t) * 1000)
    latencies.sort()
    return {
        "dataset": name,
        "documents": len(data.corpus),
        "queries": len(results),
        "chunks": report.chunks,
        "embedded": report.added,
        "ingest_s": round(ingest_s, 1),
        "latency_p50_ms": round(latencies[len(latencies) // 2], 2),
        **score_beir(results, data.qrels),
    }
