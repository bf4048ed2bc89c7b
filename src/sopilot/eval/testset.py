"""Test sets: JSONL questions with the SOP sections that answer them, loaded and checked against a KB."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from sopilot.core.errors import SopilotError
from sopilot.ingest.frontmatter import blank_front_matter
from sopilot.ingest.markdown import heading_text, parse_outline


class TestSetError(SopilotError):
    """A test set that cannot be used; the message lists every bad line."""

    __test__ = False  # not a pytest class, despite the name
    exit_code = 2


@dataclass(frozen=True, slots=True)
class Relevant:
    path: str
    heading: str


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    question: str
    relevant: tuple[Relevant, ...]
    answerable: bool
    reference_answer: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    filters: dict[str, Any] = field(default_factory=dict)  # search filters, e.g. {"status": "all"}


_REQUIRED = {"id": str, "question": str, "relevant": list, "answerable": bool}


def parse_line(raw: str) -> Question:
    """One test-set line; raises ``ValueError`` with what is wrong."""
    try:
        data: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(data, dict):
        raise ValueError("a line must be a JSON object")
    for key, kind in _REQUIRED.items():
        if key not in data:
            raise ValueError(f"missing key {key!r}")
        if not isinstance(data[key], kind):
            raise ValueError(f"{key!r} must be a {kind.__name__}, got {type(data[key]).__name__}")
    if not data["question"].strip():
        raise ValueError("'question' is empty")
    relevant = []
    for item in data["relevant"]:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str) or not item.get("path"):
            raise ValueError("each 'relevant' entry needs a 'path' string")
        relevant.append(Relevant(item["path"], str(item.get("heading") or "")))
    if data["answerable"] and not relevant:
        raise ValueError("an answerable question needs at least one 'relevant' entry")
    if not data["answerable"] and relevant:
        raise ValueError("an unanswerable question must have an empty 'relevant' list")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("'tags' must be a list of strings")
    filters = data.get("filters", {})
    if not isinstance(filters, dict):
        raise ValueError('\'filters\' must be an object such as {"status": "all"}')
    return Question(
        id=data["id"],
        question=data["question"],
        relevant=tuple(relevant),
        answerable=data["answerable"],
        reference_answer=str(data.get("reference_answer") or ""),
        tags=tuple(tags),
        filters=filters,
    )


def load_testset(path: Path) -> list[Question]:
    """Every line, or a ``TestSetError`` naming each malformed line before any work starts."""
    if not path.is_file():
        raise TestSetError(f"test set {path} does not exist")
    errors: list[str] = []
    questions: list[Question] = []
    seen: set[str] = set()
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            q = parse_line(raw)
        except ValueError as exc:
            errors.append(f"{path}:{number}: {exc}")
            continue
        if q.id in seen:
            errors.append(f"{path}:{number}: duplicate id {q.id!r}")
        seen.add(q.id)
        questions.append(q)
    if errors:
        raise TestSetError("malformed test set; fix these lines:\n" + "\n".join(errors))
    if not questions:
        raise TestSetError(f"test set {path} holds no questions")
    return questions


Half = Literal["all", "dev", "test"]


def half_of(question_id: str) -> str:
    """The half a question belongs to, fixed by its id: "dev" (study it, debug on it) or "test" (only score
    it). A hash, not the order in the file, so that adding questions never moves old ones between halves."""
    return "dev" if hashlib.sha256(question_id.encode()).digest()[0] % 2 == 0 else "test"


def select_half(questions: list[Question], half: str) -> list[Question]:
    if half not in ("all", "dev", "test"):
        raise TestSetError(f"half must be all, dev or test, got {half!r}")
    return questions if half == "all" else [q for q in questions if half_of(q.id) == half]


@dataclass(frozen=True, slots=True)
class SectionSpan:
    start: int  # 1-based heading line
    end: int  # 1-based, last line before the next heading of the same or higher level


@lru_cache(maxsize=4096)
def _headings(file: Path) -> tuple[tuple[int, str, int], ...]:
    text = blank_front_matter(file.read_text(encoding="utf-8"))
    outline = parse_outline(text)
    total = len(text.splitlines())
    spans = []
    for i, h in enumerate(outline.headings):
        end = next((o.line for o in outline.headings[i + 1 :] if o.level <= h.level), total)
        spans.append((h.level, h.text, h.line + 1, end))
    return tuple((line, text_, end) for _, text_, line, end in spans)


def section_span(kb_dir: Path, rel: Relevant) -> SectionSpan:
    """Line range of the relevant heading's section; raises ``LookupError`` when it is not unique."""
    file = kb_dir / rel.path
    if not file.is_file():
        raise LookupError(f"{rel.path} does not exist in {kb_dir}")
    wanted = heading_text(rel.heading)  # markup in the test set's heading is ignored, as in the file's
    matches = [(start, end) for start, text, end in _headings(file.resolve()) if text == wanted]
    if len(matches) != 1:
        found = "no heading" if not matches else f"{len(matches)} headings"
        raise LookupError(f"{rel.path} has {found} with the text {rel.heading!r}")
    return SectionSpan(*matches[0])


def check_mapping(questions: list[Question], kb_dir: Path) -> list[str]:
    """Every relevant path and heading resolved against the files; returns what does not."""
    problems = []
    for q in questions:
        for rel in q.relevant:
            try:
                section_span(kb_dir, rel)
            except LookupError as exc:
                problems.append(f"{q.id}: {exc}")
    return problems
