"""GET /v1/reports/gaps, /v1/reports/health and /v1/reports/daily: the author reports, for author and admin keys.

The same reports as ``sopilot report gaps|health|daily``, read from the server's query log; days are UTC.
``/reports`` is the console's page that shows them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sopilot.api.deps import Author, EngineDep, StateDep
from sopilot.api.errors import ApiError, error_responses
from sopilot.api.routes.console import page_file
from sopilot.author.daily import DailyReport, daily_report, plots, to_html, to_markdown
from sopilot.author.gaps import GapCluster, GapParams, find_gaps
from sopilot.author.health import SectionHealth, section_health
from sopilot.index.querylog import QueryLog

router = APIRouter(prefix="/v1/reports", tags=["reports"])
page_router = APIRouter(include_in_schema=False)
ERRORS = error_responses(401, 403, 409, 422, 429, 503)


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
    title: str
    owner: str
    due: date
    days_overdue: int


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
            stale=[
                StalePublic(path=s.path, title=s.title, owner=s.owner, due=s.due, days_overdue=s.days_overdue)
                for s in r.stale
            ],
            worst_sections=[SectionHealthPublic.of(h) for h in r.worst],
            slowest=[
                SlowPublic(id=s.answer_id, at=s.at, latency_ms=s.latency_ms, question=s.question) for s in r.slowest
            ],
            latency_p50_ms=r.latency_p50,
            latency_p95_ms=r.latency_p95,
        )


Day = Annotated[date | None, Query(description="A UTC day, YYYY-MM-DD")]


def _log(log: QueryLog | None) -> QueryLog:
    if log is None:
        raise ApiError(409, "querylog_off", "this server keeps no query log", "start it with SOPILOT_QUERYLOG=true")
    return log


def _window(since: date | None, until: date | None) -> tuple[float | None, float | None]:
    if since and until and until < since:
        raise ApiError(422, "invalid_window", f"until {until} is before since {since}", "swap the two dates")
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
    params = GapParams(distance_threshold=threshold, weak_below=state.settings.covered_min_dense, min_size=min_size)
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


@router.get("/daily", response_model=DailyPublic, responses=ERRORS)
async def get_daily(
    state: StateDep,
    engine: EngineDep,
    _: Author,
    day: Annotated[date | None, Query(alias="date", description="A UTC day, YYYY-MM-DD; today by default")] = None,
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
            gap_params=GapParams(weak_below=settings.covered_min_dense),
        )

    report = await run_in_threadpool(build)
    if format == "md":
        return PlainTextResponse(to_markdown(report), media_type="text/markdown; charset=utf-8")
    if format == "html":
        page = await run_in_threadpool(lambda: to_html(report, plots(report)))
        return HTMLResponse(page)
    return DailyPublic.of(report)


@page_router.get("/reports")
def reports_page() -> Response:
    """The author reports page of the console: daily figures, gaps, section health."""
    return page_file("reports.html")
