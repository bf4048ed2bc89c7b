"""The agents' web console: plain HTML, CSS and JavaScript from ``api/static``, no build step, nothing external.

The pages carry no data; they call the API (``/v1/answer``, ``/v1/feedback``, ``/v1/sops``) with the key the
agent gives. Every page is served with a Content-Security-Policy that allows scripts from this server only,
so even HTML that slipped past the sanitizer could not run a script or an inline event handler.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, Response

STATIC = Path(__file__).resolve().parent.parent / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _file(name: str) -> Response:
    """A file of ``api/static`` by its bare name; anything else (a folder, ``..``, a missing file) is a 404."""
    path = STATIC / name
    media_type = _MEDIA_TYPES.get(path.suffix)
    if "/" in name or name.startswith(".") or media_type is None or not path.is_file():
        return JSONResponse(
            {"error": {"code": "not_found", "message": f"no console file {name!r}", "fix": "open the console at /"}},
            status_code=404,
        )
    return FileResponse(path, media_type=media_type, headers=_HEADERS)


page_file = _file  # other routers serve their pages of the console with the same headers (routes/reports.py)


@router.get("/")
def console_page() -> Response:
    """The console: question, filters, ranked passages, the draft with its citations, feedback."""
    return _file("index.html")


@router.get("/sops")
def sop_list_page() -> Response:
    """The KB's SOPs with team, status and review dates."""
    return _file("sops.html")


@router.get("/sop/{path:path}")
def sop_page(path: str) -> Response:
    """One SOP, rendered safely; the path is checked by GET /v1/sops/{path}, which the page calls."""
    return _file("sop.html")


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    return _file(name)
