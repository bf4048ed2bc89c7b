"""GET /v1/lint: ``sopilot lint`` over the server's KB folder, for author and admin keys.

The whole KB is linted (links, duplicate ids and titles are checked across files); the path prefix and the
minimum severity only filter what is returned.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from sopilot.api.deps import Author, StateDep
from sopilot.api.errors import ApiError, error_responses
from sopilot.api.query_params import KNOWN_QUERY_ONLY
from sopilot.api.schemas import IsoDay, LintCounts, LintFindingPublic, LintResponse
from sopilot.author.findings import Level
from sopilot.author.lint import LintReport, lint_kb
from sopilot.author.lint_config import load_lint_config
from sopilot.core.settings import Settings

router = APIRouter(prefix="/v1", tags=["authors"], dependencies=KNOWN_QUERY_ONLY)
Severity = Literal["info", "warning", "error"]


def existing_kb(settings: Settings) -> Path:
    """The server's KB folder, or a 400 that says how to configure it."""
    if not settings.kb_dir.is_dir():
        raise ApiError(
            400, "kb_missing", f"KB folder {settings.kb_dir} does not exist", "set SOPILOT_KB_DIR to the SOPs' folder"
        )
    return settings.kb_dir


@router.get(
    "/lint",
    response_model=LintResponse,
    responses=error_responses(400, 401, 403, 422, 429),
    summary="Lint the KB's SOPs: front matter, sections, steps, links, duplicates",
)
async def get_lint(
    state: StateDep,
    _: Author,
    path: Annotated[
        str, Query(max_length=500, description="Only findings in files whose KB path starts with this")
    ] = "",
    severity: Annotated[Severity, Query(description="Only findings at least this severe")] = "info",
    today: Annotated[IsoDay, Query(description="The UTC day review dates are checked against; today by default")] = (
        None
    ),
) -> LintResponse:
    """Every lint finding with its rule, severity, path, line, message and fix; counts per rule and severity."""
    prefix = path.strip()
    if prefix.startswith("/") or ".." in prefix.split("/"):
        raise ApiError(
            400, "invalid_path", f"path prefix {prefix!r} leaves the KB folder", "give a path relative to the KB"
        )
    kb_dir = existing_kb(state.settings)
    day = today or datetime.now(UTC).date()

    def run() -> tuple[LintReport, str]:
        config = load_lint_config(kb_dir)
        source = config.source if config.source == "defaults" else Path(config.source).name
        return lint_kb(kb_dir, config, day), source

    report, source = await run_in_threadpool(run)
    floor = Level(severity).rank
    kept = [f for f in report.findings if f.path.startswith(prefix) and f.level.rank >= floor]
    by_level = Counter(f.level.value for f in kept)
    counts = LintCounts(
        by_rule=dict(Counter(f.rule for f in kept).most_common()),
        by_severity={lv.value: by_level.get(lv.value, 0) for lv in Level},
    )
    return LintResponse(
        files=report.files,
        config=source,
        today=day,
        counts=counts,
        findings=[LintFindingPublic.of(f) for f in kept],
    )
