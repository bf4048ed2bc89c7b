"""The HTTP API: ``create_app(settings)`` builds it; its lifespan opens the models and the index once.

``sopilot serve`` runs it under uvicorn (``app_from_env`` is the factory each worker calls). Errors are JSON
with a stable code (``sopilot.api.errors``); request bodies above ``SOPILOT_MAX_BODY_BYTES`` are refused
before they are read whole.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sopilot import __version__
from sopilot.api.errors import error_response, install_handlers
from sopilot.api.hardening import HeaderLimit, SecurityHeaders
from sopilot.api.log_redaction import redacted_server_log
from sopilot.api.metrics import Metrics, MetricsMiddleware
from sopilot.api.routes import ROUTERS
from sopilot.api.state import AppState
from sopilot.core.settings import Settings
from sopilot.index.embedder import Embedder, question_encoder_of

log = logging.getLogger(__name__)


class BodyLimit:
    """Refuse request bodies above ``limit`` bytes with 413: by their Content-Length before anything is read, and
    a body without one (chunked) is read here up to the limit first, then handed to the app whole. (Raising from
    the app's own reads would not do: FastAPI answers an error while it parses a body with 400.)"""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > self.limit:
                await body_too_large(self.limit)(scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server reads no more than Content-Length
            return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        body, more, message = [], True, None
        seen = 0
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await body_too_large(self.limit)(scope, receive, send)
                return
            body.append(chunk)
            more = message.get("more_body", False)
        whole: Message = {"type": "http.request", "body": b"".join(body), "more_body": False}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return whole if message is None or message["type"] == "http.request" else message
            return await receive()

        await self.app(scope, replay, send)


def body_too_large(limit: int) -> JSONResponse:
    return error_response(
        413,
        "body_too_large",
        f"the request body is larger than {limit} bytes",
        "send only the user's question and options (SOPILOT_MAX_BODY_BYTES sets the limit)",
    )


def create_app(
    settings: Settings | None = None, *, embedder: Embedder | None = None, state: AppState | None = None
) -> FastAPI:
    """The API over the index ``settings`` name. ``embedder`` reuses a loaded model; ``state`` a whole opened
    state (tests build several apps on one); without them the lifespan loads the models itself."""
    settings = settings or (state.settings if state else Settings())
    # The middleware is built before the lifespan opens the state: both share this Metrics.
    metrics = state.metrics if state is not None else Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state is None:
            opened = await run_in_threadpool(AppState.open, settings, embedder, metrics)
            announce_question_encoder(opened)
        else:  # opened (and announced, if at all) by its owner
            opened = state
        app.state.sopilot = opened
        try:
            with redacted_server_log():
                yield
        finally:
            if state is None:
                opened.close()

    app = FastAPI(
        title="SOPilot",
        version=__version__,
        summary="SOP passages and drafted replies with citations, for support agents to review and send.",
        lifespan=lifespan,
    )
    install_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(HeaderLimit, limit=settings.max_header_bytes)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    for router in ROUTERS:
        app.include_router(router)
    publish_limits(app, settings)
    return app


def announce_question_encoder(state: AppState) -> None:
    """Say in the server log (and the metrics) what embeds this worker's questions, fallbacks included."""
    encoder = question_encoder_of(state.embedder, open=False)
    if encoder is None:
        log.info("questions: the encoder opens at the first question (GET /readyz names it then)")
        return
    state.metrics.encoder_in_use(encoder)
    if encoder.fallback:
        log.warning(
            "questions are embedded by %s (%s), not %s as asked: %s",
            encoder.label,
            encoder.model,
            encoder.requested,
            encoder.fallback,
        )
    else:
        log.info("questions are embedded by %s (%s)", encoder.label, encoder.model)


def publish_limits(app: FastAPI, settings: Settings) -> None:
    """The schema states this server's question-length limit, so clients (and schema-driven tests) know it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for name, model in schema.get("components", {}).get("schemas", {}).items():
                query = model.get("properties", {}).get("query")
                if name in ("SearchRequest", "AnswerRequest") and query is not None:
                    query["maxLength"] = settings.max_query_chars
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def app_from_env() -> FastAPI:
    """The factory ``sopilot serve`` gives uvicorn: settings from the ``SOPILOT_*`` environment. The worker's
    own messages (which index generation it opened, a failed reopen) go to the server log beside uvicorn's,
    each with the worker's pid."""
    log = logging.getLogger("sopilot")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(f"%(levelname)s:     [{os.getpid()}] %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False  # a library's root-logger call (onnxruntime's quantizer) would print each line twice
    return create_app(Settings())
