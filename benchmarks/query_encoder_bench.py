"""What each question encoder costs and how far its vectors move from the fp32 model's.

Run: nice -n 10 .venv/bin/python benchmarks/query_encoder_bench.py --index /tmp/speed2-idx [--questions 500]
     [--rounds 3] [--routes torch,torch-int8,onnx,onnx-int8]

The question model is the one the index serves (SOPILOT_QUERY_EMBEDDER=auto: the trained model in
INDEX/query-embedder when there is one, else the embedder). Questions: every question of eval/testsets/*.jsonl,
then questions mined from the KB's SOPs (titles, "title: heading", opening sentences) up to ``--questions``.
Each route embeds them one at a time on one thread (``SOPILOT_QUERY_THREADS=1``), ``--rounds`` times after a
warm-up; printed per route: median and p95 milliseconds of process CPU and of wall time per question, and the
cosine between its vector and the fp32 PyTorch model's (min, 1st percentile, median). Run it on a quiet
machine and note ``uptime`` beside it: CPU time moves less with load than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from sopilot.core.settings import Settings  # noqa: E402
from sopilot.index.embedder import SentenceTransformerEmbedder, query_model_for, set_offline  # noqa: E402

ROUTES = {  # name -> (runtime, precision)
    "torch": ("torch", "fp32"),
    "torch-int8": ("torch", "int8"),
    "onnx": ("onnx", "fp32"),
    "onnx-int8": ("onnx", "int8"),
}


def questions(settings: Settings, wanted: int) -> list[str]:
    """The test sets' questions, then questions mined from the KB, without repeats, ``wanted`` at most."""
    found: list[str] = []
    for testset in sorted((ROOT / "eval" / "testsets").glob("*.jsonl")):
        found += [json.loads(line)["question"] for line in testset.read_text(encoding="utf-8").splitlines() if line]
    if len(found) < wanted:
        from sopilot.index.embedder import load_embedder
        from sopilot.train.answerability import active_sops, mine_questions

        embedder = load_embedder(settings.embedder, onnx_cache=settings.index_dir / "models")
        found += [m.question for sop in active_sops(settings, embedder) for m in mine_questions(sop, per_sop=20)]
    return list(dict.fromkeys(found))[:wanted]


def measure(encoder: SentenceTransformerEmbedder, texts: list[str], rounds: int) -> tuple[np.ndarray, list, list]:
    """Vectors of ``texts`` (the last round's) and the CPU and wall milliseconds of every embedding."""
    for text in texts[:20]:  # warm-up: opens the export, loads the model, fills the allocator
        encoder.embed_query(text)
    cpu, wall, vectors = [], [], []
    for _ in range(rounds):
        vectors = []
        for text in texts:
            c0, w0 = time.process_time(), time.perf_counter()
            vectors.append(encoder.embed_query(text))
            cpu.append((time.process_time() - c0) * 1000)
            wall.append((time.perf_counter() - w0) * 1000)
    return np.stack(vectors), cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--routes", default=",".join(ROUTES))
    args = parser.parse_args()
    set_offline()
    settings = Settings(index_dir=args.index, kb_dir=ROOT / "kb")  # type: ignore[call-arg]
    model = query_model_for(settings) or settings.embedder
    texts = questions(settings, args.questions)
    print(f"question model: {model}; {len(texts)} questions; one thread; load {os.getloadavg()}", file=sys.stderr)
    reference: np.ndarray | None = None
    print("route        cpu p50  cpu p95  wall p50  wall p95   cos min   cos p1  cos p50")
    for name in ["torch", *[r for r in args.routes.split(",") if r != "torch"]]:
        runtime, precision = ROUTES[name]
        encoder = SentenceTransformerEmbedder(
            model,
            runtime=runtime,
            onnx_cache=args.index / "models",
            query_threads=1,
            query_precision=precision,
        )
        vectors, cpu, wall = measure(encoder, texts, args.rounds)
        if reference is None:
            reference = vectors
        cosines = np.sum(vectors * reference, axis=1)
        p95 = statistics.quantiles(cpu, n=20)[-1], statistics.quantiles(wall, n=20)[-1]
        print(
            f"{name:11s} {statistics.median(cpu):8.2f} {p95[0]:8.2f} {statistics.median(wall):9.2f} {p95[1]:9.2f}"
            f" {cosines.min():9.5f} {np.percentile(cosines, 1):8.5f} {np.median(cosines):8.5f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
