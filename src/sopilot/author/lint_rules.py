"""The lint rules: each a function of one parsed file (or the whole KB) that yields findings.

Findings carry the rule id; the runner (``author.lint``) applies levels and the per-file ``lint: off`` list.
"""

from __future__ import annotations

import difflib
import posixpath
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sopilot.author.kb_files import SopFile
from sopilot.author.lint_config import LintConfig
from sopilot.ingest.markdown import Block

# (rule, line, message, fix)
Raw = tuple[str, int, str, str]

_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)")
_CHANNEL = re.compile(r"(?<![\w/#&(\[.-])#([a-z][a-z0-9_-]{2,}[a-z0-9])\b")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")
_REFERENCE = re.compile(
    r"\b(?:in|see|under|follow|per)\s+(?:the\s+)?[*_\"“']{0,2}([A-Z][\w-]*(?:[ :][\w-]+){0,4}?)[*_\"”']{0,2}"
    r"\s+(section\s+|steps\s+)?(below|above)\b"
)
# First words of list items that are instructions ("Open ...", "Ask ..."): such a list is a procedure.
_IMPERATIVE = frozenset(
    [
        "add",
        "ask",
        "assign",
        "check",
        "clear",
        "click",
        "close",
        "confirm",
        "copy",
        "create",
        "delete",
        "disable",
        "enable",
        "enter",
        "escalate",
        "find",
        "follow",
        "get",
        "give",
        "go",
        "grant",
        "install",
        "log",
        "make",
        "move",
        "note",
        "open",
        "page",
        "paste",
        "post",
        "re-run",
        "remove",
        "reply",
        "request",
        "reset",
        "restart",
        "revoke",
        "run",
        "search",
        "select",
        "send",
        "set",
        "share",
        "start",
        "stop",
        "switch",
        "tell",
        "unlock",
        "update",
        "use",
        "verify",
        "wait",
        "write",
    ]
)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Known values of a field and whether they were configured (strict) or learned (typo check only)."""

    known: frozenset[str]
    strict: bool

    def problem(self, value: str) -> str | None:
        """None when ``value`` is fine, else what to say about it."""
        if not value or value in self.known:
            return None
        # learned lists flag only near-certain typos ("#support_team_chat" beside "#support_team-chat")
        close = difflib.get_close_matches(value, sorted(self.known), n=1, cutoff=0.8 if self.strict else 0.88)
        if close:
            return f"did you mean {close[0]!r}?"
        return "it is not in the configured list" if self.strict else None


@dataclass(slots=True)
class KbContext:
    config: LintConfig
    today: date
    root: Path
    files: dict[str, SopFile]
    owners: Vocabulary
    escalation_teams: Vocabulary
    channels: Vocabulary


def fence_lines(f: SopFile) -> set[int]:
    """0-based lines inside code blocks (links and channels there are examples, not references)."""
    inside: set[int] = set()
    for block in f.outline.blocks:
        if block.kind in ("fence", "code_block", "html_block"):
            inside.update(range(block.start, block.end))
    return inside


def learn_vocabulary(values: list[list[str]], configured: tuple[str, ...], min_files: int) -> Vocabulary:
    """Configured values are the list; otherwise values used by at least ``min_files`` files are known."""
    if configured:
        return Vocabulary(frozenset(configured), strict=True)
    counts = Counter(v for per_file in values for v in set(per_file) if v)
    return Vocabulary(frozenset(v for v, n in counts.items() if n >= min_files), strict=False)


def channels_of(f: SopFile) -> list[tuple[int, str]]:
    skip = fence_lines(f)
    found: list[tuple[int, str]] = []
    for number, line in enumerate(f.lines):
        if number in skip or line.lstrip().startswith("#"):
            continue
        found.extend((number + 1, "#" + m.group(1)) for m in _CHANNEL.finditer(line))
    if f.front is not None and f.front.escalation is not None and f.front.escalation.channel:
        found.append((f.line_of("escalation"), f.front.escalation.channel.strip()))
    return found


# ---- front matter ---------------------------------------------------------------------------------------


def front_matter(f: SopFile, ctx: KbContext) -> Iterator[Raw]:
    if f.front is None:
        if f.problem is not None:
            yield ("front-matter-invalid", f.problem.line or 1, f.problem.message, f.problem.fix)
        return
    fm = f.front
    for key in ctx.config.required_fields:
        value = getattr(fm, key, None) if key in type(fm).model_fields else (fm.model_extra or {}).get(key)
        if value in (None, "", [], {}):
            yield (
                "missing-field",
                1,
                f"front matter has no '{key}'",
                f"add '{key}:' to the front matter (see docs/authoring.md for its type)",
            )
    if fm.last_reviewed is not None and fm.last_reviewed > ctx.today:
        yield (
            "review-date-future",
            f.line_of("last_reviewed"),
            f"last_reviewed {fm.last_reviewed} is after today ({ctx.today})",
            "set last_reviewed to the date of the review that took place",
        )
    from sopilot.author.findings import RULES

    for rule in fm.lint.disable:
        if rule not in RULES:
            yield (
                "front-matter-invalid",
                f.line_of("lint"),
                f"lint.disable names unknown rule {rule!r}",
                "use a rule id from `sopilot lint --rules`",
            )
    checks = [("owner", fm.owner, ctx.owners)]
    if fm.escalation is not None:
        checks.append(("escalation team", fm.escalation.team, ctx.escalation_teams))
    for what, value, vocabulary in checks:
        why = vocabulary.problem(value.strip())
        if why:
            line = f.line_of("owner" if what == "owner" else "escalation")
            yield ("unknown-team", line, f"{what} {value!r} is not a known team: {why}", "use a known team name")
    kind = ctx.config.kind_of(f.path, fm.kind)
    if kind not in ctx.config.kinds:
        yield (
            "unknown-kind",
            f.line_of("kind"),
            f"kind {kind!r} is not configured",
            f"use one of {', '.join(sorted(ctx.config.kinds))} or add [kinds.{kind}] to .sopilot-lint.toml",
        )


def channels(f: SopFile, ctx: KbContext) -> Iterator[Raw]:
    reported: set[str] = set()
    for line, channel in channels_of(f):
        why = ctx.channels.problem(channel)
        if why and channel not in reported:
            reported.add(channel)
            yield ("unknown-channel", line, f"channel {channel} is not a known channel: {why}", "use a known channel")


# ---- structure ------------------------------------------------------------------------------------------


def structure(f: SopFile, ctx: KbContext) -> Iterator[Raw]:
    yield from _headings(f)
    yield from _sections(f, ctx)
    yield from _required_sections(f, ctx)


def _headings(f: SopFile) -> Iterator[Raw]:
    previous = 1
    seen: dict[tuple[str, ...], int] = {}
    path: list[tuple[int, str]] = []
    for h in f.outline.headings:
        while path and path[-1][0] >= h.level:
            path.pop()
        path.append((h.level, h.text.casefold()))
        if h.level > previous + 1:
            yield (
                "heading-skip",
                h.line + 1,
                f"heading '{h.text}' is level {h.level} under a level {previous} heading",
                f"make it a level {previous + 1} heading ({'#' * (previous + 1)} {h.text})",
            )
        previous = h.level
        key = tuple(text for _, text in path)
        if key in seen:
            yield (
                "duplicate-heading",
                h.line + 1,
                f"heading '{h.text}' is used twice under the same parent (first at line {seen[key]})",
                "name each section after its case, e.g. 'Resolution: <cause>'",
            )
        else:
            seen[key] = h.line + 1


def _sections(f: SopFile, ctx: KbContext) -> Iterator[Raw]:
    step_heading = re.compile(ctx.config.step_headings, re.IGNORECASE)
    sections = f.sections
    for n, (section, blocks) in enumerate(sections):
        if section.level == 0:
            continue
        heading = section.heading_path[-1]
        following = sections[n + 1][0] if n + 1 < len(sections) else None
        has_children = following is not None and following.level > section.level
        if not blocks and not has_children:
            yield (
                "empty-section",
                section.start_line,
                f"section '{heading}' is empty",
                "write its content or remove the heading",
            )
        words = sum(
            len(_WORD.findall(" ".join(f.lines[b.start : b.end]))) for b in blocks if b.kind not in ("fence", "table")
        )
        if words > ctx.config.max_section_words:
            yield (
                "long-section",
                section.start_line,
                f"section '{heading}' has {words} words of text (more than {ctx.config.max_section_words})",
                "split it into sub-sections (### ...) a reader can find from the heading",
            )
        kinds = {b.kind for b in blocks}
        if step_heading.search(heading) and "ordered_list" not in kinds and _instruction_list(f, blocks):
            yield (
                "unnumbered-steps",
                section.start_line,
                f"procedure section '{heading}' gives no numbered steps",
                "write the steps as a numbered list (1. 2. 3.) so agents can follow and cite them in order",
            )


def _instruction_list(f: SopFile, blocks: list[Block]) -> bool:
    """A bullet list of two or more items, most of them starting with an instruction."""
    for block in blocks:
        if block.kind != "bullet_list" or len(block.unit_starts) < 2:
            continue
        firsts = [re.sub(r"^\s*[-*+]\s+[*_`]*", "", f.lines[i]).split(" ", 1)[0].lower() for i in block.unit_starts]
        instructions = sum(1 for w in firsts if w.strip("*_`:,.") in _IMPERATIVE)
        if instructions >= 2 and instructions >= 0.6 * len(firsts):
            return True
    return False


def _required_sections(f: SopFile, ctx: KbContext) -> Iterator[Raw]:
    if f.front is None:
        return
    kind = ctx.config.kinds.get(ctx.config.kind_of(f.path, f.front.kind))
    if kind is None:
        return
    headings = [s.heading_path[-1] for s, _ in f.sections if s.level > 1 or (s.level == 1 and len(s.heading_path) > 1)]
    for pattern in kind.required:
        if not any(re.search(pattern, h, re.IGNORECASE) for h in headings):
            yield (
                "required-section",
                1,
                f"a {kind.name} SOP needs a section whose heading matches /{pattern}/",
                f"add that section, or set 'kind:' in the front matter if this is not a {kind.name}",
            )


def references(f: SopFile, ctx: KbContext) -> Iterator[Raw]:
    """'see X below' where the file has no section X."""
    skip = fence_lines(f)
    headings = [h.text.casefold() for h in f.outline.headings]
    for number, line in enumerate(f.lines):
        if number in skip:
            continue
        for m in _REFERENCE.finditer(line):
            words = m.group(1).split()
            if not m.group(2) and (not all(w[0].isupper() for w in words) or m.group(1).isupper()):
                continue  # "the JSON shape below", "the GIF below": an example below, not a section
            name = m.group(1).strip().casefold()
            if any(name in h or h in name for h in headings if h):
                continue
            yield (
                "missing-referenced-section",
                number + 1,
                f"text points to '{m.group(1)}' {m.group(3)}, but the file has no such section",
                f"add the section '{m.group(1)}' or change the text to point where the steps are",
            )


# ---- links ----------------------------------------------------------------------------------------------


def links(f: SopFile, ctx: KbContext) -> Iterator[Raw]:
    skip = fence_lines(f)
    for number, line in enumerate(f.lines):
        if number in skip:
            continue
        for m in _LINK.finditer(_strip_code_spans(line)):
            target = m.group(1)
            if _SCHEME.match(target):
                continue
            yield from _check_link(f, ctx, number + 1, target)


def _strip_code_spans(line: str) -> str:
    return re.sub(r"`[^`]*`", "", line)


def _check_link(f: SopFile, ctx: KbContext, line: int, target: str) -> Iterator[Raw]:
    path_part, _, anchor = target.partition("#")
    path_part = path_part.split("?", 1)[0]
    target_file: SopFile | None = f
    shown = f.path
    if path_part:
        resolved = _resolve(f.path, path_part, ctx)
        if resolved is None:
            return
        if resolved == "":
            yield (
                "broken-link",
                line,
                f"link to {path_part} points to no file",
                "correct the path (relative to this file) or remove the link",
            )
            return
        target_file = ctx.files.get(resolved)
        shown = resolved
    if target_file is None:  # an existing non-Markdown file (image, attachment): nothing more to check
        return
    if anchor and target_file.generates_headings:
        return  # a site shortcode ({{% ... %}}) may write headings this file does not show
    if anchor and anchor.lower() not in {a.lower() for a in target_file.anchors}:
        close = difflib.get_close_matches(anchor.lower(), sorted(target_file.anchors), n=1, cutoff=0.6)
        hint = f"did you mean #{close[0]}?" if close else "link to a heading that exists in the file"
        yield ("broken-anchor", line, f"{shown} has no section #{anchor}", hint)


def _resolve(source: str, link: str, ctx: KbContext) -> str | None:
    """The KB path a link points to; "" when it points to nothing; None when it cannot be checked here."""
    if link.startswith("/"):
        prefix = ctx.config.site_prefix
        if not prefix or not link.startswith(prefix):
            return None
        bases = [link[len(prefix) :]]
    else:
        bases = [posixpath.normpath(posixpath.join(posixpath.dirname(source), link))]
        if ctx.config.relative_to == "page" and posixpath.basename(source) not in ("_index.md", "index.md"):
            # a site page x.md is served at x/: its relative links may start there (Hugo), or at its folder
            bases.append(posixpath.normpath(posixpath.join(source.rsplit(".", 1)[0], link)))
    checkable = False
    for rel in bases:
        found = _find(rel.strip("/"), ctx)
        if found:
            return found
        checkable = checkable or found == ""
    return "" if checkable else None


def _find(rel: str, ctx: KbContext) -> str | None:
    if not rel or rel.startswith("../") or rel == "..":
        return None
    if ctx.config.relative_to == "page" and rel.endswith(".html"):
        rel = rel.removesuffix(".html")
    parent = (ctx.root / rel).parent
    if not parent.is_dir() or not any(parent.glob("*.md")):
        return None  # a part of the site this KB does not hold
    if (ctx.root / rel).is_dir() and not _has_index(ctx.root / rel):
        return None
    candidates = (
        [rel] if rel.endswith((".md", ".markdown")) else [rel, f"{rel}.md", f"{rel}/_index.md", f"{rel}/index.md"]
    )
    lowered = {path.lower(): path for path in ctx.files} if ctx.config.relative_to == "page" else {}
    for candidate in candidates:
        if candidate in ctx.files or (ctx.root / candidate).is_file():
            return candidate
        if candidate.lower() in lowered:  # a site lowercases its URLs (Hugo's default)
            return lowered[candidate.lower()]
    return ""


def _has_index(folder: Path) -> bool:
    return any((folder / name).is_file() for name in ("_index.md", "index.md", "README.md"))


# ---- across files ---------------------------------------------------------------------------------------


def duplicates(files: list[SopFile]) -> Iterator[tuple[str, Raw]]:
    by_id: dict[str, list[SopFile]] = defaultdict(list)
    by_title: dict[str, list[SopFile]] = defaultdict(list)
    for f in files:
        if f.front is not None and f.front.id:
            by_id[f.front.id].append(f)
        if f.title:
            by_title[f.title.casefold().strip()].append(f)
    for sop_id, group in by_id.items():
        for f in group[1:]:
            yield (
                f.path,
                (
                    "duplicate-id",
                    f.line_of("id"),
                    f"id {sop_id} is also the id of {group[0].path}",
                    "give this SOP a new id (the first file keeps it in the index)",
                ),
            )
    for group in by_title.values():
        for f in group[1:]:
            yield (
                f.path,
                (
                    "duplicate-title",
                    f.line_of("title"),
                    f"title '{f.title}' is also the title of {group[0].path}",
                    "give each SOP a title that says what makes it different, or merge the two",
                ),
            )


FILE_RULES = (front_matter, channels, structure, references, links)
