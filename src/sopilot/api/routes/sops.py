"""GET /v1/sops (the KB's SOPs with their front matter) and GET /v1/sops/{path} (one SOP, rendered safely).

The path is checked before the file is opened (``sopilot.api.sop_files``): a path that could leave the KB
folder gets a 400 or 404 JSON error and is never read.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sopilot.api.deps import Agent, StateDep
from sopilot.api.errors import error_responses
from sopilot.api.sop_files import SopSummary, list_sops, load_sop_view

router = APIRouter(prefix="/v1/sops", tags=["sops"])


class SopSummaryPublic(BaseModel):
    path: str = Field(description="Relative to the KB folder")
    title: str
    team: str = Field(description="The owning team (front matter `owner`)")
    status: str
    last_reviewed: date | None
    review_due: date | None = Field(description="last_reviewed + review_every_days")
    tags: list[str]
    products: list[str]

    @classmethod
    def of(cls, s: SopSummary) -> SopSummaryPublic:
        return cls(
            path=s.path,
            title=s.title,
            team=s.team,
            status=s.status,
            last_reviewed=s.last_reviewed,
            review_due=s.review_due,
            tags=list(s.tags),
            products=list(s.products),
        )


class SopList(BaseModel):
    sops: list[SopSummaryPublic]


class HeadingPublic(BaseModel):
    level: int
    text: str
    anchor: str = Field(description="The heading's id in `html`: the anchor passages and citations link to")


class SopPublic(SopSummaryPublic):
    escalation: str = Field(description="Team (channel): when, from the front matter; empty when none")
    headings: list[HeadingPublic]
    html: str = Field(description="The SOP's body as sanitized HTML: raw HTML shown as text, no script or handler")


@router.get("", response_model=SopList, responses=error_responses(401, 403, 429))
async def get_sops(state: StateDep, _: Agent) -> SopList:
    """Every SOP of the KB: path, title, team, status, review dates."""
    settings = state.settings
    found = await run_in_threadpool(
        list_sops, settings.kb_dir, max_bytes=settings.max_file_bytes, ignore=tuple(settings.ignore)
    )
    return SopList(sops=[SopSummaryPublic.of(s) for s in found])


# What the route accepts, stated in the OpenAPI schema: relative segments that do not start with a dot, no
# backslash or NUL, ending in .md or .markdown (any case). The route's own check (``resolve_sop_path``) stays
# the authority and answers 400 with what to fix for anything else; a well-formed path names an SOP or gets 404.
_SEGMENT = r"[^/\\.\x00-\x1f][^/\\\x00-\x1f]*"
SOP_PATH_PATTERN = rf"^({_SEGMENT}/+)*{_SEGMENT}\.([mM][dD]|[mM][aA][rR][kK][dD][oO][wW][nN])$"


@router.get("/{path:path}", response_model=SopPublic, responses=error_responses(400, 401, 403, 404, 422, 429))
async def get_sop(
    path: Annotated[
        str,
        PathParam(
            description="The SOP's path relative to the KB folder, e.g. access/sso-login-failures.md",
            json_schema_extra={"pattern": SOP_PATH_PATTERN},
        ),
    ],
    state: StateDep,
    _: Agent,
) -> SopPublic:
    """One SOP rendered to safe HTML, its headings with the anchors passages link to."""
    settings = state.settings
    view = await run_in_threadpool(
        load_sop_view, settings.kb_dir, path, max_bytes=settings.max_file_bytes, ignore=tuple(settings.ignore)
    )
    summary = SopSummaryPublic.of(view.summary)
    return SopPublic(
        **summary.model_dump(),
        escalation=view.escalation,
        headings=[HeadingPublic(level=h.level, text=h.text, anchor=h.anchor) for h in view.rendered.headings],
        html=view.rendered.html,
    )
