"""Every SOP file of a KB parsed once for the author tools: front matter, outline, sections, anchors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sopilot.core.types import Problem, Section
from sopilot.ingest.chunker import build_sections
from sopilot.ingest.discover import discover
from sopilot.ingest.frontmatter import FrontMatterModel, blank_front_matter, split_front_matter
from sopilot.ingest.markdown import Block, Outline, parse_outline
from sopilot.ingest.reader import read_text


@dataclass(slots=True)
class SopFile:
    path: str  # relative to the KB root, POSIX
    lines: list[str]  # the file's lines, front matter blanked (line numbers are the file's own)
    front: FrontMatterModel | None  # None when the front matter is broken
    front_lines: int  # lines the front matter block takes
    outline: Outline
    sections: list[tuple[Section, list[Block]]]
    problem: Problem | None = None  # why the file or its front matter could not be read
    key_lines: dict[str, int] = field(default_factory=dict)  # front matter key -> 1-based line

    @property
    def anchors(self) -> set[str]:
        return {h.anchor for h in self.outline.headings}

    @property
    def generates_headings(self) -> bool:
        """A site shortcode (Hugo's ``{{% ... %}}`` or ``{{< ... >}}``) may write headings at build time."""
        return any("{{%" in line or "{{<" in line for line in self.lines)

    @property
    def title(self) -> str:
        if self.front is not None and self.front.title:
            return self.front.title
        return next((h.text for h in self.outline.headings if h.level == 1), "")

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, 1)


def load_kb(root: Path, ignore: tuple[str, ...], max_bytes: int = 1_000_000) -> tuple[list[SopFile], list[Problem]]:
    """Parse every Markdown file under ``root``; files that cannot be read come back as problems."""
    found = discover(root, ignore)
    files: list[SopFile] = []
    problems = list(found.problems)
    for rel in found.files:
        text, problem = read_text(root / rel, rel, max_bytes)
        if text is None:
            if problem is not None:
                problems.append(problem)
            continue
        files.append(parse_file(rel, text))
    return files, problems


def parse_file(rel: str, text: str) -> SopFile:
    fm, problem = split_front_matter(text, rel)
    body = blank_front_matter(text)
    lines = body.splitlines()
    outline = parse_outline(body)
    front_lines = fm.end_line if fm is not None else 0
    title = (fm.data.title if fm is not None else None) or next((h.text for h in outline.headings if h.level == 1), rel)
    raw_lines = text.splitlines()
    key_lines: dict[str, int] = {}
    for number, line in enumerate(raw_lines[1 : max(front_lines - 1, 0)], start=2):
        if line and not line[0].isspace() and ":" in line:
            key_lines.setdefault(line.split(":", 1)[0].strip().lower(), number)
    return SopFile(
        rel,
        lines,
        fm.data if fm is not None else None,
        front_lines,
        outline,
        build_sections(lines, outline, title),
        problem,
        key_lines,
    )
