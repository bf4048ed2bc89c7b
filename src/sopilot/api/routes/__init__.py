"""One router per resource; ``ROUTERS`` is what ``create_app`` mounts, in this order."""

from __future__ import annotations

from fastapi import APIRouter

from sopilot.api.routes import answer, console, feedback, health, ingest, lint, metrics, reports, search, sops

# The console's pages last: its catch-all /sop/{path} and /static/{name} never shadow an API route.
ROUTERS: list[APIRouter] = [
    health.router,
    metrics.router,
    search.router,
    answer.router,
    feedback.router,
    ingest.router,
    lint.router,
    sops.router,
    reports.router,
    reports.page_router,
    console.router,
]
