"""Keys and roles on every route: 401 without or with a bad key, 403 for a role the route does not take, the
rate limit's 429 with Retry-After; keys made, listed and revoked by the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from sopilot.api.app import create_app
from sopilot.api.keys import ROLES, KeyStore
from sopilot.api.routes import ROUTERS
from sopilot.api.state import AppState
from sopilot.cli.main import main
from sopilot.cli.serve_cmd import check_bind
from sopilot.core.errors import ConfigError

pytestmark = pytest.mark.slow
# Health, the schema and the console's static pages (they hold no SOP text: they call the API with the key).
PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
PUBLIC |= {"/", "/sops", "/sop/{path:path}", "/static/{name}", "/reports"}
BODIES = {
    "/v1/search": {"query": "reset 2fa"},
    "/v1/answer": {"query": "reset 2fa"},
    "/v1/feedback": {"answer_id": "unknown", "verdict": "accepted"},
    "/v1/ingest": {},
}


def route_roles(app) -> dict[tuple[str, str], tuple[str, ...] | None]:
    """Each route's method and path, and the roles its ``require_role`` dependency lets through; every path
    of the app's schema must come from ``ROUTERS``."""

    def roles(dependant) -> tuple[str, ...] | None:
        for dep in dependant.dependencies:
            found = getattr(dep.call, "roles", None) or roles(dep)
            if found:
                return found
        return None

    table = {}
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute):
                for method in route.methods:
                    table[(method, route.path)] = roles(route.dependant)
    schema_paths = {(method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops}
    routed = {(method, path.replace(":path}", "}")) for method, path in table}
    assert schema_paths <= routed, schema_paths - routed
    return table


@pytest.fixture(scope="module")
def keyed(api_state, tmp_path_factory):
    """An app over the session's index whose key store holds one key per role (and one revoked)."""
    store = KeyStore(tmp_path_factory.mktemp("keys") / "keys.sqlite3")
    keys = {role: store.create(f"test {role}", role)[1] for role in ROLES}
    revoked, plain = store.create("gone", "admin")
    store.revoke(revoked.key_id)
    keys["revoked"] = plain
    state = AppState(api_state.settings, api_state.embedder, keys=store)
    with TestClient(create_app(state=state)) as client:
        yield client, keys
    state.close()


def call(client, method: str, path: str, key: str | None):
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    url = path.replace("{path:path}", "access/2fa-reset-lost-phone.md").replace("{path}", "access/x.md")
    return client.request(method, url, headers=headers, json=BODIES.get(path) if method == "POST" else None)


def test_every_route_but_health_checks_a_role(keyed) -> None:
    client, _ = keyed
    table = route_roles(client.app)
    unchecked = {path for (_, path), roles in table.items() if roles is None} - PUBLIC
    assert not unchecked, f"routes without require_role: {unchecked}"
    assert table[("POST", "/v1/ingest")] == ("admin", "author")
    assert table[("POST", "/v1/feedback")] == ("admin", "agent")


def test_each_role_on_each_route(keyed) -> None:
    client, keys = keyed
    for (method, path), roles in route_roles(client.app).items():
        if roles is None:
            continue
        for bad in (None, "sop_000000000000_notakeyatallnotakeyatall", "garbage", keys["revoked"]):
            response = call(client, method, path, bad)
            assert response.status_code == 401, (method, path, bad, response.text)
            assert response.json()["error"]["code"] in {"missing_key", "invalid_key"}
            assert response.headers["WWW-Authenticate"] == "Bearer"
        for role in ROLES:
            response = call(client, method, path, keys[role])
            if role in roles:
                assert response.status_code not in (401, 403), (method, path, role, response.text)
            else:
                assert response.status_code == 403, (method, path, role, response.text)
                assert response.json()["error"]["code"] == "forbidden_role"


def test_health_needs_no_key(keyed) -> None:
    client, _ = keyed
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json()["keys_required"] is True


def test_rate_limit_answers_429_with_retry_after(api_state, tmp_path) -> None:
    store = KeyStore(tmp_path / "keys.sqlite3")
    _, key = store.create("burst", "agent")
    settings = api_state.settings.model_copy(update={"rate_limit": 60, "rate_burst": 2})
    state = AppState(settings, api_state.embedder, keys=store)
    with TestClient(create_app(state=state)) as client:
        headers = {"Authorization": f"Bearer {key}"}
        codes = [client.post("/v1/search", json={"query": "reset 2fa"}, headers=headers).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = client.post("/v1/search", json={"query": "reset 2fa"}, headers=headers)
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 2
    state.close()


def test_keys_are_stored_hashed_and_revocation_is_seen_at_once(tmp_path: Path, capsys) -> None:
    index = str(tmp_path / "index")
    assert main(["keys", "create", "ops bot", "--role", "agent", "--index", index, "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["key"].startswith(f"sop_{made['key_id']}_")
    raw = (tmp_path / "index" / "keys.sqlite3").read_bytes()
    assert made["key"].encode() not in raw
    serving = KeyStore(tmp_path / "index" / "keys.sqlite3")  # as a running server holds it
    assert serving.verify(made["key"]).role == "agent"
    assert serving.verify(made["key"][:-1] + "x") is None
    assert main(["keys", "list", "--index", index]) == 0
    assert "ops bot" in capsys.readouterr().out
    assert main(["keys", "revoke", made["key_id"], "--index", index]) == 0
    assert serving.verify(made["key"]) is None and not serving.required()
    assert main(["keys", "revoke", made["key_id"], "--index", index]) == 2
    assert "already revoked" in capsys.readouterr().err


def test_serve_refuses_a_public_bind_without_keys() -> None:
    assert "loopback only" in check_bind("127.0.0.1", keys_required=False)
    assert "loopback only" in check_bind("::1", keys_required=False)
    with pytest.raises(ConfigError, match="without API keys"):
        check_bind("0.0.0.0", keys_required=False)
    assert "required" in check_bind("0.0.0.0", keys_required=True)
