"""SQLite files that several processes open at once (the workers of ``sopilot serve``), put in write-ahead-log
mode safely.

Switching a new file to WAL takes an exclusive lock, and SQLite answers "database is locked" at once, without
waiting for its busy timeout, when another process holds the file at that moment. Measured: 4 processes
opening a fresh query log, rate-limit or key file together, 4-5 % of the opens failed, and a 2-worker server
failed to start that way. An existing WAL file never did. So the switch is tried again for a while.
"""

from __future__ import annotations

import sqlite3
import time


def use_wal(conn: sqlite3.Connection, wait: float = 10.0) -> None:
    """``PRAGMA journal_mode=WAL`` on ``conn``, tried again while another process holds the file (``wait`` s)."""
    deadline = time.monotonic() + wait
    delay = 0.002
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(2 * delay, 0.05)
