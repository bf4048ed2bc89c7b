"""Schema-driven property run (schemathesis) against the app's own OpenAPI schema: valid and invalid requests
on every route, with an admin key; no 500, every status and body as documented, bad input refused. The schema
itself is valid OpenAPI (openapi-spec-validator) and names every route the app serves."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from sopilot.api.app import create_app
from sopilot.api.keys import KeyStore
from sopilot.api.metrics import Metrics
from sopilot.api.state import AppState
from sopilot.core.settings import Settings

pytestmark = pytest.mark.slow
# A body over SOPILOT_MAX_BODY_BYTES is refused with 413 before it is parsed: a rejection like the others.
REJECTIONS = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
# No 400 for a request the schema allows: GET /v1/sops/{path} states the paths it accepts (SOP_PATH_PATTERN),
# so a well-formed path names an SOP or gets 404.
ACCEPTED = ["2xx", "3xx", 401, 403, 404, 409, 429]
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {"expected-statuses": REJECTIONS},
            "positive_data_acceptance": {"expected-statuses": ACCEPTED},
        }
    }
)


class LateState:
    """Stands for the state the fixture opens (schemathesis reads the schema at import, before fixtures)."""

    target: AppState | None = None
    metrics = Metrics()

    def __getattr__(self, name: str) -> Any:
        return getattr(LateState.target, name)


APP = create_app(Settings(), state=LateState())  # type: ignore[arg-type]
# Ingest is left out: each call re-syncs the KB (seconds); tests/test_api_feedback_ingest.py drives it.
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG).exclude(path="/v1/ingest")
# One admin key, made at import: schemathesis draws its cases (and asks for the key) when it collects the tests.
KEY_DIR = tempfile.TemporaryDirectory(prefix="sopilot-fuzzkeys-")
KEYS = KeyStore(Path(KEY_DIR.name) / "keys.sqlite3")
ADMIN_KEY = KEYS.create("fuzz", "admin")[1]


@schema.hook
def filter_query(ctx, query: dict[str, Any] | None) -> bool:
    """Drops a report window that ends before it starts: a rule between two parameters that OpenAPI cannot
    state, answered with 400 invalid_window (tests/test_reports_api.py proves that refusal)."""
    if not isinstance(query, dict):
        return True
    since, until = query.get("since"), query.get("until")
    try:
        return not (since and until and date.fromisoformat(str(until)) < date.fromisoformat(str(since)))
    except ValueError:
        return True


@schema.auth()
class AdminKey:
    """The admin key given through schemathesis, so that it knows the header is the caller's and not one of its
    own negations (laid over each case, a removed header put back made a valid request count as invalid)."""

    def get(self, case, ctx) -> str:
        return ADMIN_KEY

    def set(self, case, data: str, ctx) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture(scope="module", autouse=True)
def keyed_state(api_state):
    """The session's state behind the app, with the key store holding the admin key."""
    LateState.target = AppState(api_state.settings, api_state.embedder, keys=KEYS)
    yield
    LateState.target.close()
    LateState.target = None
    KEY_DIR.cleanup()


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_breaks_the_contract(case) -> None:
    case.call_and_validate()


def test_the_schema_is_valid_openapi_and_names_every_route() -> None:
    from fastapi.routing import APIRoute
    from openapi_spec_validator import validate

    from sopilot.api.routes import ROUTERS

    document = APP.openapi()
    validate(document)  # raises with the offending part when the document is not valid OpenAPI 3.1
    served = {
        (method.lower(), route.path.replace(":path}", "}"))
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods
    }
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert served == documented
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation.get("summary"), f"{method.upper()} {path} has no summary"
            ok = [code for code in operation["responses"] if code.startswith("2")]
            assert ok, f"{method.upper()} {path} documents no success"
            for code, response in operation["responses"].items():
                if code[0] in "45" and code != "422":
                    schema = response["content"]["application/json"]["schema"]["$ref"]
                    assert schema.endswith("/ErrorBody"), (method, path, code)
