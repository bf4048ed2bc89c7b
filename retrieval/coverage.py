"""The coverage decision: is the best evidence strong enough to answer, or should the agent escalate?

Covered when the best dense similarity among the top three passages reaches ``min_dense``, or when the
top passage (with its headings) holds at least ``min_terms`` of the question's terms. Both thresholds are
calibrated on test sets with unanswerable questions (``sopilot eval calibrate``).
"""

from __future__ import annotations

from collections.abc import Sequence

from retrieval.lexical import query_terms
from sopilot.types import Passage


def term_share(question: str, heading_path: Sequence[str], text: str) -> float:
    """Share of the question's terms (or their first five letters) found in a passage and its headings."""
    terms = query_terms(question)
    if not terms:
        return 0.0
    words = set(query_terms(" ".join(heading_path) + " " + text))
    stems = {w[:5] for w in words}
    return sum(1 for t in terms if t in words or t[:5] in stems) / len(terms)


def best_dense(passages: Sequence[Passage]) -> float:
    return max((p.scores.get("dense", 0.0) for p in passages[:3]), default=0.0)


def decide(question: str, passages: Sequence[Passage], min_dense: float, min_terms: float) -> tuple[bool, str]:
    if not passages:
        return False, "no SOP passage matches the question"
    dense = best_dense(passages)
    terms = term_share(question, passages[0].heading_path, passages[0].text)
    if dense >= min_dense or terms >= min_terms:
        return True, f"best similarity {dense:.2f}; {terms:.0%} of the question's terms in the top passage"
    return False, (
        f"weak evidence: best similarity {dense:.2f} (covered from {min_dense:.2f}) and {terms:.0%} of the "
        f"question's terms in the top passage (covered from {min_terms:.0%})"
    )
