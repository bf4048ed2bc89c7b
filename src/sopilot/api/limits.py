"""Limits: the question's length, and per-key rate limits (a token bucket per key, shared by every worker).

Each key may make ``rate`` requests a minute, with bursts up to ``burst``. The buckets live in
``ratelimit.sqlite3`` (write-ahead log, no fsync: losing them in a crash only forgets recent use), so a key
spread over several worker processes gets the limit once, not once per worker.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from pathlib import Path

from sopilot.core.errors import InvalidQueryError
from sopilot.core.sqlite_wal import use_wal

RATELIMIT_FILE = "ratelimit.sqlite3"


def check_query_length(query: str, limit: int) -> None:
    """Refuse a question longer than the server takes (SOPILOT_MAX_QUERY_CHARS), with the fix."""
    if len(query) > limit:
        raise InvalidQueryError(
            f"the question has {len(query)} characters; this server takes at most {limit}. Send the user's "
            "question without pasted logs or attachments (SOPILOT_MAX_QUERY_CHARS sets the limit)"
        )


class RateLimiter:
    def __init__(self, path: Path, rate: int, burst: int) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        if rate > 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10, isolation_level=None)
            use_wal(self._conn)
            self._conn.execute("PRAGMA synchronous=OFF")
            self._conn.execute("CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, tokens REAL, ts REAL)")

    def take(self, key: str, now: float | None = None) -> float:
        """Spend one request of ``key``'s bucket: 0 when allowed, else the seconds to wait before retrying."""
        if self._conn is None:
            return 0.0
        now = time.time() if now is None else now
        per_second = self.rate / 60.0
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT tokens, ts FROM buckets WHERE key = ?", (key,)).fetchone()
                tokens = (
                    float(self.burst) if row is None else min(self.burst, row[0] + max(now - row[1], 0) * per_second)
                )
                wait = 0.0
                if tokens >= 1:
                    tokens -= 1
                else:
                    wait = (1 - tokens) / per_second
                self._conn.execute("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)", (key, tokens, now))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return wait

    @staticmethod
    def retry_after(wait: float) -> str:
        """The Retry-After header: whole seconds, at least 1."""
        return str(max(1, math.ceil(wait)))

    def close(self) -> None:
        if self._conn is not None:
            with self._lock:
                self._conn.close()
