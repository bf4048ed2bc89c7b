"""Calibrate the coverage decision from runs: thresholds that flag unanswerable questions, spare answerable ones.

The decision (``sopilot.retrieval.coverage``): covered when the best dense similarity of the top three passages
reaches ``covered_min_dense``, OR the share of the question's terms found in the top passage reaches
``covered_min_terms``, OR fewer than ``covered_min_unknown`` of the question's terms appear in no SOP.
Calibration grid-searches the three on runs made with the decision off; the evidence is read back from the
run records (the unknown-term count travels in the top passage's scores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sopilot.retrieval.answerability import PROBABILITY_SCORE
from sopilot.retrieval.coverage import UNKNOWN_SCORE, is_covered, term_share
from sopilot.retrieval.query import focus_query

MAX_FALSE_ABSTENTION = 0.10
UNKNOWN_GRID = (0, 1, 2, 3, 4)


@dataclass(frozen=True, slots=True)
class Evidence:
    answerable: bool
    dense: float
    terms: float
    unknown: int = 0


@dataclass(frozen=True, slots=True)
class Calibration:
    min_dense: float
    min_terms: float
    min_unknown: int
    abstention_recall: float
    false_abstention_rate: float
    unanswerable: int
    answerable: int


def evidence(record: dict[str, Any]) -> Evidence:
    """The same evidence as ``sopilot.retrieval.coverage.decide``, read back from a run record."""
    passages = record.get("passages", [])
    dense = max((p.get("scores", {}).get("dense", 0.0) for p in passages[:3]), default=0.0)
    top = passages[0] if passages else None
    question = focus_query(record["question"])
    terms = term_share(question, top["heading_path"], top["text"]) if top else 0.0
    unknown = int(top.get("scores", {}).get(UNKNOWN_SCORE, 0)) if top else 0
    return Evidence(bool(record["answerable"]), float(dense), terms, unknown)


def calibrate(records: list[dict[str, Any]], max_false: float = MAX_FALSE_ABSTENTION) -> Calibration:
    """The thresholds with the best abstention recall whose false-abstention rate stays within ``max_false``.

    Ties go to the lower false-abstention rate, then to the simpler rule (unknown terms left out).
    """
    points = [evidence(r) for r in records]
    answerable = [e for e in points if e.answerable]
    unanswerable = [e for e in points if not e.answerable]
    if not answerable or not unanswerable:
        raise ValueError("calibration needs both answerable and unanswerable questions")
    dense_grid = sorted({round(e.dense, 3) for e in points} | {0.0})
    terms_grid = [i / 20 for i in range(0, 22)]
    best: Calibration | None = None
    for min_unknown in UNKNOWN_GRID:
        for min_dense in dense_grid:
            for min_terms in terms_grid:
                flagged = [
                    not is_covered(e.dense, e.terms, e.unknown, min_dense, min_terms, min_unknown) for e in points
                ]
                false_count = sum(f for f, e in zip(flagged, points, strict=True) if e.answerable)
                false_rate = false_count / len(answerable)
                if false_rate > max_false:
                    continue
                recall = sum(f for f, e in zip(flagged, points, strict=True) if not e.answerable) / len(unanswerable)
                candidate = Calibration(
                    min_dense, min_terms, min_unknown, recall, false_rate, len(unanswerable), len(answerable)
                )
                if best is None or (recall, -false_rate) > (best.abstention_recall, -best.false_abstention_rate):
                    best = candidate
    assert best is not None  # min_dense = 0 covers everything: always within the bound
    return best


@dataclass(frozen=True, slots=True)
class ProbabilityCalibration:
    min_probability: float
    abstention_recall: float
    false_abstention_rate: float
    unanswerable: int
    answerable: int


def calibrate_probability(
    records: list[dict[str, Any]], max_false: float = MAX_FALSE_ABSTENTION
) -> ProbabilityCalibration | None:
    """The answerability threshold with the best abstention recall within ``max_false``; None when the runs
    were made without an answerability model (no probability in their records)."""
    points = []
    for record in records:
        passages = record.get("passages", [])
        if not passages or PROBABILITY_SCORE not in passages[0].get("scores", {}):
            return None
        points.append((bool(record["answerable"]), float(passages[0]["scores"][PROBABILITY_SCORE])))
    answerable = [p for a, p in points if a]
    unanswerable = [p for a, p in points if not a]
    if not answerable or not unanswerable:
        raise ValueError("calibration needs both answerable and unanswerable questions")
    best = ProbabilityCalibration(0.0, 0.0, 0.0, len(unanswerable), len(answerable))
    for threshold in sorted({round(p, 4) for _, p in points}):
        false_rate = sum(p < threshold for p in answerable) / len(answerable)
        if false_rate > max_false:
            break
        recall = sum(p < threshold for p in unanswerable) / len(unanswerable)
        if (recall, -false_rate) > (best.abstention_recall, -best.false_abstention_rate):
            best = ProbabilityCalibration(threshold, recall, false_rate, len(unanswerable), len(answerable))
    return best
