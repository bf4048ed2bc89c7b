"""The coverage decision and its calibration, on hand-computed evidence; unknown terms from a real FTS5 index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sopilot.core.types import Passage
from sopilot.eval.calibrate import calibrate, evidence
from sopilot.index.lexical import LexicalDoc, LexicalIndex
from sopilot.retrieval.coverage import UNKNOWN_SCORE, decide, is_covered, term_share


def passage(text: str, dense: float, heading: tuple[str, ...] = ("SSO", "Resolution"), **scores: float) -> Passage:
    return Passage(
        chunk_id="c",
        path="a.md",
        title="SSO",
        heading_path=heading,
        anchor="resolution",
        start_line=1,
        end_line=5,
        text=text,
        score=1.0,
        scores={"dense": dense, **scores},
        metadata={},
    )


def test_term_share_hand_computed() -> None:
    # terms: saml, response, invalid, console (stop words out); "respon" stems match "responses"
    share = term_share("the SAML response is invalid in console", ("SSO", "SAML"), "Responses fail")
    assert share == pytest.approx(2 / 4)


def test_term_share_reads_the_whole_passage_not_its_first_48_words() -> None:
    filler = " ".join(f"word{i}" for i in range(60))
    assert term_share("okta unlock", (), f"{filler} okta unlock") == 1.0


@pytest.mark.parametrize(
    ("dense", "terms", "unknown", "min_unknown", "covered"),
    [
        (0.60, 0.0, 5, 2, True),  # strong similarity wins
        (0.30, 0.5, 5, 2, True),  # enough of the question in the top passage
        (0.30, 0.1, 1, 2, True),  # weak, but only one term the KB does not know: a typo is not a topic
        (0.30, 0.1, 2, 2, False),  # weak and two unknown terms
        (0.30, 0.1, 0, 0, False),  # min_unknown 0: unknown terms left out, the old two-threshold rule
    ],
)
def test_is_covered(dense: float, terms: float, unknown: int, min_unknown: int, covered: bool) -> None:
    assert is_covered(dense, terms, unknown, 0.5, 0.4, min_unknown) is covered


def test_decide_names_the_unknown_terms() -> None:
    passages = [passage("Close all console tabs and sign in from the Okta dashboard tile.", 0.31)]
    covered, reason = decide("graphql endpoint for okta sdk", passages, 0.5, 0.5, ["graphql", "sdk"], 2)
    assert covered is False and "weak evidence" in reason and "not in any SOP: graphql, sdk" in reason
    covered, _ = decide("graphql endpoint for okta sdk", passages, 0.5, 0.5, ["graphql"], 2)
    assert covered is True
    assert decide("anything", [], 0.5, 0.5) == (False, "no SOP passage matches the question")


def test_unknown_terms_from_the_index(tmp_path: Path) -> None:
    index = LexicalIndex(tmp_path / "lex.sqlite3")
    index.upsert(
        [
            LexicalDoc("a", "Partner API", "Errors", "Partners get 429 responses when throttled.", {"path": "a.md"}),
            LexicalDoc("b", "Exports", "Limits", "Export Center jobs.", {"path": "b.md", "status": "draft"}),
        ]
    )
    # "partners" and "responses" match through Porter stems; "exports" is in a draft SOP: still known
    assert index.unknown_terms(["partners", "responses", "graphql", "exports", "sdk", "429"]) == ["graphql", "sdk"]
    index.close()


def record(qid: str, answerable: bool, dense: float, text: str, unknown: int, question: str) -> dict[str, Any]:
    top = {"heading_path": ["SOP"], "text": text, "scores": {"dense": dense, UNKNOWN_SCORE: unknown}}
    return {"id": qid, "answerable": answerable, "question": question, "passages": [top]}


def test_evidence_reads_the_run_record() -> None:
    r = record("u1", False, 0.42, "okta logs kept", 2, "Hi team, how long are okta logs kept in tableau? Thanks, Ana")
    e = evidence(r)  # the greeting and the signature are not question terms
    assert (e.answerable, e.dense, e.unknown) == (False, 0.42, 2)
    assert e.terms == pytest.approx(3 / 5)  # long, okta, logs, kept, tableau: 3 found


def test_calibrate_hand_computed() -> None:
    records = [
        # answerable: strong similarity, or weak similarity with its words in the passage
        record("a1", True, 0.70, "x", 0, "alpha"),
        record("a2", True, 0.65, "x", 3, "alpha"),
        record("a3", True, 0.40, "alpha beta", 2, "alpha beta"),
        record("a4", True, 0.38, "x", 1, "gamma delta"),
        # unanswerable: weak everywhere; u1 and u2 name two things no SOP knows, u3 only one
        record("u1", False, 0.45, "x", 2, "omega"),
        record("u2", False, 0.44, "x", 3, "omega"),
        record("u3", False, 0.42, "x", 1, "omega"),
    ]
    best = calibrate(records, max_false=0.0)
    # a4 (0.38, none of its terms in the passage) is covered only by having fewer than min_unknown unknown
    # terms: min_unknown 2 spares it and flags u1, u2 (two or more unknown, similarity under min_dense, which
    # must exceed 0.45) but not u3 (one unknown). With unknown terms left out (0) or min_unknown 1, a4 forces
    # min_dense <= 0.38, which flags nothing. a3 (0.40, unknown 2) is covered by its term share of 1.0.
    assert (best.min_unknown, best.abstention_recall, best.false_abstention_rate) == (2, pytest.approx(2 / 3), 0.0)
    assert 0.45 < best.min_dense <= 0.65 and 0.0 < best.min_terms <= 1.0
    loose = calibrate(records, max_false=0.25)  # one answerable may be flagged: a4, then all three are caught
    assert loose.abstention_recall == 1.0 and loose.false_abstention_rate == 0.25


def test_calibrate_needs_both_kinds() -> None:
    with pytest.raises(ValueError, match="both"):
        calibrate([record("a1", True, 0.7, "x", 0, "alpha")])
