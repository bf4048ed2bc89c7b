"""Typed facts in an SOP section: durations, numbers with units, #channels, URLs, on-call teams, commands.

Each fact keeps the words around it (its context: the words near it on its line; in a table, also the row's
first cell and the column's header), so two sections' facts are compared only when they talk about the same
thing. Pure functions over text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER = r"(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)"
_DURATION_UNITS = {
    "s": 1 / 60,
    "sec": 1 / 60,
    "secs": 1 / 60,
    "second": 1 / 60,
    "seconds": 1 / 60,
    "min": 1,
    "mins": 1,
    "minute": 1,
    "minutes": 1,
    "h": 60,
    "hr": 60,
    "hrs": 60,
    "hour": 60,
    "hours": 60,
    "d": 1440,
    "day": 1440,
    "days": 1440,
    "business day": 1440,
    "business days": 1440,
    "working day": 1440,
    "working days": 1440,
    "week": 10080,
    "weeks": 10080,
}
_DURATION = re.compile(
    _NUMBER + r"\s?(" + "|".join(sorted(map(re.escape, _DURATION_UNITS), key=len, reverse=True)) + r")\b(?!/)",
    re.IGNORECASE,
)
_INTERVAL = re.compile(r"INTERVAL\s+'(\d+)'\s+(SECOND|MINUTE|HOUR|DAY|WEEK)", re.IGNORECASE)
_QUANTITY = re.compile(
    _NUMBER + r"\s?(%|[a-z]+/(?:s|sec|second|min|minute|h|hour|day)\b|(?:kb|mb|gb|tb)\b|[a-z]{3,}s\b)", re.IGNORECASE
)
_CHANNEL = re.compile(r"(?<![\w/#&(\[.-])#([a-z][a-z0-9_-]{2,}[a-z0-9])\b")
_URL = re.compile(r"https?://[^\s)>\]`'\"|]+")
_TEAM = re.compile(r"\b(?!The )((?:[A-Z][\w&]*[ -]){1,3}(?:on-call|team lead|team))\b")
_CODE = re.compile(r"`([^`\n]{3,80})`")
_LINK_TEXT = re.compile(r"\[([^\[\]]*)\]\($")  # the text of a Markdown link whose target starts here
_WORD = re.compile(r"[a-z][a-z0-9_-]+")
_STOP = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "by",
        "with",
        "at",
        "from",
        "is",
        "are",
        "be",
        "been",
        "was",
        "were",
        "it",
        "its",
        "this",
        "that",
        "than",
        "then",
        "as",
        "if",
        "not",
        "no",
        "any",
        "all",
        "per",
        "each",
        "more",
        "most",
        "less",
        "least",
        "after",
        "before",
        "within",
        "up",
        "into",
        "out",
        "over",
        "under",
        "about",
        "when",
        "what",
        "which",
        "who",
        "how",
        "can",
        "may",
        "must",
        "should",
        "will",
        "do",
        "does",
        "did",
        "has",
        "have",
        "had",
        "you",
        "your",
        "we",
        "our",
        "they",
        "their",
        "them",
        "there",
        "also",
        "only",
        "just",
        "so",
        "such",
        "via",
        "one",
        "two",
        "three",
        "new",
        "old",
        "same",
        "other",
    ]
)
# A query's plumbing says nothing about what its interval is for.
_SQL_PLUMBING = re.compile(r"^(\d.*|current_\w+|now|interval|date_trunc|select|where|from|and|or|\w+_at)$")
# Words that name a section's part, not its subject: "Resolution: expired key" is about the expired key.
_SECTION_WORDS = frozenset(
    [
        "summary",
        "resolution",
        "escalation",
        "check",
        "symptom",
        "related",
        "procedure",
        "cause",
        "step",
        "overview",
        "workaround",
        "reply",
        "template",
        "note",
        "diagnosis",
        "when",
        "use",
    ]
)
# Not worth comparing: counts of things in the text itself, and line/step numbers.
_SKIP_UNITS = frozenset({"steps", "lines", "items", "columns", "rows", "sections", "characters", "chars"})


@dataclass(frozen=True, slots=True)
class Fact:
    kind: str  # duration, quantity, channel, url, team, command
    unit: str  # what makes two facts comparable: the unit, the URL's host, the command's first word
    value: str  # normalised value (minutes for durations)
    text: str  # as written
    line: int  # 0-based line in the section's text
    context: frozenset[str]
    row_key: frozenset[str] = frozenset()  # a table cell's row label, empty outside tables
    label: frozenset[str] = frozenset()  # a linked URL's link text words ("[Support Uploader](https://...)")


def _words(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP and not _SQL_PLUMBING.match(w)}


def words_of(text: str) -> set[str]:
    """The context words of a text (what facts' contexts are made of)."""
    return _words(text)


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 4 and word.endswith("s") else word


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _fmt(value: float) -> str:
    return f"{value:g}"


def extract_facts(text: str, heading: str = "") -> list[Fact]:
    """Every fact of a section's Markdown, code fences included (SQL intervals state timers too); the
    section's own heading words join every fact's context ("Stuck in triaged": the facts are about triaged)."""
    titled = _words(heading.partition(":")[2] or heading) - _SECTION_WORDS
    facts: list[Fact] = []
    header: list[str] = []
    in_fence = False
    for n, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        cells = _cells(stripped)
        if cells is not None and not in_fence:
            if all(set(c) <= set("-: ") for c in cells):
                continue
            if not header:
                header = cells
                continue
            for col, cell in enumerate(cells):
                extra = _words(header[col]) if col < len(header) else set()
                row = frozenset(_words(cells[0])) if col > 0 else frozenset()
                facts.extend(_facts_in(cell, n, extra | set(row) | titled, row, code=False))
            continue
        header = [] if cells is None else header
        facts.extend(_facts_in(line, n, titled, frozenset(), code=in_fence))
    return facts


def _cells(line: str) -> list[str] | None:
    if not (line.startswith("|") and line.endswith("|") and line.count("|") >= 3):
        return None
    return [c.strip() for c in line[1:-1].split("|")]


def _facts_in(line: str, n: int, extra: set[str], row: frozenset[str], *, code: bool) -> list[Fact]:
    found: list[Fact] = []
    taken: list[tuple[int, int]] = []

    def add(kind: str, unit: str, value: str, m: re.Match[str], group: int = 0) -> None:
        start, end = m.span(group)
        if any(start < e and s < end for s, e in taken):
            return
        taken.append((start, end))
        window = line[max(0, start - 60) : start] + " " + line[end : end + 60]
        context = frozenset((_words(window) | extra) - {unit})
        linked = _LINK_TEXT.search(line[:start]) if kind == "url" else None
        label = frozenset(_words(linked.group(1))) if linked else frozenset()
        found.append(Fact(kind, unit, value, m.group(group), n, context, row, label))

    for m in _INTERVAL.finditer(line):
        minutes = _number(m.group(1)) * _DURATION_UNITS[m.group(2).lower() + "s"]
        add("duration", "time", _fmt(minutes), m)
    if code:  # in code blocks only the SQL intervals: the rest is sample output
        return found
    for m in _URL.finditer(line):
        url = m.group(0).rstrip(".,;:*")
        host = url.split("/")[2].lower()
        add("url", host, url.rstrip("/").lower(), m)
    for m in _DURATION.finditer(line):
        if m.group(2) == "s" and 100 <= _number(m.group(1)) < 600 and m.end(1) == m.start(2):
            continue  # "401s", "5xx": HTTP statuses in the plural
        minutes = _number(m.group(1)) * _DURATION_UNITS[m.group(2).lower()]
        add("duration", "time", _fmt(minutes), m)
    for m in _QUANTITY.finditer(line):
        unit = m.group(2).lower()
        if unit in _SKIP_UNITS or unit in _DURATION_UNITS:
            continue
        add("quantity", _stem(unit), _fmt(_number(m.group(1))), m)
    for m in _CHANNEL.finditer(line):
        add("channel", "channel", "#" + m.group(1).lower(), m)
    for m in _TEAM.finditer(line):
        add("team", "team", m.group(1).lower(), m, 1)
    for m in _CODE.finditer(line):
        body = m.group(1).strip()
        if " " in body and re.match(r"^[a-z][\w.-]*\s", body) and not body.startswith(("http", "#")):
            add("command", body.split()[0], re.sub(r"\s+", "", body), m)
    return found
