"""Watch mode: an SOP edited on disk is searchable with its new text seconds later (real files, Chroma, model)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sopilot.core.settings import Settings
from sopilot.ingest.sync import IngestReport
from sopilot.ingest.watch import MarkdownFilter, watch_kb


def test_an_edited_sop_is_searchable_after_the_save(sample_kb: Path, tmp_path: Path, embedder) -> None:
    from sopilot.retrieval.search import open_retriever

    settings = Settings(kb_dir=sample_kb, index_dir=tmp_path / "index", watch_debounce_ms=200)
    sso = sample_kb / "access" / "sso.md"
    stop = threading.Event()
    first: list[IngestReport] = []

    def edit_soon(report: IngestReport) -> None:
        first.append(report)

        def edit() -> None:
            time.sleep(1.0)  # the watcher starts after this callback returns
            text = sso.read_text(encoding="utf-8")
            sso.write_text(text + "\n## Hardware tokens\n\nYubiKey owners re-register the key at keys.example.\n")
            (sample_kb / "notes.txt").write_text("not an SOP")

        threading.Thread(target=edit, daemon=True).start()
        threading.Timer(60, stop.set).start()  # never hang the suite

    batches = []
    for batch in watch_kb(settings, embedder, stop=stop, ready=edit_soon):
        batches.append(batch)
        stop.set()
    assert first[0].added > 0 and first[0].ok
    assert batches, "no change seen within 60 s"
    assert batches[0].changes == (("modified", "access/sso.md"),)
    assert batches[0].report.added >= 1 and batches[0].report.removed == 0

    hit = open_retriever(settings, embedder).search("YubiKey re-register the key", k=1).passages[0]
    assert hit.path == "access/sso.md" and "keys.example" in hit.text


def test_only_markdown_outside_hidden_folders_is_watched() -> None:
    from watchfiles import Change

    keep = MarkdownFilter(Path("/home/me/.local/kb"))
    assert keep(Change.modified, "/home/me/.local/kb/access/sso.md")
    assert not keep(Change.modified, "/home/me/.local/kb/access/sso.md.swp")
    assert not keep(Change.modified, "/home/me/.local/kb/.git/COMMIT_EDITMSG.md")
    assert not keep(Change.added, "/home/me/.local/kb/notes.txt")
