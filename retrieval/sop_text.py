"""The text of SOP passages as a drafter reads it: plain words, numbered steps, prose sentences."""

from __future__ import annotations

import re

_STEP = re.compile(r"^(\d+)[.)]\s+(.*)$")
_ITEM = re.compile(r"^([-*+]|\d+[.)])\s+")  # a list item's marker
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`\"(])")


def plain(markdown: str) -> str:
    """Markdown emphasis and link targets out; code spans and words kept."""
    text = _LINK.sub(r"\1", markdown)
    return " ".join(text.replace("**", "").replace("__", "").split())


def steps_of(text: str) -> list[str]:
    """The top-level numbered items of a passage, continuation lines folded in."""
    steps: list[str] = []
    in_fence = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        match = _STEP.match(line)
        if match:
            steps.append(match.group(2))
        elif steps and line.startswith((" ", "\t")) and line.strip() and not line.strip().startswith(("-", "*")):
            steps[-1] += " " + line.strip()
        elif steps and not line.strip():
            continue
        elif steps and not line.startswith((" ", "\t")):
            break
    return [plain(s) for s in steps if s.strip()]


def sentences_of(text: str) -> list[str]:
    """Prose sentences of a passage (code, tables, headings and quotes left out).

    Lines are joined into paragraphs first (a list item with its continuation lines is one paragraph), so a
    sentence that the SOP's source wraps over several lines stays whole.
    """
    out: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            joined = plain(" ".join(paragraph))
            out.extend(s for s in SENTENCE_BOUNDARY.split(joined) if len(s.split()) >= 3)
            paragraph.clear()

    in_fence = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            flush()
            in_fence = not in_fence
            continue
        if in_fence or not stripped or stripped.startswith(("|", "#", ">")):
            flush()
            continue
        item = _ITEM.match(stripped)
        if item:
            flush()
            stripped = stripped[item.end() :]
        paragraph.append(stripped)
    flush()
    return out
