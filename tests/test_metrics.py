"""Evaluation metrics against hand-computed values and against independent implementations."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from sopilot.eval.metrics import (
    HEADLINE_METRICS,
    abstention,
    answer_similarity,
    citation_precision,
    compute_metrics,
    faithfulness,
    get_metric,
    hit_at_k,
    latency,
    mrr_at_k,
    ndcg_at_k,
    passage_relevance,
    per_question,
    percentile,
    recall_at_k,
    rouge_l_f1,
    sentence_support,
    token_f1,
)

L3, L4, L5 = 1 / math.log2(3), 1 / math.log2(4), 1 / math.log2(5)  # discounts at ranks 2, 3, 4


def rel(path: str, start: int, end: int, heading: str = "H") -> dict[str, Any]:
    return {"path": path, "heading": heading, "start": start, "end": end}


def psg(path: str, start: int, end: int, chunk_id: str = "", text: str = "") -> dict[str, Any]:
    return {"path": path, "start_line": start, "end_line": end, "chunk_id": chunk_id, "text": text}


def record(qid: str, answerable: bool = True, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": qid,
        "answerable": answerable,
        "tags": [],
        "relevant": [],
        "passages": [],
        "covered": True,
        "draft": None,
        "reference_answer": "",
        "latency_ms": 1.0,
    }
    return base | fields


# --- relevance -------------------------------------------------------------------------------------------

RELEVANT = [rel("a.md", 10, 20), rel("a.md", 30, 40), rel("b.md", 1, 5)]


@pytest.mark.parametrize(
    ("passage", "section", "sop"),
    [
        (psg("a.md", 35, 45), 1, 0),  # overlaps the 2nd span; at SOP level the first a.md entry wins
        (psg("a.md", 21, 29), None, 0),  # between the spans: right SOP, wrong section
        (psg("a.md", 20, 25), 0, 0),  # shares line 20 only: spans are inclusive
        (psg("a.md", 5, 9), None, 0),  # ends just before line 10
        (psg("b.md", 3, 3), 2, 2),
        (psg("c.md", 1, 100), None, None),
    ],
)
def test_passage_relevance(passage: dict[str, Any], section: int | None, sop: int | None) -> None:
    assert passage_relevance(passage, RELEVANT, "section") == section
    assert passage_relevance(passage, RELEVANT, "sop") == sop


def test_passage_relevance_rejects_unknown_level() -> None:
    with pytest.raises(ValueError, match="level"):
        passage_relevance(psg("a.md", 1, 2), RELEVANT, "chunk")  # type: ignore[arg-type]


# --- ranked retrieval ------------------------------------------------------------------------------------

TWO = [rel("x.md", 1, 10), rel("y.md", 1, 10)]
# ranks: 1 miss, 2 x.md (1st relevant), 3 miss, 4 y.md (2nd relevant), 5 x.md again (duplicate of rank 2)
RANKED = [psg("z.md", 1, 9), psg("x.md", 5, 8), psg("z.md", 20, 30), psg("y.md", 2, 3), psg("x.md", 1, 4)]


def test_ranked_list_hand_computed() -> None:
    assert hit_at_k(RANKED, TWO, 1, "section") == 0.0
    assert hit_at_k(RANKED, TWO, 3, "section") == 1.0
    assert mrr_at_k(RANKED, TWO, 1, "section") == 0.0
    assert mrr_at_k(RANKED, TWO, 10, "section") == 0.5  # first relevant at rank 2
    assert recall_at_k(RANKED, TWO, 3, "section") == 0.5  # x found, y not yet
    assert recall_at_k(RANKED, TWO, 5, "section") == 1.0
    # relevant at ranks 2 and 4 of 2 relevant; rank 5 repeats x and gains 0:
    # nDCG@10 = (1/log2(3) + 1/log2(5)) / (1 + 1/log2(3)) = (0.6309 + 0.4307) / 1.6309 = 0.6509
    assert ndcg_at_k(RANKED, TWO, 10, "section") == pytest.approx((L3 + L5) / (1 + L3))
    assert ndcg_at_k(RANKED, TWO, 10, "section") == pytest.approx(0.65093, abs=1e-5)
    # nDCG@3 = (1/log2(3)) / (1 + 1/log2(3)) = 0.3869
    assert ndcg_at_k(RANKED, TWO, 3, "section") == pytest.approx(L3 / (1 + L3))
    # nDCG@1: ideal has one gain (min(1, 2)), actual none -> 0
    assert ndcg_at_k(RANKED, TWO, 1, "section") == 0.0


def test_duplicates_of_one_section_gain_once() -> None:
    passages = [psg("x.md", 1, 3), psg("x.md", 4, 6), psg("y.md", 1, 2)]
    # DCG = 1 + 0 (x again) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) = 1.6309 -> 0.9197
    # (crediting the duplicate would give (1 + 0.6309 + 0.5) / 1.6309 = 1.31, above 1)
    assert ndcg_at_k(passages, TWO, 10, "section") == pytest.approx((1 + L4) / (1 + L3))
    assert recall_at_k(passages, TWO, 2, "section") == 0.5  # two chunks, one distinct section
    only_x = passages[:2]
    # one section found twice out of two: DCG = 1, IDCG = 1 + 1/log2(3)
    assert ndcg_at_k(only_x, TWO, 10, "section") == pytest.approx(1 / (1 + L3))


def test_sop_and_section_levels_differ() -> None:
    relevant = [rel("x.md", 1, 10, "A"), rel("x.md", 50, 60, "B")]
    passages = [psg("x.md", 20, 30), psg("x.md", 55, 58)]
    # section level: rank 1 is the right SOP but neither section; rank 2 overlaps B
    assert hit_at_k(passages, relevant, 1, "section") == 0.0
    assert mrr_at_k(passages, relevant, 10, "section") == 0.5
    assert recall_at_k(passages, relevant, 10, "section") == 0.5  # A never found
    assert ndcg_at_k(passages, relevant, 10, "section") == pytest.approx(L3 / (1 + L3))
    # SOP level: one relevant item (the path x.md), found at rank 1; rank 2 repeats it
    assert hit_at_k(passages, relevant, 1, "sop") == 1.0
    assert mrr_at_k(passages, relevant, 10, "sop") == 1.0
    assert recall_at_k(passages, relevant, 1, "sop") == 1.0  # 1 distinct path of 1, not 1 of 2 entries
    assert ndcg_at_k(passages, relevant, 10, "sop") == 1.0  # DCG 1 + 0, IDCG min(10, 1 path) = 1


def test_sop_level_counts_distinct_paths() -> None:
    relevant = [rel("x.md", 1, 10), rel("x.md", 50, 60), rel("y.md", 1, 5)]
    passages = [psg("x.md", 70, 80), psg("q.md", 1, 2), psg("y.md", 9, 9)]
    # 2 distinct paths; both in the top 3 (at SOP level) -> recall 1.0; top 1 -> 1/2
    assert recall_at_k(passages, relevant, 3, "sop") == 1.0
    assert recall_at_k(passages, relevant, 1, "sop") == 0.5
    # gains at ranks 1 and 3 of 2 items: (1 + 1/log2(4)) / (1 + 1/log2(3)) = 1.5 / 1.6309
    assert ndcg_at_k(passages, relevant, 10, "sop") == pytest.approx((1 + L4) / (1 + L3))
    # section level: nothing overlaps
    assert recall_at_k(passages, relevant, 3, "section") == 0.0


def test_no_passages_and_k_beyond_the_list() -> None:
    for fn in (hit_at_k, recall_at_k, mrr_at_k, ndcg_at_k):
        assert fn([], TWO, 10, "section") == 0.0
        assert fn([], TWO, 10, "sop") == 0.0
        assert fn(RANKED, [], 10, "section") == 0.0  # no relevant items: nothing to find, no division by 0
    three = [*TWO, rel("w.md", 1, 2)]
    passages = [psg("z.md", 1, 2), psg("x.md", 1, 2)]
    # list of 2 scored at k = 10: gain at rank 2; ideal has min(10, 3) = 3 gains
    # nDCG@10 = (1/log2(3)) / (1 + 1/log2(3) + 1/log2(4)) = 0.6309 / 2.1309 = 0.2961
    assert ndcg_at_k(passages, three, 10, "section") == pytest.approx(L3 / (1 + L3 + L4))
    assert recall_at_k(passages, three, 10, "section") == pytest.approx(1 / 3)
    assert hit_at_k(passages, three, 10, "section") == 1.0


def _sklearn_case(rng: np.random.Generator) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Random ranked list where each relevant section is matched by at most one passage (unique items)."""
    n_relevant = int(rng.integers(1, 5))
    relevant = [rel(f"doc{i}.md", 1, 10) for i in range(n_relevant)]
    found = [i for i in range(n_relevant) if rng.random() < 0.6]
    n_passages = int(rng.integers(len(found), len(found) + 10))
    positions = rng.choice(n_passages, size=len(found), replace=False) if found else []
    passages = [psg(f"noise{j}.md", 1, 10) for j in range(n_passages)]
    for item, pos in zip(found, positions, strict=True):
        passages[int(pos)] = psg(f"doc{item}.md", 3, 4)
    return passages, relevant, int(rng.choice([1, 3, 5, 10]))


def test_ndcg_matches_sklearn_on_random_binary_cases() -> None:
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(7)
    for _ in range(200):
        passages, relevant, k = _sklearn_case(rng)
        # sklearn ranks the documents it is given by y_score and takes its ideal DCG from their y_true. To
        # score the same thing: the retrieved passages come first with decreasing scores and y_true = 1 when
        # relevant; then non-relevant fillers so that, when the list is shorter than k, the empty positions
        # stay empty; last, the relevant items never retrieved (y_true = 1, lowest scores, beyond rank k), so
        # sklearn's ideal ranking counts them as ours does. Items are unique, so no duplicate rule applies.
        y_true = [int(passage_relevance(p, relevant, "section") is not None) for p in passages]
        missing = len(relevant) - sum(y_true)
        y_true += [0] * max(0, k - len(passages)) + [1] * missing
        y_true += [0] * max(0, 2 - len(y_true))  # sklearn wants at least 2 documents; trailing zeros are inert
        y_score = list(range(len(y_true), 0, -1))
        expected = ndcg_score(np.array([y_true]), np.array([y_score]), k=k)
        assert ndcg_at_k(passages, relevant, k, "section") == pytest.approx(expected, abs=1e-12), (y_true, k)


# --- per question and the whole metrics -----------------------------------------------------------------


def test_per_question() -> None:
    scores = per_question(record("q1", relevant=TWO, passages=RANKED))
    assert scores["id"] == "q1"
    assert scores["first_relevant_rank_section"] == 2
    assert scores["first_relevant_rank_sop"] == 2
    assert scores["section"]["hit@1"] == 0.0 and scores["section"]["hit@5"] == 1.0
    assert scores["section"]["mrr@10"] == 0.5
    assert set(scores["sop"]) == {f"{m}@{k}" for m in ("hit", "recall", "mrr", "ndcg") for k in (1, 3, 5, 10)}
    empty = per_question(record("q2", relevant=TWO), ks=(5,))
    assert empty["first_relevant_rank_section"] is None
    assert empty["section"] == {"hit@5": 0.0, "recall@5": 0.0, "mrr@5": 0.0, "ndcg@5": 0.0}


def _run() -> list[dict[str, Any]]:
    sso = [rel("access/sso.md", 40, 58)]
    return [
        # section hit at rank 1
        record("a1", tags=["chat", "typo"], relevant=sso, passages=[psg("access/sso.md", 42, 50)], latency_ms=10),
        # right SOP at rank 1, right section at rank 3
        record(
            "a2",
            tags=["chat"],
            relevant=sso,
            latency_ms=20,
            passages=[psg("access/sso.md", 1, 9), psg("z.md", 1, 2), psg("access/sso.md", 55, 60)],
        ),
        # nothing relevant; wrongly abstains
        record("a3", tags=["typo"], relevant=sso, passages=[psg("z.md", 1, 2)], covered=False, latency_ms=30),
        # unanswerable: one flagged, one not; they must not enter the retrieval means or the tag counts
        record(
            "u1",
            answerable=False,
            tags=["chat"],
            passages=[psg("access/sso.md", 42, 50)],
            covered=False,
            latency_ms=40,
        ),
        record("u2", answerable=False, tags=["chat"], covered=None, latency_ms=50),
    ]


def test_compute_metrics_hand_computed() -> None:
    m = compute_metrics(_run())
    assert (m["questions"], m["answerable"]) == (5, 3)
    section, sop = m["retrieval"]["section"], m["retrieval"]["sop"]
    # section hits: a1 rank 1, a2 rank 3, a3 none
    assert section["hit@1"] == 0.3333  # 1/3, rounded to 4 dp
    assert section["hit@3"] == 0.6667
    assert section["mrr@10"] == round((1 + 1 / 3 + 0) / 3, 4)  # 0.4444
    # nDCG@10 (one relevant item): a1 1, a2 1/log2(4) = 0.5, a3 0 -> 1.5 / 3
    assert section["ndcg@10"] == 0.5
    # SOP level: a1 and a2 both at rank 1
    assert sop["hit@1"] == 0.6667 and sop["mrr@10"] == 0.6667
    assert m["abstention"]["recall"] == 0.5  # u1 flagged of u1, u2
    assert m["abstention"]["precision"] == 0.5  # u1 right, a3 wrong
    assert m["abstention"]["false_abstention_rate"] == 0.3333
    assert m["latency_ms"]["p50"] == 30.0 and m["latency_ms"]["max"] == 50.0
    assert m["citation_precision"] is None and m["faithfulness"] is None  # no drafts
    assert m["by_tag"]["chat"]["questions"] == 2  # a1, a2 (u1, u2 are unanswerable)
    assert m["by_tag"]["chat"]["section"]["hit@5"] == 1.0
    assert m["by_tag"]["chat"]["section"]["mrr@10"] == round((1 + 1 / 3) / 2, 4)
    assert m["by_tag"]["typo"]["questions"] == 2  # a1, a3
    assert m["by_tag"]["typo"]["sop"]["hit@5"] == 0.5
    json.dumps(m)  # metrics.json must serialise


def test_compute_metrics_without_answerable_questions() -> None:
    m = compute_metrics([record("u", answerable=False, covered=False)], ks=(1, 5))
    assert m["answerable"] == 0
    assert m["retrieval"]["section"] == {f"{n}@{k}": None for n in ("hit", "recall", "mrr", "ndcg") for k in (1, 5)}
    assert m["by_tag"] == {}
    assert m["abstention"]["recall"] == 1.0 and m["abstention"]["false_abstention_rate"] is None


def test_headline_metrics_and_get_metric() -> None:
    m = compute_metrics(_run())
    values = {name: get_metric(m, name) for name in HEADLINE_METRICS}
    drafts = {"citation_precision", "faithfulness"}  # this run has no drafts
    assert all(isinstance(v, float) for name, v in values.items() if name not in drafts), values
    assert all(values[name] is None for name in drafts)
    assert get_metric(m, "retrieval.section.hit@3") == 0.6667
    assert get_metric(m, "abstention.flagged") == 2.0  # ints come back as floats
    assert get_metric(m, "retrieval.section") is None  # not a number
    assert get_metric(m, "retrieval.chunk.hit@1") is None
    assert get_metric(m, "citation_precision") is None
    assert get_metric({"a": True}, "a") is None


# --- abstention ------------------------------------------------------------------------------------------


def test_abstention_counts() -> None:
    records = [
        record("u1", answerable=False, covered=False),
        record("u2", answerable=False, covered=False),
        record("u3", answerable=False, covered=None),  # no decision: counts as covered
        record("a1", covered=True),
        record("a2", covered=False),
        record("a3", covered=None),
        {k: v for k, v in record("a4").items() if k != "covered"},  # field missing: covered
    ]
    result = abstention(records)
    # flagged: u1, u2, a2 -> precision 2/3; unanswerable flagged 2 of 3; answerable flagged 1 of 4
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["false_abstention_rate"] == 0.25
    assert (result["flagged"], result["unanswerable"], result["answerable"]) == (3, 3, 4)
    assert (result["true_positives"], result["false_positives"], result["false_negatives"]) == (2, 1, 1)


def test_abstention_undefined_ratios_are_none() -> None:
    nothing_flagged = abstention([record("a1"), record("a2", covered=None)])
    assert nothing_flagged["precision"] is None  # 0 flagged: 0/0
    assert nothing_flagged["recall"] is None  # 0 unanswerable: 0/0
    assert nothing_flagged["false_abstention_rate"] == 0.0  # 0 of 2: defined
    assert set(abstention([]).values()) == {None, 0}


# --- citations and faithfulness --------------------------------------------------------------------------


def _cite(n: int, path: str, start: int, end: int, chunk_id: str = "", quote: str = "") -> dict[str, Any]:
    return {"n": n, "chunk_id": chunk_id, "path": path, "start_line": start, "end_line": end, "quote": quote}


def test_citation_precision_with_an_unanswerable_question() -> None:
    answerable = record(
        "a",
        relevant=[rel("x.md", 1, 10)],
        draft={
            "text": "",
            "sentences": [],
            "citations": [
                _cite(1, "x.md", 5, 9),  # relevant section
                _cite(2, "x.md", 20, 30),  # right SOP, other section
                _cite(3, "y.md", 1, 3),  # other SOP
            ],
        },
    )
    # an unanswerable question's citations are never relevant, even if its record carried a matching span
    unanswerable = record(
        "u",
        answerable=False,
        relevant=[rel("x.md", 1, 10)],
        draft={"text": "", "sentences": [], "citations": [_cite(1, "x.md", 5, 9)]},
    )
    no_draft = record("n", relevant=[rel("x.md", 1, 10)])
    records = [answerable, unanswerable, no_draft]
    assert citation_precision(records) == 0.25  # 1 relevant of 4 citations
    assert citation_precision(records, level="sop") == 0.5  # x.md 5-9 and x.md 20-30 of 4
    assert citation_precision([no_draft]) is None  # no citations: 0/0


def test_citation_precision_leaves_out_abstentions() -> None:
    escalation = [_cite(1, "escalation.md", 1, 5)]
    abstained = {"text": "", "covered": False, "sentences": [], "citations": escalation}
    answered = {"text": "", "covered": True, "sentences": [], "citations": [_cite(1, "x.md", 5, 9)]}
    records = [
        record("a-abstained", relevant=[rel("x.md", 1, 10)], draft=abstained),  # wrongly: abstention recall's job
        record("u-abstained", answerable=False, draft=abstained),  # rightly
        record("a-answered", relevant=[rel("x.md", 1, 10)], draft=answered),
        record("u-answered", answerable=False, relevant=[rel("x.md", 1, 10)], draft=answered),  # let through
    ]
    assert citation_precision(records) == 0.5  # a-answered right, u-answered wrong; abstentions not counted
    assert citation_precision(records[:2]) is None
    assert citation_precision([record("e", draft={"text": "", "sentences": [], "citations": []})]) is None


def test_citation_precision_leaves_out_escalation_citations() -> None:
    escalation = {**_cite(2, "x.md", 40, 45), "role": "escalation"}  # the SOP's Escalation section
    draft = {"text": "", "covered": True, "sentences": [], "citations": [_cite(1, "x.md", 5, 9), escalation]}
    assert citation_precision([record("a", relevant=[rel("x.md", 1, 10)], draft=draft)]) == 1.0
    draft["citations"] = [_cite(1, "x.md", 5, 9), {**escalation, "role": "answer"}]
    assert citation_precision([record("a", relevant=[rel("x.md", 1, 10)], draft=draft)]) == 0.5


def test_sentence_support() -> None:
    # content tokens: sso, token, expires, after, 24, hours (the: stop word); cited has token, expires, 24
    assert sentence_support("The SSO token expires after 24 hours.", ["token expires in 24 h"]) == 0.5
    # "24h" is one token, so only token and expires are found: 2/6
    assert sentence_support("The SSO token expires after 24 hours.", ["token expires in 24h"]) == pytest.approx(1 / 3)
    assert sentence_support("Wait 5 minutes", ["wait a few minutes"]) == 1.0  # "5" is too short to count
    assert sentence_support("It is what it is.", []) == 1.0  # no content tokens
    assert sentence_support("Restart the service", []) == 0.0
    assert sentence_support("RESTART the Service!", ["restart service"]) == 1.0  # case and punctuation
    assert sentence_support("Do not restart", ["restart"]) == 0.5  # negation is content


def test_faithfulness_with_an_uncited_sentence() -> None:
    passage_text = "Reset the password from the admin console, then notify the user by email."
    draft = {
        "text": "...",
        "citations": [_cite(1, "x.md", 1, 5, chunk_id="c1", quote="Reset the password")],
        "sentences": [
            # reset, password, admin, console: all in the passage text (the quote alone has 2/4) -> 1.0
            {"text": "Reset the password from the admin console.", "citations": [1]},
            # escalate, security, team: none cited -> 0.0
            {"text": "Escalate to the security team.", "citations": [1]},
            # supported by the passage, but it cites nothing -> unsupported
            {"text": "Notify the user by email.", "citations": []},
            # notify, user, email, within, one, hour -> 3/6 = 0.5
            {"text": "Then notify the user by email within one hour.", "citations": [1]},
        ],
    }
    records = [
        record("q", passages=[psg("x.md", 1, 5, chunk_id="c1", text=passage_text)], draft=draft),
        record("no-draft"),
    ]
    assert faithfulness(records) == 0.25  # 1 of 4 at >= 0.6
    assert faithfulness(records, threshold=0.5) == 0.5  # the 0.5 sentence now passes
    # without the passage text, only the quote is there: sentence 1 drops to 2/4
    assert faithfulness([record("q", draft=draft)]) == 0.0
    assert faithfulness([record("n")]) is None
    # a sentence with no content tokens has support 1.0, but uncited it still counts as unsupported
    bare = {"text": "", "citations": [], "sentences": [{"text": "That is all.", "citations": []}]}
    assert faithfulness([record("b", draft=bare)]) == 0.0
    assert faithfulness([record("b", draft=bare | {"sentences": [{"text": "That is all.", "citations": [1]}]})]) == 1.0


# --- answer similarity -----------------------------------------------------------------------------------


def test_token_f1_and_rouge_l() -> None:
    # the cat sat on the mat / the cat lay on a mat: common bag the, cat, on, mat = 4 of 6 each -> F1 2/3
    assert token_f1("the cat sat on the mat", "the cat lay on a mat") == pytest.approx(2 / 3)
    # Lin (2004): LCS(police killed the gunman, police kill the gunman) = police the gunman: P = R = 3/4
    assert rouge_l_f1("police killed the gunman", "police kill the gunman") == 0.75
    # same bag, other order: token F1 1.0, but LCS is only 2 tokens ("police killed" or "the gunman") -> 0.5
    assert token_f1("the gunman police killed", "police killed the gunman") == 1.0
    assert rouge_l_f1("the gunman police killed", "police killed the gunman") == 0.5
    # unequal lengths: LCS(a b c d e, a c e) = 3 -> P 3/5, R 3/3 -> F1 = 2 * 0.6 / 1.6 = 0.75
    assert rouge_l_f1("a b c d e", "a c e") == pytest.approx(0.75)
    assert token_f1("", "") == 1.0 and rouge_l_f1("", "") == 1.0
    assert token_f1("x", "") == 0.0 and rouge_l_f1("", "x") == 0.0
    assert token_f1("alpha", "beta") == 0.0 and rouge_l_f1("alpha", "beta") == 0.0


def test_answer_similarity() -> None:
    def drafted(qid: str, text: str, reference: str, answerable: bool = True) -> dict[str, Any]:
        draft = {"text": text, "sentences": [], "citations": []}
        return record(qid, answerable=answerable, draft=draft, reference_answer=reference)

    records = [
        drafted("a", "police kill the gunman", "police killed the gunman"),  # F1 0.75, ROUGE-L 0.75
        drafted("b", "the gunman police killed", "police killed the gunman"),  # F1 1.0, ROUGE-L 0.5
        drafted("u", "anything", "anything", answerable=False),  # unanswerable: skipped
        drafted("e", "anything", ""),  # no reference: skipped
        record("n", reference_answer="police killed the gunman"),  # no draft: skipped
    ]
    result = answer_similarity(records)
    assert result["scored"] == 2
    assert result["token_f1"] == pytest.approx(0.875)
    assert result["rouge_l"] == pytest.approx(0.625)
    assert answer_similarity([]) == {"token_f1": None, "rouge_l": None, "scored": 0}


# --- latency ---------------------------------------------------------------------------------------------


def test_latency_hand_computed() -> None:
    records = [record(str(v), latency_ms=v) for v in (40.0, 10.0, 30.0, 20.0)] + [record("x", latency_ms=None)]
    # sorted 10 20 30 40: p50 at position 1.5 -> 25; p95 at 3 * 0.95 = 2.85 -> 30 + 0.85 * 10 = 38.5
    assert latency(records) == {"p50": 25.0, "p95": pytest.approx(38.5), "max": 40.0, "mean": 25.0}
    assert latency([]) == {"p50": None, "p95": None, "max": None, "mean": None}


def test_percentile_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    for size in (1, 2, 3, 7, 20, 101):
        values = list(rng.lognormal(3, 1, size))
        for q in (0, 5, 50, 90, 95, 99, 100):
            assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_passage_lines_is_the_mean_span_of_the_top_k() -> None:
    from sopilot.eval.metrics import passage_lines

    def p(start: int, end: int) -> dict:
        return {"start_line": start, "end_line": end}

    records = [{"passages": [p(1, 10), p(5, 5)] + [p(1, 100)] * 5}, {"passages": [p(3, 4)]}]
    # top 5 of the first: spans 10, 1, 100, 100, 100; the second: 2 -> (10 + 1 + 300 + 2) / 6
    assert passage_lines(records) == pytest.approx(313 / 6)
    assert passage_lines([{"passages": []}]) is None


# --- focused level: a passage counts when at least half of it lies inside the relevant section -----------


@pytest.mark.parametrize(
    ("passage", "focused"),
    [
        (psg("a.md", 12, 18), 0),  # all 7 lines inside [10, 20]
        (psg("a.md", 15, 24), 0),  # lines 15-20 inside: 6 of 10 = 0.6
        (psg("a.md", 16, 25), 0),  # lines 16-20 inside: 5 of 10 = 0.5, exactly the bar
        (psg("a.md", 17, 26), None),  # lines 17-20 inside: 4 of 10 = 0.4 (the section level still matches)
        (psg("a.md", 1, 66), None),  # a 66-line passage holding all of [10, 20] and [30, 40]: 22 of 66
        (psg("a.md", 28, 41), 1),  # 11 of 14 lines inside [30, 40]
        (psg("b.md", 1, 5), 2),
        (psg("c.md", 12, 18), None),  # right lines, wrong file
    ],
)
def test_focused_relevance(passage: dict[str, Any], focused: int | None) -> None:
    assert passage_relevance(passage, RELEVANT, "focused") == focused


def test_focused_level_does_not_reward_long_passages() -> None:
    relevant = [rel("x.md", 40, 49)]
    long_passages = [psg("x.md", 1, 66), psg("y.md", 1, 66)]  # rank 1 spans the section and 56 other lines
    short_passages = [psg("y.md", 1, 11), psg("x.md", 30, 41), psg("x.md", 40, 50)]
    assert hit_at_k(long_passages, relevant, 5, "section") == 1.0
    assert hit_at_k(long_passages, relevant, 5, "focused") == 0.0  # 10 of 66 lines inside
    assert mrr_at_k(short_passages, relevant, 10, "section") == 0.5  # rank 2 overlaps lines 40-41
    assert mrr_at_k(short_passages, relevant, 10, "focused") == pytest.approx(1 / 3)  # 2 of 12, then 10 of 11
    assert recall_at_k(short_passages, relevant, 3, "focused") == 1.0
    # one relevant item found at rank 3: nDCG = (1/log2(4)) / 1
    assert ndcg_at_k(short_passages, relevant, 10, "focused") == pytest.approx(L4)
    assert passage_relevance(psg("x.md", 9, 5), relevant, "focused") is None  # an empty span is never inside


def test_compute_metrics_reports_the_focused_level() -> None:
    records = [
        record("a1", relevant=[rel("x.md", 40, 49)], passages=[psg("x.md", 1, 66)]),
        record("a2", relevant=[rel("x.md", 40, 49)], passages=[psg("z.md", 1, 5), psg("x.md", 38, 47)]),
    ]
    m = compute_metrics(records, ks=(1, 5))
    assert m["retrieval"]["section"]["hit@1"] == 0.5 and m["retrieval"]["section"]["hit@5"] == 1.0
    assert m["retrieval"]["focused"]["hit@1"] == 0.0  # a1's passage is 10/66 inside
    assert m["retrieval"]["focused"]["hit@5"] == 0.5  # a2's rank 2 is 8/10 inside
    assert m["retrieval"]["focused"]["mrr@5"] == 0.25
    assert get_metric(m, "retrieval.focused.hit@5") == 0.5
