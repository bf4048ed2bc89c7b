"""Query strings are strict like request bodies: a parameter the route does not declare is refused (422).

FastAPI ignores unknown query parameters, so a mistyped ``?sinse=2026-11-01`` would silently give the whole log;
the OpenAPI schema (and schemathesis) say such a request is invalid. Routers add ``KNOWN_QUERY_ONLY``.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from sopilot.api.errors import ApiError


def known_query_only(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise ApiError(
            422,
            "unknown_parameter",
            f"unknown query parameter(s) {', '.join(unknown)} for {route.path}",
            f"use only {', '.join(sorted(known)) or 'no parameters'} (GET /openapi.json)",
        )


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


KNOWN_QUERY_ONLY = [Depends(known_query_only)]
