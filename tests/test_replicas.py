"""Two `sopilot serve` replicas sharing one real Chroma server (docs/deploy.md), end to end over loopback.

Each replica has its own index folder (its keys, manifest and lexical index); both read one checkout of the KB,
as replicas deployed from one git commit do. An author's ingest through one replica is served by the other with
the same generation, lexical and dense; a second ingest at once is refused by the server's lease; an ingest
through the other replica afterwards embeds only what changed; a lease left by a crashed ingest expires.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from benchmarks.api_load import free_port, wait_ready
from tests.conftest import ROOT, sop
from tests.test_ingest_replica_delta import _rows

pytestmark = pytest.mark.slow

CHROMA = Path(sys.executable).with_name("chroma")
NEW_SOP = "billing/zephyrine-credits.md"


def _start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    out = log.open("w")
    return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)


def _wait_listening(url: str, process: subprocess.Popen, log: Path, path: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args[:4]} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + path, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} never answered {path}:\n{log.read_text()[-3000:]}")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A Chroma server and two replicas (A, B) on free loopback ports, each with an author key."""
    if not CHROMA.is_file():
        pytest.skip(f"no `chroma` executable beside {sys.executable}: install chromadb into this environment")
    from sopilot.api.keys import KeyStore, keys_path

    kb = tmp_path / "kb"
    shutil.copytree(ROOT / "kb", kb)
    processes: list[subprocess.Popen] = []
    try:
        port = free_port()
        chroma_url = f"http://127.0.0.1:{port}"
        chroma_log = tmp_path / "chroma.log"
        command = [str(CHROMA), "run", "--path", str(tmp_path / "chroma"), "--host", "127.0.0.1", "--port", str(port)]
        processes.append(_start(command, chroma_log))
        _wait_listening(chroma_url, processes[0], chroma_log, "/api/v2/heartbeat", timeout=60)
        env = {
            **os.environ,
            "SOPILOT_CHROMA_URL": chroma_url,
            "SOPILOT_RATE_LIMIT": "0",
            "SOPILOT_MARKER_POLL_SECONDS": "0.5",
        }
        replicas: dict[str, dict[str, Any]] = {}
        for name in ("a", "b"):
            index = tmp_path / f"replica-{name}"
            keys = KeyStore(keys_path(index))
            try:
                token = keys.create(f"author on {name}", "author")[1]
            finally:
                keys.close()
            port = free_port()
            log = tmp_path / f"replica-{name}.log"
            serve = [sys.executable, "-m", "sopilot.cli.main", "serve", "--port", str(port), "-q"]
            processes.append(_start([*serve, "--kb", str(kb), "--index", str(index)], log, env))
            replicas[name] = {
                "url": f"http://127.0.0.1:{port}",
                "index": index,
                "log": log,
                "process": processes[-1],
                "headers": {"Authorization": f"Bearer {token}"},
            }
        for replica in replicas.values():
            _wait_listening(replica["url"], replica["process"], replica["log"], "/healthz")
        yield {"kb": kb, "chroma_url": chroma_url, **replicas}
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _post(replica: dict[str, Any], route: str, body: dict[str, Any], timeout: float = 300) -> httpx.Response:
    return httpx.post(replica["url"] + route, json=body, headers=replica["headers"], timeout=timeout)


def _search_at(replica: dict[str, Any], query: str, generation: str, timeout: float = 60) -> dict[str, Any]:
    """The replica's answer to ``query`` once it serves ``generation`` (it polls the server's marker)."""
    deadline = time.monotonic() + timeout
    while True:
        response = _post(replica, "/v1/search", {"query": query, "k": 5})
        if response.status_code == 200 and response.json()["generation"] == generation:
            return response.json()
        if time.monotonic() > deadline:
            pytest.fail(f"{replica['url']} never served generation {generation}: {response.text[:500]}")
        time.sleep(0.3)


def _store_ids(chroma_url: str) -> set[str]:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    port = int(chroma_url.rsplit(":", 1)[1])
    client = chromadb.HttpClient(host="127.0.0.1", port=port, settings=ChromaSettings(anonymized_telemetry=False))
    return set(client.get_collection("sopilot", embedding_function=None).get(include=[])["ids"])


def _side(chroma_url: str) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    port = int(chroma_url.rsplit(":", 1)[1])
    client = chromadb.HttpClient(host="127.0.0.1", port=port, settings=ChromaSettings(anonymized_telemetry=False))
    names = {c.name for c in client.list_collections()}
    return client.get_collection("sopilot.generation") if "sopilot.generation" in names else None


def _lexical_rows(index: Path, generation: str) -> tuple[list[tuple], list[tuple]]:
    return _rows(index / "replica-lexical" / f"sopilot-{generation}.sqlite3")


def _rebuilt_rows(chroma_url: str, index: Path) -> tuple[list[tuple], list[tuple]]:
    from sopilot.core.settings import Settings
    from sopilot.index.folder import open_lexical
    from sopilot.index.store import VectorStore, make_client
    from sopilot.ingest.run import fill_lexical

    settings = Settings(index_dir=index.parent / "full-rebuild", chroma_url=chroma_url)
    collection = make_client(settings).get_collection("sopilot", embedding_function=None)
    meta = collection.metadata or {}
    store = VectorStore(collection, str(meta["sopilot_embedder"]), int(meta["sopilot_dimension"]))
    lexical = open_lexical(settings, settings.index_dir / "sopilot-full.sqlite3")
    try:
        fill_lexical(lexical, store)
    finally:
        lexical.close()
    return _rows(settings.index_dir / "sopilot-full.sqlite3")


def _lease_held(chroma_url: str) -> bool:
    side = _side(chroma_url)
    return side is not None and bool(side.get(ids=["ingest-lease"])["ids"])


def test_an_ingest_through_one_replica_is_served_by_the_other(cluster) -> None:
    a, b, kb, chroma_url = cluster["a"], cluster["b"], cluster["kb"], cluster["chroma_url"]

    # The first ingest through A; one through B meanwhile is refused, naming A's lease.
    first: dict[str, httpx.Response] = {}
    ingest_a = threading.Thread(target=lambda: first.setdefault("a", _post(a, "/v1/ingest", {})))
    ingest_a.start()
    deadline = time.monotonic() + 120
    while not _lease_held(chroma_url) and ingest_a.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    refused = _post(b, "/v1/ingest", {})
    still_running = ingest_a.is_alive()
    ingest_a.join()
    assert still_running, "A's ingest ended before B's was tried: the refusal was not exercised"
    assert refused.status_code == 409, refused.text
    assert "another ingest is running on the Chroma server" in refused.json()["error"]["message"]
    assert str(a["index"]) in refused.json()["error"]["message"]  # it names the replica holding the lease
    report = first["a"].json()
    assert first["a"].status_code == 200 and report["added"] == report["chunks"] > 100

    # B serves A's generation, from a lexical index it rebuilt from the store.
    wait_ready(b["url"], b["process"], timeout=60, log=b["log"])
    found = _search_at(b, "okta verify push notification not arriving", report["generation"])
    assert found["passages"] and found["passages"][0]["path"].startswith("access/")
    assert list((b["index"] / "replica-lexical").glob("sopilot-*.sqlite3"))

    # An edited SOP and a new one, ingested through A: B finds the new SOP's words, lexical and dense.
    before = _store_ids(chroma_url)
    edited = kb / "access" / "okta-verify-push-not-arriving.md"
    text = edited.read_text(encoding="utf-8")
    changed = text.replace("works without any network", "works without any network or signal", 1)
    assert changed != text
    edited.write_text(changed, encoding="utf-8")
    body = "## Steps\n\n1. Issue a zephyrine credit from the quorbal ledger.\n2. Tell the partner it posts in a day."
    (kb / NEW_SOP).parent.mkdir(exist_ok=True)
    (kb / NEW_SOP).write_text(sop("T-BIL-900", "Zephyrine credits", body), encoding="utf-8")
    second = _post(a, "/v1/ingest", {}).json()
    assert 1 < second["added"] < 10 and second["removed"] >= 1
    after = _store_ids(chroma_url)
    vanished = before - after
    new = _search_at(b, "zephyrine credit quorbal ledger", second["generation"])
    top = new["passages"][0]
    assert top["path"] == NEW_SOP and {"dense", "lexical"} <= set(top["scores"])
    edited_hits = _search_at(b, "okta verify push notification not arriving", second["generation"])["passages"]
    assert {p["chunk_id"] for p in edited_hits} <= after and not {p["chunk_id"] for p in edited_hits} & vanished
    # B updated a copy of its first lexical file from the published delta: the rows a full rebuild gives.
    assert f"lexical index of generation {second['generation']} updated" in b["log"].read_text()
    assert _lexical_rows(b["index"], second["generation"]) == _rebuilt_rows(chroma_url, b["index"])

    # Another edit, ingested through B (whose folder never ingested): only the changed chunk is embedded.
    (kb / NEW_SOP).write_text(sop("T-BIL-900", "Zephyrine credits", body + "\n3. Note the florvex number."))
    third = _post(b, "/v1/ingest", {}).json()
    assert third["added"] == len(_store_ids(chroma_url) - after) == 1, third
    assert third["unchanged"] >= second["chunks"] - 2
    seen_on_a = _search_at(a, "florvex number zephyrine", third["generation"])
    assert seen_on_a["passages"][0]["path"] == NEW_SOP and "florvex" in seen_on_a["passages"][0]["text"]

    # An ingest that crashed holding the lease (its renewals stopped) blocks the others until the lease expires.
    from sopilot.index.lease import StoreLease

    crashed = StoreLease(_side(chroma_url), "crashed replica", 5)
    crashed.acquire(chroma_url)
    crashed._stop.set()
    blocked = _post(b, "/v1/ingest", {})
    assert blocked.status_code == 409 and "held by crashed replica" in blocked.json()["error"]["message"]
    time.sleep(5.5)
    after_expiry = _post(b, "/v1/ingest", {})
    assert after_expiry.status_code == 200 and after_expiry.json()["added"] == 0, after_expiry.text
