"""Training questions people really asked: a team's file of graded questions, and the answers agents accepted.

Mined questions are the SOPs' own words; these are users' words, which is what the question embedder has to
learn. Two sources, both opt-in:

- a JSONL file (``sopilot train --questions FILE``) in the test-set format: ``question`` and ``relevant``
  (``[{"path": ..., "heading": ...}]``; the heading may be left out for the file's first section); lines with
  ``"answerable": false`` are skipped. Never pass a file you evaluate on.
- the query log (``sopilot train --from-feedback``): each answer whose latest verdict is ``accepted`` or
  ``edited``, paired with the section its first answering citation points to.

A pair whose section the KB no longer has is dropped and counted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sopilot.core.errors import ConfigError
from sopilot.core.types import Sop
from sopilot.index.querylog import QueryLog, querylog_path
from sopilot.train.pairs import Pair

KEPT_VERDICTS = frozenset({"accepted", "edited"})


class SectionFinder:
    """``path#anchor`` of a section named by path and heading, in the KB as it is parsed now."""

    def __init__(self, sops: Sequence[Sop]) -> None:
        self._first: dict[str, str] = {}
        self._by_heading: dict[tuple[str, str], str] = {}
        self.links: set[str] = set()
        for sop in sops:
            for chunk in sorted(sop.chunks, key=lambda c: c.start_line):
                link = f"{chunk.path}#{chunk.anchor}"
                self.links.add(link)
                self._first.setdefault(chunk.path, link)
                for heading in chunk.heading_path:
                    self._by_heading.setdefault((chunk.path, _key(heading)), link)

    def find(self, path: str, heading: str = "") -> str | None:
        if not heading:
            return self._first.get(path)
        return self._by_heading.get((path, _key(heading)))


def _key(heading: str) -> str:
    return " ".join(heading.lower().split())


def file_pairs(path: Path, finder: SectionFinder) -> tuple[list[Pair], dict[str, int]]:
    """Pairs from a JSONL file of graded questions, and how many lines gave one or were dropped."""
    if not path.is_file():
        raise ConfigError(f"--questions {path}: no such file; give a JSONL file of questions and their sections")
    pairs: list[Pair] = []
    counts = {"lines": 0, "pairs": 0, "unanswerable": 0, "section_not_in_kb": 0}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        counts["lines"] += 1
        row = _row(raw, path, number)
        if row.get("answerable") is False:
            counts["unanswerable"] += 1
            continue
        for rel in row["relevant"]:
            section = finder.find(str(rel["path"]), str(rel.get("heading") or ""))
            if section is None:
                counts["section_not_in_kb"] += 1
                continue
            pairs.append(Pair(" ".join(row["question"].split()), section, "asked"))
            counts["pairs"] += 1
    return pairs, counts


def _row(raw: str, path: Path, number: int) -> dict[str, Any]:
    where = f"{path} line {number}"
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not JSON ({exc.msg}); each line is one question object") from exc
    if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not row["question"].strip():
        raise ConfigError(f'{where} has no "question" text; write {{"question": ..., "relevant": [...]}}')
    relevant = row.get("relevant")
    if row.get("answerable") is not False and (
        not isinstance(relevant, list)
        or not relevant
        or not all(isinstance(r, dict) and isinstance(r.get("path"), str) for r in relevant)
    ):
        raise ConfigError(
            f'{where}: "relevant" must be a list of {{"path": ..., "heading": ...}}, the sections that answer it'
        )
    return row


def feedback_pairs(index_dir: Path, finder: SectionFinder) -> tuple[list[Pair], dict[str, int]]:
    """Pairs from the answers agents accepted or sent edited, by the query log in the index folder."""
    counts = {"answers_judged": 0, "pairs": 0, "rejected_or_other": 0, "no_citation": 0, "section_not_in_kb": 0}
    path = querylog_path(index_dir)
    if not path.is_file():
        return [], counts
    log = QueryLog(path)
    try:
        verdicts = log.latest_verdicts()
        pairs: list[Pair] = []
        for record in log.queries():
            verdict = verdicts.get(record.id)
            if record.kind != "answer" or verdict is None:
                continue
            counts["answers_judged"] += 1
            if verdict not in KEPT_VERDICTS:
                counts["rejected_or_other"] += 1
                continue
            cited = next((c for c in record.citations if c.role == "answer"), None)
            if cited is None:
                counts["no_citation"] += 1
                continue
            section = f"{cited.path}#{cited.anchor}"
            if section not in finder.links:
                counts["section_not_in_kb"] += 1
                continue
            pairs.append(Pair(" ".join(record.question.split()), section, "feedback"))
            counts["pairs"] += 1
    finally:
        log.close()
    return pairs, counts
