"""Turn one SOP file into a ``Sop``: read, front matter, outline, sections, chunks with stable ids."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sopilot.core.types import HEADING_SEPARATOR, Chunk, Problem, Section, Severity, Sop, SopMeta
from sopilot.ingest.chunker import ChunkDraft, Chunker, build_sections
from sopilot.ingest.frontmatter import blank_front_matter, split_front_matter, to_meta
from sopilot.ingest.markdown import parse_outline
from sopilot.ingest.reader import read_text
from sopilot.ingest.roles import classify_section

CHUNK_ID_VERSION = "c1"
# Bumped whenever what a chunk's metadata holds changes (roles, say): the next sync re-reads every file and
# updates the metadata of chunks it already holds, without embedding them again.
PARSE_VERSION = "p5"


@dataclass(slots=True)
class LoadResult:
    sop: Sop | None
    problems: list[Problem] = field(default_factory=list)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_id(path: str, heading_path: tuple[str, ...], text: str, occurrence: int = 0) -> str:
    """Versioned content address: unchanged (path, heading path, text) keeps its id across runs."""
    key = "\x1f".join([path, HEADING_SEPARATOR.join(heading_path), text, str(occurrence)])
    return f"{CHUNK_ID_VERSION}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}"


def load_sop(root: Path, rel: str, chunker: Chunker, max_bytes: int) -> LoadResult:
    """Parse one file. Errors leave ``sop`` empty; warnings come with a usable ``sop``."""
    text, problem = read_text(root / rel, rel, max_bytes)
    if text is None:
        return LoadResult(None, [problem] if problem else [])
    return parse_sop(text, rel, chunker)


def parse_sop(text: str, rel: str, chunker: Chunker) -> LoadResult:
    fm, problem = split_front_matter(text, rel)
    if fm is None:
        return LoadResult(None, [problem] if problem else [])
    body = blank_front_matter(text)
    outline = parse_outline(body)
    problems: list[Problem] = []
    first_h1 = next((h.text for h in outline.headings if h.level == 1), None)
    title = fm.data.title or first_h1
    if not outline.headings and not fm.data.title:
        problems.append(
            Problem(
                rel,
                "no-heading",
                "SOP has no heading and no title",
                "start the file with '# Title' or add 'title:' to its front matter",
                line=fm.end_line + 1,
                severity=Severity.WARNING,
            )
        )
    if outline.unclosed_fence_line is not None:
        problems.append(
            Problem(
                rel,
                "unclosed-fence",
                "code fence is never closed: the rest of the file reads as code",
                "close the code block with a matching ``` line",
                line=outline.unclosed_fence_line + 1,
                severity=Severity.WARNING,
            )
        )
    title = title or Path(rel).stem.replace("-", " ").replace("_", " ").strip() or rel
    meta = to_meta(fm.data, fm.data.id or rel.removesuffix(".md"), title)
    sections = build_sections(body.splitlines(), outline, title)
    drafts = chunker.chunk_sections(body.splitlines(), sections)
    lines = body.splitlines()
    roles = {
        s.start_line: classify_section(s.heading_path, _section_body(lines, s), dict(meta.roles)).role.value
        for s, _ in sections
    }
    chunks = _to_chunks(rel, meta, drafts, roles)
    sop = Sop(rel, meta, content_hash(text), tuple(s for s, _ in sections), chunks)
    return LoadResult(sop, problems)


def _section_body(lines: list[str], section: Section) -> str:
    """The section's lines under its heading (all of them for text before the first heading)."""
    first = section.start_line - 1 if section.level == 0 else section.start_line
    return "\n".join(lines[first : section.end_line])


def _to_chunks(rel: str, meta: SopMeta, drafts: list[ChunkDraft], roles: dict[int, str]) -> tuple[Chunk, ...]:
    seen: dict[str, int] = {}
    chunks = []
    base = sop_metadata(meta)
    for index, d in enumerate(drafts):
        plain = chunk_id(rel, d.section.heading_path, d.text)
        occurrence = seen.get(plain, 0)
        seen[plain] = occurrence + 1
        cid = plain if occurrence == 0 else chunk_id(rel, d.section.heading_path, d.text, occurrence)
        metadata: dict[str, Any] = {
            **base,
            "path": rel,
            "heading_path": HEADING_SEPARATOR.join(d.section.heading_path),
            "anchor": d.section.anchor,
            "role": roles.get(d.section.start_line, "reference"),
            "level": d.section.level,
            "start_line": d.start_line,
            "end_line": d.end_line,
            "section_start": d.section.start_line,
            "section_end": d.section.end_line,
            "chunk_index": index,
            "n_tokens": d.n_tokens,
        }
        chunks.append(
            Chunk(
                cid,
                rel,
                d.section.heading_path,
                d.section.anchor,
                d.start_line,
                d.end_line,
                d.text,
                d.embed_text,
                metadata,
            )
        )
    return tuple(chunks)


def sop_metadata(meta: SopMeta) -> dict[str, Any]:
    """Flat, filterable fields from the front matter (Chroma takes scalars and non-empty lists)."""
    out: dict[str, Any] = {
        "sop_id": meta.id,
        "title": meta.title,
        "owner": meta.owner,
        "status": meta.status,
        "last_reviewed": meta.last_reviewed.isoformat() if meta.last_reviewed else "",
        "review_every_days": meta.review_every_days or 0,
        "escalation_team": meta.escalation.team if meta.escalation else "",
        "escalation_channel": meta.escalation.channel if meta.escalation else "",
        "escalation_when": meta.escalation.when if meta.escalation else "",
    }
    if meta.tags:
        out["tags"] = list(meta.tags)
    if meta.products:
        out["products"] = list(meta.products)
    return out
