"""When an SOP is due for review: ``last_reviewed`` plus ``review_every_days`` (pure, no clock inside)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any


def review_due(last_reviewed: date | None, every_days: int | None) -> date | None:
    """The date the next review is due, or None when the SOP gives no review date or period."""
    if last_reviewed is None or not every_days:
        return None
    return last_reviewed + timedelta(days=every_days)


def is_overdue(last_reviewed: date | None, every_days: int | None, today: date) -> bool:
    due = review_due(last_reviewed, every_days)
    return due is not None and due < today


def overdue_from_metadata(metadata: dict[str, Any], today: date) -> bool:
    """The same test on a chunk's flat metadata (``last_reviewed`` ISO text, ``review_every_days`` int)."""
    raw = str(metadata.get("last_reviewed") or "")
    try:
        last = date.fromisoformat(raw) if raw else None
    except ValueError:
        return False
    return is_overdue(last, int(metadata.get("review_every_days") or 0), today)
