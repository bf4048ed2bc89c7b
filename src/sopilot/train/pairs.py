"""Training questions for the question embedder, mined from the KB itself: (question, the section that answers
it).

Questions come from the same miner as the answerability model's (``answerability.opening_sentence``) and from
what users quote back: a section's heading path, the lines of its Symptoms and "When to use" sections, error
text (in backticks), the SOP's title and summary. A question quoted from a section that describes the problem
(symptoms, checks, when to use) points to the SOP's resolving section that shares most words with it: users
describe symptoms, the answer sits in the steps.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sopilot.core.types import Chunk, Sop
from sopilot.train.answerability import opening_sentence

_DESCRIPTIVE = re.compile(r"^(symptoms?|checks?|when to use( this)?|signs?|what the user sees)\b", re.IGNORECASE)
_SYMPTOM_HEADING = re.compile(r"^(symptoms?|when to use( this)?|signs?|what the user sees)\b", re.IGNORECASE)
_CODE = re.compile(r"`([^`]{6,120})`")
_MARKUP = re.compile(r"[*_`>#|]+")
_GENERIC_HEADINGS = {"summary", "overview", "escalation", "related", "see also", "reply template", "references"}


@dataclass(frozen=True, slots=True)
class Pair:
    """One training example: a question and the section (``path#anchor``) that answers it."""

    question: str
    section: str
    kind: str  # where the question came from: heading, symptom, error, title, summary, opening


def _clean(line: str) -> str:
    return " ".join(_MARKUP.sub(" ", line).split()).strip(" -:.")


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def _best_resolving(sop: Sop, question: str) -> Chunk | None:
    resolving = [c for c in sop.chunks if c.metadata.get("role") == "resolve"] or list(sop.chunks)
    if not resolving:
        return None
    asked = _words(question)
    return max(resolving, key=lambda c: (len(asked & _words(c.embed_text)), -c.start_line))


def _section(chunk: Chunk) -> str:
    return f"{chunk.path}#{chunk.anchor}"


def sop_pairs(sop: Sop) -> Iterator[Pair]:
    """Every pair one SOP gives, before de-duplication and sampling."""
    title = sop.meta.title
    for question, kind in ((title, "title"), (opening_sentence(sop.meta.description), "summary")):
        target = _best_resolving(sop, question) if question else None
        if target is not None:
            yield Pair(question, _section(target), kind)
    for chunk in sop.chunks:
        heading = chunk.heading_path[-1] if chunk.heading_path else ""
        descriptive = bool(_DESCRIPTIVE.match(heading))
        if len(chunk.heading_path) > 1 and heading.lower() not in _GENERIC_HEADINGS and len(chunk.text.split()) > 8:
            yield Pair(f"{title}: {heading}", _section(chunk), "heading")
        if _SYMPTOM_HEADING.match(heading):
            for line in chunk.text.splitlines():
                symptom = _clean(line)
                target = _best_resolving(sop, symptom) if len(symptom.split()) >= 4 else None
                if target is not None and target.id != chunk.id:
                    yield Pair(symptom, _section(target), "symptom")
        for code in _CODE.findall(chunk.text):
            if " " in code.strip() and not code.startswith(("http", "/", "$")):
                target = _best_resolving(sop, code) if descriptive else chunk
                if target is not None:
                    yield Pair(code, _section(target), "error")
        if chunk.metadata.get("role") in ("resolve", "diagnose", "reference"):
            opening = opening_sentence(chunk.text)
            if opening:
                yield Pair(opening, _section(chunk), "opening")


def mine_pairs(sops: Sequence[Sop], max_pairs: int, seed: int = 0) -> list[Pair]:
    """De-duplicated pairs of every SOP, at most ``max_pairs`` (a random sample when there are more)."""
    seen: set[str] = set()
    pairs = []
    for sop in sops:
        for pair in sop_pairs(sop):
            key = pair.question.lower()
            if key not in seen and len(pair.question.split()) >= 2:
                seen.add(key)
                pairs.append(pair)
    rng = random.Random(seed)
    rng.shuffle(pairs)
    return pairs[:max_pairs]
