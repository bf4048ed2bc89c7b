"""Overdue reviews: SOPs whose ``last_reviewed`` plus ``review_every_days`` is before today."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sopilot.author.kb_files import SopFile
from sopilot.core.review import review_due


@dataclass(frozen=True, slots=True)
class StaleSop:
    path: str
    sop_id: str
    title: str
    owner: str
    status: str
    last_reviewed: date
    review_every_days: int
    due: date
    days_overdue: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "id": self.sop_id,
            "title": self.title,
            "owner": self.owner,
            "status": self.status,
            "last_reviewed": self.last_reviewed.isoformat(),
            "review_every_days": self.review_every_days,
            "due": self.due.isoformat(),
            "days_overdue": self.days_overdue,
        }


def stale_sops(files: list[SopFile], today: date) -> list[StaleSop]:
    """Overdue SOPs, most overdue first. SOPs without a review date or period are never overdue."""
    found = []
    for f in files:
        fm = f.front
        if fm is None or fm.last_reviewed is None or not fm.review_every_days:
            continue
        due = review_due(fm.last_reviewed, fm.review_every_days)
        if due is None or due >= today:
            continue
        found.append(
            StaleSop(
                f.path,
                fm.id or f.path.removesuffix(".md"),
                f.title,
                fm.owner,
                fm.status,
                fm.last_reviewed,
                fm.review_every_days,
                due,
                (today - due).days,
            )
        )
    return sorted(found, key=lambda s: (-s.days_overdue, s.path))


def without_dates(files: list[SopFile]) -> list[str]:
    """SOPs that can never be overdue because they give no review date or period."""
    return [f.path for f in files if f.front is not None and not (f.front.last_reviewed and f.front.review_every_days)]
