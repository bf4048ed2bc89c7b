"""The coverage decision: is the best evidence strong enough to answer, or should the agent escalate?

Three pieces of evidence, each calibrated on test sets with unanswerable questions (``sopilot eval
calibrate``): the best dense similarity among the top three passages, the share of the question's terms
found in the top passage (with its headings), and how many of the question's terms appear in no SOP at all.
Covered when the similarity reaches ``min_dense``, or the term share reaches ``min_terms``, or fewer than
``min_unknown`` of the question's terms are unknown to the KB. Near-miss questions (about something next to
what the SOPs cover) look like covered ones on the first two; a question naming things no SOP mentions
("a GraphQL endpoint", "a Python SDK") is the one signal that separates some of them. ``min_unknown = 0``
switches that evidence off.
"""

from __future__ import annotations

from collections.abc import Sequence

from sopilot.core.types import Passage
from sopilot.index.lexical import query_terms, words_of

UNKNOWN_SCORE = "unknown_terms"  # key of the unknown-term count in the top passage's scores


def share_found(terms: Sequence[str], heading_path: Sequence[str], text: str) -> float:
    """Share of ``terms`` (or their first five letters) found in a passage and its headings; 0 without terms."""
    if not terms:
        return 0.0
    words = set(words_of(" ".join(heading_path) + " " + text))  # all of the passage's words, not the first 48
    stems = {w[:5] for w in words}
    return sum(1 for t in terms if t in words or t[:5] in stems) / len(terms)


def term_share(question: str, heading_path: Sequence[str], text: str) -> float:
    """Share of the question's terms (or their first five letters) found in a passage and its headings."""
    return share_found(query_terms(question), heading_path, text)


def best_dense(passages: Sequence[Passage]) -> float:
    return max((p.scores.get("dense", 0.0) for p in passages[:3]), default=0.0)


def is_covered(dense: float, terms: float, unknown: int, min_dense: float, min_terms: float, min_unknown: int) -> bool:
    """The rule itself, shared with calibration."""
    return dense >= min_dense or terms >= min_terms or (min_unknown > 0 and unknown < min_unknown)


def decide(
    question: str,
    passages: Sequence[Passage],
    min_dense: float,
    min_terms: float,
    unknown: Sequence[str] = (),
    min_unknown: int = 0,
) -> tuple[bool, str]:
    """Covered or not, with the reason; ``unknown`` are the question's terms that no SOP contains."""
    if not passages:
        return False, "no SOP passage matches the question"
    dense = best_dense(passages)
    terms = term_share(question, passages[0].heading_path, passages[0].text)
    absent = f"; not in any SOP: {', '.join(unknown)}" if unknown else ""
    if is_covered(dense, terms, len(unknown), min_dense, min_terms, min_unknown):
        return True, f"best similarity {dense:.2f}; {terms:.0%} of the question's terms in the top passage{absent}"
    return False, (
        f"weak evidence: best similarity {dense:.2f} (covered from {min_dense:.2f}), {terms:.0%} of the "
        f"question's terms in the top passage (covered from {min_terms:.0%}){absent}"
    )
