"""API keys, stored hashed in the index folder (``keys.sqlite3``), each with one role.

A key reads ``sop_<id>_<secret>``: the id finds the row, and the SHA-256 of the whole key is compared with
the stored one in constant time (``hmac.compare_digest``). Keys are 256-bit random strings, so a fast hash is
enough: there is nothing to brute-force that a slow one would protect. The plain key is shown once, at
creation. Routes check roles; ``admin`` may use every route.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sopilot.core.errors import ConfigError
from sopilot.core.sqlite_wal import use_wal

KEYS_FILE = "keys.sqlite3"
ROLES: tuple[str, ...] = ("agent", "author", "evaluator", "admin")
_KEY = re.compile(r"^sop_([0-9a-f]{12})_[A-Za-z0-9_-]{20,100}$")
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL,
    created REAL NOT NULL,
    revoked REAL
);
"""


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    name: str
    role: str
    created: float
    revoked: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None


def keys_path(index_dir: Path) -> Path:
    return index_dir / KEYS_FILE


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyStore:
    """The key table, read into memory and read again whenever any process changes it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        use_wal(self._conn)
        self._conn.executescript(_SCHEMA)
        self._version = -1
        self._rows: dict[str, tuple[ApiKey, str]] = {}

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def create(self, name: str, role: str) -> tuple[ApiKey, str]:
        """A new key with its role; returns it and the plain key (shown once, never stored)."""
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
        name = name.strip()
        if not name or len(name) > 100:
            raise ConfigError("a key needs a name of 1 to 100 characters saying whose or what it is")
        key_id = secrets.token_hex(6)
        plain = f"sop_{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(key_id, name, role, time.time())
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO keys VALUES (?, ?, ?, ?, ?, NULL)", (key_id, name, role, hash_key(plain), key.created)
            )
        return key, plain

    def list(self) -> list[ApiKey]:
        with self._lock:
            self._refresh()
            return sorted((key for key, _ in self._rows.values()), key=lambda k: k.created)

    def revoke(self, key_id: str) -> ApiKey:
        with self._lock, self._conn:
            cursor = self._conn.execute(
                "UPDATE keys SET revoked = ? WHERE key_id = ? AND revoked IS NULL", (time.time(), key_id)
            )
            if cursor.rowcount == 0:
                known = self._conn.execute("SELECT 1 FROM keys WHERE key_id = ?", (key_id,)).fetchone()
                state = "is already revoked" if known else "does not exist"
                raise ConfigError(f"key {key_id!r} {state}; `sopilot keys list` shows the keys")
            self._version = -1
            self._refresh()
            return self._rows[key_id][0]

    def required(self) -> bool:
        """Whether any key is active: then every route but health needs one."""
        with self._lock:
            self._refresh()
            return any(key.active for key, _ in self._rows.values())

    def verify(self, plain: str) -> ApiKey | None:
        """The active key this plain key is, or None; the comparison takes the same time either way."""
        match = _KEY.match(plain)
        with self._lock:
            self._refresh()
            row = self._rows.get(match.group(1)) if match else None
        stored = row[1] if row else _DUMMY_HASH
        same = hmac.compare_digest(hash_key(plain), stored)
        if row is None or not same or not row[0].active:
            return None
        return row[0]

    def _refresh(self) -> None:
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._version:
            return
        rows = self._conn.execute("SELECT key_id, name, role, created, revoked, hash FROM keys").fetchall()
        self._rows = {r[0]: (ApiKey(r[0], r[1], r[2], r[3], r[4]), r[5]) for r in rows}
        self._version = version
