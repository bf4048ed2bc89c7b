"""What drafting adds to a search: the time of the draft alone, per drafter and tone, in process.

Run: .venv/bin/python benchmarks/draft_bench.py [--testset FILE] [--kb DIR] [--index DIR] [--repeat N] [--llm]
Indexes the KB (incrementally), searches every question of the test set once, then times only the drafting of
each answer (`repeat` times, the best kept, so that one slow moment of the machine does not count) and prints
p50/p95/max per drafter and tone. `--llm` adds the language-model drafter with the SOPILOT_LLM_* settings
(a server must be running); its time is mostly the model's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sopilot.core.settings import Settings  # noqa: E402
from sopilot.draft.factory import open_drafter  # noqa: E402
from sopilot.eval.metrics import percentile  # noqa: E402
from sopilot.eval.testset import load_testset  # noqa: E402
from sopilot.index.embedder import load_embedder, set_offline  # noqa: E402
from sopilot.ingest.run import current_kb_version, run_ingest  # noqa: E402
from sopilot.retrieval.search import open_retriever  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testset", type=Path, default=ROOT / "eval" / "testsets" / "kb.jsonl")
    parser.add_argument("--kb", type=Path, default=ROOT / "kb")
    parser.add_argument("--index", type=Path, default=Path("/tmp/sopilot-draft-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--llm", action="store_true", help="also time the language-model drafter")
    args = parser.parse_args()
    set_offline()
    base = Settings().with_paths(args.kb, args.index)
    embedder = load_embedder(base.embedder)
    run_ingest(base, embedder, progress=True)
    retriever = open_retriever(base, embedder)
    questions = load_testset(args.testset)
    searched = []
    search_ms = []
    for q in questions:
        started = time.perf_counter()
        result = retriever.search(q.question, k=10, filters=q.filters or None)
        search_ms.append((time.perf_counter() - started) * 1000)
        searched.append((q.question, result))
    print(f"{len(searched)} questions from {args.testset.name}; KB {args.kb}")
    print(f"{'what':<28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    _row("search (k=10)", search_ms)
    version = current_kb_version(base)
    variants = [("extractive", "user"), ("extractive", "internal")] + ([("llm", "user")] if args.llm else [])
    for drafter_name, tone in variants:
        settings = base.model_copy(update={"drafter": drafter_name})
        drafter = open_drafter(settings, retriever.store, tone=tone, kb_version=version, embedder=embedder)
        repeat = args.repeat if drafter_name == "extractive" else 1
        times = []
        for question, result in searched:
            best = float("inf")
            for _ in range(repeat):
                started = time.perf_counter()
                drafter.draft(question, result)
                best = min(best, (time.perf_counter() - started) * 1000)
            times.append(best)
        _row(f"draft {drafter_name}, {tone}", times)
    return 0


def _row(label: str, values: list[float]) -> None:
    print(
        f"{label:<28} {statistics.median(values):>8.2f} {percentile(values, 95):>8.2f} {max(values):>8.2f}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
