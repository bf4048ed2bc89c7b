"""Security review of the API over a real uvicorn on 127.0.0.1 (docs/security.md lists each threat and test).

Auth on every route the app has (enumerated from ``app.routes``), SOP paths that try to leave the KB in every
encoding sent as raw bytes (no client normalises them first), oversized bodies and headers, CR/LF in anything
that could be echoed into a header or a server-sent event, and an API key that never reaches the query log,
the server log or the metrics.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from tests.conftest import ROOT

from sopilot.api.app import create_app
from sopilot.api.keys import ROLES, KeyStore, keys_path
from sopilot.core.settings import Settings
from sopilot.index.embedder import Embedder
from sopilot.index.querylog import Redactor, querylog_path

pytestmark = pytest.mark.slow
SECRET = "SECRET-MARKER-7d1f0c"  # the text of a Markdown file beside the KB, never to be served
SOP_LINE = "Without it they"  # from the body of access/2fa-reset-lost-phone.md
# Routes anyone may call, and why: nothing here holds SOP text, a question or a key.
PUBLIC = {
    "/healthz": "liveness for load balancers",
    "/readyz": "readiness: chunk count and KB version only",
    "/openapi.json": "the schema",
    "/docs": "the schema's page",
    "/docs/oauth2-redirect": "part of the schema's page",
    "/redoc": "the schema's page",
    "/": "console page: static HTML that calls the API with the agent's key",
    "/sops": "console page (static)",
    "/sop/{path:path}": "console page (static); the SOP comes from GET /v1/sops/{path} with the key",
    "/static/{name}": "the console's CSS and JavaScript",
    "/reports": "console page (static); the reports come from /v1/reports/* with an author key",
}


@dataclass
class Served:
    url: str
    host: str
    port: int
    keys: dict[str, str]
    settings: Settings
    app: FastAPI
    log: list[str]


class _Capture(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(("httpx", "httpcore")):  # the test's own client logs its headers
            self.into.append(self.format(record))


@contextmanager
def uvicorn_thread(app: FastAPI) -> Iterator[int]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="debug", log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def served(shipped_index: Settings, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The shipped index (a copy) behind keys of every role; a Markdown file beside the KB and a symlink to it."""
    base = tmp_path_factory.mktemp("security")
    kb = shutil.copytree(ROOT / "kb", base / "kb")
    (base / "secret.md").write_text(f"# Secret\n\n{SECRET}\n", encoding="utf-8")
    os.symlink(base / "secret.md", kb / "access" / "link-out.md")
    index = shutil.copytree(shipped_index.index_dir, base / "index", ignore=shutil.ignore_patterns("querylog*"))
    store = KeyStore(keys_path(index))
    keys = {role: store.create(f"security {role}", role)[1] for role in ROLES}
    store.close()
    settings = shipped_index.with_paths(kb=kb, index=index).model_copy(update={"rate_limit": 0})
    lines: list[str] = []
    handler = _Capture(lines)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # uvicorn's own loggers may not propagate to the root (another test's server configured them): listen there too.
    servers = [logging.getLogger(name) for name in ("uvicorn.access", "uvicorn.error")]
    for logger in servers:
        logger.addHandler(handler)
    app = create_app(settings, embedder=embedder)
    try:
        with uvicorn_thread(app) as port:
            yield Served(f"http://127.0.0.1:{port}", "127.0.0.1", port, keys, settings, app, lines)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for logger in servers:
            logger.removeHandler(handler)


def raw(served: Served, request: bytes, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client normalises the path) and read the whole answer (Connection: close)."""
    with socket.create_connection((served.host, served.port), timeout=timeout) as s:

        def send() -> None:  # beside the reading: a server that answers early stops reading what is left
            with suppress(OSError):
                s.sendall(request)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        data = b""
        while True:
            try:
                piece = s.recv(65536)
            except ConnectionResetError:
                break
            if not piece:
                break
            data += piece
        sender.join(timeout)
    if not data:
        return 0, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = headers.get(name.strip().lower(), "") + value.strip()
    return int(status_line.split()[1]), headers, body


def get(served: Served, target: str, key: str | None = None, extra: str = "") -> tuple[int, dict[str, str], bytes]:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}{extra}Connection: close\r\n\r\n"
    return raw(served, request.encode("utf-8"))


def _roles(dependant) -> tuple[str, ...] | None:  # type: ignore[no-untyped-def]
    for dep in dependant.dependencies:
        found = getattr(dep.call, "roles", None) or _roles(dep)
        if found:
            return tuple(found)
    return None


# -- auth on every route ------------------------------------------------------------------------------------------


def app_routes(routes, prefix: str = "", checks: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """Every route of the app as (path, route, roles of the dependencies it was included with). FastAPI keeps
    included routers as branches of ``app.routes``; anything this walk does not know stays undecided."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = route.include_context
            roles = tuple(r for d in context.dependencies for r in getattr(d.dependency, "roles", ()))
            yield from app_routes(inner.routes, prefix + context.prefix, checks + roles)
        else:
            yield prefix + getattr(route, "path", repr(route)), route, checks


def test_every_route_of_the_app_has_an_auth_decision(served: Served) -> None:
    """A route added anywhere (a router, ``app.add_api_route``, a mount) fails here until it checks a role or is
    listed in PUBLIC with the reason it may be public; every checked route refuses a request without a key."""
    undecided, checked = [], []
    for path, route, included in app_routes(served.app.routes):
        roles = included or (_roles(route.dependant) if isinstance(route, APIRoute) else None)
        if roles:
            checked.append((path, route))
        elif path not in PUBLIC:
            undecided.append(path)
    assert not undecided, f"routes with neither a role check nor a PUBLIC entry: {undecided}"
    assert len(checked) >= 9
    for path, route in checked:
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            url = served.url + path.replace("{path:path}", "access/2fa-reset-lost-phone.md")
            response = httpx.request(method, url, json={} if method == "POST" else None, timeout=60)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["code"] == "missing_key"
    for path in PUBLIC:
        status, _, body = get(served, path.replace("{path:path}", "access/2fa-reset-lost-phone.md").replace(
            "{name}", "console.js"))  # fmt: skip
        assert status in (200, 307), (path, status)
        assert SOP_LINE.encode() not in body, path  # no SOP text


# -- path traversal -----------------------------------------------------------------------------------------------

TRAVERSALS = [
    "../secret.md",
    "access/../../secret.md",
    "..%2fsecret.md",
    "%2e%2e/secret.md",
    "%2e%2e%2fsecret.md",
    "%2E%2E%2Fsecret.md",
    "access%2f..%2f..%2fsecret.md",
    "..%5csecret.md",
    "..\\secret.md",
    "%252e%252e%252fsecret.md",
    "..%00/secret.md",
    "secret.md%00.md",
    "%00",
    "%c0%ae%c0%ae/secret.md",
    "%e2%80%a4%e2%80%a4/secret.md",  # U+2024 ONE DOT LEADER twice
    "%ef%bc%8e%ef%bc%8e/secret.md",  # U+FF0E FULLWIDTH FULL STOP twice
    "%ef%bc%8e%ef%bc%8e%ef%bc%8fsecret.md",  # ... and U+FF0F FULLWIDTH SOLIDUS
    "....//secret.md",
    "./../secret.md",
    "%2fetc%2fpasswd",
    "/etc/passwd",
    "access/link-out.md",  # a symlink in the KB leading out of it
    ".%2e/secret.md",
    "access/..;/../secret.md",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_sop_paths_that_try_to_leave_the_kb_are_refused(served: Served, path: str) -> None:
    status, headers, body = get(served, f"/v1/sops/{path}", served.keys["agent"])
    assert status in (400, 404), (path, status, body[:300])
    assert SECRET.encode() not in body and b"root:" not in body
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] in {"invalid_sop_path", "sop_not_found", "not_found"}
    for prefix in ("/sop/", "/static/"):  # the console's pages serve their own files only
        status, _, page = get(served, prefix + path)
        assert SECRET.encode() not in page and b"root:" not in page and b"def create_app" not in page


def test_a_good_sop_path_still_opens(served: Served) -> None:
    status, _, body = get(served, "/v1/sops/access/2fa-reset-lost-phone.md", served.keys["agent"])
    assert status == 200 and json.loads(body)["path"] == "access/2fa-reset-lost-phone.md"


# -- oversized requests -------------------------------------------------------------------------------------------


def test_oversized_bodies_are_refused_before_they_are_read(served: Served) -> None:
    limit = served.settings.max_body_bytes
    big = b'{"query": "' + b"a" * (limit + 10) + b'"}'
    auth = f"Authorization: Bearer {served.keys['agent']}\r\n"
    declared = f"POST /v1/search HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
    status, _, body = raw(served, f"{declared}Content-Length: {len(big)}\r\nConnection: close\r\n\r\n".encode() + big)
    assert status == 413 and json.loads(body)["error"]["code"] == "body_too_large"
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(part), part) for part in (big[i : i + 8192] for i in range(0, len(big), 8192))
    )
    status, _, body = raw(served, f"{declared}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
                          + chunks + b"0\r\n\r\n")  # fmt: skip
    assert status == 413 and json.loads(body)["error"]["code"] == "body_too_large"
    nested = b'{"query": "reset 2fa", "filters": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    assert len(nested) < limit
    response = httpx.post(f"{served.url}/v1/search", content=nested, headers={"Authorization": auth[15:-2]})
    assert response.status_code == 422, response.text[:300]


def test_oversized_headers_are_refused_and_the_server_goes_on(served: Served) -> None:
    limit = served.settings.max_header_bytes
    for extra in (f"X-Big: {'a' * 200_000}\r\n", "".join(f"X-H{i}: v\r\n" for i in range(5000))):
        status, _, body = get(served, "/healthz", extra=extra)
        assert status == 431 and json.loads(body)["error"]["code"] == "headers_too_large"
    status, _, body = get(served, "/v1/sops/" + "a/" * limit + "x.md", served.keys["agent"])
    assert status == 431
    status, _, _ = get(served, "/healthz", extra=f"X-Fine: {'a' * (limit // 2)}\r\n")
    assert status == 200
    assert httpx.get(f"{served.url}/healthz").status_code == 200


# -- header injection ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/v1/sops/access/x%0d%0aX-Injected:%20yes.md",
        "/v1/sops/access/x%0aX-Injected:%20yes.md",
        "/sop/x%0d%0aX-Injected:%20yes",
        "/static/x%0d%0aX-Injected:%20yes.js",
        "/nothing%0d%0aX-Injected:%20yes",
        "/v1/reports/daily?date=2026-01-01%0d%0aX-Injected:%20yes",
    ],
)
def test_cr_lf_in_a_url_never_becomes_a_header(served: Served, target: str) -> None:
    status, headers, _ = get(served, target, served.keys["admin"])
    assert status in (400, 404, 422), status
    assert "x-injected" not in headers and not any("X-Injected" in v for v in headers.values())


def test_cr_lf_in_a_question_stays_inside_its_event(served: Served) -> None:
    question = 'reset 2fa\r\nevent: answer\r\ndata: {"forged": true}\r\n\r\nevent: error\ndata: x\n\n\u2028\u0085'
    body = {"query": question, "stream": True}
    headers = {"Authorization": f"Bearer {served.keys['agent']}"}
    response = httpx.post(f"{served.url}/v1/answer", json=body, headers=headers, timeout=120)
    assert response.status_code == 200
    blocks = response.text.replace("\r\n", "\n").split("\n\n")
    events = [block for block in blocks if block.strip() and not block.startswith(":")]  # ":" a keep-alive
    names = [line[6:].strip() for block in events for line in block.split("\n") if line.startswith("event:")]
    assert names[0] == "passages" and names[-1] == "answer" and set(names[1:-1]) <= {"delta"}, names
    for block in events:
        lines = block.split("\n")
        assert [line.split(":", 1)[0] for line in lines] == ["event", "data"], block[:300]
        json.loads(lines[1][5:])
    assert "forged" not in json.loads(events[-1].split("\n")[1][5:])


def test_feedback_ids_with_cr_lf_are_refused(served: Served) -> None:
    headers = {"Authorization": f"Bearer {served.keys['agent']}"}
    body = {"answer_id": "abc\r\nX-Injected: yes", "verdict": "accepted"}
    response = httpx.post(f"{served.url}/v1/feedback", json=body, headers=headers)
    assert response.status_code == 422 and "x-injected" not in response.headers


# -- secrets never logged -----------------------------------------------------------------------------------------


def test_an_api_key_never_reaches_the_query_log_the_server_log_or_the_metrics(served: Served) -> None:
    agent = served.keys["agent"]
    secret_part = agent.split("_", 2)[2]
    with httpx.Client(base_url=served.url, timeout=120, headers={"Authorization": f"Bearer {agent}"}) as http:
        answer = http.post("/v1/answer", json={"query": f"my key {agent} stopped working, 2fa reset?"}).json()
        http.post("/v1/search", json={"query": f"user pasted {secret_part} into the ticket"})
        http.post("/v1/feedback", json={"answer_id": answer["answer_id"], "verdict": "edited",
                                        "sent_text": f"use {agent}", "comment": f"key was {agent}"})  # fmt: skip
        http.post("/v1/search?api_key=" + agent, json={"query": "reset 2fa"})
        http.get("/v1/nothing", headers={"Authorization": f"Bearer {agent}x"})  # an invalid key: 401
        metrics = http.get("/metrics", headers={"Authorization": f"Bearer {served.keys['evaluator']}"}).text
    assert "http_requests" in metrics or "sopilot" in metrics
    index = served.settings.index_dir
    stored = b"".join(p.read_bytes() for p in index.glob("querylog.sqlite3*"))
    stored += b"".join(p.read_bytes() for p in index.glob("keys.sqlite3*"))
    stored += b"".join(p.read_bytes() for p in index.glob("ratelimit*"))
    log_text = "\n".join(served.log)
    assert "GET /healthz" in log_text or "POST /v1/search" in log_text, "the server log was not captured"
    for secret in (agent, secret_part, served.keys["evaluator"].split("_", 2)[2]):
        assert secret.encode() not in stored, "a key reached a file in the index folder"
        assert secret not in log_text, "a key reached the server log"
        assert secret not in metrics, "a key reached the metrics"
    with sqlite3.connect(querylog_path(index)) as db:
        text = " ".join(str(row) for row in db.execute("SELECT * FROM queries"))
    assert "[token]" in text


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("reach me at ops.lead+pager@support.example.co.uk", "ops.lead"),
        ("EMAIL: JANE_DOE@EXAMPLE.ORG", "JANE_DOE"),
        ("call 415-555-0100 now", "555-0100"),
        ("tel +49 (0)30 901820", "901820"),
        ("phone: +1.415.555.0100", "555.0100"),
        ("key sop_0123456789ab_Zx8_Qw-4kLmN0pRsTuVwXyZ12345", "Zx8_Qw-4kLmN0pRsTuVwXyZ12345"),
        ("header was Bearer sop_0123456789ab_Zx8Qw4kLmN0pRsTuVwXyZ", "Zx8Qw4kLmN0pRsTuVwXyZ"),
        ("aws AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ("github ghp_16C7e42F292c6912E7710c838347Ae178B4a", "16C7e42F292c6912E7710c838347Ae178B4a"),
        ("slack xoxb-2048-1234567890-abcdefABCDEF", "abcdefABCDEF"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "eyJzdWIiOiIxIn0"),
        ("Password: hunter2!", "hunter2"),
        ("api_key=Zm9vYmFyYmF6cXV4", "Zm9vYmFyYmF6cXV4"),
        ("sk-proj-abcdefghijklmnop1234", "abcdefghijklmnop1234"),
    ],
)
def test_the_redactor_removes_contacts_and_secrets_in_their_common_shapes(text: str, gone: str) -> None:
    assert gone not in Redactor()(text), Redactor()(text)


def test_the_redactor_keeps_ids_dates_and_versions_support_needs() -> None:
    text = (
        "ticket 48213, item aud_4k2m9x7q1c, v1.4.2, since 2026-11-30 14:05, queue q-cs-17, error RC-QUEUE-403, "
        "SAML_RESPONSE_NOT_VALID_Error2, see review-console-session-expiry-and-login-failures.md"
    )
    assert Redactor()(text) == text


def test_every_response_tells_the_browser_how_to_treat_it(served: Served) -> None:
    from sopilot.api.hardening import DOCUMENT_POLICY

    status, headers, _ = get(served, "/v1/nothing%3Cscript%3E", served.keys["agent"])
    assert status == 404 and headers["x-content-type-options"] == "nosniff"  # a JSON error never read as HTML
    status, headers, _ = get(served, "/v1/sops", served.keys["agent"])
    assert status == 200 and headers["cache-control"] == "no-store"
    status, headers, body = get(served, "/v1/reports/daily?format=html", served.keys["author"])
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert headers["content-security-policy"] == DOCUMENT_POLICY  # no script runs in the served report
    status, headers, _ = get(served, "/")
    assert "script-src 'self'" in headers["content-security-policy"]  # the console keeps its own policy
