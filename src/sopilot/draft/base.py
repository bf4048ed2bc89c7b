"""What every drafter shares: the ``Drafter`` protocol, the tones, and how a claim is cited."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, Protocol

from sopilot.core.types import Citation, Draft, Escalation, Passage
from sopilot.retrieval.search import SearchResult

Tone = Literal["user", "internal"]


class Drafter(Protocol):
    """Turns a question and its search result into a draft the agent reviews before sending."""

    name: str

    def draft(self, question: str, result: SearchResult) -> Draft: ...

    def stream(self, question: str, result: SearchResult) -> Iterator[str | Draft]:
        """Pieces of the draft's text as they are written, then the finished ``Draft`` last."""
        ...


def cite(text: str, n: int) -> str:
    """The claim with its ``[n]`` at the end, or at the end of its first line when it ends in a code fence."""
    if text.rstrip().endswith(("```", "~~~")):
        first, _, rest = text.partition("\n")
        return f"{first} [{n}]\n{rest}"
    return f"{text} [{n}]"


def citation_for(n: int, passage: Passage, quote: str, role: str = "answer") -> Citation:
    return Citation(
        n=n,
        chunk_id=passage.chunk_id,
        path=passage.path,
        anchor=passage.anchor,
        heading_path=passage.heading_path,
        start_line=passage.start_line,
        end_line=passage.end_line,
        quote=quote,
        role=role,
        section_role=passage.role,
        review_overdue=passage.review_overdue,
    )


def escalation_line(escalation: Escalation) -> str:
    where = f" in {escalation.channel}" if escalation.channel else ""
    when = f" when: {escalation.when}" if escalation.when else ""
    return f"Escalate to {escalation.team}{where}{when}."


def escalation_of(passage: Passage) -> Escalation | None:
    team = str(passage.metadata.get("escalation_team") or "")
    if not team:
        return None
    return Escalation(
        team, str(passage.metadata.get("escalation_channel") or ""), str(passage.metadata.get("escalation_when") or "")
    )
