"""Retrieval settings sweep: the same test set under several settings, one table.

Run: .venv/bin/python benchmarks/retrieval_sweep.py TESTSET --kb DIR --index DIR [--set NAME=K=V,K=V ...]
Each --set is a named variant of settings overrides (e.g. "dense=lexical_weight=0"); the index is shared
(ingest once), only search settings vary. Prints section hit@1/@5, MRR@10, SOP hit@5, abstention, latency.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sopilot.core.settings import Settings  # noqa: E402
from sopilot.eval.evaluate import sopilot_search  # noqa: E402
from sopilot.eval.metrics import compute_metrics, get_metric  # noqa: E402
from sopilot.eval.runner import resolve_relevant, run_questions  # noqa: E402
from sopilot.eval.testset import load_testset  # noqa: E402
from sopilot.index.embedder import load_embedder, set_offline  # noqa: E402
from sopilot.ingest.run import run_ingest  # noqa: E402

COLUMNS = (
    ("s@1", "retrieval.section.hit@1"),
    ("s@5", "retrieval.section.hit@5"),
    ("s@10", "retrieval.section.hit@10"),
    ("sMRR", "retrieval.section.mrr@10"),
    ("sop@5", "retrieval.sop.hit@5"),
    ("abst.R", "abstention.recall"),
    ("false.abst", "abstention.false_abstention_rate"),
    ("lines", "passage_lines"),
    ("p50ms", "latency_ms.p50"),
)


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, rest = text.partition("=")
    pairs = dict(item.split("=", 1) for item in rest.split(",") if item)
    return name, pairs


def value(metrics: dict, dotted: str) -> str:
    number = get_metric(metrics, dotted)
    return "n/a" if number is None else f"{number:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("testset", type=Path)
    parser.add_argument("--kb", type=Path, default=ROOT / "kb")
    parser.add_argument("--index", type=Path, default=ROOT / ".sopilot")
    parser.add_argument("--set", action="append", default=[], help="NAME=KEY=VALUE,KEY=VALUE")
    args = parser.parse_args()
    set_offline()
    base = Settings(kb_dir=args.kb, index_dir=args.index)
    embedder = load_embedder(base.embedder)
    run_ingest(base, embedder, progress=True)
    questions = load_testset(args.testset)
    relevant = resolve_relevant(questions, args.kb)
    variants = [("default", {})] + [parse_variant(v) for v in args.set]
    print(f"{'variant':<22}" + "".join(f"{label:>11}" for label, _ in COLUMNS))
    for name, overrides in variants:
        settings = Settings.model_validate({**base.model_dump(), **overrides})
        search = sopilot_search(settings, embedder, draft=False)
        records = run_questions(questions, relevant, search, 10, progress=False)
        metrics = compute_metrics(records)
        print(f"{name:<22}" + "".join(f"{value(metrics, path):>11}" for _, path in COLUMNS), flush=True)


if __name__ == "__main__":
    main()
