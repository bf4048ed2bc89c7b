"""The shipped KB and its test sets: complete front matter, clean parse, every mapping resolves."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from tests.conftest import GITLAB_DOCS, ROOT

from sopilot.eval.testset import check_mapping, load_testset
from sopilot.ingest.chunker import Chunker
from sopilot.ingest.discover import discover
from sopilot.ingest.frontmatter import blank_front_matter, split_front_matter
from sopilot.ingest.markdown import parse_outline
from sopilot.ingest.sop import load_sop

KB = ROOT / "kb"
TESTSETS = ROOT / "eval" / "testsets"
REQUIRED_KEYS = {
    "id",
    "title",
    "owner",
    "tags",
    "products",
    "status",
    "last_reviewed",
    "review_every_days",
    "escalation",
}


def test_kb_sops_have_complete_front_matter() -> None:
    files = discover(KB, ("README.md",)).files
    assert len(files) >= 60
    ids = Counter()
    for rel in files:
        fm, problem = split_front_matter((KB / rel).read_text(encoding="utf-8"), rel)
        assert problem is None and fm is not None, problem
        present = {k for k in REQUIRED_KEYS if getattr(fm.data, k) not in (None, "", [])}
        assert present == REQUIRED_KEYS, f"{rel} lacks {REQUIRED_KEYS - present}"
        ids[fm.data.id] += 1
    assert max(ids.values()) == 1
    statuses = Counter(split_front_matter((KB / r).read_text(), r)[0].data.status for r in files)  # type: ignore[union-attr]
    assert statuses["draft"] >= 1 and statuses["deprecated"] >= 1


def test_kb_parses_without_problems(embedder) -> None:
    chunker = Chunker(embedder.count_tokens, embedder.max_tokens)
    for rel in discover(KB, ("README.md",)).files:
        result = load_sop(KB, rel, chunker, 1_000_000)
        assert result.sop is not None and not result.problems, result.problems


def test_kb_testset_shape_and_mapping() -> None:
    questions = load_testset(TESTSETS / "kb.jsonl")
    assert len(questions) >= 150
    assert sum(not q.answerable for q in questions) >= 25
    assert all(q.reference_answer for q in questions if q.answerable)
    assert check_mapping(questions, KB) == []
    # questions about draft or deprecated SOPs say so, since agents search active SOPs by default
    assert {q.id for q in questions if q.filters} == {"kb-acc-032", "kb-rev-032", "kb-dat-041", "kb-ops-024"}


def test_check_mapping_catches_a_wrong_heading(tmp_path: Path) -> None:
    testset = tmp_path / "t.jsonl"
    testset.write_text(
        '{"id": "a", "question": "q", "answerable": true, "reference_answer": "r",'
        ' "relevant": [{"path": "incidents/escalation-process.md", "heading": "No such heading"}]}\n'
        '{"id": "b", "question": "q", "answerable": true, "reference_answer": "r",'
        ' "relevant": [{"path": "missing.md", "heading": "X"}]}\n'
    )
    problems = check_mapping(load_testset(testset), KB)
    assert len(problems) == 2 and "No such heading" in problems[0] and "missing.md" in problems[1]


needs_gitlab = pytest.mark.skipif(not GITLAB_DOCS.is_dir(), reason="shared GitLab corpus not present")


@needs_gitlab
def test_gitlab_testset_mapping() -> None:
    questions = load_testset(TESTSETS / "gitlab.jsonl")
    assert len(questions) >= 40
    assert check_mapping(questions, GITLAB_DOCS) == []


@needs_gitlab
def test_gitlab_corpus_parses_with_sections_matching_headings(embedder) -> None:
    """The 457 real SOPs (front matter, Hugo shortcodes, tables) parse without a problem."""
    chunker = Chunker(embedder.count_tokens, embedder.max_tokens)
    files = discover(GITLAB_DOCS).files
    assert len(files) == 457
    longest = 0
    for rel in files:
        result = load_sop(GITLAB_DOCS, rel, chunker, 1_000_000)
        assert result.sop is not None and not result.problems, (rel, result.problems)
        text = blank_front_matter((GITLAB_DOCS / rel).read_text(encoding="utf-8"))
        headings = parse_outline(text).headings
        titled = [s for s in result.sop.sections if s.level > 0]
        assert [s.start_line for s in titled] == [h.line + 1 for h in headings], rel
        lines = text.splitlines()
        for section in titled:
            assert lines[section.start_line - 1].lstrip().startswith("#"), (rel, section)
        if result.sop.chunks:
            longest = max(longest, max(c.metadata["n_tokens"] for c in result.sop.chunks))
    assert longest <= embedder.max_tokens
