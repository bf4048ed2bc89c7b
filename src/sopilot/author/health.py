"""Section health: how often each SOP section is cited, and what agents did with the drafts that cited it.

Per (path, anchor), over the logged answers: the answers that cited the section (each answer counts once per
section, answer citations only, not the escalation line), the share of those judged, and among the judged the
accept, edit and reject rates (the last verdict on an answer counts). Sections judged fewer than ``min_judged``
times are left out of the ranking: two rejections out of two say little. The worst first: reject rate, then
edit rate, then the number judged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sopilot.index.querylog import QueryRecord


@dataclass(slots=True)
class SectionHealth:
    path: str
    anchor: str
    heading_path: tuple[str, ...]
    cited: int = 0
    accepted: int = 0
    edited: int = 0
    rejected: int = 0

    @property
    def judged(self) -> int:
        return self.accepted + self.edited + self.rejected

    def rate(self, verdict: str) -> float:
        return getattr(self, verdict) / self.judged if self.judged else 0.0

    @property
    def link(self) -> str:
        return f"{self.path}#{self.anchor}" if self.anchor else self.path

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "anchor": self.anchor,
            "heading_path": list(self.heading_path),
            "cited": self.cited,
            "judged": self.judged,
            "accepted": self.accepted,
            "edited": self.edited,
            "rejected": self.rejected,
            "accept_rate": round(self.rate("accepted"), 4),
            "edit_rate": round(self.rate("edited"), 4),
            "reject_rate": round(self.rate("rejected"), 4),
        }


def section_health(
    records: Iterable[QueryRecord], verdicts: Mapping[str, str], *, min_judged: int = 3
) -> list[SectionHealth]:
    """Every section judged at least ``min_judged`` times, the worst first."""
    sections: dict[tuple[str, str], SectionHealth] = {}
    for record in records:
        verdict = verdicts.get(record.id)
        seen: set[tuple[str, str]] = set()
        for citation in record.citations:
            key = (citation.path, citation.anchor)
            if citation.role == "escalation" or key in seen:
                continue
            seen.add(key)
            health = sections.setdefault(key, SectionHealth(citation.path, citation.anchor, citation.heading_path))
            health.cited += 1
            if verdict in ("accepted", "edited", "rejected"):
                setattr(health, verdict, getattr(health, verdict) + 1)
    ranked = [h for h in sections.values() if h.judged >= min_judged]
    return sorted(ranked, key=lambda h: (-h.rate("rejected"), -h.rate("edited"), -h.judged, h.link))
