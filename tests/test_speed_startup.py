"""The workers of ``sopilot serve --workers N`` start together and open the same new SQLite files at once: the
query log, the rate-limit buckets and the key store. Each must open (``sopilot.core.sqlite_wal``); before, about
one open in twenty failed with "database is locked" and took the server's start down with it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

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
