"""One router per resource; ``ROUTERS`` is what ``create_app`` mounts, in this order."""

from __future__ import annotations

from fastapi import APIRouter

from sopilot.api.routes import answer, health, search

ROUTERS: list[APIRouter] = [health.router, search.router, answer.router]
