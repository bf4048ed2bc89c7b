"""The KB's SOP files as the API serves them: safe path resolution, the list with front matter, one SOP.

A path comes from a URL, so it is checked before anything is opened: relative to the KB root, no ``..``, no
hidden part, a Markdown suffix, and still inside the root once symlinks are resolved. A path that fails is
refused with an error naming the problem; the file is never read.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path, PurePosixPath

from sopilot.api.render import RenderedSop, render_sop
from sopilot.core.errors import SopilotError
from sopilot.ingest.discover import MARKDOWN_SUFFIXES, discover
from sopilot.ingest.frontmatter import FrontMatterModel, blank_front_matter, split_front_matter
from sopilot.ingest.markdown import parse_outline
from sopilot.ingest.reader import read_text


class InvalidSopPathError(SopilotError):
    """An SOP path that could name something outside the KB, or something that is not an SOP."""

    http_status = 400


class SopNotFoundError(SopilotError):
    """No SOP at that path in the KB."""

    http_status = 404


class SopUnreadableError(SopilotError):
    """The SOP file exists but cannot be shown (too large, not UTF-8, bad front matter...)."""

    http_status = 422


@dataclass(frozen=True, slots=True)
class SopSummary:
    path: str
    title: str
    team: str
    status: str
    last_reviewed: date | None
    review_due: date | None  # last_reviewed + review_every_days
    tags: tuple[str, ...]
    products: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SopView:
    summary: SopSummary
    rendered: RenderedSop
    escalation: str  # "team (channel): when", "" when the SOP names none


def resolve_sop_path(root: Path, rel: str) -> Path:
    """The file ``rel`` names under ``root``; raises instead of returning anything outside it."""
    if not rel or "\x00" in rel or "\\" in rel:
        raise InvalidSopPathError(f"SOP path {rel!r} is not valid: give a path like 'access/sso-login-failures.md'")
    pure = PurePosixPath(rel)
    if pure.is_absolute():
        raise InvalidSopPathError(f"SOP path {rel!r} is absolute: give it relative to the KB folder")
    if any(part in ("..", ".") or part.startswith(".") for part in pure.parts):
        raise InvalidSopPathError(f"SOP path {rel!r} has '..' or a hidden part: give a path inside the KB folder")
    if not rel.lower().endswith(MARKDOWN_SUFFIXES):
        raise InvalidSopPathError(f"SOP path {rel!r} is not a Markdown file: SOP paths end in .md")
    base = root.resolve()
    full = (base / pure).resolve()
    if not full.is_relative_to(base) or not full.is_file():
        # A symlink leading out of the KB is answered like a missing file: nothing outside is revealed.
        raise SopNotFoundError(f"no SOP at {rel!r} in the KB: list them with GET /v1/sops")
    return full


def list_sops(root: Path, *, max_bytes: int, ignore: tuple[str, ...] = ()) -> list[SopSummary]:
    """Every SOP of the KB with its front matter; a file that cannot be read is listed by its path."""
    summaries = []
    for rel in discover(root, ignore).files:
        text, _ = read_text(root / rel, rel, max_bytes)
        summaries.append(_summary(rel, text or ""))
    return summaries


def load_sop_view(root: Path, rel: str, *, max_bytes: int, ignore: tuple[str, ...] = ()) -> SopView:
    """One SOP rendered safely, with its front matter; the path is checked before the file is read."""
    full = resolve_sop_path(root, rel)
    if any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(full.name, pat) for pat in ignore):
        raise SopNotFoundError(f"{rel!r} is not an SOP (SOPILOT_IGNORE leaves it out): list them with GET /v1/sops")
    text, problem = read_text(full, rel, max_bytes)
    if text is None:
        raise SopUnreadableError(str(problem))
    fm, problem = split_front_matter(text, rel)
    if fm is None:
        raise SopUnreadableError(str(problem))
    esc = fm.data.escalation
    escalation = ""
    if esc is not None:
        escalation = esc.team + (f" ({esc.channel})" if esc.channel else "") + (f": {esc.when}" if esc.when else "")
    return SopView(_summary(rel, text, fm.data), render_sop(text, rel), escalation)


def _summary(rel: str, text: str, data: FrontMatterModel | None = None) -> SopSummary:
    if data is None:
        fm, _ = split_front_matter(text, rel)
        data = fm.data if fm is not None else FrontMatterModel()
    title = data.title or _first_h1(text) or PurePosixPath(rel).stem.replace("-", " ")
    due = None
    if data.last_reviewed and data.review_every_days:
        due = data.last_reviewed + timedelta(days=data.review_every_days)
    return SopSummary(
        rel, title, data.owner, data.status, data.last_reviewed, due, tuple(data.tags), tuple(data.products)
    )


def _first_h1(text: str) -> str | None:
    headings = parse_outline(blank_front_matter(text)).headings
    return next((h.text for h in headings if h.level == 1), None)
