"""A lint finding and the catalogue of rules: id, default severity, what it checks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Level(StrEnum):
    ERROR = "error"  # breaks readers or tools (CI fails by default)
    WARNING = "warning"  # a person would fix it
    INFO = "info"  # worth a look

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "error": 2}[self.value]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    level: Level
    checks: str  # one line, for the docs table and `sopilot lint --rules`


RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("front-matter-invalid", Level.ERROR, "front matter is valid YAML with keys of the right types"),
        Rule("missing-field", Level.ERROR, "front matter has the required fields (config `required_fields`)"),
        Rule("review-date-future", Level.ERROR, "`last_reviewed` is not after today"),
        Rule("unknown-team", Level.WARNING, "owner and escalation team are known teams (config or learned)"),
        Rule("unknown-channel", Level.WARNING, "#channels are known channels (config or learned)"),
        Rule("unknown-kind", Level.WARNING, "front matter `kind` is one of the configured kinds"),
        Rule("required-section", Level.WARNING, "the sections its kind requires are there (config `kinds`)"),
        Rule("unnumbered-steps", Level.WARNING, "procedure sections give their steps as a numbered list"),
        Rule("broken-link", Level.ERROR, "links to other SOPs point to files that exist"),
        Rule("broken-anchor", Level.ERROR, "links to a section (#anchor) point to a heading that exists"),
        Rule("missing-referenced-section", Level.WARNING, 'text that says "see X below/above" has a section X'),
        Rule("heading-skip", Level.WARNING, "heading levels go down one at a time (## then ###, not ####)"),
        Rule("empty-section", Level.WARNING, "every heading has content or sub-sections under it"),
        Rule("long-section", Level.INFO, "a section is short enough to read in one go (config `max_section_words`)"),
        Rule("duplicate-heading", Level.WARNING, "heading texts are unique inside a file (each names one section)"),
        Rule("duplicate-id", Level.ERROR, "SOP ids are unique across the KB"),
        Rule("duplicate-title", Level.WARNING, "SOP titles are unique across the KB"),
    )
}


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    level: Level
    path: str
    line: int  # 1-based; 1 for a finding about the whole file
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.level.value} [{self.rule}] {self.message}. Fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.level.value,
            "path": self.path,
            "line": self.line,
            "message": self.message,
            "fix": self.fix,
        }
