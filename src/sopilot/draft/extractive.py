"""The extractive drafter (default, offline, deterministic).

The extractive drafter writes only the SOP's own words: the key facts (limits, durations, channels) stated
beside the best section's list and its numbered steps (or its most relevant sentences and table rows when
it has no steps), the SOP's workaround when the question asks for a way around the problem, each with its
``[n]`` citation; a short opening and closing frame them. When the search says the SOPs do not cover the
question, it abstains and points to the escalation process instead. The SOP's escalation path (front
matter) travels with the draft as a structured field and a closing line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sopilot.core.types import AGENT_ONLY_ROLES, Citation, Draft, DraftSentence, Escalation, Passage, Role
from sopilot.draft.base import Tone, citation_for, cite, escalation_line, escalation_of
from sopilot.draft.sop_text import SENTENCE_BOUNDARY, key_facts_of, plain, sentences_of, steps_of, table_rows_of
from sopilot.index.lexical import words_of
from sopilot.retrieval.coverage import share_found, term_share
from sopilot.retrieval.search import SearchResult

_WORKAROUND = re.compile(r"workaround", re.IGNORECASE)
# A question that asks for a way around the problem for now, not only for the fix.
_WANTS_WORKAROUND = re.compile(
    r"\b(right now|for now|for today|meanwhile|in the meantime|work ?arounds?|temporar\w*|quick fix|stopgap|"
    r"until (it|this|that|then|they|we|he|she)\b|any other way|another way)",
    re.IGNORECASE,
)
_CHANNEL = re.compile(r"(?<![\w&/])#[a-z][a-z0-9_-]+")  # a chat channel, not a Markdown heading or an anchor


@dataclass(frozen=True, slots=True)
class _Claim:
    text: str  # the SOP's own words, quoted in the citation
    passage: Passage
    numbered: bool = False
    label: str = ""  # written before the words in the draft ("Workaround: "), not quoted
    role: str = "answer"  # or "escalation": the SOP's escalation path, not an answer to the question


class ExtractiveDrafter:
    name = "extractive"

    def __init__(
        self,
        *,
        tone: Tone = "user",
        escalation_passage: Passage | None = None,
        sop_passages: Callable[[str], list[Passage]] | None = None,
        provenance: dict[str, Any] | None = None,
        max_steps: int = 8,
        max_sentences: int = 3,
        max_facts: int = 2,
        template_min_overlap: float = 0.5,
        code_lines: int | None = None,
    ) -> None:
        self._tone = tone
        self._escalation = escalation_passage
        self._sop_passages = sop_passages
        self._provenance = provenance or {}
        self._max_steps = max_steps
        self._max_sentences = max_sentences
        self._max_facts = max_facts
        self._template_min_overlap = template_min_overlap
        # An internal note keeps a step's short command or query; a reply to a user does not.
        self._code_lines = (8 if tone == "internal" else 0) if code_lines is None else code_lines

    def draft(self, question: str, result: SearchResult) -> Draft:
        if not result.covered or not result.passages:
            return self._abstain(result)
        primary = _procedure(result.passages, self._tone)
        if primary is None:  # every passage is for the agent (whom to page, what to note): nothing to quote
            return self._hand_over(result)
        template = self._template(primary) if self._tone == "user" else None
        if template is not None:
            claims = template
        else:
            claims = self._claims(question, primary)
            workaround = self._workaround(primary, result.passages) if _WANTS_WORKAROUND.search(question) else None
            if workaround is not None:
                claims.append(workaround)
        front_matter = escalation = escalation_of(primary)
        if front_matter is None and self._tone == "internal":
            escalation, claim = self._escalation_in_text(primary)
            if claim is not None:
                claims.append(claim)
        numbers: dict[str, int] = {}
        quoted: dict[int, tuple[Passage, list[str]]] = {}
        sentences: list[DraftSentence] = []
        for claim in claims:
            n = numbers.setdefault(claim.passage.chunk_id, len(numbers) + 1)
            quoted.setdefault(n, (claim.passage, []))[1].append(claim.text)
            sentences.append(DraftSentence(cite(claim.label + claim.text, n), (n,)))
        answering = {numbers[c.passage.chunk_id] for c in claims if c.role == "answer"}
        citations = [
            citation_for(n, passage, " … ".join(texts), "answer" if n in answering else "escalation")
            for n, (passage, texts) in quoted.items()
        ]
        lines = [] if template is not None else [self._opening(primary)]
        if template is not None:  # the SOP's own reply reads as one message
            lines.append(" ".join(sentence.text for sentence in sentences))
        else:
            step = 0
            for claim, sentence in zip(claims, sentences, strict=True):
                step += claim.numbered
                lines.append(f"{step}. {sentence.text}" if claim.numbered else sentence.text)
        if front_matter is not None and self._tone == "internal":  # one from the text is a cited claim above
            lines.append(escalation_line(front_matter))
        closing = "" if template is not None else self._closing()
        if closing:
            lines.append(closing)
        return Draft(
            text="\n".join(lines),
            covered=True,
            sentences=tuple(sentences),
            citations=tuple(citations),
            escalation=escalation,
            provenance=self._provenance_for(result.passages),
        )

    def stream(self, question: str, result: SearchResult) -> Iterator[str | Draft]:
        """The whole text at once (nothing to wait for), then the draft."""
        draft = self.draft(question, result)
        yield draft.text
        yield draft

    def _claims(self, question: str, primary: Passage) -> list[_Claim]:
        steps = steps_of(primary.text, code_lines=self._code_lines)
        if steps:
            facts = [_Claim(fact, primary) for fact in key_facts_of(primary.text)[: self._max_facts]]
            return facts + [_Claim(step, primary, numbered=True) for step in steps[: self._max_steps]]
        candidates = sentences_of(primary.text) + table_rows_of(primary.text)
        if not candidates:
            return [_Claim(plain(primary.text)[:400], primary)]
        ranked = sorted(range(len(candidates)), key=lambda i: -term_share(question, (), candidates[i]))
        keep = sorted(ranked[: self._max_sentences])
        return [_Claim(candidates[i], primary) for i in keep]

    def _template(self, primary: Passage) -> list[_Claim] | None:
        """The SOP's own reply to the user, sentence by sentence, when it has one that answers this case.

        An SOP's template is written for one of its cases (one resolution among several, often with example
        values), so it is used only when it restates the matched section: at least ``template_min_overlap``
        of its words are in that section. Otherwise the draft is the matched section's own steps.
        """
        if self._sop_passages is None:
            return None
        for p in self._sop_passages(primary.path):
            if p.role == Role.TEMPLATE:
                body = _fenced_or_quoted(p.text)
                sentences = [s for s in SENTENCE_BOUNDARY.split(plain(body)) if s.strip()]
                if sentences and restates(body, primary) >= self._template_min_overlap:
                    return [_Claim(s, p) for s in sentences]
                return None
        return None

    def _escalation_in_text(self, primary: Passage) -> tuple[Escalation | None, _Claim | None]:
        """An SOP without an escalation in its front matter may prescribe one in a section ("Escalation",
        "When to escalate"): its first step or sentence, cited, and its first chat channel."""
        if self._sop_passages is None:
            return None, None
        for p in self._sop_passages(primary.path):
            if p.role == Role.ESCALATE:
                items = steps_of(p.text) or sentences_of(p.text) or table_rows_of(p.text)
                first = next((item for item in items if not item.rstrip().endswith(":")), "")  # not a lead-in
                if first:
                    channel = _CHANNEL.search(p.text)
                    escalation = Escalation("", channel.group(0) if channel else "", first)  # no team named
                    return escalation, _Claim(first, p, label=f"Escalation ({p.heading_path[-1]}): ", role="escalation")
        return None, None

    def _workaround(self, primary: Passage, passages: Sequence[Passage]) -> _Claim | None:
        for p in passages[1:]:
            if self._tone == "user" and p.role in AGENT_ONLY_ROLES:
                continue
            if p.path == primary.path and p.heading_path and _WORKAROUND.search(p.heading_path[-1]):
                first = (steps_of(p.text) or sentences_of(p.text) or [""])[0]
                if first:
                    return _Claim(first, p, label="Workaround: ")
        return None

    def _abstain(self, result: SearchResult) -> Draft:
        reason = result.reason or "the SOPs do not cover this question"
        if self._tone == "user":
            text = (
                "Thanks for your patience. I couldn't find a documented answer to this in our procedures, "
                "so I'm checking with the right team and will get back to you here."
            )
        else:
            text = f"Not covered by the SOPs ({reason}). Escalate as the escalation process says."
        citations: tuple[Citation, ...] = ()
        sentences: tuple[DraftSentence, ...] = ()
        if self._escalation is not None:
            first = " ".join(sentences_of(self._escalation.text)[:3]) or plain(self._escalation.text)[:300]
            citations = (citation_for(1, self._escalation, first, "escalation"),)
            if self._tone == "internal":  # the agent reads the process; the user is never quoted it
                sentences = (DraftSentence(f"{first} [1]", (1,)),)
                text += f"\n\nEscalation process: {first} [1]"
        return Draft(
            text=text,
            covered=False,
            sentences=sentences,
            citations=citations,
            abstention_reason=reason,
            provenance=self._provenance_for(result.passages),
        )

    def _hand_over(self, result: SearchResult) -> Draft:
        """A user-tone reply when the SOP found only says whom to page or what to note: a holding line, and the
        SOP's escalation path for the agent in the structured field, never the agent's text."""
        top = result.passages[0]
        return Draft(
            text=(
                "Thanks for reporting this. I'm passing it to the team that handles it and will update you here "
                "as soon as I hear back."
            ),
            covered=True,
            sentences=(),
            citations=(citation_for(1, top, plain(top.text)[:300], "escalation"),),
            escalation=escalation_of(top),
            provenance={**self._provenance_for(result.passages), "agent_only": top.role},
        )

    def _opening(self, primary: Passage) -> str:
        if self._tone == "user":
            return "Hi, thanks for reaching out. Here is what to do:"
        section = " › ".join(primary.heading_path[1:]) or primary.title
        return f"From {primary.title} › {section}:"

    def _closing(self) -> str:
        return "If this doesn't solve it, reply here and we'll take it further." if self._tone == "user" else ""

    def _provenance_for(self, passages: Sequence[Passage]) -> dict[str, Any]:
        return {
            **self._provenance,
            "drafter": self.name,
            "model": None,
            "tone": self._tone,
            "chunk_ids": [p.chunk_id for p in passages],
        }


def _procedure(passages: Sequence[Passage], tone: Tone = "user") -> Passage | None:
    """The passage to answer from: the best one (for a user, the best that is not for the agent only: no
    escalation or ticket-note section is quoted to a user); when it only diagnoses, a close runner-up of the
    same SOP that resolves. Measured on both test sets: a best passage without steps is still the right
    section more often than a runner-up that has steps, so that is not a reason to move."""
    usable = [p for p in passages if tone == "internal" or p.role not in AGENT_ONLY_ROLES]
    if not usable:
        return None
    top = usable[0]
    if top.role == Role.DIAGNOSE:
        for p in usable[1:3]:
            if p.path == top.path and p.role == Role.RESOLVE:
                return p
    return top


def restates(template: str, section: Passage) -> float:
    """Share of a reply template's words (or their first five letters) found in a section and its headings."""
    return share_found(words_of(plain(template)), section.heading_path, section.text)


def _fenced_or_quoted(text: str) -> str:
    """The inside of a code fence or a quote block (how SOPs hold reply templates), else the text."""
    fenced = re.search(r"^(`{3,}|~{3,})[^\n]*\n(.*?)^\1", text, re.MULTILINE | re.DOTALL)
    if fenced:
        return fenced.group(2)
    quoted = [line.lstrip()[1:].strip() for line in text.splitlines() if line.lstrip().startswith(">")]
    return "\n".join(quoted) if quoted else text
