"""The text of SOP passages as a drafter reads it: plain words, numbered steps, prose sentences."""

from __future__ import annotations

import re
import textwrap

_STEP = re.compile(r"^(\d+)[.)]\s+(.*)$")
_SUB_ITEM = re.compile(r"^\s+([-*+]|\d+[.)])\s+(.*)$")  # an indented list item: a step's sub-item
_ITEM = re.compile(r"^([-*+]|\d+[.)])\s+")  # a list item's marker
_TABLE_RULE = re.compile(r"^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?$")  # |---|:---:|
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`\"(])")


def plain(markdown: str) -> str:
    """Markdown emphasis and link targets out; code spans and words kept."""
    text = _LINK.sub(r"\1", markdown)
    return " ".join(text.replace("**", "").replace("__", "").split())


def steps_of(text: str, code_lines: int = 0) -> list[str]:
    """The top-level numbered items of a passage, continuation lines folded in.

    A step's own sub-items (indented bullets or numbers, often where its actions are) stay with it, each on a
    line of its own: ``"Ask the user:\n   - sign out\n   - sign in again"``. With ``code_lines`` > 0, a code
    block of at most that many lines that belongs to a step (indented under it, or right after a step that
    ends with a colon) stays with it too, fenced; other code is left out.
    """
    steps: list[list[tuple[str, str]]] = []  # per step: (marker, text) pieces, the step itself first
    fence = ""  # the opening fence while inside a code block
    code: list[str] | None = None  # lines of a code block that belongs to the current step
    for line in text.splitlines():
        stripped = line.strip()
        if fence:
            if stripped.startswith(fence[:3]) and not stripped.strip(fence[0]):
                if code is not None and 0 < len(code) <= code_lines:
                    steps[-1].append((fence, textwrap.dedent("\n".join(code))))
                fence, code = "", None
            elif code is not None:
                code.append(line)
            continue
        if stripped.startswith(("```", "~~~")):
            fence = stripped
            belongs = bool(steps) and (line[:1] in (" ", "\t") or steps[-1][-1][1].rstrip().endswith(":"))
            code = [] if belongs and code_lines > 0 else None
            continue
        match = _STEP.match(line)
        if match:
            steps.append([("", match.group(2))])
        elif not steps or not stripped:
            continue
        elif not line.startswith((" ", "\t")):
            break
        elif sub := _SUB_ITEM.match(line):
            marker = "-" if sub.group(1) in "-*+" else sub.group(1)
            steps[-1].append((marker, sub.group(2)))
        else:
            marker, piece = steps[-1][-1]
            steps[-1][-1] = (marker, f"{piece} {stripped}")
    return [text for text in map(_render_step, steps) if text]


def _render_step(pieces: list[tuple[str, str]]) -> str:
    lines = [plain(pieces[0][1])]
    for marker, piece in pieces[1:]:
        if marker.startswith(("```", "~~~")):
            closing = marker[0] * 3
            lines.extend(f"   {line}".rstrip() for line in [marker, *piece.splitlines(), closing])
        elif piece.strip():
            lines.append(f"   {marker} {plain(piece)}")
    return "\n".join(lines) if any(line.strip() for line in lines) else ""


def sentences_of(text: str, lists: bool = True) -> list[str]:
    """Prose sentences of a passage (code, tables, headings and quotes left out).

    Lines are joined into paragraphs first (a list item with its continuation lines is one paragraph), so a
    sentence that the SOP's source wraps over several lines stays whole. ``lists=False`` leaves list items
    (and everything indented under them) out.
    """
    out: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            joined = plain(" ".join(paragraph))
            out.extend(s for s in SENTENCE_BOUNDARY.split(joined) if len(s.split()) >= 3)
            paragraph.clear()

    in_fence = in_list = False
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
            in_list = True
            stripped = stripped[item.end() :]
        elif not line.startswith((" ", "\t")):
            in_list = False
        if in_list and not lists:
            continue
        paragraph.append(stripped)
    flush()
    return out


def table_rows_of(text: str) -> list[str]:
    """The body rows of the passage's Markdown tables, each read with its header: ``"Error: X; Fix: Y"``."""
    rows: list[str] = []
    header: list[str] | None = None
    previous = ""
    in_fence = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence, header, previous = not in_fence, None, ""
            continue
        if in_fence:
            continue
        if not stripped.startswith("|"):
            header, previous = None, ""
            continue
        if header is None:
            if _TABLE_RULE.match(stripped) and previous:
                header = _cells(previous)
            previous = stripped
            continue
        pairs = [(name, cell) for name, cell in zip(header, _cells(stripped), strict=False) if cell]
        row = "; ".join(f"{name}: {cell}" if name else cell for name, cell in pairs)
        if row:
            rows.append(row)
    return rows


def _cells(line: str) -> list[str]:
    """The cells of a table line, Markdown made plain; ``\\|`` is a pipe inside a cell."""
    inner = line.strip().removeprefix("|").removesuffix("|")
    return [plain(cell.replace("\x00", "|")) for cell in inner.replace("\\|", "\x00").split("|")]


_FACT = re.compile(
    r"\b\d+(?:[.,]\d+)?\s*(?:%|ms|s|seconds?|min(?:ute)?s?|h|hours?|(?:business |working )?days?|weeks?|months?|"
    r"years?|requests?|items?|[KMG]B|characters?|rows?|attempts?|times)\b|#[a-z][\w-]+|"
    r"\b(?:at most|at least|up to|no more than|within|no later than)\b",
    re.IGNORECASE,
)


def key_facts_of(text: str) -> list[str]:
    """Prose sentences outside the passage's lists that state a limit, duration, count or channel."""
    return [s for s in sentences_of(text, lists=False) if _FACT.search(s) and not s.rstrip().endswith(":")]
