"""Incremental sync of a KB folder into the index.

Plan first, then act: parse only files whose content hash changed, embed only chunk ids the store does not
hold, update metadata (line numbers, front matter) in place, delete ids that vanished, and write the manifest
last. Chunk ids are content addresses and the plan is reconciled with the store's own ids, so a run that
died midway is repaired by the next one with no duplicate and no orphan.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sopilot.core.types import Chunk, Problem, Sop
from sopilot.index.embedder import Embedder
from sopilot.index.lexical import LexicalIndex, to_lexical
from sopilot.index.store import VectorStore
from sopilot.ingest.chunker import Chunker
from sopilot.ingest.discover import discover
from sopilot.ingest.manifest import FileRecord, Manifest
from sopilot.ingest.reader import read_text
from sopilot.ingest.sop import PARSE_VERSION, content_hash, parse_sop

log = logging.getLogger(__name__)


@dataclass(slots=True)
class IngestReport:
    files: int = 0
    sections: int = 0
    chunks: int = 0
    added: int = 0  # chunks embedded and written
    updated: int = 0  # chunks whose metadata changed, no embedding
    removed: int = 0
    unchanged: int = 0
    files_parsed: int = 0
    files_kept: int = 0  # files with errors whose previous version stays indexed
    kb_version: str = ""  # digest of every indexed file's path and content hash
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    probe: str = ""  # the last chunk embedded and written, for readers to check their store holds it

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["probe"]
        data["problems"] = [{**asdict(p), "severity": p.severity.value} for p in self.problems]
        data["ok"] = self.ok
        return data


def kb_version(records: Iterable[FileRecord]) -> str:
    """A short digest that changes whenever any indexed file does: provenance for answers and runs."""
    digest = hashlib.sha256()
    for record in sorted(records, key=lambda r: r.path):
        digest.update(f"{record.path}\0{record.content_hash}\n".encode())
    return digest.hexdigest()[:16]


class Syncer:
    """Brings one store in step with one KB folder."""

    def __init__(
        self,
        kb_dir: Path,
        store: VectorStore,
        manifest: Manifest,
        embedder: Embedder,
        *,
        max_file_bytes: int,
        chunk_max_tokens: int | None = None,
        ignore: tuple[str, ...] = (),
        embed_group: int = 256,
        lexical: LexicalIndex | None = None,
        progress: bool = True,
    ) -> None:
        self._kb = kb_dir
        self._store = store
        self._manifest = manifest
        self._embedder = embedder
        self._max_bytes = max_file_bytes
        self._ignore = ignore
        self._progress = progress
        self._group = embed_group
        self._lexical = lexical
        limit = min(chunk_max_tokens or embedder.max_tokens, embedder.max_tokens)
        self._chunker = Chunker(embedder.count_tokens, limit)

    def run(self) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport()
        if not self._kb.is_dir():
            raise FileNotFoundError(f"KB folder {self._kb} does not exist: pass --kb DIR or set SOPILOT_KB_DIR")
        found = discover(self._kb, self._ignore)
        report.problems.extend(found.problems)
        old = self._manifest.files()
        # Files read by an older parser are read again: their chunks keep their ids, their metadata is updated.
        reread = self._manifest.get("parse_version") != PARSE_VERSION
        records, fresh = self._load(found.files, old, report, reread)
        self._refuse_duplicate_ids(records, fresh, old, report)
        self._apply(records, fresh, old, report)
        report.files = len(records)
        report.sections = sum(r.n_sections for r in records.values())
        report.chunks = sum(len(r.chunk_ids) for r in records.values())
        report.kb_version = kb_version(records.values())
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _load(
        self, files: list[str], old: dict[str, FileRecord], report: IngestReport, reread: bool = False
    ) -> tuple[dict[str, FileRecord], dict[str, Sop]]:
        """Records for every file that will be indexed; parsed SOPs for the ones that changed."""
        records: dict[str, FileRecord] = {}
        fresh: dict[str, Sop] = {}
        bar = tqdm(files, desc="reading", unit="file", disable=not self._progress, leave=False)
        for rel in bar:
            text, problem = read_text(self._kb / rel, rel, self._max_bytes)
            if text is None:
                self._keep_previous(rel, old, records, report, [problem] if problem else [])
                continue
            digest = content_hash(text)
            previous = old.get(rel)
            if previous is not None and previous.content_hash == digest and not reread:
                records[rel] = previous
                continue
            result = parse_sop(text, rel, self._chunker)
            report.files_parsed += 1
            if result.sop is None:
                self._keep_previous(rel, old, records, report, result.problems)
                continue
            report.problems.extend(result.problems)
            sop = result.sop
            fresh[rel] = sop
            records[rel] = FileRecord(rel, digest, sop.meta.id, tuple(c.id for c in sop.chunks), len(sop.sections))
        return records, fresh

    @staticmethod
    def _keep_previous(
        rel: str,
        old: dict[str, FileRecord],
        records: dict[str, FileRecord],
        report: IngestReport,
        problems: list[Problem],
    ) -> None:
        report.problems.extend(problems)
        if rel in old:
            records[rel] = old[rel]
            report.files_kept += 1

    @staticmethod
    def _refuse_duplicate_ids(
        records: dict[str, FileRecord],
        fresh: dict[str, Sop],
        old: dict[str, FileRecord],
        report: IngestReport,
    ) -> None:
        """Two files claiming one SOP id: the one already indexed under it (else the first path) keeps it."""
        by_id: dict[str, list[str]] = defaultdict(list)
        for rel, record in records.items():
            by_id[record.sop_id].append(rel)
        for sop_id, paths in by_id.items():
            if len(paths) < 2:
                continue
            owner = next((p for p in sorted(paths) if p in old and old[p].sop_id == sop_id), sorted(paths)[0])
            for rel in sorted(paths):
                if rel == owner:
                    continue
                report.problems.append(
                    Problem(
                        rel,
                        "duplicate-id",
                        f"SOP id {sop_id!r} is already used by {owner}",
                        "give this SOP its own 'id:' in the front matter",
                        line=2,
                    )
                )
                fresh.pop(rel, None)
                if rel in old and old[rel].sop_id != sop_id:
                    records[rel] = old[rel]
                    report.files_kept += 1
                else:
                    del records[rel]

    def _apply(
        self,
        records: dict[str, FileRecord],
        fresh: dict[str, Sop],
        old: dict[str, FileRecord],
        report: IngestReport,
    ) -> None:
        wanted = {cid for r in records.values() for cid in r.chunk_ids}
        old_ids = {cid for r in old.values() for cid in r.chunk_ids}
        clean = self._manifest.get("state") == "clean"
        stored = old_ids if clean and self._store.count() == len(old_ids) else self._store.ids()
        if not clean:
            log.info("previous run did not finish: reconciling with the store")
        new_chunks = [c for sop in fresh.values() for c in sop.chunks if c.id not in stored]
        kept_fresh = [c for sop in fresh.values() for c in sop.chunks if c.id in stored]
        to_delete = sorted(stored - wanted)
        lexical_in_step = self._lexical is None or self._lexical.count() == len(old_ids)
        if not new_chunks and not kept_fresh and not to_delete and records == old and clean and lexical_in_step:
            report.unchanged = len(wanted)
            return
        self._manifest.set("state", "dirty")
        self._embed(new_chunks, report)
        report.updated = self._refresh_metadata(kept_fresh)
        if to_delete:
            self._store.delete(to_delete)
            if self._lexical is not None:
                self._lexical.delete(to_delete)
        report.removed = len(to_delete)
        self._sync_lexical(wanted)
        report.unchanged = len(wanted) - report.added - report.updated
        self._manifest.replace_files(list(records.values()))
        self._manifest.set("parse_version", PARSE_VERSION)
        self._manifest.set("state", "clean")

    def _embed(self, chunks: list[Chunk], report: IngestReport) -> None:
        if not chunks:
            return
        # Longest first, as the encoder orders one batch: groups of like length waste no padding, so
        # embedding in groups costs what one call over every text would.
        chunks = sorted(chunks, key=lambda c: -len(c.embed_text))
        bar = tqdm(total=len(chunks), desc="embedding", unit="chunk", disable=not self._progress)
        for start in range(0, len(chunks), self._group):
            group = chunks[start : start + self._group]
            vectors = self._embedder.embed_documents([c.embed_text for c in group])
            self._store.upsert([c.id for c in group], vectors, [c.text for c in group], [c.metadata for c in group])
            report.added += len(group)
            report.probe = group[-1].id
            bar.update(len(group))
        bar.close()

    def _refresh_metadata(self, chunks: list[Chunk]) -> int:
        """Line numbers and front matter change without the text: update them, never re-embed."""
        if not chunks:
            return 0
        stored = self._store.get([c.id for c in chunks])
        changed = [c for c in chunks if c.id in stored and stored[c.id].metadata != c.metadata]
        if changed:
            # Chroma merges metadata on update: a key the SOP no longer has must be cleared explicitly.
            merged = [
                {**{k: None for k in stored[c.id].metadata if k not in c.metadata}, **c.metadata} for c in changed
            ]
            self._store.update_metadata([c.id for c in changed], merged)
            if self._lexical is not None:
                self._lexical.upsert(to_lexical(c.id, c.text, c.metadata) for c in changed)
        return len(changed)

    def _sync_lexical(self, wanted: set[str]) -> None:
        """Repair drift between the lexical index and the store (a crash between the two writes, a lost file)."""
        if self._lexical is None:
            return
        have = self._lexical.ids()
        if have - wanted:
            self._lexical.delete(sorted(have - wanted))
        missing = sorted(wanted - have)
        if missing:
            log.info("lexical index: restoring %d chunks from the store", len(missing))
            stored = self._store.get(missing)
            self._lexical.upsert(to_lexical(c.id, c.text, c.metadata) for c in stored.values())
