"""Where each part of the index lives in the index folder, and opening them from the settings."""

from __future__ import annotations

from pathlib import Path

from sopilot.core.settings import Settings
from sopilot.index.lexical import LexicalIndex


def lexical_path(settings: Settings) -> Path:
    """The FTS5 lexical index of the settings' collection."""
    return settings.index_dir / f"lexical-{settings.collection}.sqlite3"


def open_lexical(settings: Settings) -> LexicalIndex:
    """The lexical index with the settings' column weights and memory budget (created when missing)."""
    weights = (settings.lexical_title_weight, settings.lexical_heading_weight, 1.0)
    return LexicalIndex(lexical_path(settings), weights, settings.lexical_memory_postings)
