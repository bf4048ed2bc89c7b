"""Watch mode: re-index the KB seconds after an SOP file is saved, so its author sees the effect at once.

File events come from watchfiles (inotify, FSEvents or ReadDirectoryChangesW through the Rust ``notify``
crate; no polling loop of ours). Events are debounced: an editor's save (write, rename, chmod) or a
``git checkout`` of many files becomes one batch, and each batch runs the same incremental sync as
``sopilot ingest``, which embeds only the chunks that changed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

from watchfiles import Change, DefaultFilter, watch

from sopilot.core.settings import Settings
from sopilot.index.embedder import Embedder
from sopilot.ingest.run import run_ingest
from sopilot.ingest.sync import IngestReport

_VERBS = {Change.added: "added", Change.modified: "modified", Change.deleted: "deleted"}


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """One debounced batch of file changes and the sync it ran."""

    changes: tuple[tuple[str, str], ...]  # (verb, path relative to the KB root), sorted
    report: IngestReport


class MarkdownFilter(DefaultFilter):
    """Markdown files under ``root`` outside hidden folders (and the usual editor and VCS litter)."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self._root = root

    def __call__(self, change: Change, path: str) -> bool:
        if not path.endswith(".md"):
            return False
        hidden = any(part.startswith(".") for part in Path(_relative(path, self._root)).parts)
        return not hidden and super().__call__(change, path)


def watch_kb(
    settings: Settings,
    embedder: Embedder,
    *,
    stop: threading.Event | None = None,
    ready: Callable[[IngestReport], None] | None = None,
) -> Generator[WatchBatch, None, None]:
    """Sync once, call ``ready`` with that report, then yield a ``WatchBatch`` for each batch of saved files
    until ``stop`` is set (or the process is interrupted).

    The watcher runs in its own thread from before the first sync, so a file saved while that sync runs is
    synced again right after it."""
    root = settings.kb_dir.resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"KB folder {settings.kb_dir} does not exist; pass --kb DIR")
    stop = stop or threading.Event()
    done = threading.Event()
    batches: queue.Queue[set[tuple[Change, str]]] = queue.Queue()

    def listen() -> None:
        for events in watch(
            root,
            watch_filter=MarkdownFilter(root),
            debounce=settings.watch_debounce_ms,
            step=50,
            stop_event=done,
            rust_timeout=500,
            raise_interrupt=False,
        ):
            batches.put(events)

    listener = threading.Thread(target=listen, name="sopilot-watch", daemon=True)
    listener.start()
    try:
        first = run_ingest(settings, embedder, progress=False)
        if ready is not None:
            ready(first)
        while not stop.is_set():
            try:
                events = batches.get(timeout=0.2)
            except queue.Empty:
                continue
            while not batches.empty():  # saves that came while the last sync ran: one sync for all
                events |= batches.get_nowait()
            changes = sorted({(_VERBS.get(kind, str(kind)), _relative(path, root)) for kind, path in events})
            yield WatchBatch(tuple(changes), run_ingest(settings, embedder, progress=False))
    finally:
        done.set()
        listener.join(timeout=5)


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return path
