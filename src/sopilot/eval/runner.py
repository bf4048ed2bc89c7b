"""Evaluation runs: every test-set question through the agents' own code path, one JSONL record each."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sopilot.core.types import Passage
from sopilot.eval.testset import Question, TestSetError, check_mapping, section_span

RUN_FILE = "run.jsonl"
META_FILE = "meta.json"

# What agents get for a question: (passages, covered or None, reason, draft as a dict or None).
Answer = tuple[list[Passage], bool | None, str, dict[str, Any] | None]
# A search function as agents use it: (question, k, filters) -> Answer.
SearchFn = Callable[[str, int, dict[str, Any]], Answer]


@dataclass(frozen=True, slots=True)
class RunInfo:
    system: str
    testset: str
    kb_dir: str
    k: int
    extra: dict[str, Any]


def resolve_relevant(questions: list[Question], kb_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Each question's relevant sections with their line spans; a broken mapping stops the run first."""
    problems = check_mapping(questions, kb_dir)
    if problems:
        raise TestSetError("the test set does not match the KB; fix these before running:\n" + "\n".join(problems))
    out: dict[str, list[dict[str, Any]]] = {}
    for q in questions:
        spans = [section_span(kb_dir, rel) for rel in q.relevant]
        out[q.id] = [
            {"path": rel.path, "heading": rel.heading, "start": span.start, "end": span.end}
            for rel, span in zip(q.relevant, spans, strict=True)
        ]
    return out


def passage_record(rank: int, p: Passage) -> dict[str, Any]:
    return {
        "rank": rank,
        "chunk_id": p.chunk_id,
        "path": p.path,
        "title": p.title,
        "heading_path": list(p.heading_path),
        "anchor": p.anchor,
        "start_line": p.start_line,
        "end_line": p.end_line,
        "score": p.score,
        "scores": dict(p.scores),
        "text": p.text,
    }


def run_questions(
    questions: list[Question],
    relevant: dict[str, list[dict[str, Any]]],
    search: SearchFn,
    k: int,
    *,
    desc: str = "questions",
    progress: bool = True,
) -> list[dict[str, Any]]:
    records = []
    for q in tqdm(questions, desc=desc, unit="q", disable=not progress):
        started = time.perf_counter()
        passages, covered, reason, draft = search(q.question, k, q.filters)
        latency_ms = (time.perf_counter() - started) * 1000
        records.append(
            {
                "id": q.id,
                "question": q.question,
                "answerable": q.answerable,
                "tags": list(q.tags),
                "relevant": relevant[q.id],
                "reference_answer": q.reference_answer,
                "passages": [passage_record(i, p) for i, p in enumerate(passages, 1)],
                "covered": covered,
                "coverage_reason": reason,
                "draft": draft,
                "latency_ms": round(latency_ms, 3),
            }
        )
    return records


def write_run(run_dir: Path, records: Iterable[dict[str, Any]], info: RunInfo) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / RUN_FILE).open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    meta = {"system": info.system, "testset": info.testset, "kb_dir": info.kb_dir, "k": info.k, **info.extra}
    (run_dir / META_FILE).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")


def read_run(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise TestSetError(f"{run_dir} holds no {RUN_FILE}: is it a run folder from `sopilot eval run`?")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    meta_path = run_dir / META_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    return records, meta
