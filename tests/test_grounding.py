"""The after-generation check: sentences, citations, invented numbers, lexical and embedding support."""

from __future__ import annotations

import pytest

from sopilot.core.types import Passage
from sopilot.draft.grounding import (
    SupportChecker,
    citations_in,
    content_words,
    lexical_support,
    missing_facts,
    split_sentences,
)


def passage(n: int, text: str) -> Passage:
    return Passage(
        chunk_id=f"c{n}",
        path=f"access/p{n}.md",
        title=f"SOP {n}",
        heading_path=(f"SOP {n}", "Resolution"),
        anchor="resolution",
        start_line=1,
        end_line=5,
        text=text,
        score=1.0,
    )


UNLOCK = passage(
    1,
    "1. Open Okta Admin and search for the reviewer by email.\n"
    "2. Click Unlock account and ask the reviewer to sign in again.\n",
)
LIMITS = passage(2, "Partner API keys are limited to 600 requests per minute. Bursts above that get HTTP 429.")
PASSAGES = [UNLOCK, LIMITS]


def test_sentences_keep_their_citations_and_lose_list_markers() -> None:
    text = "Hi Sam,\n1. Open Okta Admin [1].\n2. Click Unlock account. [1]\nThe limit is 600 a minute [2]. Thanks!"
    assert split_sentences(text) == [
        "Hi Sam,",
        "Open Okta Admin [1].",
        "Click Unlock account. [1]",
        "The limit is 600 a minute [2].",
        "Thanks!",
    ]


def test_a_marker_with_no_sentence_before_it_is_not_a_sentence() -> None:
    assert split_sentences("[1] Vendor lockout > Resolution\nUse Forgot password [1].") == [
        "Vendor lockout > Resolution",
        "Use Forgot password [1].",
    ]


def test_citation_numbers_in_order_without_repeats() -> None:
    assert citations_in("Do this [1, 3] and that [2] then again [1].") == (1, 3, 2)
    assert citations_in("No citation here, only [a] link text.") == ()


def test_negations_are_content_words() -> None:
    assert "not" in content_words("Do not restart the queue")


def test_numbers_and_negations_must_be_in_the_source() -> None:
    sources = ["Keys are limited to 600 requests per minute. Reviews take 2.5 days."]
    assert missing_facts("Keys allow 600 requests a minute, reviews take 2.5 days", sources) == ()
    assert missing_facts("Keys allow 500 requests a minute", sources) == ("500",)
    assert missing_facts("Never rotate the keys", sources) == ("never",)
    assert missing_facts("Do not send more than 600", ["Do not send more than 600 a minute"]) == ()


def test_lexical_support_counts_shared_stems() -> None:
    assert lexical_support("Unlocking the accounts", ["Click Unlock account"]) == 1.0
    assert lexical_support("Email the password", ["Click Unlock account"]) == 0.0


def test_invented_citation_fails_the_draft() -> None:
    report = SupportChecker(None).check("Open Okta Admin and search for the reviewer [1]. Call legal [7].", PASSAGES)
    assert report.invented == (7,)
    assert "[7]" in report.failure(0.5)


def test_copied_claims_pass_and_framing_is_not_a_claim() -> None:
    text = "Hi Sam, thanks!\nClick Unlock account and ask the reviewer to sign in again [1].\nBest,"
    report = SupportChecker(None).check(text, PASSAGES)
    assert [s.claim for s in report.sentences] == [False, True, False]
    assert report.failure(1.0) == ""
    assert report.supported_share == 1.0


def test_uncited_claim_and_wrong_source_are_unsupported() -> None:
    text = (
        "Partner API keys are limited to 600 requests per minute [1].\n"  # true, but cites the wrong passage
        "Reset the reviewer's password and email it to them."  # uncited claim
    )
    report = SupportChecker(None).check(text, PASSAGES)
    assert [s.supported for s in report.claims] == [False, False]
    assert "not supported" in report.failure(0.5) or "no sentence cites" in report.failure(0.5)


def test_no_claims_fails() -> None:
    failure = SupportChecker(None).check("Hi! Thanks.", PASSAGES).failure(0.0)
    assert failure == "no sentence states anything from the passages"


@pytest.mark.parametrize(
    ("sentence", "supported"),
    [
        ("Open Okta Admin, find the reviewer by their email and click Unlock account [1].", True),
        ("API keys of partners may send up to 600 requests a minute [2].", True),
        ("Delete the reviewer's account and create a new one with admin rights [1].", False),
        ("Partner API keys have no rate limit at all, send as many requests as needed [2].", False),
        ("Partner API keys are limited to 500 requests per minute [2].", False),  # the SOP says 600
        ("Do not unlock the account [1].", False),  # the SOP says to unlock it
    ],
)
def test_real_embedder_separates_paraphrase_from_invention(embedder, sentence: str, supported: bool) -> None:
    checker = SupportChecker(embedder, min_lexical=0.6, min_similarity=0.5)
    [check] = checker.check(sentence, PASSAGES).claims
    assert check.supported is supported, check
    if supported:
        assert check.best_source  # the span a citation quotes
