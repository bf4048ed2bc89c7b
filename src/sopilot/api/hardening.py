"""ASGI middleware that guards every request and response, whatever route serves it (docs/security.md).

``HeaderLimit`` refuses a request whose request line and headers together exceed ``SOPILOT_MAX_HEADER_BYTES``
with 431, before any route or dependency reads them. ``SecurityHeaders`` adds to every response what the
browser needs to treat it safely: ``nosniff`` (a JSON error that echoes a path is never read as HTML), no
referrer, ``no-store`` on API answers (they hold SOP text and users' questions), and a Content-Security-Policy
that runs no script on any HTML that does not set its own (the daily report served as HTML).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sopilot.api.errors import error_response

# HTML the API returns as a document (GET /v1/reports/daily?format=html): inline styles and inlined plots, no
# script, nothing loaded from elsewhere. The console's pages set their own policy (routes/console.py).
DOCUMENT_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_SCHEMA_PAGES = ("/docs", "/redoc")  # FastAPI's schema pages load their scripts and styles by design


class HeaderLimit:
    """431 when the request line and headers add up to more than ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            size += sum(len(name) + len(value) + 4 for name, value in scope.get("headers") or [])
            if size > self.limit:
                response = error_response(
                    431,
                    "headers_too_large",
                    f"the request line and headers are {size} bytes, more than {self.limit}",
                    "send the question in the body and only the headers the API needs "
                    "(SOPILOT_MAX_HEADER_BYTES sets the limit)",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """nosniff, no referrer and ``no-store`` on every response; a script-free policy on HTML that has none."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {name.lower() for name, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                if path.startswith("/v1/"):
                    extra.append((b"cache-control", b"no-store"))
                content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html") and not path.startswith(_SCHEMA_PAGES):
                    extra.append((b"content-security-policy", DOCUMENT_POLICY.encode()))
                headers += [(name, value) for name, value in extra if name not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)
