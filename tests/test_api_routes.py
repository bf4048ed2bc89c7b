"""The API's routes through the app (TestClient) on the shipped KB, with the real model and Chroma."""

from __future__ import annotations

import json

import pytest

from sopilot.index.querylog import QueryLog

QUESTION = "reviewer lost her phone, cant get past the 2fa prompt"
pytestmark = pytest.mark.slow


def test_health_and_readiness(api_client, api_state) -> None:
    assert api_client.get("/healthz").json() == {"status": "ok"}
    ready = api_client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["chunks"] == api_state.engine().retriever.store.count() > 0
    assert ready["keys_required"] is False


def test_search_ranks_the_sop_that_answers(api_client, api_state) -> None:
    response = api_client.post("/v1/search", json={"query": QUESTION, "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert len(body["passages"]) == 3
    top = body["passages"][0]
    assert top["path"] == "access/2fa-reset-lost-phone.md"
    assert top["link"] == f"{top['path']}#{top['anchor']}"
    assert body["covered"] is True
    logged = api_state.querylog.get(body["query_id"])
    assert logged is not None and logged.kind == "search" and logged.passages[0].chunk_id == top["chunk_id"]


def test_answer_cites_the_passages_it_was_drafted_from(api_client) -> None:
    body = api_client.post("/v1/answer", json={"query": QUESTION, "tone": "internal"}).json()
    assert body["covered"] is True and body["tone"] == "internal"
    assert body["citations"], body
    passage_ids = {p["chunk_id"] for p in body["passages"]}
    for citation in body["citations"]:
        assert f"[{citation['n']}]" in body["text"]
        assert citation["title"] and citation["quote"] and citation["anchor"]
        if citation["role"] == "answer":
            assert citation["chunk_id"] in passage_ids
    assert body["drafter"] == "extractive" and body["kb_version"]


def test_answer_outside_the_sops_is_flagged(api_client) -> None:
    body = api_client.post("/v1/answer", json={"query": "what is the capital of Mongolia"}).json()
    assert body["covered"] is False
    assert [f["code"] for f in body["review_flags"]][:1] == ["not_covered"]


def test_answer_streams_events_ending_with_the_answer(api_client, api_state) -> None:
    with api_client.stream("POST", "/v1/answer", json={"query": QUESTION, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = "".join(response.iter_text())
    events = [block.split("\n", 1) for block in raw.strip().split("\n\n")]
    names = [head.removeprefix("event: ") for head, _ in events]
    assert names[0] == "passages" and names[-1] == "answer" and set(names[1:-1]) <= {"delta"}
    first, final = (json.loads(events[i][1].removeprefix("data: ")) for i in (0, -1))
    assert final["citations"] and api_state.querylog.get(final["answer_id"]).kind == "answer"
    assert first["passages"] == final["passages"] and first["answer_id"] == final["answer_id"]  # search before draft
    assert (first["covered"], first["coverage_reason"]) == (True, final["coverage_reason"])


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"query": ""}, 422, "invalid_request"),
        ({"query": "x", "k": 0}, 422, "invalid_request"),
        ({"query": "x", "k": 101}, 422, "invalid_request"),
        ({"query": "x", "surprise": 1}, 422, "invalid_request"),
        ({"query": "x", "filters": {"status": ["gone"]}}, 422, "invalid_request"),
        ({"query": "x" * 4001}, 422, "invalid_query"),
        ({"query": "   "}, 422, "invalid_request"),
    ],
)
def test_bad_requests_get_json_errors_that_name_the_problem(api_client, body, status, code) -> None:
    for route in ("/v1/search", "/v1/answer"):
        response = api_client.post(route, json=body)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code and error["message"]


def test_oversized_body_and_unknown_route(api_client) -> None:
    big = api_client.post(
        "/v1/search", content=b"{" + b" " * 300_000 + b"}", headers={"content-type": "application/json"}
    )
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
    missing = api_client.get("/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_query_log_redacts_what_agents_paste(api_client, api_state) -> None:
    question = "user jane.doe@example.com (+1 415 555 0100) cannot log in, token sk-abcdef1234567890XYZ"
    query_id = api_client.post("/v1/search", json={"query": question}).json()["query_id"]
    logged = QueryLog(api_state.querylog.path).get(query_id)
    assert logged is not None
    assert "jane.doe" not in logged.question and "555" not in logged.question and "abcdef123" not in logged.question
    assert "[email]" in logged.question and "[phone]" in logged.question and "[token]" in logged.question
