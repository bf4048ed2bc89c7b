"""GET /v1/reports/{gaps,health,daily,stale,conflicts}: the author reports, for author and admin keys.

The same reports as ``sopilot report gaps|health|daily|stale|conflicts``: gaps, health and daily read the
server's query log (days are UTC), stale reads the KB's front matter, conflicts the section vectors the index
holds. ``/reports`` is the console's page that shows them.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sopilot.api.deps import Author, EngineDep, StateDep
from sopilot.api.errors import ApiError, error_responses
from sopilot.api.query_params import KNOWN_QUERY_ONLY
from sopilot.api.routes.console import page_file
from sopilot.api.routes.lint import existing_kb
from sopilot.api.schemas import IsoDay
from sopilot.author.conflicts import ConflictParams, FactClash, SectionPair, find_conflicts
from sopilot.author.daily import DailyReport, daily_report, plots, to_html, to_markdown
from sopilot.author.gaps import GapCluster, GapParams, find_gaps
from sopilot.author.health import SectionHealth, section_health
from sopilot.author.kb_files import load_kb
from sopilot.author.similar import sections_from
from sopilot.author.stale import StaleSop, stale_sops, without_dates
from sopilot.index.querylog import QueryLog

router = APIRouter(prefix="/v1/reports", tags=["reports"], dependencies=KNOWN_QUERY_ONLY)
page_router = APIRouter(include_in_schema=False)
ERRORS = error_responses(400, 401, 403, 409, 422, 429, 503)


class NearestSectionPublic(BaseModel):
    path: str
    anchor: str
    heading_path: list[str]
    similarity: float = Field(description="Cosine similarity of the cluster's centre to the section")


class GapClusterPublic(BaseModel):
    size: int
    representatives: list[str] = Field(description="The questions nearest the cluster's centre first")
    reasons: dict[str, int] = Field(description="abstained, weak (covered by words only) or rejected")
    nearest: NearestSectionPublic | None
    suggestion: Literal["extend", "new"]
    stub: str = Field(description="Front matter of the new SOP when the suggestion is new")
    new: bool | None = Field(
        None, description="Daily report: none of its questions was a gap in the days before (null: not judged)"
    )

    @classmethod
    def of(cls, c: GapCluster) -> GapClusterPublic:
        n = c.nearest
        nearest = None if n is None else NearestSectionPublic(**_nearest(n))
        return cls(
            size=c.size,
            representatives=list(c.representatives),
            reasons=c.reasons,
            nearest=nearest,
            suggestion=c.suggestion,
            stub=c.stub,
            new=c.new,
        )


def _nearest(n: Any) -> dict[str, Any]:
    return {"path": n.path, "anchor": n.anchor, "heading_path": list(n.heading_path), "similarity": n.similarity}


class GapsPublic(BaseModel):
    clusters: list[GapClusterPublic]


class SectionHealthPublic(BaseModel):
    path: str
    anchor: str
    heading_path: list[str]
    cited: int
    judged: int
    accept_rate: float
    edit_rate: float
    reject_rate: float

    @classmethod
    def of(cls, h: SectionHealth) -> SectionHealthPublic:
        return cls(
            path=h.path,
            anchor=h.anchor,
            heading_path=list(h.heading_path),
            cited=h.cited,
            judged=h.judged,
            accept_rate=h.rate("accepted"),
            edit_rate=h.rate("edited"),
            reject_rate=h.rate("rejected"),
        )


class HealthPublic(BaseModel):
    sections: list[SectionHealthPublic]
    ranked: int = Field(description="Sections with enough verdicts to be ranked (before the limit)")


class TopicPublic(BaseModel):
    path: str
    title: str
    answers: int


class StalePublic(BaseModel):
    path: str
    id: str
    title: str
    owner: str
    status: str
    last_reviewed: date
    review_every_days: int
    due: date
    days_overdue: int

    @classmethod
    def of(cls, s: StaleSop) -> StalePublic:
        return cls(
            path=s.path,
            id=s.sop_id,
            title=s.title,
            owner=s.owner,
            status=s.status,
            last_reviewed=s.last_reviewed,
            review_every_days=s.review_every_days,
            due=s.due,
            days_overdue=s.days_overdue,
        )


class SlowPublic(BaseModel):
    id: str
    at: str = Field(description="HH:MM UTC")
    latency_ms: float
    question: str


class DailyPublic(BaseModel):
    date: date
    questions: int
    covered: int
    abstained: int
    coverage_rate: float
    by_hour: list[int] = Field(description="Questions per UTC hour, 24 values")
    covered_by_hour: list[int]
    verdicts: dict[str, int]
    topics: list[TopicPublic]
    gaps: list[GapClusterPublic]
    new_gaps: int = Field(description="Gap clusters of the day none of whose questions was a gap before")
    new_gap_days: int = Field(description="The days before that were looked at (SOPILOT_NEW_GAP_DAYS)")
    stale: list[StalePublic]
    worst_sections: list[SectionHealthPublic]
    slowest: list[SlowPublic]
    latency_p50_ms: float
    latency_p95_ms: float

    @classmethod
    def of(cls, r: DailyReport) -> DailyPublic:
        return cls(
            date=r.day,
            questions=r.questions,
            covered=r.covered,
            abstained=r.abstained,
            coverage_rate=r.coverage_rate,
            by_hour=r.by_hour,
            covered_by_hour=r.covered_by_hour,
            verdicts=r.verdicts,
            topics=[TopicPublic(path=p, title=t, answers=n) for p, t, n in r.topics],
            gaps=[GapClusterPublic.of(g) for g in r.gaps],
            new_gaps=len(r.new_gaps),
            new_gap_days=r.new_days,
            stale=[StalePublic.of(s) for s in r.stale],
            worst_sections=[SectionHealthPublic.of(h) for h in r.worst],
            slowest=[
                SlowPublic(id=s.answer_id, at=s.at, latency_ms=s.latency_ms, question=s.question) for s in r.slowest
            ],
            latency_p50_ms=r.latency_p50,
            latency_p95_ms=r.latency_p95,
        )


class StaleReportPublic(BaseModel):
    today: date
    overdue: list[StalePublic] = Field(description="Most overdue first")
    no_review_dates: list[str] = Field(description="SOPs without last_reviewed or review_every_days: never overdue")


class FactPublic(BaseModel):
    text: str = Field(description="As written in the section")
    value: str = Field(description="Normalised (minutes for durations)")
    line: int = Field(description="0-based line in the section's text")


class ClashPublic(BaseModel):
    kind: str = Field(description="duration, quantity, channel, url, team or command")
    unit: str
    a: FactPublic
    b: FactPublic
    shared_context: list[str] = Field(description="The context words both facts share")

    @classmethod
    def of(cls, c: FactClash) -> ClashPublic:
        return cls(
            kind=c.kind,
            unit=c.unit,
            a=FactPublic(text=c.a.text, value=c.a.value, line=c.a.line),
            b=FactPublic(text=c.b.text, value=c.b.value, line=c.b.line),
            shared_context=sorted(c.a.context & c.b.context),
        )


class PairSidePublic(BaseModel):
    path: str
    link: str = Field(description="path#anchor")
    heading_path: list[str]
    start_line: int
    end_line: int
    status: str
    fact_lines: list[int] = Field(description="1-based file lines of the clashing facts")
    text: str


class SectionPairPublic(BaseModel):
    similarity: float = Field(description="Cosine similarity of the two sections")
    overlap: float = Field(description="Share of the smaller section's word trigrams in the other")
    a: PairSidePublic
    b: PairSidePublic
    clashes: list[ClashPublic] = Field(description="Facts of one kind about the same thing with other values")

    @classmethod
    def of(cls, p: SectionPair) -> SectionPairPublic:
        body = p.to_dict()
        return cls(
            similarity=body["similarity"],
            overlap=body["overlap"],
            a=PairSidePublic(**body["a"]),
            b=PairSidePublic(**body["b"]),
            clashes=[ClashPublic.of(c) for c in p.clashes],
        )


class ConflictsPublic(BaseModel):
    sections: int = Field(description="Sections in the index")
    pairs_compared: int = Field(description="Neighbouring sections of different SOPs compared")
    duplicate_count: int = Field(description="Near-duplicate pairs found (before the limit)")
    contradiction_count: int = Field(description="Contradicting pairs found (before the limit)")
    clashes_by_kind: dict[str, int] = Field(description="Clashing facts per kind over every contradiction")
    duplicates: list[SectionPairPublic]
    contradictions: list[SectionPairPublic] = Field(description="Most clashes first")


DEFAULT_MIN_SIMILARITY = ConflictParams().min_similarity
Day = Annotated[IsoDay, Query(description="A UTC day, YYYY-MM-DD")]


def _log(log: QueryLog | None) -> QueryLog:
    if log is None:
        raise ApiError(409, "querylog_off", "this server keeps no query log", "start it with SOPILOT_QUERYLOG=true")
    return log


def _window(since: date | None, until: date | None) -> tuple[float | None, float | None]:
    if since and until and until < since:
        raise ApiError(400, "invalid_window", f"until {until} is before since {since}", "swap the two dates")
    start = datetime.combine(since, datetime.min.time(), UTC).timestamp() if since else None
    end = datetime.combine(until + timedelta(days=1), datetime.min.time(), UTC).timestamp() if until else None
    return start, end


@router.get("/gaps", response_model=GapsPublic, responses=ERRORS)
async def get_gaps(
    state: StateDep,
    engine: EngineDep,
    _: Author,
    since: Day = None,
    until: Day = None,
    threshold: Annotated[float, Query(gt=0, lt=2)] = 0.45,
    min_size: Annotated[int, Query(ge=1)] = 1,
) -> GapsPublic:
    """Questions that abstained, were covered by words only, or whose draft was rejected, clustered by meaning."""
    log = _log(state.querylog)
    start, end = _window(since, until)
    params = GapParams(
        distance_threshold=threshold, weak_below=engine.retriever.params.covered_min_dense, min_size=min_size
    )
    clusters = await run_in_threadpool(
        lambda: find_gaps(
            log.queries(start, end), log.latest_verdicts(), state.embedder, engine.retriever.store, params
        )
    )
    return GapsPublic(clusters=[GapClusterPublic.of(c) for c in clusters])


@router.get("/health", response_model=HealthPublic, responses=ERRORS)
async def get_health(
    state: StateDep,
    _: Author,
    since: Day = None,
    until: Day = None,
    min_judged: Annotated[int, Query(ge=1)] = 3,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> HealthPublic:
    """Per SOP section: times cited and the accept, edit and reject rates of the drafts citing it, worst first."""
    log = _log(state.querylog)
    start, end = _window(since, until)
    sections = section_health(log.queries(start, end), log.latest_verdicts(), min_judged=min_judged)
    return HealthPublic(sections=[SectionHealthPublic.of(s) for s in sections[:limit]], ranked=len(sections))


DAILY_FORMATS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON by default; format=md Markdown, format=html a self-contained page with its plots",
        "content": {
            "text/markdown": {"schema": {"type": "string"}},
            "text/html": {"schema": {"type": "string"}},
        },
    }
}


@router.get("/daily", response_model=DailyPublic, responses={**ERRORS, **DAILY_FORMATS})
async def get_daily(
    state: StateDep,
    engine: EngineDep,
    _: Author,
    day: Annotated[IsoDay, Query(alias="date", description="A UTC day, YYYY-MM-DD; today by default")] = None,
    format: Annotated[Literal["json", "md", "html"], Query(description="html: self-contained, plots inlined")] = "json",
) -> Any:
    """One day of questions: volume and coverage by hour, verdicts, topics, gaps, stale SOPs, worst, slowest."""
    log = _log(state.querylog)
    settings = state.settings
    when = day or datetime.now(UTC).date()

    def build() -> DailyReport:
        return daily_report(
            log,
            when,
            state.embedder,
            engine.retriever.store,
            settings.kb_dir,
            ignore=tuple(settings.ignore),
            max_file_bytes=settings.max_file_bytes,
            gap_params=GapParams(weak_below=engine.retriever.params.covered_min_dense),
            new_gap_days=settings.new_gap_days,
        )

    report = await run_in_threadpool(build)
    if format == "md":
        return PlainTextResponse(to_markdown(report), media_type="text/markdown; charset=utf-8")
    if format == "html":
        page = await run_in_threadpool(lambda: to_html(report, plots(report)))
        return HTMLResponse(page)
    return DailyPublic.of(report)


@router.get("/stale", response_model=StaleReportPublic, responses=error_responses(400, 401, 403, 422, 429))
async def get_stale(
    state: StateDep,
    _: Author,
    today: Annotated[IsoDay, Query(description="The UTC day to measure against; today by default")] = None,
) -> StaleReportPublic:
    """SOPs whose last_reviewed plus review_every_days is before the day, most overdue first (from the files)."""
    settings = state.settings
    kb_dir = existing_kb(settings)
    day = today or datetime.now(UTC).date()
    files, _problems = await run_in_threadpool(lambda: load_kb(kb_dir, tuple(settings.ignore), settings.max_file_bytes))
    return StaleReportPublic(
        today=day, overdue=[StalePublic.of(s) for s in stale_sops(files, day)], no_review_dates=without_dates(files)
    )


@router.get("/conflicts", response_model=ConflictsPublic, responses=ERRORS)
async def get_conflicts(
    engine: EngineDep,
    _: Author,
    show: Annotated[Literal["all", "duplicates", "contradictions"], Query()] = "all",
    min_similarity: Annotated[
        float, Query(ge=0, le=1, description="Cosine below which sections are not compared")
    ] = DEFAULT_MIN_SIMILARITY,
    limit: Annotated[int, Query(ge=1, le=1000, description="Pairs returned per list")] = 50,
) -> ConflictsPublic:
    """Near-duplicate and contradicting sections across SOPs, both passages side by side (embeds nothing)."""
    store = engine.retriever.store

    def build() -> Any:
        sections, vectors = sections_from(store.iter_vectors())
        return find_conflicts(sections, vectors, ConflictParams(min_similarity=min_similarity))

    report = await run_in_threadpool(build)
    duplicates = [] if show == "contradictions" else report.duplicates
    contradictions = [] if show == "duplicates" else report.contradictions
    by_kind = Counter(c.kind for p in contradictions for c in p.clashes)
    return ConflictsPublic(
        sections=report.sections,
        pairs_compared=report.compared,
        duplicate_count=len(duplicates),
        contradiction_count=len(contradictions),
        clashes_by_kind=dict(by_kind.most_common()),
        duplicates=[SectionPairPublic.of(p) for p in duplicates[:limit]],
        contradictions=[SectionPairPublic.of(p) for p in contradictions[:limit]],
    )


@page_router.get("/reports")
def reports_page() -> Response:
    """The author reports page of the console: daily figures, gaps, section health."""
    return page_file("reports.html")
