"""Lint, overdue reviews and conflicts through the API (TestClient over the shipped index, the real model and
Chroma): the same findings and pairs as the CLI, filters, and bad input answered with JSON errors that name it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import ROOT, sop, write_kb

from sopilot.api.app import create_app
from sopilot.api.state import AppState
from sopilot.cli.main import main

pytestmark = pytest.mark.slow
LINTY = {
    "a/good.md": sop("T-1", "Good SOP", "## Resolution\n\n1. Do the thing.\n2. Check it."),
    "a/broken.md": sop("T-2", "Broken SOP", "## Resolution\n\nSee [the other](missing.md).\n\n#### Deep\n\nText."),
    "b/dup.md": sop("T-2", "Another SOP", "## Resolution\n\n1. Step."),
}


@pytest.fixture(scope="module")
def lint_client(api_state, tmp_path_factory):
    """An app whose KB folder holds SOPs with known lint findings (no index needed: lint reads the files)."""
    kb = write_kb(tmp_path_factory.mktemp("lintkb") / "kb", LINTY)
    state = AppState(api_state.settings.model_copy(update={"kb_dir": kb}), api_state.embedder)
    with TestClient(create_app(state=state)) as client:
        yield client, kb
    state.close()


def _cli_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    main(args)
    return json.loads(capsys.readouterr().out)


def test_lint_gives_the_cli_findings_with_counts_and_filters(lint_client, capsys) -> None:
    client, kb = lint_client
    body = client.get("/v1/lint", params={"today": "2026-11-01"}).json()
    cli = _cli_json(["lint", str(kb), "--json", "--today", "2026-11-01", "--fail-on", "never"], capsys)
    assert body["findings"] == cli["findings"] and body["counts"] == cli["counts"] and body["files"] == 3
    rules = body["counts"]["by_rule"]
    assert {"broken-link", "heading-skip", "duplicate-id"} <= set(rules), rules
    assert sum(rules.values()) == len(body["findings"]) and body["config"] == "defaults"

    errors = client.get("/v1/lint", params={"severity": "error", "today": "2026-11-01"}).json()
    assert errors["findings"] and {f["severity"] for f in errors["findings"]} == {"error"}
    assert errors["counts"]["by_severity"]["warning"] == 0
    only_b = client.get("/v1/lint", params={"path": "b/", "today": "2026-11-01"}).json()
    assert only_b["findings"] and {f["path"] for f in only_b["findings"]} == {"b/dup.md"}


@pytest.mark.parametrize(
    ("params", "status", "code", "words"),
    [
        ({"path": "../etc"}, 400, "invalid_path", "relative"),
        ({"severity": "fatal"}, 422, "invalid_request", "severity"),
        ({"today": "0"}, 422, "invalid_request", "YYYY-MM-DD"),
        ({"today": "2026-02-30"}, 422, "invalid_request", "YYYY-MM-DD"),
    ],
)
def test_bad_lint_requests_name_the_problem(lint_client, params, status, code, words) -> None:
    client, _ = lint_client
    response = client.get("/v1/lint", params=params)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"] + error["fix"], error


def test_stale_report_matches_the_cli(api_client, shipped_index, capsys) -> None:
    body = api_client.get("/v1/reports/stale", params={"today": "2027-06-01"}).json()
    cli = _cli_json(["report", "stale", "--kb", str(ROOT / "kb"), "--today", "2027-06-01", "--json"], capsys)
    assert [s["path"] for s in body["overdue"]] == [s["path"] for s in cli["overdue"]]
    assert body["overdue"] and body["overdue"][0] == cli["overdue"][0]
    assert body["no_review_dates"] == cli["no_review_dates"]
    days = [s["days_overdue"] for s in body["overdue"]]
    assert days == sorted(days, reverse=True)
    earlier = api_client.get("/v1/reports/stale", params={"today": "2020-01-01"}).json()
    assert earlier["overdue"] == []  # nothing was due before any review date


def test_conflicts_report_finds_the_planted_contradiction(api_client) -> None:
    body = api_client.get("/v1/reports/conflicts").json()
    pairs = {frozenset((p["a"]["path"], p["b"]["path"])): p for p in body["contradictions"]}
    rate = pairs[frozenset(("partner-api/429-troubleshooting.md", "partner-api/rate-limits.md"))]
    assert any({c["a"]["value"], c["b"]["value"]} == {"500", "600"} for c in rate["clashes"])
    assert rate["a"]["fact_lines"] and rate["a"]["text"] and rate["b"]["link"].startswith(rate["b"]["path"])
    assert body["contradiction_count"] == len(body["contradictions"]) and body["pairs_compared"] > 0
    assert sum(body["clashes_by_kind"].values()) == sum(len(p["clashes"]) for p in body["contradictions"])

    only = api_client.get("/v1/reports/conflicts", params={"show": "duplicates", "limit": 1}).json()
    assert only["contradictions"] == [] and len(only["duplicates"]) == 1 and only["duplicate_count"] >= 2
    bad = api_client.get("/v1/reports/conflicts", params={"min_similarity": 2})
    assert bad.status_code == 422 and "min_similarity" in bad.json()["error"]["message"]


def test_report_days_refuse_what_is_not_a_day(api_client) -> None:
    for route, name in [("daily", "date"), ("gaps", "since"), ("health", "until"), ("stale", "today")]:
        response = api_client.get(f"/v1/reports/{route}", params={name: "0"})
        assert response.status_code == 422, (route, response.text)
        assert name in response.json()["error"]["message"] and "YYYY-MM-DD" in response.json()["error"]["message"]


def test_new_routes_are_in_the_schema_with_their_models(api_client) -> None:
    paths = api_client.get("/openapi.json").json()["paths"]
    for path, model in [
        ("/v1/lint", "LintResponse"),
        ("/v1/reports/stale", "StaleReportPublic"),
        ("/v1/reports/conflicts", "ConflictsPublic"),
    ]:
        responses = paths[path]["get"]["responses"]
        assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith(model)
        assert responses["403"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorBody")


def test_author_routes_let_authors_and_admins_only(api_client) -> None:
    from tests.test_api_auth import route_roles

    table = route_roles(api_client.app)
    for path in ("/v1/lint", "/v1/reports/stale", "/v1/reports/conflicts"):
        assert table[("GET", path)] == ("admin", "author"), path


def test_lint_of_a_missing_kb_folder_says_how_to_fix_it(api_state, tmp_path: Path) -> None:
    state = AppState(api_state.settings.model_copy(update={"kb_dir": tmp_path / "nope"}), api_state.embedder)
    with TestClient(create_app(state=state)) as client:
        for route in ("/v1/lint", "/v1/reports/stale"):
            error = client.get(route).json()["error"]
            assert error["code"] == "kb_missing" and "SOPILOT_KB_DIR" in error["fix"]
    state.close()


def test_a_mistyped_query_parameter_is_refused_not_ignored(api_client) -> None:
    response = api_client.get("/v1/reports/health", params={"sinse": "2026-11-01"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "unknown_parameter"
    assert "sinse" in response.json()["error"]["message"] and "since" in response.json()["error"]["fix"]
    assert api_client.get("/v1/reports/health", params={"since": "2026-11-01"}).status_code == 200
