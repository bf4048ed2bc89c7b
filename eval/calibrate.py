"""Calibrate the coverage decision from runs: thresholds that flag unanswerable questions, spare answerable ones.

The decision (see ``retrieval.search.Retriever._coverage``): covered when the best dense similarity of the
top three passages reaches ``covered_min_dense`` OR the share of the question's terms found in the top
passage reaches ``covered_min_terms``. Calibration grid-searches both on runs made with the decision off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from retrieval.coverage import term_share

MAX_FALSE_ABSTENTION = 0.10


@dataclass(frozen=True, slots=True)
class Evidence:
    answerable: bool
    dense: float
    terms: float


@dataclass(frozen=True, slots=True)
class Calibration:
    min_dense: float
    min_terms: float
    abstention_recall: float
    false_abstention_rate: float
    unanswerable: int
    answerable: int


def evidence(record: dict[str, Any]) -> Evidence:
    passages = record.get("passages", [])
    # the same evidence as retrieval.coverage.decide, read back from a run record
    dense = max((p.get("scores", {}).get("dense", 0.0) for p in passages[:3]), default=0.0)
    top = passages[0] if passages else None
    terms = term_share(record["question"], top["heading_path"], top["text"]) if top else 0.0
    return Evidence(bool(record["answerable"]), float(dense), terms)


def calibrate(records: list[dict[str, Any]], max_false: float = MAX_FALSE_ABSTENTION) -> Calibration:
    """The thresholds with the best abstention recall whose false-abstention rate stays within ``max_false``."""
    points = [evidence(r) for r in records]
    answerable = [e for e in points if e.answerable]
    unanswerable = [e for e in points if not e.answerable]
    if not answerable or not unanswerable:
        raise ValueError("calibration needs both answerable and unanswerable questions")
    dense_grid = sorted({round(e.dense, 3) for e in points} | {0.0})
    terms_grid = [i / 20 for i in range(0, 22)]
    best: Calibration | None = None
    for min_dense in dense_grid:
        for min_terms in terms_grid:

            def covered(e: Evidence, d: float = min_dense, t: float = min_terms) -> bool:
                return e.dense >= d or e.terms >= t

            false_rate = sum(not covered(e) for e in answerable) / len(answerable)
            if false_rate > max_false:
                continue
            recall = sum(not covered(e) for e in unanswerable) / len(unanswerable)
            candidate = Calibration(min_dense, min_terms, recall, false_rate, len(unanswerable), len(answerable))
            if best is None or (recall, -false_rate) > (best.abstention_recall, -best.false_abstention_rate):
                best = candidate
    assert best is not None  # min_dense = 0 covers everything: always within the bound
    return best
