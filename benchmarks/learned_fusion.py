"""Learned fusion: a linear ranker over the search's own evidence, trained on questions mined from the KB.

Run: .venv/bin/python benchmarks/learned_fusion.py TESTSET --kb KB --index INDEX [--depth 20] [--rough-only]
                                                  [--without-overlap] [--query-embedder DIR]
Questions are mined from the KB's active SOPs as the question embedder's training mines them
(``train/pairs.py``, each also roughened as users write). Each is searched (``--depth`` sections) and every
returned section is described by 22 features: fused, dense and BM25 scores (raw and relative to the list's
best), ranks in both lists, the position, the descriptive demotion, its SOP's best score and share of the
list, first section of its SOP, the share of the question's words in its heading, title and body, its length
and its role. A pairwise logistic regression (the answering section against each other one) learns their
weights. Then both halves of the test set are searched and re-ordered by the learned score; section hit@1,
hit@5 and MRR@10 are printed before and after. Training never sees the test set's questions.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sopilot.core.settings import Settings  # noqa: E402
from sopilot.core.types import Passage  # noqa: E402
from sopilot.eval.metrics import per_question  # noqa: E402
from sopilot.eval.runner import passage_record, resolve_relevant  # noqa: E402
from sopilot.eval.testset import load_testset, select_half  # noqa: E402
from sopilot.index.embedder import Embedder, embedder_for, set_offline  # noqa: E402
from sopilot.retrieval.search import Retriever, open_retriever  # noqa: E402
from sopilot.train.answerability import Mined, active_sops, roughen  # noqa: E402
from sopilot.train.pairs import Pair, mine_pairs  # noqa: E402

ROLES = ("resolve", "diagnose", "escalate", "internal", "reference", "template")
OVERLAP = (11, 12, 13)  # the word-overlap features, left out by --without-overlap
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "the",
        "a",
        "an",
        "to",
        "of",
        "and",
        "or",
        "in",
        "on",
        "for",
        "is",
        "are",
        "was",
        "it",
        "i",
        "my",
        "we",
        "our",
        "this",
        "that",
        "with",
        "be",
        "can",
        "cant",
        "not",
        "no",
        "do",
        "does",
        "how",
        "what",
        "why",
        "when",
        "at",
        "from",
        "by",
        "as",
    ]
)


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def features(question: str, passages: list[Passage]) -> np.ndarray:
    """One row of evidence per returned section."""
    asked = _words(question) or {"_"}
    best = max(p.score for p in passages) or 1.0
    dense = [p.scores.get("dense", 0.0) for p in passages]
    bm25 = [p.scores.get("lexical", 0.0) for p in passages]
    sop_best: dict[str, float] = {}
    sop_count: dict[str, int] = {}
    for p in passages:
        sop_best[p.path] = max(sop_best.get(p.path, 0.0), p.score)
        sop_count[p.path] = sop_count.get(p.path, 0) + 1
    seen: set[str] = set()
    rows = []
    for i, p in enumerate(passages):
        first = p.path not in seen
        seen.add(p.path)
        rows.append(
            [
                p.score / best,
                dense[i],
                dense[i] - max(dense),
                bm25[i] / (max(bm25) or 1.0),
                1 / p.scores.get("dense_rank", 1e9),
                1 / p.scores.get("lexical_rank", 1e9),
                1 / (i + 1),
                float("descriptive" in p.scores),
                sop_best[p.path] / best,
                sop_count[p.path] / len(passages),
                float(first),
                len(asked & _words(p.heading_path[-1] if p.heading_path else "")) / len(asked),
                len(asked & _words(p.title)) / len(asked),
                len(asked & _words(p.text)) / len(asked),
                math.log1p(len(p.text.split())),
                float(len(p.heading_path) > 1),
            ]
            + [float(p.role == role) for role in ROLES]
        )
    return np.array(rows)


def mined_questions(settings: Settings, embedder: Embedder, rough_only: bool) -> list[Pair]:
    pairs = mine_pairs(active_sops(settings, embedder), 4000, 0)
    vocabulary = sorted({w for p in pairs for w in p.question.split() if len(w) > 3 and w.isalpha()})
    rough = roughen([Mined(p.section, p.question) for p in pairs], vocabulary, keep=0.7, seed=0)
    roughened = [Pair(r.question, p.section, p.kind + "-rough") for r, p in zip(rough, pairs, strict=True)]
    return roughened if rough_only else pairs + roughened


def fit(retriever: Retriever, pairs: list[Pair], depth: int, keep: list[int]) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    diffs, labels = [], []
    used = 0
    for pair in pairs:
        passages = retriever.search(pair.question, k=depth).passages
        right = np.array([f"{p.path}#{p.anchor}" == pair.section for p in passages])
        if not right.any() or right.all():
            continue
        used += 1
        x = features(pair.question, passages)[:, keep]
        for a in np.where(right)[0]:
            for b in np.where(~right)[0]:
                flip = rng.random() < 0.5
                diffs.append(x[b] - x[a] if flip else x[a] - x[b])
                labels.append(0 if flip else 1)
    d = np.array(diffs)
    scale = np.abs(d).mean(axis=0) + 1e-9
    model = LogisticRegression(fit_intercept=False, max_iter=2000).fit(d / scale, np.array(labels))
    print(f"{used} of {len(pairs)} mined questions had their section among the results", file=sys.stderr)
    return np.asarray(model.coef_[0] / scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("testset", type=Path)
    parser.add_argument("--kb", type=Path, required=True)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--rough-only", action="store_true", help="train on the roughened questions only")
    parser.add_argument("--without-overlap", action="store_true", help="leave the word-overlap features out")
    parser.add_argument("--query-embedder", default="auto", help="SOPILOT_QUERY_EMBEDDER for the search")
    args = parser.parse_args()
    set_offline()
    settings = Settings(kb_dir=args.kb, index_dir=args.index, query_embedder=args.query_embedder)
    embedder = embedder_for(settings)
    retriever = open_retriever(settings, embedder)
    keep = [i for i in range(16 + len(ROLES)) if not (args.without_overlap and i in OVERLAP)]
    started = time.perf_counter()
    weights = fit(retriever, mined_questions(settings, embedder, args.rough_only), args.depth, keep)
    print(f"trained in {time.perf_counter() - started:.0f} s; weights {np.round(weights, 3).tolist()}", file=sys.stderr)
    questions = load_testset(args.testset)
    for half in ("dev", "test"):
        chosen = [q for q in select_half(questions, half) if q.answerable]
        relevant = resolve_relevant(chosen, args.kb)
        scores: dict[str, list[dict[str, float]]] = {"search": [], "learned": []}
        for q in chosen:
            passages = retriever.search(q.question, k=args.depth, filters=q.filters or None).passages
            order = np.argsort(-(features(q.question, passages)[:, keep] @ weights), kind="stable") if passages else []
            for name, ranked in (("search", passages), ("learned", [passages[i] for i in order])):
                record = {
                    "relevant": relevant[q.id],
                    "passages": [passage_record(i, p) for i, p in enumerate(ranked[:10], 1)],
                }
                scores[name].append(per_question(record)["section"])
        line = [f"{args.testset.name} {half} ({len(chosen)} answerable)"]
        for name, rows in scores.items():
            line.append(
                name + " " + " / ".join(f"{np.mean([r[m] for r in rows]):.3f}" for m in ("hit@1", "hit@5", "mrr@10"))
            )
        print("  ".join(line))


if __name__ == "__main__":
    main()
