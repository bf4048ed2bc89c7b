"""The answerability model: how likely the SOPs answer a question, from the evidence a search produces.

A logistic model over a few numbers every search computes anyway (the best dense similarity of the top
three passages, the share of the question's terms in the top passage, the top passage's BM25 score per
question term, the share of the question's terms that no SOP contains). It is learned from the KB itself by
leaving SOPs out (``sopilot.train.answerability``): questions mined from an SOP, searched with that SOP in
the index, are covered; searched without it, they look like the near-misses users ask. Stored as JSON in the
index folder; the coverage decision uses it when it is there, with the threshold calibrated by ``sopilot eval
calibrate`` (``SOPILOT_COVERED_MIN_PROBABILITY``), and the rule of ``sopilot.retrieval.coverage`` otherwise.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sopilot.core.types import Passage
from sopilot.retrieval.coverage import best_dense, term_share

ANSWERABILITY_FILE = "answerability.json"
PROBABILITY_SCORE = "answerable"  # key of the model's probability in the top passage's scores
FEATURES = ("best_dense", "term_share", "lexical_per_term", "unknown_share")
LABELS = {
    "best_dense": "best similarity",
    "term_share": "share of the question's terms in the top passage",
    "lexical_per_term": "keyword score per question term",
    "unknown_share": "share of the question's terms in no SOP",
}


def evidence_of(focus: str, passages: Sequence[Passage], n_terms: int, unknown: int) -> dict[str, float]:
    """The model's inputs for one search (``focus``: the question as searched; ``unknown``: its terms that no
    SOP contains)."""
    if not passages:
        return dict.fromkeys(FEATURES, 0.0)
    top = passages[0]
    return {
        "best_dense": best_dense(passages),
        "term_share": term_share(focus, top.heading_path, top.text),
        "lexical_per_term": float(top.scores.get("lexical", 0.0)) / max(n_terms, 1),
        "unknown_share": unknown / max(n_terms, 1),
    }


@dataclass(frozen=True, slots=True)
class AnswerabilityModel:
    """Standardised logistic regression: P(covered) = sigmoid(bias + sum(w * (x - mean) / scale))."""

    weights: dict[str, float]
    mean: dict[str, float]
    scale: dict[str, float]
    bias: float
    threshold: float  # covered at or above; the default from the leave-out examples, calibrated on runs
    trained_on: dict[str, Any] = field(default_factory=dict)

    def contributions(self, evidence: Mapping[str, float]) -> dict[str, float]:
        return {
            name: self.weights[name] * (evidence.get(name, 0.0) - self.mean[name]) / (self.scale[name] or 1.0)
            for name in self.weights
        }

    def probability(self, evidence: Mapping[str, float]) -> float:
        z = self.bias + sum(self.contributions(evidence).values())
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def decide(self, evidence: Mapping[str, float], threshold: float | None = None) -> tuple[bool, float, str]:
        """Covered or not, the probability, and a reason that names the evidence that decided it."""
        limit = self.threshold if threshold is None else threshold
        p = self.probability(evidence)
        covered = p >= limit
        parts = self.contributions(evidence)
        # The piece of evidence that pushed hardest toward the verdict.
        name = max(parts, key=lambda n: parts[n]) if covered else min(parts, key=lambda n: parts[n])
        value = evidence.get(name, 0.0)
        shown = f"{value:.0%}" if name in ("term_share", "unknown_share") else f"{value:.2f}"
        verdict = "covered" if covered else "not covered"
        return (
            covered,
            p,
            (f"answerability {p:.2f} ({verdict} from {limit:.2f}); decided by the {LABELS[name]}, {shown}"),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> AnswerabilityModel:
        data = json.loads(text)
        return cls(
            weights={k: float(v) for k, v in data["weights"].items()},
            mean={k: float(v) for k, v in data["mean"].items()},
            scale={k: float(v) for k, v in data["scale"].items()},
            bias=float(data["bias"]),
            threshold=float(data["threshold"]),
            trained_on=dict(data.get("trained_on", {})),
        )


def answerability_path(index_dir: Path) -> Path:
    return index_dir / ANSWERABILITY_FILE


def load_answerability(index_dir: Path) -> AnswerabilityModel | None:
    """The model trained for this index, or None (then the coverage rule decides)."""
    path = answerability_path(index_dir)
    if not path.is_file():
        return None
    return AnswerabilityModel.from_json(path.read_text(encoding="utf-8"))
