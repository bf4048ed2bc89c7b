"""What a worker of ``sopilot serve --workers N`` does at start. The workers start together and open the same new
SQLite files at once: the query log, the rate-limit buckets and the key store. Each must open
(``sopilot.core.sqlite_wal``); before, about one open in twenty failed with "database is locked" and took the
server's start down with it. A question model saved by sentence-transformers 5 (what ``sopilot train`` writes)
is opened from its files and its ONNX export, without loading PyTorch."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sopilot.index.embedder import SentenceTransformerEmbedder, read_model_facts

OPEN_ALL = """
import sys, time
from pathlib import Path
from sopilot.api.keys import KeyStore
from sopilot.api.limits import RateLimiter
from sopilot.index.querylog import QueryLog
folder, start = Path(sys.argv[1]), float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
QueryLog(folder / "querylog.sqlite3").close()
RateLimiter(folder / "ratelimit.sqlite3", 60, 10).close()
KeyStore(folder / "keys.sqlite3").close()
"""


def test_processes_opening_new_sqlite_files_at_once_all_open(tmp_path: Path) -> None:
    rounds, processes = 12, 4
    folders = [tmp_path / str(n) for n in range(rounds)]
    failures = []
    for folder in folders:
        folder.mkdir()
        start = time.time() + 0.6  # after every process has imported, so the opens meet
        running = [
            subprocess.Popen([sys.executable, "-c", OPEN_ALL, str(folder), str(start)], stderr=subprocess.PIPE)
            for _ in range(processes)
        ]
        for process in running:
            _, err = process.communicate(timeout=60)
            if process.returncode != 0:
                failures.append(err.decode(errors="replace").strip().splitlines()[-1])
    assert not failures, f"{len(failures)} of {rounds * processes} processes failed: {failures[:3]}"
    assert all((folder / "querylog.sqlite3").is_file() for folder in folders)


def test_a_model_saved_by_sentence_transformers_5_is_read_from_its_files(embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer

    folder = tmp_path / "query-embedder"
    embedder.model.save(str(folder))  # as `sopilot train` saves the question model
    assert "max_seq_length" not in (folder / "sentence_bert_config.json").read_text()  # the format this is about
    facts = read_model_facts(folder)
    assert facts is not None, "the model would be loaded with PyTorch at every start just to read its window"
    saved = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    assert facts[:2] == (saved.get_embedding_dimension(), saved.max_seq_length) == (384, 256)
    opened = SentenceTransformerEmbedder(str(folder))
    assert (opened.dimension, opened.max_tokens) == facts[:2] and not opened.loaded
