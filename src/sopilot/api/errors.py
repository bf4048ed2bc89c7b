"""Every error the API returns is JSON: ``{"error": {"code", "message", "fix"}}`` with a stable code.

``ApiError`` is raised by routes and dependencies; SOPilot's own errors (``SopilotError``), request validation,
unknown routes and anything unexpected are mapped to the same body by the handlers ``install_handlers`` adds.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from sopilot.core.errors import SopilotError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with its HTTP status, a stable machine-readable code and what the caller should do."""

    def __init__(
        self, status: int, code: str, message: str, fix: str = "", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fix = fix
        self.headers = headers or {}


class ErrorDetail(BaseModel):
    code: str
    message: str
    fix: str = ""
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    """What every error response holds."""

    error: ErrorDetail


def error_response(
    status: int,
    code: str,
    message: str,
    fix: str = "",
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, fix=fix, details=details))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entry for a route's error statuses."""
    return {status: {"model": ErrorBody, "description": _DESCRIPTIONS.get(status, "error")} for status in statuses}


_DESCRIPTIONS = {
    400: "the request cannot work as given",
    401: "no API key, or an unknown or revoked one",
    403: "the key's role may not use this route",
    404: "not found",
    409: "conflicts with the index's state (another ingest running, another embedder)",
    413: "request body too large",
    422: "the request does not match the schema, or a value is out of bounds",
    429: "rate limit reached: retry after the Retry-After header's seconds",
    503: "the index or a model server is not available",
    507: "the index folder cannot be written (disk full, read-only): what was indexed stays searchable",
}
_FIXES = {
    404: "see GET /openapi.json for the routes and their methods",
    405: "see GET /openapi.json for the routes and their methods",
    413: "send only the user's question and options (SOPILOT_MAX_BODY_BYTES sets the limit)",
}
_STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def sopilot_code(exc: SopilotError) -> str:
    """``EmbedderMismatchError`` -> ``embedder_mismatch``: the class name is the stable code."""
    name = type(exc).__name__.removesuffix("Error") or "sopilot"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _validation_message(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    details = [
        {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body", "problem": str(e.get("msg"))}
        for e in errors
    ]
    first = details[0] if details else {"field": "body", "problem": "invalid"}
    extra = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"{first['field']}: {first['problem']}{extra}", details


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.fix, headers=exc.headers)

    @app.exception_handler(SopilotError)
    async def _sopilot(_: Request, exc: SopilotError) -> JSONResponse:
        return error_response(exc.http_status, sopilot_code(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, details = _validation_message(list(exc.errors()))
        fix = "send a body that matches the request schema (GET /openapi.json, or /docs)"
        return error_response(422, "invalid_request", message, fix, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        fix = _FIXES.get(exc.status_code, "")
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return error_response(exc.status_code, code, message, fix, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        log.exception("unexpected error %s on %s %s", incident, request.method, request.url.path)
        return error_response(
            500,
            "internal_error",
            f"the server failed on this request (incident {incident})",
            "report the incident id to whoever runs SOPilot: the server log holds the traceback",
        )
