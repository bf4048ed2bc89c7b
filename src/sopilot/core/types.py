"""The shared vocabulary: plain typed objects that flow from ingestion to answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

HEADING_SEPARATOR = " > "


class Severity(StrEnum):
    ERROR = "error"  # the file was not (re)indexed; its previous version, if any, stays
    WARNING = "warning"  # the file was indexed, but the author should fix something


class Role(StrEnum):
    """What a section is for (``sopilot.ingest.roles``): ranking and drafting read it."""

    RESOLVE = "resolve"  # steps or a fix
    DIAGNOSE = "diagnose"  # checks, symptoms, triage
    ESCALATE = "escalate"  # who to page, when
    INTERNAL = "internal"  # ticket notes, close-out, audit, on-call details
    REFERENCE = "reference"  # tables, definitions, background
    TEMPLATE = "template"  # a reply template


AGENT_ONLY_ROLES = frozenset({Role.INTERNAL, Role.ESCALATE})  # never quoted to a user


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one SOP file, with where it is and how to fix it."""

    path: str
    code: str
    message: str
    fix: str
    line: int | None = None
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.severity.value}: {self.message} ({self.code}). Fix: {self.fix}"


@dataclass(frozen=True, slots=True)
class Escalation:
    team: str
    channel: str = ""
    when: str = ""


@dataclass(frozen=True, slots=True)
class SopMeta:
    """Validated front matter of one SOP."""

    id: str
    title: str
    owner: str = ""
    tags: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    status: str = "active"
    last_reviewed: date | None = None
    review_every_days: int | None = None
    escalation: Escalation | None = None
    description: str = ""
    roles: tuple[tuple[str, str], ...] = ()  # (heading, role) set by the author in front matter


@dataclass(frozen=True, slots=True)
class Section:
    """A heading and the lines under it up to the next heading of any level."""

    heading_path: tuple[str, ...]
    anchor: str
    level: int  # 0 for text before the first heading
    start_line: int  # 1-based, inclusive (the heading line)
    end_line: int  # 1-based, inclusive


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of one section that fits the embedder, with its three views."""

    id: str
    path: str
    heading_path: tuple[str, ...]
    anchor: str
    start_line: int
    end_line: int
    text: str  # what an agent reads
    embed_text: str  # what the embedder sees: heading path, then the body
    metadata: dict[str, Any] = field(default_factory=dict)  # flat fields for filters and display


@dataclass(frozen=True, slots=True)
class Sop:
    """One Markdown file: its path relative to the KB root, front matter, content hash, sections, chunks."""

    path: str
    meta: SopMeta
    content_hash: str
    sections: tuple[Section, ...]
    chunks: tuple[Chunk, ...]


@dataclass(frozen=True, slots=True)
class Passage:
    """A chunk as retrieved, with every score that ranked it."""

    chunk_id: str
    path: str
    title: str
    heading_path: tuple[str, ...]
    anchor: str
    start_line: int
    end_line: int
    text: str
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    review_overdue: bool = False  # the SOP is past last_reviewed + review_every_days (core/review.py)

    @property
    def link(self) -> str:
        """Path and anchor of the exact section, for a renderer or an agent."""
        return f"{self.path}#{self.anchor}" if self.anchor else self.path

    @property
    def role(self) -> str:
        """The section's role, decided at ingest ("" for an index made before roles)."""
        return str(self.metadata.get("role", ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "path": self.path,
            "title": self.title,
            "heading_path": list(self.heading_path),
            "anchor": self.anchor,
            "link": self.link,
            "role": self.role,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "score": self.score,
            "scores": dict(self.scores),
            "review_overdue": self.review_overdue,
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class Citation:
    """A numbered source of a draft: the exact section and the span quoted from it."""

    n: int
    chunk_id: str
    path: str
    anchor: str
    heading_path: tuple[str, ...]
    start_line: int
    end_line: int
    quote: str
    role: str = "answer"  # "answer", or "escalation" for the escalation path an SOP prescribes in its text
    section_role: str = ""  # the cited section's role (resolve, internal, ...), decided at ingest
    review_overdue: bool = False  # the cited SOP is past its review date

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "chunk_id": self.chunk_id,
            "path": self.path,
            "anchor": self.anchor,
            "link": f"{self.path}#{self.anchor}" if self.anchor else self.path,
            "heading_path": list(self.heading_path),
            "start_line": self.start_line,
            "end_line": self.end_line,
            "quote": self.quote,
            "role": self.role,
            "section_role": self.section_role,
            "review_overdue": self.review_overdue,
        }


@dataclass(frozen=True, slots=True)
class DraftSentence:
    """One claim of a draft and the citations that support it (framing lines are not claims)."""

    text: str
    citations: tuple[int, ...]
    supported: bool | None = None


@dataclass(frozen=True, slots=True)
class Draft:
    """A reply for the agent to review: text with [n] citations, or an abstention that says where to go."""

    text: str
    covered: bool
    sentences: tuple[DraftSentence, ...] = ()
    citations: tuple[Citation, ...] = ()
    abstention_reason: str = ""
    escalation: Escalation | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def review_overdue(self) -> tuple[str, ...]:
        """Paths of cited SOPs that are past their review date: the agent checks them before sending."""
        return tuple(dict.fromkeys(c.path for c in self.citations if c.review_overdue))

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "covered": self.covered,
            "review_overdue": list(self.review_overdue),
            "abstention_reason": self.abstention_reason,
            "sentences": [
                {"text": s.text, "citations": list(s.citations), "supported": s.supported} for s in self.sentences
            ],
            "citations": [c.to_dict() for c in self.citations],
            "escalation": (
                {"team": self.escalation.team, "channel": self.escalation.channel, "when": self.escalation.when}
                if self.escalation
                else None
            ),
            "provenance": dict(self.provenance),
        }
