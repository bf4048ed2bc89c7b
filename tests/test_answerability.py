"""The answerability model: learned from the KB by leaving SOPs out, applied to the search's evidence."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import sop, write_kb

from sopilot.core.settings import Settings
from sopilot.eval.calibrate import calibrate_probability
from sopilot.ingest.run import run_ingest
from sopilot.retrieval.answerability import (
    FEATURES,
    PROBABILITY_SCORE,
    AnswerabilityModel,
    answerability_path,
    load_answerability,
)
from sopilot.retrieval.search import open_retriever
from sopilot.train.answerability import Mined, roughen, train_answerability

MODEL = AnswerabilityModel(
    weights={"best_dense": 2.0, "term_share": 1.0, "lexical_per_term": 0.5, "unknown_share": -1.5},
    mean=dict.fromkeys(FEATURES, 0.5) | {"unknown_share": 0.0},
    scale=dict.fromkeys(FEATURES, 0.1),
    bias=0.0,
    threshold=0.5,
)
STRONG = {"best_dense": 0.8, "term_share": 0.7, "lexical_per_term": 0.6, "unknown_share": 0.0}
WEAK = {"best_dense": 0.3, "term_share": 0.5, "lexical_per_term": 0.5, "unknown_share": 0.0}


def test_the_model_decides_and_names_the_evidence_that_decided() -> None:
    covered, p, reason = MODEL.decide(STRONG)
    assert covered and p > 0.99
    assert reason.startswith("answerability 1.00 (covered from 0.50); decided by the best similarity, 0.80")
    covered, p, reason = MODEL.decide(WEAK)
    assert not covered and p < 0.05
    assert "not covered" in reason and "best similarity, 0.30" in reason
    unknown = dict(STRONG, best_dense=0.5, term_share=0.5, lexical_per_term=0.5, unknown_share=0.4)
    assert "share of the question's terms in no SOP, 40%" in MODEL.decide(unknown)[2]
    assert MODEL.decide(WEAK, threshold=0.0)[0], "a calibrated threshold replaces the model's own"


def test_the_model_round_trips_through_its_file(tmp_path: Path) -> None:
    answerability_path(tmp_path).write_text(MODEL.to_json(), encoding="utf-8")
    loaded = load_answerability(tmp_path)
    assert loaded == MODEL
    assert load_answerability(tmp_path / "none") is None


def test_calibration_finds_the_probability_threshold() -> None:
    def record(answerable: bool, p: float) -> dict:
        return {"answerable": answerable, "passages": [{"scores": {PROBABILITY_SCORE: p}}]}

    records = [record(True, p) for p in (0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3, 0.05)]
    records += [record(False, p) for p in (0.02, 0.04, 0.2, 0.55)]
    result = calibrate_probability(records, max_false=0.10)
    assert result is not None
    assert result.min_probability == 0.3 and result.false_abstention_rate == 0.1  # 0.05 flagged of 10
    assert result.abstention_recall == 0.75  # 0.02, 0.04 and 0.2 flagged; 0.55 looks covered
    assert calibrate_probability([{"answerable": True, "passages": [{"scores": {}}]}]) is None


def test_roughened_questions_keep_their_sop_and_mix_in_other_words() -> None:
    mined = [Mined("a.md", "reset the two factor authentication for a reviewer who lost the phone")]
    (rough,) = roughen(mined, ["invoice", "export", "taxonomy"], keep=0.5, seed=1)
    assert rough.path == "a.md" and rough.question != mined[0].question
    assert set(rough.question.split()) <= set(mined[0].question.split()) | {"invoice", "export", "taxonomy"}


TOPICS = {
    "sso": ("SSO login fails", "SAML response not valid after opening the console", "Sign in from the Okta tile."),
    "api": ("Partner API rate limits", "HTTP 429 answers with a Retry-After header", "Wait the Retry-After seconds."),
    "queue": ("Queue backlog", "The oldest item in the priority queue is older than an hour", "Move reviewers."),
    "export": ("Export fails", "Export Center job stuck in running for more than an hour", "Cancel and rerun."),
    "tags": ("Labeler tag missing", "A policy tag is missing from the picker after a release", "Reload taxonomy."),
    "appeal": ("Stuck appeals", "An appeal stays in review past its deadline", "Reassign the appeal."),
}


def test_training_on_a_kb_writes_a_model_the_search_uses(tmp_path: Path, embedder) -> None:
    files = {
        f"{name}.md": sop(
            f"T-{i}", title, f"## Symptoms\n\n- {symptom}\n\n## Resolution\n\n1. {fix}\n2. Tell the user.\n"
        )
        for i, (name, (title, symptom, fix)) in enumerate(TOPICS.items())
    }
    settings = Settings(kb_dir=write_kb(tmp_path / "kb", files), index_dir=tmp_path / "index")
    run_ingest(settings, embedder, progress=False)
    model = train_answerability(settings, embedder, progress=False)
    assert answerability_path(settings.index_dir).is_file()
    assert model.trained_on["sops"] == len(TOPICS) and model.trained_on["examples"] > 2 * len(TOPICS)
    assert 0.0 < model.threshold < 1.0
    assert model.weights["best_dense"] > 0, "more similar evidence means more likely covered"
    served = open_retriever(settings.model_copy(update={"coverage": "model"}), embedder)
    result = served.search("HTTP 429 Retry-After from the partner API", k=3)
    assert PROBABILITY_SCORE in result.passages[0].scores
    assert result.reason.startswith("answerability ")
    rule = open_retriever(settings, embedder).search("HTTP 429 Retry-After from the partner API", k=3)
    assert PROBABILITY_SCORE not in rule.passages[0].scores, "the rule decides unless the model is asked for"


def test_training_refuses_a_kb_too_small_to_leave_out(tmp_path: Path, embedder) -> None:
    files = {"a.md": sop("T-1", "One", "## Fix\n\n1. Do it.\n2. Done.\n")}
    settings = Settings(kb_dir=write_kb(tmp_path / "kb", files), index_dir=tmp_path / "index")
    run_ingest(settings, embedder, progress=False)
    with pytest.raises(ValueError, match="at least 5 active SOPs"):
        train_answerability(settings, embedder, progress=False)
