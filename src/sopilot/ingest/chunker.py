"""Sections and chunks: blocks kept whole where they fit, split at item, row or line boundaries where not.

Every chunk's ``embed_text`` (heading path, then body) is checked against the embedder's own token count,
so nothing is silently truncated by the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sopilot.core.types import HEADING_SEPARATOR, Section
from sopilot.ingest.markdown import Block, Outline

TokenCounter = Callable[[Sequence[str]], list[int]]

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
_MIN_BUDGET = 24


@dataclass(frozen=True, slots=True)
class Piece:
    start: int  # 0-based, inclusive
    end: int  # 0-based, exclusive
    text: str


@dataclass(frozen=True, slots=True)
class ChunkDraft:
    section: Section
    start_line: int  # 1-based inclusive
    end_line: int  # 1-based inclusive
    text: str
    embed_text: str
    n_tokens: int


def build_sections(lines: list[str], outline: Outline, root: str) -> list[tuple[Section, list[Block]]]:
    """Sections in file order, each with the blocks under it (up to the next heading of any level)."""
    stack: list[tuple[int, str]] = []
    starts: list[tuple[tuple[str, ...], str, int, int]] = []  # heading path, anchor, level, 0-based line
    first_heading = outline.headings[0].line if outline.headings else len(lines)
    if any(b.start < first_heading for b in outline.blocks):
        starts.append(((root,), "", 0, 0))
    for heading in outline.headings:
        while stack and stack[-1][0] >= heading.level:
            stack.pop()
        if heading.level == 1 and not stack and heading.text.strip().lower() == root.strip().lower():
            starts.append(((root,), heading.anchor, 1, heading.line))
            continue
        stack.append((heading.level, heading.text))
        starts.append(((root, *(text for _, text in stack)), heading.anchor, heading.level, heading.line))
    result: list[tuple[Section, list[Block]]] = []
    for n, (path, anchor, level, start) in enumerate(starts):
        stop = starts[n + 1][3] if n + 1 < len(starts) else len(lines)
        end = stop
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1
        blocks = [b for b in outline.blocks if start <= b.start < stop]
        if level == 0:
            start = blocks[0].start if blocks else 0
        result.append((Section(path, anchor, level, start + 1, max(end, start + 1)), blocks))
    return result


class Chunker:
    """Packs a section's blocks into chunks whose embed text fits ``max_tokens`` of the embedder."""

    def __init__(self, count_tokens: TokenCounter, max_tokens: int) -> None:
        self._count = count_tokens
        self._max = max_tokens

    def chunk_sections(self, lines: list[str], sections: list[tuple[Section, list[Block]]]) -> list[ChunkDraft]:
        all_blocks = [b for _, blocks in sections for b in blocks]
        texts = [_lines(lines, b.start, b.end) for b in all_blocks]
        counts = dict(zip(((b.start, b.end) for b in all_blocks), self._count(texts) if texts else [], strict=True))
        with_body = [(section, blocks) for section, blocks in sections if blocks]
        prefixes = [HEADING_SEPARATOR.join(section.heading_path) for section, _ in with_body]
        prefix_counts = self._count(prefixes) if prefixes else []
        planned: list[tuple[Section, str, list[Piece], int]] = []
        for (section, blocks), prefix, prefix_tokens in zip(with_body, prefixes, prefix_counts, strict=True):
            budget = max(self._max - 3 - prefix_tokens, _MIN_BUDGET)
            if prefix_tokens > self._max // 2:
                prefix = _clip_words(prefix, self._max // 2, self._count)
            pieces: list[tuple[Piece, int]] = []
            for block in blocks:
                n = counts[(block.start, block.end)]
                if n <= budget:
                    pieces.append((Piece(block.start, block.end, _lines(lines, block.start, block.end)), n))
                else:
                    pieces.extend(self._split_block(lines, block, budget))
            planned.extend((section, prefix, group, budget) for group, _ in _pack(pieces, budget))
        # Verify every chunk by the real count in one batch; only the rare overflow is re-split.
        joined = ["\n\n".join(p.text for p in group) for _, _, group, _ in planned]
        embed_texts = [f"{prefix}\n{text}" for (_, prefix, _, _), text in zip(planned, joined, strict=True)]
        real = self._count(embed_texts) if embed_texts else []
        drafts: list[ChunkDraft] = []
        for (section, prefix, group, budget), text, embed_text, n in zip(
            planned, joined, embed_texts, real, strict=True
        ):
            if n + 2 <= self._max:
                drafts.append(ChunkDraft(section, group[0].start + 1, group[-1].end, text, embed_text, n + 2))
            else:
                drafts.extend(self._finish(section, prefix, group, budget))
        return drafts

    def _finish(self, section: Section, prefix: str, group: list[Piece], budget: int) -> list[ChunkDraft]:
        """Join a packed group and verify it by the real count; re-split the rare group that overflows."""
        text = "\n\n".join(p.text for p in group)
        embed_text = f"{prefix}\n{text}"
        n = self._count([embed_text])[0] + 2
        if n <= self._max:
            return [ChunkDraft(section, group[0].start + 1, group[-1].end, text, embed_text, n)]
        if len(group) > 1:
            half = len(group) // 2
            return self._finish(section, prefix, group[:half], budget) + self._finish(
                section, prefix, group[half:], budget
            )
        piece = group[0]
        smaller = [p for p, _ in self._split_text(piece, max(budget - (n - self._max) - 4, _MIN_BUDGET))]
        if len(smaller) == 1:  # cannot split further: cut words until it fits
            smaller = [Piece(piece.start, piece.end, _clip_words(piece.text, budget - 8, self._count))]
        return [d for p in smaller for d in self._finish(section, prefix, [p], budget)]

    def _split_block(self, lines: list[str], block: Block, budget: int) -> list[tuple[Piece, int]]:
        if block.kind == "fence":
            return self._split_fence(lines, block, budget)
        if block.kind == "table" and len(block.unit_starts) > 1:
            header = _lines(lines, block.start, block.unit_starts[1])
            bounds = [*block.unit_starts[1:], block.end]
            rows = [Piece(a, b, _lines(lines, a, b)) for a, b in zip(bounds, bounds[1:], strict=False)]
            return self._pack_with_header(header, rows, budget)
        if block.kind in ("bullet_list", "ordered_list") and len(block.unit_starts) > 1:
            bounds = [*block.unit_starts, block.end]
            items = [Piece(a, b, _lines(lines, a, b)) for a, b in zip(bounds, bounds[1:], strict=False)]
            out: list[tuple[Piece, int]] = []
            for item, n in zip(items, self._count([i.text for i in items]), strict=True):
                out.extend([(item, n)] if n <= budget else self._split_text(item, budget))
            return _merge(out, budget, "\n")
        return self._split_text(Piece(block.start, block.end, _lines(lines, block.start, block.end)), budget)

    def _split_fence(self, lines: list[str], block: Block, budget: int) -> list[tuple[Piece, int]]:
        opener = lines[block.start]
        last = lines[block.end - 1].strip() if block.end - block.start >= 2 else ""
        # A closing fence is the opener's characters alone: "```bash" on the last line is code, not a closer.
        closed = bool(block.fence_markup) and last.startswith(block.fence_markup) and set(last) <= {last[0]}
        inner_end = block.end - 1 if closed else block.end
        closer = block.fence_markup or "```"
        body = [Piece(i, i + 1, lines[i]) for i in range(block.start + 1, inner_end)]
        wrap_cost = self._count([f"{opener}\n{closer}"])[0]
        out = []
        groups = _merge(self._counted(body, budget - wrap_cost), budget - wrap_cost, "\n")
        for n, (group, _) in enumerate(groups):
            text = f"{opener}\n{group.text}\n{closer}"
            # The first piece starts at the opening fence line, the last ends at the closing one.
            start = group.start if n > 0 else block.start
            end = group.end if n < len(groups) - 1 else block.end
            out.append((Piece(start, end, text), 0))
        counts = self._count([p.text for p, _ in out])
        return [(p, n) for (p, _), n in zip(out, counts, strict=True)]

    def _pack_with_header(self, header: str, rows: list[Piece], budget: int) -> list[tuple[Piece, int]]:
        header_cost = self._count([header])[0]
        groups = _merge(self._counted(rows, budget - header_cost), budget - header_cost, "\n")
        texts = [f"{header}\n{g.text}" for g, _ in groups]
        counts = self._count(texts)
        return [(Piece(g.start, g.end, t), n) for (g, _), t, n in zip(groups, texts, counts, strict=True)]

    def _counted(self, pieces: list[Piece], budget: int) -> list[tuple[Piece, int]]:
        out: list[tuple[Piece, int]] = []
        for piece, n in zip(pieces, self._count([p.text for p in pieces]) if pieces else [], strict=True):
            out.extend([(piece, n)] if n <= budget else self._split_text(piece, budget))
        return out

    def _split_text(self, piece: Piece, budget: int) -> list[tuple[Piece, int]]:
        """Split plain text at lines, then sentences, then words, keeping each part within ``budget``."""
        budget = max(budget, _MIN_BUDGET)
        line_texts = piece.text.split("\n")
        if len(line_texts) > 1:
            parts = [Piece(piece.start + i, piece.start + i + 1, t) for i, t in enumerate(line_texts) if t.strip()]
            return _merge(self._counted(parts, budget), budget, "\n")
        sentences = [s for s in _SENTENCE_END.split(piece.text) if s.strip()]
        if len(sentences) > 1:
            parts = [Piece(piece.start, piece.end, s) for s in sentences]
            return _merge(self._counted(parts, budget), budget, " ")
        words = piece.text.split(" ")
        if len(words) > 1:
            half = len(words) // 2
            halves = [" ".join(words[:half]), " ".join(words[half:])]
            parts = [Piece(piece.start, piece.end, h) for h in halves]
            return _merge(self._counted(parts, budget), budget, " ")
        clipped = _clip_chars(piece.text, budget, self._count)
        return [(Piece(piece.start, piece.end, clipped), self._count([clipped])[0])]


def _pack(pieces: list[tuple[Piece, int]], budget: int) -> list[tuple[list[Piece], int]]:
    """Greedy packing of consecutive pieces into groups whose summed counts stay within ``budget``."""
    groups: list[tuple[list[Piece], int]] = []
    current: list[Piece] = []
    used = 0
    for piece, n in pieces:
        if current and used + n > budget:
            groups.append((current, used))
            current, used = [], 0
        current.append(piece)
        used += n
    if current:
        groups.append((current, used))
    return groups


def _merge(pieces: list[tuple[Piece, int]], budget: int, joiner: str) -> list[tuple[Piece, int]]:
    """Pack small consecutive pieces into one, joined by ``joiner`` (counts are summed, checked later)."""
    return [
        (Piece(group[0].start, group[-1].end, joiner.join(p.text for p in group)), n)
        for group, n in _pack(pieces, budget)
    ]


def _lines(lines: list[str], start: int, end: int) -> str:
    return "\n".join(lines[start:end]).strip("\n")


def _clip_words(text: str, budget: int, count: TokenCounter) -> str:
    words = text.split()
    lo, hi = 1, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count([" ".join(words[:mid])])[0] <= budget:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def _clip_chars(text: str, budget: int, count: TokenCounter) -> str:
    lo, hi = 1, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count([text[:mid]])[0] <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]
