"""A full disk and a read-only index folder: a clear error, and the previous index still answers.

Real mounts (a small tmpfs, a read-only bind mount): the tests need root and skip cleanly without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import SAMPLE_SOPS, sop, write_kb

from sopilot.core.errors import IndexWriteError
from sopilot.core.settings import Settings
from sopilot.index.folder import open_lexical
from sopilot.index.store import VectorStore, make_client
from sopilot.ingest.manifest import Manifest
from sopilot.ingest.run import MANIFEST_FILE, run_ingest
from sopilot.retrieval.search import Retriever


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[list[Path]]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs or a read-only bind mount")
    mounted: list[Path] = []
    yield mounted
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _big_sop() -> str:
    body = "\n\n".join(
        f"## Part {i}\n\n" + " ".join(f"Step {i}.{j} checks the queue before a reply." for j in range(30))
        for i in range(120)
    )
    return sop("BIG-1", "Large procedure", body)


def _answers(settings: Settings, embedder, question: str) -> list[str]:
    """The paths search returns, read through the normal retriever."""
    store = VectorStore.open(make_client(settings), settings.collection, embedder.name, embedder.dimension)
    lexical = open_lexical(settings)
    try:
        result = Retriever(store, lexical, embedder).search(question, k=3)
        return [p.path for p in result.passages]
    finally:
        lexical.close()


def _consistent(settings: Settings, embedder) -> bool:
    store = VectorStore.open(make_client(settings), settings.collection, embedder.name, embedder.dimension)
    manifest = Manifest(settings.index_dir / MANIFEST_FILE)
    lexical = open_lexical(settings)
    try:
        ids = {cid for r in manifest.files().values() for cid in r.chunk_ids}
        return store.ids() == ids == lexical.ids() and manifest.get("state") == "clean"
    finally:
        manifest.close()
        lexical.close()


@pytest.mark.slow
def test_full_disk_gives_a_clear_error_and_keeps_the_index(tmp_path: Path, mounts: list[Path], embedder) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=24m", "tmpfs", str(disk)):
        pytest.skip("cannot mount a tmpfs here")
    mounts.append(disk)
    kb = write_kb(tmp_path / "kb", dict(SAMPLE_SOPS))
    settings = Settings(kb_dir=kb, index_dir=disk / "index")
    run_ingest(settings, embedder, progress=False)
    assert "access/sso.md" in _answers(settings, embedder, "SAML response not valid when signing in")

    (kb / "big.md").write_text(_big_sop(), encoding="utf-8")
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - 48 * 1024))
    with pytest.raises(IndexWriteError) as caught:
        run_ingest(settings, embedder, progress=False)
    message = str(caught.value)
    assert str(settings.index_dir) in message and "disk is full" in message and "free some space" in message
    # The previous index still answers, on the full disk.
    assert "access/sso.md" in _answers(settings, embedder, "SAML response not valid when signing in")

    filler.unlink()
    report = run_ingest(settings, embedder, progress=False)
    assert report.ok and report.files == 4 and _consistent(settings, embedder)


@pytest.mark.slow
def test_read_only_index_gives_a_clear_error_and_keeps_the_index(tmp_path: Path, mounts: list[Path], embedder) -> None:
    kb = write_kb(tmp_path / "kb", dict(SAMPLE_SOPS))
    real = Settings(kb_dir=kb, index_dir=tmp_path / "index")
    run_ingest(real, embedder, progress=False)
    view = tmp_path / "ro-index"
    view.mkdir()
    if not (_mount("--bind", str(real.index_dir), str(view)) and _mount("-o", "remount,bind,ro", str(view))):
        pytest.skip("cannot make a read-only bind mount here")
    mounts.append(view)
    settings = real.model_copy(update={"index_dir": view})

    (kb / "queues/backlog.md").unlink()
    with pytest.raises(IndexWriteError) as caught:
        run_ingest(settings, embedder, progress=False)
    message = str(caught.value)
    assert str(view) in message and "read-only" in message and "make it writable" in message
    # Nothing was written: the index (in its writable place) answers as before, the deleted SOP included.
    assert "queues/backlog.md" in _answers(real, embedder, "priority queue backlog older than one hour")

    report = run_ingest(real, embedder, progress=False)  # the same folder, writable
    assert report.ok and report.removed > 0 and _consistent(real, embedder)
