"""What the API accepts and returns: request and response models, never SOPilot's internal objects."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from sopilot.author.findings import Finding
from sopilot.core.types import Citation, Draft, Passage
from sopilot.index.embedder import QuestionEncoder
from sopilot.ingest.sync import IngestReport
from sopilot.retrieval.search import MAX_QUERY_CHARS, SearchResult

Tone = Literal["user", "internal"]
HAS_TEXT = r"[^\s\x00-\x1f\x7f]"  # at least one character that is neither space nor control


class Strict(BaseModel):
    """Requests: unknown fields refused, no coercion ("true" is not a boolean)."""

    model_config = ConfigDict(extra="forbid", strict=True)


FilterValue = Annotated[str, Field(min_length=1, max_length=200, pattern=HAS_TEXT)]


class Filters(Strict):
    """Only SOPs that match every field given (any of the values within a field); active SOPs by default."""

    team: list[FilterValue] = Field(default_factory=list, max_length=20)
    tags: list[FilterValue] = Field(default_factory=list, max_length=20)
    product: list[FilterValue] = Field(default_factory=list, max_length=20)
    status: list[Literal["active", "draft", "deprecated", "all"]] = Field(default_factory=list, max_length=4)

    def as_dict(self) -> dict[str, list[str]]:
        return {name: list(values) for name, values in self.model_dump().items() if values}


class SearchRequest(Strict):
    query: str = Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,  # create_app publishes the server's own limit (SOPILOT_MAX_QUERY_CHARS)
        pattern=HAS_TEXT,
        description="The user's question, as written.",
    )
    k: int | None = Field(
        None,
        ge=1,
        le=100,
        strict=False,  # 5.0 is an integer in JSON Schema; 5.5 and "5" are still refused
        description="Passages to return (the server's default when unset).",
    )
    filters: Filters = Field(default_factory=Filters)


class AnswerRequest(SearchRequest):
    tone: Literal["user", "internal"] = Field("user", description="A reply to the user, or an internal note.")
    stream: bool = Field(
        False, description="Server-sent events: the draft's text as it is written, then the whole answer."
    )


class PassagePublic(BaseModel):
    chunk_id: str
    path: str
    title: str
    heading_path: list[str]
    anchor: str
    link: str = Field(description="path#anchor of the section")
    start_line: int
    end_line: int
    text: str
    role: str = Field(description="The section's role (resolve, diagnose, escalate, internal, reference, template)")
    score: float
    scores: dict[str, float]
    review_overdue: bool = Field(False, description="The SOP is past its review date: check it before relying on it")

    @classmethod
    def of(cls, p: Passage) -> PassagePublic:
        return cls(
            chunk_id=p.chunk_id,
            path=p.path,
            title=p.title,
            heading_path=list(p.heading_path),
            anchor=p.anchor,
            link=p.link,
            start_line=p.start_line,
            end_line=p.end_line,
            text=p.text,
            role=p.role,
            score=p.score,
            scores={name: float(value) for name, value in p.scores.items()},
            review_overdue=p.review_overdue,
        )


class SearchResponse(BaseModel):
    query_id: str = Field(description="The id this search has in the query log")
    query: str
    covered: bool | None = Field(description="Whether the SOPs seem to answer the question")
    coverage_reason: str
    filters: dict[str, list[str]]
    passages: list[PassagePublic]
    kb_version: str = Field(description="The KB version the index was synced to when it answered")
    generation: str = Field(description="The index generation that answered (it changes with every ingest)")

    @classmethod
    def of(cls, query_id: str, result: SearchResult, kb_version: str, generation: str) -> SearchResponse:
        return cls(
            query_id=query_id,
            query=result.query,
            covered=result.covered,
            coverage_reason=result.reason,
            filters=result.filters,
            passages=[PassagePublic.of(p) for p in result.passages],
            kb_version=kb_version,
            generation=generation,
        )


class CitationPublic(BaseModel):
    n: int
    chunk_id: str
    path: str
    title: str
    heading_path: list[str]
    anchor: str
    link: str
    start_line: int
    end_line: int
    quote: str
    role: Literal["answer", "escalation"] | str = Field(description="answer, or escalation (the escalation path)")
    section_role: str
    review_overdue: bool = Field(False, description="The cited SOP is past its review date")

    @classmethod
    def of(cls, c: Citation, titles: dict[str, str]) -> CitationPublic:
        title = titles.get(c.path) or (c.heading_path[0] if c.heading_path else c.path)
        return cls(
            n=c.n,
            chunk_id=c.chunk_id,
            path=c.path,
            title=title,
            heading_path=list(c.heading_path),
            anchor=c.anchor,
            link=f"{c.path}#{c.anchor}" if c.anchor else c.path,
            start_line=c.start_line,
            end_line=c.end_line,
            quote=c.quote,
            role=c.role,
            section_role=c.section_role,
            review_overdue=c.review_overdue,
        )


class SentencePublic(BaseModel):
    text: str
    citations: list[int]
    supported: bool | None


class EscalationPublic(BaseModel):
    team: str
    channel: str
    when: str


class ReviewFlag(BaseModel):
    """Something the agent should check before sending."""

    code: Literal["not_covered", "unsupported_sentence", "model_replaced", "review_overdue"]
    message: str


class AnswerResponse(BaseModel):
    answer_id: str = Field(description="Give it back with POST /v1/feedback")
    query: str
    text: str = Field(description="The draft, with [n] citations; review before sending")
    tone: Literal["user", "internal"]
    covered: bool
    coverage_reason: str
    escalation: EscalationPublic | None
    review_flags: list[ReviewFlag]
    sentences: list[SentencePublic]
    citations: list[CitationPublic]
    passages: list[PassagePublic]
    drafter: str
    kb_version: str
    generation: str = Field(description="The index generation that answered (it changes with every ingest)")

    @classmethod
    def of(cls, answer_id: str, tone: Tone, draft: Draft, result: SearchResult, generation: str) -> AnswerResponse:
        titles = {p.path: p.title for p in result.passages}
        e = draft.escalation
        return cls(
            answer_id=answer_id,
            query=result.query,
            text=draft.text,
            tone=tone,
            covered=draft.covered,
            coverage_reason=draft.abstention_reason or result.reason,
            escalation=EscalationPublic(team=e.team, channel=e.channel, when=e.when) if e else None,
            review_flags=review_flags(draft),
            sentences=[
                SentencePublic(text=s.text, citations=list(s.citations), supported=s.supported) for s in draft.sentences
            ],
            citations=[CitationPublic.of(c, titles) for c in draft.citations],
            passages=[PassagePublic.of(p) for p in result.passages],
            drafter=str(draft.provenance.get("drafter", "")),
            kb_version=str(draft.provenance.get("kb_version", "")),
            generation=generation,
        )


def review_flags(draft: Draft) -> list[ReviewFlag]:
    flags = []
    if not draft.covered:
        flags.append(ReviewFlag(code="not_covered", message=draft.abstention_reason or "the SOPs may not cover this"))
    fallback = draft.provenance.get("fallback_reason")
    if fallback:
        flags.append(ReviewFlag(code="model_replaced", message=f"the language model's draft was replaced: {fallback}"))
    flags.extend(
        ReviewFlag(code="unsupported_sentence", message=s.text) for s in draft.sentences if s.supported is False
    )
    flags.extend(
        ReviewFlag(code="review_overdue", message=f"{path} is past its review date") for path in draft.review_overdue
    )
    return flags


class FeedbackRequest(Strict):
    answer_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    verdict: Literal["accepted", "edited", "rejected"]
    sent_text: str = Field("", max_length=20_000, description="The text the agent actually sent")
    comment: str = Field("", max_length=2_000)


class FeedbackResponse(BaseModel):
    feedback_id: int
    answer_id: str
    verdict: str


class IngestRequest(Strict):
    rebuild: bool = Field(False, description="Drop the index and embed everything again (e.g. a new embedder)")


class ProblemPublic(BaseModel):
    path: str
    line: int | None
    severity: str
    code: str
    message: str
    fix: str


class IngestResponse(BaseModel):
    ok: bool = Field(description="No file had a problem")
    files: int
    chunks: int
    added: int
    updated: int
    removed: int
    unchanged: int
    files_kept: int = Field(description="Files with errors whose previous version stays indexed")
    kb_version: str
    seconds: float
    generation: str
    problems: list[ProblemPublic]

    @classmethod
    def of(cls, report: IngestReport, generation: str, chunks: int) -> IngestResponse:
        return cls(
            ok=report.ok,
            files=report.files,
            chunks=chunks,
            added=report.added,
            updated=report.updated,
            removed=report.removed,
            unchanged=report.unchanged,
            files_kept=report.files_kept,
            kb_version=report.kb_version,
            seconds=report.seconds,
            generation=generation,
            problems=[
                ProblemPublic(
                    path=p.path, line=p.line, severity=p.severity.value, code=p.code, message=p.message, fix=p.fix
                )
                for p in report.problems
            ],
        )


class Health(BaseModel):
    status: Literal["ok"]


class QuestionEncoderInfo(BaseModel):
    """What embeds this worker's questions, and whether it is what the settings asked for."""

    encoder: str = Field(description="onnx, onnx-int8, torch or torch-int8: runtime and precision as they run")
    model: str = Field(description="the question model: a packaged model's name or its folder's name")
    requested: str = Field(description="the encoder SOPILOT_RUNTIME and SOPILOT_QUERY_PRECISION asked for")
    fallback: str = Field("", description="why the encoder is not the one asked for (empty when it is)")

    @classmethod
    def of(cls, encoder: QuestionEncoder) -> QuestionEncoderInfo:
        return cls(encoder=encoder.label, model=encoder.model, requested=encoder.requested, fallback=encoder.fallback)


class Readiness(BaseModel):
    status: Literal["ready"]
    chunks: int
    kb_version: str
    generation: str
    drafter: str
    keys_required: bool
    question_encoder: QuestionEncoderInfo | None = Field(
        None, description="what embeds the questions of the worker that answered (null for an embedder that cannot say)"
    )


def as_json(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_day(value: object) -> object:
    """A query's day as written: YYYY-MM-DD only (pydantic alone would read ``0`` as 1970-01-01)."""
    if value is None or isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DAY.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a calendar day ({exc}): give a UTC day as YYYY-MM-DD") from exc
    raise ValueError(f"{value!r} is not a date: give a UTC day as YYYY-MM-DD, e.g. 2026-11-15")


# A query parameter holding a UTC day; its schema (string, format date) and its validation agree.
IsoDay = Annotated[date | None, BeforeValidator(_iso_day)]


class LintFindingPublic(BaseModel):
    rule: str
    severity: Literal["error", "warning", "info"]
    path: str = Field(description="Relative to the KB folder")
    line: int = Field(description="1-based; 1 for a finding about the whole file")
    message: str
    fix: str

    @classmethod
    def of(cls, f: Finding) -> LintFindingPublic:
        return cls(rule=f.rule, severity=f.level.value, path=f.path, line=f.line, message=f.message, fix=f.fix)


class LintCounts(BaseModel):
    by_rule: dict[str, int] = Field(description="Findings per rule id, most frequent first")
    by_severity: dict[str, int]


class LintResponse(BaseModel):
    files: int = Field(description="SOP files linted: the whole KB (links and duplicates are checked across it)")
    config: str = Field(description="The lint config used: KB_DIR/.sopilot-lint.toml or defaults")
    today: date = Field(description="The day review dates were checked against")
    counts: LintCounts = Field(description="Of the findings returned (after the path and severity filters)")
    findings: list[LintFindingPublic]
