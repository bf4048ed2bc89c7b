"""How far can the coverage decision go on the evidence search produces? A ceiling check for abstention.

Run: .venv/bin/python benchmarks/abstention_ceiling.py RUN_DIR [RUN_DIR ...] [--max-false 0.10] [--plot FILE]
Each RUN_DIR is a ``sopilot eval run`` output (its run.jsonl). For every run it prints, at a false-abstention
rate of at most ``--max-false``, the share of unanswerable questions flagged by:
- the shipped rule with the thresholds of the settings, and calibrated on that very run (``sopilot.eval.calibrate``: an
  optimistic figure, fitted and scored on the same questions);
- each single signal on its own, in its better direction;
- a logistic regression over all the signals, 5-fold cross-validated (5 shuffles, mean);
- the same model trained on each other run (does a calibration travel to another KB?).
``--plot`` draws the curves (flagged unanswerable against false abstention) with the target marked.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sopilot.core.settings import Settings  # noqa: E402
from sopilot.eval.calibrate import calibrate, evidence  # noqa: E402
from sopilot.index.embedder import covered_min_dense_for  # noqa: E402
from sopilot.index.lexical import query_terms  # noqa: E402
from sopilot.retrieval.coverage import is_covered  # noqa: E402
from sopilot.retrieval.query import focus_query  # noqa: E402

TARGET_RECALL = 0.80


def _scores(passage: dict[str, Any]) -> dict[str, float]:
    return passage.get("scores") or {}


# Each signal: a name and how to read it from a run record (higher = looks more covered, by intent).
SIGNALS: dict[str, Callable[[dict[str, Any]], float]] = {
    "best dense similarity (top 3)": lambda r: evidence(r).dense,
    "question terms in top passage": lambda r: evidence(r).terms,
    "question terms in no SOP": lambda r: float(evidence(r).unknown),
    "share of terms in no SOP": lambda r: evidence(r).unknown / max(1, len(query_terms(focus_query(r["question"])))),
    "fused score of top passage": lambda r: _scores(r["passages"][0]).get("fused", 0.0),
    "fused margin top 1 - top 2": lambda r: (
        _scores(r["passages"][0]).get("fused", 0.0)
        - (_scores(r["passages"][1]).get("fused", 0.0) if len(r["passages"]) > 1 else 0.0)
    ),
    "BM25 of top passage per term": lambda r: (
        _scores(r["passages"][0]).get("lexical", 0.0) / max(1, len(query_terms(focus_query(r["question"]))))
    ),
    "log dense rank of top passage": lambda r: math.log1p(_scores(r["passages"][0]).get("dense_rank", 100.0)),
    "log lexical rank of top passage": lambda r: math.log1p(_scores(r["passages"][0]).get("lexical_rank", 100.0)),
    "top-5 passages from the top SOP": lambda r: float(
        sum(p["path"] == r["passages"][0]["path"] for p in r["passages"][:5])
    ),
    "distinct SOPs in top 5": lambda r: float(len({p["path"] for p in r["passages"][:5]})),
    "log question terms": lambda r: math.log(max(1, len(query_terms(focus_query(r["question"]))))),
}


def load_run(folder: Path) -> list[dict[str, Any]]:
    """The records of a run that have passages (a question with none is flagged by any rule)."""
    path = folder / "run.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} does not exist: give the folder a `sopilot eval run --out` wrote")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in records if r.get("passages")]


def features(records: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Signal matrix (one column per signal) and the unanswerable mask."""
    matrix = np.array([[read(r) for read in SIGNALS.values()] for r in records], dtype=float)
    return matrix, np.array([not r["answerable"] for r in records])


def recall_within(unanswerable: np.ndarray, flag_score: np.ndarray, max_false: float) -> tuple[float, float]:
    """Best share of unanswerable flagged (``flag_score`` above a threshold) with false abstention <= max_false."""
    answerable_scores = np.sort(flag_score[~unanswerable])[::-1]
    allowed = int(math.floor(max_false * len(answerable_scores) + 1e-9))
    threshold = answerable_scores[allowed] if allowed < len(answerable_scores) else -np.inf
    flagged = flag_score > threshold
    return float(flagged[unanswerable].mean()), float(flagged[~unanswerable].mean())


def curve(unanswerable: np.ndarray, flag_score: np.ndarray) -> tuple[list[float], list[float]]:
    """False-abstention rate and recall at every threshold (for the plot)."""
    xs, ys = [0.0], [0.0]
    for threshold in np.unique(flag_score)[::-1]:
        flagged = flag_score >= threshold
        xs.append(float(flagged[~unanswerable].mean()))
        ys.append(float(flagged[unanswerable].mean()))
    return xs, ys


def _model() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))


def cross_validated(matrix: np.ndarray, unanswerable: np.ndarray, seeds: int = 5) -> np.ndarray:
    """Out-of-fold probability of "unanswerable", averaged over shuffles."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = min(5, int(unanswerable.sum()), int((~unanswerable).sum()))
    runs = [
        cross_val_predict(
            _model(),
            matrix,
            unanswerable,
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
            method="predict_proba",
        )[:, 1]
        for seed in range(seeds)
    ]
    return np.mean(runs, axis=0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="folders written by `sopilot eval run --out`")
    parser.add_argument("--max-false", type=float, default=0.10, help="false-abstention bound (default 0.10)")
    parser.add_argument("--plot", type=Path, help="write the curves to this PNG file")
    args = parser.parse_args(argv)

    data = {}
    for folder in args.runs:
        records = load_run(folder)
        matrix, unanswerable = features(records)
        if unanswerable.all() or not unanswerable.any():
            raise SystemExit(f"{folder}: needs both answerable and unanswerable questions")
        data[folder.name] = (records, matrix, unanswerable)

    bound = f"false abstention <= {args.max_false:.0%}"
    curves: dict[str, list[tuple[str, list[float], list[float]]]] = {}
    for name, (records, matrix, unanswerable) in data.items():
        print(f"\n## {name}: {int(unanswerable.sum())} unanswerable, {int((~unanswerable).sum())} answerable")
        print(f"unanswerable flagged at {bound} (false abstention reached):")
        settings = Settings()
        shipped = np.array(
            [
                not is_covered(
                    e.dense,
                    e.terms,
                    e.unknown,
                    covered_min_dense_for(settings),
                    settings.covered_min_terms,
                    settings.covered_min_unknown,
                )
                for e in map(evidence, records)
            ]
        )
        print(
            f"  {'shipped rule, settings thresholds':<40} {shipped[unanswerable].mean():.3f} "
            f"({shipped[~unanswerable].mean():.3f})"
        )
        rule = calibrate(records, args.max_false)
        label = "shipped rule, calibrated on this run"
        print(
            f"  {label:<40} {rule.abstention_recall:.3f} ({rule.false_abstention_rate:.3f})  min_dense="
            f"{rule.min_dense} min_terms={rule.min_terms} min_unknown={rule.min_unknown}"
        )
        best_single: tuple[float, str, np.ndarray] = (-1.0, "", matrix[:, 0])
        for column, signal in enumerate(SIGNALS):
            results = [
                (recall_within(unanswerable, sign * matrix[:, column], args.max_false), sign) for sign in (-1, 1)
            ]
            (recall, false), sign = max(results, key=lambda item: item[0][0])
            direction = "low" if sign == -1 else "high"
            print(f"  {signal + ' (' + direction + ' = flag)':<40} {recall:.3f} ({false:.3f})")
            if recall > best_single[0]:
                best_single = (recall, signal, sign * matrix[:, column])
        oof = cross_validated(matrix, unanswerable)
        recall, false = recall_within(unanswerable, oof, args.max_false)
        print(f"  {'all signals, logistic, 5-fold CV':<40} {recall:.3f} ({false:.3f})")
        curves[name] = [("all signals, 5-fold CV", *curve(unanswerable, oof))]
        curves[name].append((f"best single: {best_single[1]}", *curve(unanswerable, best_single[2])))
        for other, (_, other_matrix, other_unanswerable) in data.items():
            if other == name:
                continue
            model = _model().fit(other_matrix, other_unanswerable)
            recall, false = recall_within(unanswerable, model.predict_proba(matrix)[:, 1], args.max_false)
            print(f"  {'all signals, trained on ' + other:<40} {recall:.3f} ({false:.3f})")
        print(f"  target: {TARGET_RECALL:.2f} at {bound}")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4.5), squeeze=False)
        for axis, (name, lines) in zip(axes[0], curves.items(), strict=True):
            for label, xs, ys in lines:
                axis.step(xs, ys, where="post", label=label)
            axis.axvline(args.max_false, color="grey", linestyle=":")
            axis.axhline(TARGET_RECALL, color="grey", linestyle="--")
            axis.plot([args.max_false], [TARGET_RECALL], "r*", markersize=12, label="target")
            axis.set(
                title=name,
                xlabel="answerable questions flagged",
                ylabel="unanswerable questions flagged",
                xlim=(0, 1),
                ylim=(0, 1.02),
            )
            axis.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
