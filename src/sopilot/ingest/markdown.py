"""Markdown structure from markdown-it-py tokens: headings, top-level blocks and their line ranges."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

_CUSTOM_ID = re.compile(r"\s*\{#([A-Za-z0-9_-]+)\}\s*$")


@dataclass(frozen=True, slots=True)
class Heading:
    level: int
    text: str
    anchor: str
    line: int  # 0-based


@dataclass(frozen=True, slots=True)
class Block:
    """One top-level block (paragraph, list, table, fence…), with 0-based half-open line range."""

    kind: str
    start: int
    end: int
    # 0-based start lines of the units a block may be split at (list items, table rows)
    unit_starts: tuple[int, ...] = ()
    fence_markup: str = ""


@dataclass(slots=True)
class Outline:
    headings: list[Heading] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    unclosed_fence_line: int | None = None  # 0-based line of a fence that is never closed


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # Inline parsing is most of markdown-it's time and only headings need it (see ``heading_text``).
    return MarkdownIt("commonmark", {"html": True}).enable("table").disable("inline")


@lru_cache(maxsize=1)
def _inline_parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True})


def slugify(text: str) -> str:
    """The anchor a GitHub-style renderer gives a heading."""
    text = unicodedata.normalize("NFKC", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def heading_text(source: str) -> str:
    """Plain text of a heading's Markdown: emphasis and link markup dropped, link and code text kept."""
    if not any(ch in source for ch in "*_`[<!\\&"):
        return " ".join(source.split())
    parts: list[str] = []
    for token in _inline_parser().parseInline(source):
        for child in token.children or []:
            if child.type in ("text", "code_inline"):
                parts.append(child.content)
    return " ".join("".join(parts).split())


def parse_outline(text: str) -> Outline:
    """Headings and top-level blocks of ``text``; line numbers are those of ``text``."""
    tokens = _parser().parse(text)
    lines = text.splitlines()
    outline = Outline()
    seen_anchors: dict[str, int] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.level != 0 or tok.nesting == -1 or tok.map is None:
            i += 1
            continue
        start, end = tok.map
        if tok.type == "heading_open":
            text = heading_text(tokens[i + 1].content)
            custom = _CUSTOM_ID.search(text)
            if custom:
                text = text[: custom.start()].rstrip()
                anchor = custom.group(1)
            else:
                anchor = _unique(slugify(text), seen_anchors)
            outline.headings.append(Heading(int(tok.tag[1]), text, anchor, start))
            i += 3
            continue
        kind = tok.type.removesuffix("_open")
        units: tuple[int, ...] = ()
        markup = ""
        if tok.nesting == 1:
            close = _closing_index(tokens, i)
            units = _unit_starts(tokens[i + 1 : close], kind)
            i = close + 1
        else:
            i += 1
        if kind == "fence":
            markup = tok.markup
            if _fence_unclosed(lines, start, end, markup) and outline.unclosed_fence_line is None:
                outline.unclosed_fence_line = start
        outline.blocks.append(Block(kind, start, end, units, markup))
    _keep_dropped_lines(outline, lines)
    return outline


def _keep_dropped_lines(outline: Outline, lines: list[str]) -> None:
    """Lines markdown-it gives no token (link reference definitions) become blocks of their own, so no text an
    author wrote is left out of every chunk."""
    covered = [False] * len(lines)
    for block in outline.blocks:
        covered[block.start : block.end] = [True] * (min(block.end, len(lines)) - block.start)
    for heading in outline.headings:
        if heading.line < len(lines):
            covered[heading.line] = True
            # a setext heading's underline
            if heading.line + 1 < len(lines) and set(lines[heading.line + 1].strip()) in ({"="}, {"-"}):
                covered[heading.line + 1] = True
    extra: list[Block] = []
    start: int | None = None
    for i, text in enumerate([*lines, ""]):
        dropped = i < len(lines) and not covered[i] and bool(text.strip())
        if dropped and start is None:
            start = i
        elif not dropped and start is not None:
            extra.append(Block("reference", start, i))
            start = None
    if extra:
        outline.blocks = sorted([*outline.blocks, *extra], key=lambda b: b.start)


def _unique(anchor: str, seen: dict[str, int]) -> str:
    count = seen.get(anchor, 0)
    seen[anchor] = count + 1
    return anchor if count == 0 else f"{anchor}-{count}"


def _closing_index(tokens: list[Token], open_index: int) -> int:
    depth = 0
    for j in range(open_index, len(tokens)):
        depth += tokens[j].nesting
        if depth == 0:
            return j
    return len(tokens) - 1


def _unit_starts(inner: list[Token], kind: str) -> tuple[int, ...]:
    """Lines where a list item or table row starts, so an oversized block can be split between them."""
    wanted = {"bullet_list": "list_item_open", "ordered_list": "list_item_open", "table": "tr_open"}.get(kind)
    if wanted is None:
        return ()
    base_level = min((t.level for t in inner if t.type == wanted), default=0)
    return tuple(t.map[0] for t in inner if t.type == wanted and t.level == base_level and t.map)


def _fence_unclosed(lines: list[str], start: int, end: int, markup: str) -> bool:
    if end - start < 2:
        return True
    last = lines[end - 1].strip() if end - 1 < len(lines) else ""
    return not (last.startswith(markup) and set(last) <= set(markup[0]))
