"""Dependencies the routes declare: the app's state, the engine of the current index, the caller's key.

The state, key and role checks are ``async``: FastAPI runs a plain function dependency in its thread pool, one
hand-off per dependency and request (8 % of a search's CPU under load, docs/scale.md), and what they do is quick
(a key's hash compared, a rate-limit row written). The engine's stays a plain function: the generation marker
may be read from a Chroma server, and a new generation is opened there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sopilot.api.errors import ApiError
from sopilot.api.state import AppState, Engine
from sopilot.core.errors import SopilotError

_bearer = HTTPBearer(auto_error=False, description="An API key from `sopilot keys create`")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id ("" when the server has no keys) and role."""

    key_id: str
    role: str
    name: str = ""


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.sopilot
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_engine(state: StateDep) -> Engine:
    """A plain function (run in the thread pool): reading the generation marker may ask a Chroma server."""
    try:
        return state.engine()
    except SopilotError as exc:
        raise ApiError(
            503, "index_not_ready", str(exc), "build the index: `sopilot ingest` or POST /v1/ingest"
        ) from exc


EngineDep = Annotated[Engine, Depends(get_engine)]


async def authenticate(
    state: StateDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller's key, checked; with no key configured (a loopback-only server) everyone is admin."""
    if not state.keys.required():
        return Principal("", "admin", "no keys configured")
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(
            401, "missing_key", "this server needs an API key", "send `Authorization: Bearer <key>`", challenge
        )
    key = state.keys.verify(credentials.credentials)
    if key is None:
        raise ApiError(
            401,
            "invalid_key",
            "the API key is unknown or revoked",
            "ask an admin for a key (`sopilot keys create NAME --role ROLE`)",
            challenge,
        )
    return Principal(key.key_id, key.role, key.name)


def require_role(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets through keys of these roles (and admin), within their rate limit."""
    allowed = frozenset(roles) | {"admin"}

    async def check(state: StateDep, who: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if who.role not in allowed:
            raise ApiError(
                403,
                "forbidden_role",
                f"a key with role {who.role!r} may not use this route",
                f"use a key with one of the roles {', '.join(sorted(allowed))}",
            )
        wait = state.limiter.take(who.key_id)
        if wait > 0:
            retry = state.limiter.retry_after(wait)
            raise ApiError(
                429,
                "rate_limited",
                f"this key made more than {state.limiter.rate} requests a minute",
                f"retry after {retry} s (the Retry-After header)",
                {"Retry-After": retry},
            )
        return who

    check.roles = tuple(sorted(allowed))  # type: ignore[attr-defined]  # read by the auth tests
    return check


AGENT_ROLES = ("agent", "author", "evaluator")  # who may search and draft
Agent = Annotated[Principal, Depends(require_role(*AGENT_ROLES))]
FeedbackGiver = Annotated[Principal, Depends(require_role("agent"))]
Author = Annotated[Principal, Depends(require_role("author"))]
Observer = Annotated[Principal, Depends(require_role("evaluator"))]
