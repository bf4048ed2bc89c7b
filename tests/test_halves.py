"""Dev and test halves of a test set: fixed by question id, disjoint, together the whole set."""

from __future__ import annotations

from pathlib import Path

import pytest

from sopilot.eval.testset import TestSetError, half_of, load_testset, select_half

ROOT = Path(__file__).resolve().parent.parent


def test_halves_split_every_shipped_set_in_two() -> None:
    for name in ("kb", "gitlab"):
        questions = load_testset(ROOT / "eval" / "testsets" / f"{name}.jsonl")
        dev, test = select_half(questions, "dev"), select_half(questions, "test")
        assert {q.id for q in dev}.isdisjoint(q.id for q in test)
        assert len(dev) + len(test) == len(questions)
        assert 0.35 < len(dev) / len(questions) < 0.65, name
        assert select_half(questions, "all") == questions


def test_a_question_keeps_its_half() -> None:
    assert half_of("kb-acc-001") == half_of("kb-acc-001")
    assert {half_of(f"q-{i}") for i in range(20)} == {"dev", "test"}
    with pytest.raises(TestSetError, match="half must be"):
        select_half([], "train")
