"""Crash safety: `sopilot ingest` killed with SIGKILL mid-run, then the next run equals a clean ingest.

This runs benchmarks/crash_bench.py with 3 kills on 8 files of kb/ (the full check, 24 kills over the whole
KB, is the benchmark itself: docs/scale.md gives its figures), and two CLI ingests at once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import ROOT

from sopilot.core.settings import Settings
from sopilot.index.store import VectorStore, make_client
from sopilot.ingest.manifest import Manifest
from sopilot.ingest.run import MANIFEST_FILE


@pytest.mark.slow
def test_killed_ingests_are_repaired_to_a_clean_index(tmp_path: Path, shipped_index) -> None:
    out = tmp_path / "crash.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "crash_bench.py"),
            *("--kills", "3", "--files", "8", "--seed", "11", "--work", str(tmp_path / "work")),
            *("--models", str(shipped_index.index_dir / "models"), "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.is_file(), done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["kills"] >= 3
    assert all(row["identical"] for row in result["rows"]), [r["differences"] for r in result["rows"]]
    assert done.returncode == 0, done.stdout[-2000:]


@pytest.mark.slow
def test_a_second_cli_ingest_is_refused_while_one_runs(tmp_path: Path, shipped_index, embedder) -> None:
    kb = tmp_path / "kb"
    for path in sorted((ROOT / "kb").rglob("*.md"))[:12]:
        target = kb / path.relative_to(ROOT / "kb")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    index = tmp_path / "index"
    if (shipped_index.index_dir / "models").is_dir():  # the ONNX export, when this session made it already
        shutil.copytree(shipped_index.index_dir / "models", index / "models")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SOPILOT_EMBED_GROUP": "1"}
    sopilot = [str(Path(sys.executable).with_name("sopilot")), "ingest", "--kb", str(kb), "--index", str(index)]
    first = subprocess.Popen(sopilot, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lock = index / "ingest.lock"
        deadline = time.time() + 120
        while time.time() < deadline and not (lock.is_file() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            time.sleep(0.1)
        second = subprocess.run(sopilot, capture_output=True, text=True, env=env, timeout=300)
        assert first.poll() is None, "the first ingest ended before the second tried: make the KB larger"
        assert second.returncode == 3
        assert "another ingest is running" in second.stderr and str(first.pid) in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)  # a killed holder releases the lock
        first.wait()
    third = subprocess.run([*sopilot, "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert third.returncode == 0, third.stderr[-2000:]
    report = json.loads(third.stdout)
    sops = [p for p in kb.rglob("*.md") if p.name != "README.md"]  # README.md is not an SOP (SOPILOT_IGNORE)
    assert report["ok"] and report["files"] == len(sops)
    settings = Settings(kb_dir=kb, index_dir=index)
    store = VectorStore.open(make_client(settings), settings.collection, embedder.name, embedder.dimension)
    manifest = Manifest(index / MANIFEST_FILE)
    try:
        assert store.ids() == {cid for r in manifest.files().values() for cid in r.chunk_ids}
    finally:
        manifest.close()
