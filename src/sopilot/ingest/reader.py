"""Read one SOP file as text, refusing what is not a readable UTF-8 Markdown file."""

from __future__ import annotations

from pathlib import Path

from sopilot.core.types import Problem

_BINARY_SNIFF_BYTES = 8192


def read_text(path: Path, rel: str, max_bytes: int) -> tuple[str | None, Problem | None]:
    """Return the file's text, or a problem that says why it cannot be used."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return None, Problem(
                rel,
                "too-large",
                f"file is {size:,} bytes, over the limit of {max_bytes:,}",
                "split the SOP into smaller files, or raise SOPILOT_MAX_FILE_BYTES",
            )
        raw = path.read_bytes()
    except OSError as exc:
        return None, Problem(rel, "unreadable", f"cannot read file: {exc.strerror}", "check its permissions")
    if b"\x00" in raw[:_BINARY_SNIFF_BYTES]:
        return None, Problem(
            rel,
            "binary",
            "file holds binary data, not Markdown text",
            "remove it or give it another extension",
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, Problem(
            rel,
            "not-utf8",
            f"byte 0x{raw[exc.start]:02x} at offset {exc.start} is not valid UTF-8",
            "re-save the file as UTF-8",
            line=line,
        )
    if not text.strip():
        return None, Problem(rel, "empty", "file is empty", "write the SOP or delete the file")
    return text, None
