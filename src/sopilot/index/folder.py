"""Where each part of the index lives in the index folder, and opening them from the settings.

Two files coordinate the processes that share one index folder: ``ingest.lock`` (an ``flock`` held for the
whole of an ingest, so a second ingest is refused instead of interleaving its writes) and ``generation`` (a
marker rewritten after every ingest that changed the index, so serving processes know to reopen it). The
marker's second line names a probe: one chunk the ingest wrote, which a process that reopens the index checks
its vector store holds before it serves from it (``VectorStore.holds``); its third line the KB version synced
to. With a Chroma server the marker lives in the server instead (``generation.py``), and the lock is a lease
there (``lease.py``), since replicas on other machines share the store but not this folder.
"""

from __future__ import annotations

import errno
import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sopilot.core.errors import IndexWriteError, IngestRunningError
from sopilot.core.settings import Settings
from sopilot.index.lexical import LexicalIndex

LOCK_FILE = "ingest.lock"
GENERATION_FILE = "generation"
REPLICA_LEXICAL_DIR = "replica-lexical"


def lexical_path(settings: Settings) -> Path:
    """The FTS5 lexical index of the settings' collection."""
    return settings.index_dir / f"lexical-{settings.collection}.sqlite3"


def replica_lexical_path(settings: Settings, generation: str) -> Path:
    """The lexical index a replica of a shared Chroma server rebuilt from the store for one generation."""
    return settings.index_dir / REPLICA_LEXICAL_DIR / f"{settings.collection}-{generation}.sqlite3"


def open_lexical(settings: Settings, path: Path | None = None) -> LexicalIndex:
    """The lexical index (``path``, else the settings' own) with the settings' column weights and memory
    budget (created when missing)."""
    weights = (settings.lexical_title_weight, settings.lexical_heading_weight, 1.0)
    return LexicalIndex(path or lexical_path(settings), weights, settings.lexical_memory_postings)


@contextmanager
def ingest_lock(index_dir: Path) -> Iterator[None]:
    """Hold the index folder's ingest lock, or raise ``IngestRunningError`` at once when another holds it.

    The lock is an ``flock`` on ``ingest.lock``: the kernel releases it when its holder exits, even on SIGKILL,
    so a crashed ingest never leaves the folder locked."""
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise IngestRunningError(
                f"another ingest is running on {index_dir} (process {holder}); wait for it to finish and run "
                "this one again (it will only do what that one left to do)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_generation(index_dir: Path) -> str:
    """The index folder's generation marker ("" before the first ingest that wrote one)."""
    return read_marker(index_dir)[0]


def read_probe(index_dir: Path) -> str:
    """The chunk id the last ingest that wrote one named as its probe ("" when it wrote no chunk)."""
    return read_marker(index_dir)[1]


def read_marker(index_dir: Path) -> tuple[str, str, str]:
    """The marker file's generation, probe and KB version, read at once ("" for what it does not hold)."""
    try:
        lines = (index_dir / GENERATION_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return "", "", ""
    lines = [line.strip() for line in lines] + ["", "", ""]
    return lines[0], lines[1], lines[2]


def bump_generation(index_dir: Path, probe: str = "", kb_version: str = "") -> str:
    """Write a new generation marker (atomically: readers see the old one or the new one) and return it;
    ``probe`` is a chunk id this ingest wrote, for readers to check their store holds it."""
    index_dir.mkdir(parents=True, exist_ok=True)
    value = uuid.uuid4().hex
    tmp = index_dir / f".{GENERATION_FILE}.{os.getpid()}"
    tmp.write_text(f"{value}\n{probe}\n{kb_version}\n", encoding="utf-8")
    os.replace(tmp, index_dir / GENERATION_FILE)
    return value


# What SQLite, Chroma (its Rust core reports SQLite's and the OS's messages as text) and the OS say when a
# folder cannot be written, with the fix for each.
_WRITE_PROBLEMS = (
    (
        ("disk is full", "no space left", "(code: 13)", "quota exceeded"),
        "the disk is full",
        "free some space on that disk (or point SOPILOT_INDEX_DIR at a disk with room), then run the ingest again",
    ),
    (
        ("readonly database", "read-only file system", "read only file system", "(code: 8)"),
        "the folder is read-only",
        "make it writable (or point SOPILOT_INDEX_DIR at a writable folder), then run the ingest again",
    ),
    (
        ("permission denied", "unable to open database file", "(code: 14)"),
        "this user may not write there",
        "give this user write access to it (or point SOPILOT_INDEX_DIR elsewhere), then run the ingest again",
    ),
)
_ERRNO_PROBLEM = {errno.ENOSPC: 0, errno.EDQUOT: 0, errno.EROFS: 1, errno.EACCES: 2, errno.EPERM: 2}


def index_write_error(exc: BaseException, index_dir: Path) -> IndexWriteError | None:
    """A clear error when ``exc`` (or what caused it) says the index folder cannot be written; else None."""
    seen: BaseException | None = exc
    while seen is not None:
        found: int | None = None
        if isinstance(seen, OSError) and seen.errno in _ERRNO_PROBLEM:
            found = _ERRNO_PROBLEM[seen.errno]
        else:
            text = str(seen).lower()
            found = next((n for n, (cues, _, _) in enumerate(_WRITE_PROBLEMS) if any(c in text for c in cues)), None)
        if found is not None:
            _, problem, fix = _WRITE_PROBLEMS[found]
            return IndexWriteError(
                f"cannot write the index in {index_dir}: {problem} ({type(seen).__name__}: {seen}). "
                f"Nothing indexed before is lost, and the next ingest finishes what this one began. To fix: {fix}"
            )
        seen = seen.__cause__ or seen.__context__
    return None
