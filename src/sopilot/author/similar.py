"""Sections of the index and their nearest neighbours in other SOPs, from the vectors Chroma already holds.

A section's vector is the normalised mean of its chunks' vectors; nothing is embedded again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from sopilot.core.types import HEADING_SEPARATOR
from sopilot.index.store import StoredChunk


@dataclass(frozen=True, slots=True)
class IndexedSection:
    path: str
    title: str
    heading_path: tuple[str, ...]
    anchor: str
    start_line: int
    end_line: int
    text: str
    status: str

    @property
    def link(self) -> str:
        return f"{self.path}#{self.anchor}" if self.anchor else self.path


def sections_from(chunks: Iterable[tuple[StoredChunk, np.ndarray]]) -> tuple[list[IndexedSection], np.ndarray]:
    """Group chunks by (path, section start) into sections with one unit vector each."""
    groups: dict[tuple[str, int], list[tuple[StoredChunk, np.ndarray]]] = {}
    for chunk, vector in chunks:
        meta = chunk.metadata
        groups.setdefault((str(meta.get("path", "")), int(meta.get("section_start", 0))), []).append((chunk, vector))
    sections: list[IndexedSection] = []
    vectors: list[np.ndarray] = []
    for (path, start), members in sorted(groups.items()):
        members.sort(key=lambda m: int(m[0].metadata.get("start_line", 0)))
        meta = members[0][0].metadata
        heading = str(meta.get("heading_path", ""))
        mean = np.mean([v / (np.linalg.norm(v) or 1.0) for _, v in members], axis=0)
        vectors.append(mean / (np.linalg.norm(mean) or 1.0))
        sections.append(
            IndexedSection(
                path,
                str(meta.get("title", "")),
                tuple(heading.split(HEADING_SEPARATOR)) if heading else (),
                str(meta.get("anchor", "")),
                start,
                int(meta.get("section_end", meta.get("end_line", start))),
                "\n\n".join(c.text for c, _ in members),
                str(meta.get("status", "active")),
            )
        )
    matrix = np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, 1), dtype=np.float32)
    return sections, matrix


def neighbour_pairs(
    sections: list[IndexedSection], vectors: np.ndarray, min_similarity: float, per_section: int
) -> list[tuple[int, int, float]]:
    """Pairs (i, j, cosine), i < j, of sections of different SOPs where one is among the other's
    ``per_section`` nearest and their cosine is at least ``min_similarity``; most similar first."""
    if len(sections) < 2:
        return []
    paths = np.array([s.path for s in sections])
    pairs: dict[tuple[int, int], float] = {}
    for start in range(0, len(sections), 1024):  # blocks of rows keep memory flat on big KBs
        block = vectors[start : start + 1024] @ vectors.T
        for row, sims in enumerate(block):
            i = start + row
            sims = np.where(paths == paths[i], -1.0, sims)
            top = np.argpartition(-sims, min(per_section, len(sims) - 1))[:per_section]
            for j in top:
                if sims[j] >= min_similarity:
                    pairs[(min(i, int(j)), max(i, int(j)))] = float(sims[j])
    return sorted(((i, j, s) for (i, j), s in pairs.items()), key=lambda t: -t[2])
