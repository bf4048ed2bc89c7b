"""After-generation checks of a drafted reply: every citation points to a given passage, and every claim is
supported by what it cites.

A draft is cut into sentences; each sentence's ``[n]`` markers are read. A sentence is *supported* when its
content words are found in the passages it cites (lexical overlap, at least ``min_lexical`` of them) and it
means what one of their sentences means (embedding cosine at least ``min_similarity``). Short uncited lines
("Hi Sam,", "Thanks!") are framing, not claims. Citations to numbers that were never given are *invented*.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sopilot.core.types import Passage
from sopilot.draft.sop_text import sentences_of, steps_of, table_rows_of
from sopilot.index.embedder import Embedder

CITATION = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
_ONLY_CITATIONS = re.compile(r"^(?:\s*\[\d{1,3}(?:\s*,\s*\d{1,3})*\])+[\s.]*$")
_BOUNDARY = re.compile(r"(?<=[.!?])\s+|(?<=\])\s+(?=[A-Z])")
_MARKER = re.compile(r"^\s*(?:[-*+]|\d{1,2}[.)])\s+")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_FENCE = re.compile(r"^\s*(```|~~~)")
# Words that carry no claim. Negations are not among them: "do not restart" is another claim than "restart".
_STOP_TEXT = """a an the and or but if then than so of to in on at by for with from into about as is are was were be
    been being am it its this that these those there here do does did has have had will would can could should
    may might i me my we us our you your he him his she her they them their what which who whom when where why
    how all any each some such also just very too up out over via per yes please thanks thank hi hello
    hey dear team regards best sorry let know here s"""
_STOP = frozenset(_STOP_TEXT.split())
FRAMING_MAX_WORDS = 3
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_NEGATION = re.compile(r"\b(?:not|never|no|cannot|can't|don't|doesn't|won't|isn't|aren't|shouldn't|mustn't)\b", re.I)


def citations_in(text: str) -> tuple[int, ...]:
    """The passage numbers a sentence cites, in order, without repeats."""
    found: dict[int, None] = {}
    for group in CITATION.findall(text):
        for number in group.split(","):
            found.setdefault(int(number), None)
    return tuple(found)


def strip_citations(text: str) -> str:
    return " ".join(CITATION.sub(" ", text).split())


def content_words(text: str) -> list[str]:
    """Lowercased words of two letters or more that are not stop words (numbers always count)."""
    return [w for w in _WORD.findall(strip_citations(text).lower()) if (len(w) > 1 or w.isdigit()) and w not in _STOP]


def split_sentences(text: str) -> list[str]:
    """Sentences of a reply, list markers removed; citation markers stay with the sentence before them."""
    out: list[str] = []
    in_fence = False
    for raw in text.splitlines():
        if _FENCE.match(raw):
            in_fence = not in_fence
            continue
        line = _MARKER.sub("", raw).strip()
        if in_fence or not line:
            continue
        for piece in _BOUNDARY.split(line):
            piece = piece.strip()
            if not piece:
                continue
            if _ONLY_CITATIONS.match(piece):
                if out:  # a marker after its sentence belongs to it; one with no sentence before states nothing
                    out[-1] = f"{out[-1]} {piece.strip(' .')}"
            else:
                out.append(piece)
    return out


def lexical_support(sentence: str, sources: Sequence[str]) -> float:
    """Share of the sentence's content words found in the sources (a shared five-letter stem counts)."""
    wanted = content_words(sentence)
    if not wanted:
        return 1.0
    words = {w for source in sources for w in _WORD.findall(source.lower())}
    stems = {w[:5] for w in words if len(w) >= 5}
    return sum(1 for w in wanted if w in words or (len(w) >= 5 and w[:5] in stems)) / len(wanted)


def missing_facts(sentence: str, sources: Sequence[str]) -> tuple[str, ...]:
    """Numbers and negations of a sentence that the sources do not have: "500" where they say 600, "do not"
    where they say "do". Word overlap and embeddings miss exactly these, and they are what agents must get right."""
    text = " ".join(sources)
    have_numbers = set(_NUMBER.findall(text))
    missing = [n for n in dict.fromkeys(_NUMBER.findall(strip_citations(sentence))) if n not in have_numbers]
    negations = _NEGATION.findall(sentence)
    if negations and not _NEGATION.search(text):
        missing.append(negations[0].lower())
    return tuple(missing)


@dataclass(frozen=True, slots=True)
class SentenceCheck:
    """One sentence of a draft and how well what it cites supports it."""

    text: str
    citations: tuple[int, ...]
    invented: tuple[int, ...]  # cited numbers that name no given passage
    claim: bool  # False for framing lines (greetings, sign-offs)
    lexical: float
    similarity: float
    missing: tuple[str, ...]  # numbers and negations the cited passages do not have
    supported: bool
    best_source: str  # the cited passage's sentence closest to this one: the quoted span


@dataclass(frozen=True, slots=True)
class GroundingReport:
    sentences: tuple[SentenceCheck, ...]

    @property
    def claims(self) -> tuple[SentenceCheck, ...]:
        return tuple(s for s in self.sentences if s.claim)

    @property
    def invented(self) -> tuple[int, ...]:
        return tuple(sorted({n for s in self.sentences for n in s.invented}))

    @property
    def supported_share(self) -> float:
        claims = self.claims
        return sum(s.supported for s in claims) / len(claims) if claims else 0.0

    def failure(self, min_supported: float) -> str:
        """Why the draft must not be shown as it is, or "" when it passes."""
        if self.invented:
            return f"cites passages that were not given: {', '.join(f'[{n}]' for n in self.invented)}"
        claims = self.claims
        if not claims:
            return "no sentence states anything from the passages"
        if not any(s.citations for s in claims):
            return "no sentence cites a passage"
        if self.supported_share < min_supported:
            bad = sum(not s.supported for s in claims)
            return (
                f"{bad} of {len(claims)} sentences are not supported by the passages they cite "
                f"(at least {min_supported:.0%} must be)"
            )
        return ""


class SupportChecker:
    """Checks a draft against the numbered passages it was written from (1-based numbers)."""

    def __init__(self, embedder: Embedder | None, *, min_lexical: float = 0.6, min_similarity: float = 0.5) -> None:
        self._embedder = embedder
        self.min_lexical = min_lexical
        self.min_similarity = min_similarity

    def check(self, text: str, passages: Sequence[Passage]) -> GroundingReport:
        sentences = split_sentences(text)
        given = range(1, len(passages) + 1)
        # Each passage's own sentences and steps: the spans a claim can be matched and quoted against.
        sources = [
            list(dict.fromkeys(steps_of(p.text) + sentences_of(p.text) + table_rows_of(p.text))) or [p.text]
            for p in passages
        ]
        similarities = self._similarities(sentences, sources)
        checks = []
        for i, sentence in enumerate(sentences):
            cited = citations_in(sentence)
            valid = [n for n in cited if n in given]
            invented = tuple(n for n in cited if n not in given)
            words = content_words(sentence)
            claim = bool(cited) or len(words) > FRAMING_MAX_WORDS
            cited_texts = [passages[n - 1].text for n in valid]
            lexical = lexical_support(sentence, cited_texts) if valid else 0.0
            missing = missing_facts(sentence, cited_texts) if valid else ()
            best, similarity = "", 0.0
            for n in valid:
                for j, source in enumerate(sources[n - 1]):
                    score = similarities.get((i, n - 1, j), 0.0)
                    if score > similarity or not best:
                        best, similarity = source, score
            supported = bool(valid) and not invented and not missing and lexical >= self.min_lexical
            supported = supported and (self._embedder is None or similarity >= self.min_similarity)
            checks.append(
                SentenceCheck(
                    text=sentence,
                    citations=cited,
                    invented=invented,
                    claim=claim,
                    lexical=round(lexical, 4),
                    similarity=round(similarity, 4),
                    missing=missing,
                    supported=supported if claim else True,
                    best_source=best,
                )
            )
        return GroundingReport(tuple(checks))

    def _similarities(self, sentences: list[str], sources: list[list[str]]) -> dict[tuple[int, int, int], float]:
        """Cosine of every draft sentence with every source sentence of the passages it cites."""
        if self._embedder is None or not sentences:
            return {}
        cited = sorted({n - 1 for s in sentences for n in citations_in(s) if 1 <= n <= len(sources)})
        flat = [(p, j, text) for p in cited for j, text in enumerate(sources[p])]
        if not flat:
            return {}
        vectors = self._embedder.embed_documents([strip_citations(s) for s in sentences] + [t for _, _, t in flat])
        mine, theirs = vectors[: len(sentences)], vectors[len(sentences) :]
        cosine = np.asarray(mine @ theirs.T)
        return {
            (i, p, j): float(cosine[i, k])
            for i in range(len(sentences))
            for k, (p, j, _) in enumerate(flat)
            if p + 1 in citations_in(sentences[i])
        }
