"""Near-duplicate and contradicting sections across SOPs.

Only sections that are embedding neighbours are compared. A pair is a near-duplicate when the two are very
similar in meaning and share wording; it contradicts when both state the same kind of fact about the same
thing (same unit, shared context words, in a table the same row) with values that the other section never
states.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sopilot.author.fact_stats import NAMED_KINDS, FactStats
from sopilot.author.facts import Fact, extract_facts, words_of
from sopilot.author.similar import IndexedSection, neighbour_pairs

_TOKEN = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class ConflictParams:
    neighbours: int = 10  # nearest sections of other SOPs compared with each section
    min_similarity: float = 0.65  # cosine below which two sections are not compared
    duplicate_similarity: float = 0.85  # cosine of a near-duplicate ...
    duplicate_overlap: float = 0.1  # ... and the share of the smaller section's word trigrams in the other
    max_ratio: float = 3.0  # numbers further apart than this are about different things, not a revision
    min_context: float = 0.12  # Jaccard of two facts' context words for them to be about the same thing
    max_frame_values: int = 3  # a named fact's shared words that go with more values in the KB are a frame
    min_label_overlap: float = 0.65  # Jaccard of two links' texts for them to name the same page
    judge_named_facts: bool = True  # False: named facts clash as numbers do (the figures' "before")


@dataclass(frozen=True, slots=True)
class FactClash:
    kind: str
    unit: str
    a: Fact
    b: Fact

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "unit": self.unit,
            "a": {"text": self.a.text, "value": self.a.value, "line": self.a.line},
            "b": {"text": self.b.text, "value": self.b.value, "line": self.b.line},
            "shared_context": sorted(self.a.context & self.b.context),
        }


@dataclass(frozen=True, slots=True)
class SectionPair:
    a: IndexedSection
    b: IndexedSection
    similarity: float
    overlap: float
    clashes: tuple[FactClash, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        def side(s: IndexedSection, clash_lines: list[int]) -> dict[str, Any]:
            return {
                "path": s.path,
                "link": s.link,
                "heading_path": list(s.heading_path),
                "start_line": s.start_line,
                "end_line": s.end_line,
                "status": s.status,
                "fact_lines": [s.start_line + n for n in clash_lines],
                "text": s.text,
            }

        return {
            "similarity": round(self.similarity, 4),
            "overlap": round(self.overlap, 4),
            "a": side(self.a, [c.a.line for c in self.clashes]),
            "b": side(self.b, [c.b.line for c in self.clashes]),
            "clashes": [c.to_dict() for c in self.clashes],
        }


@dataclass(slots=True)
class ConflictReport:
    sections: int
    compared: int
    duplicates: list[SectionPair] = field(default_factory=list)
    contradictions: list[SectionPair] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sections": self.sections,
            "pairs_compared": self.compared,
            "duplicates": [p.to_dict() for p in self.duplicates],
            "contradictions": [p.to_dict() for p in self.contradictions],
        }


def find_conflicts(
    sections: list[IndexedSection], vectors: np.ndarray, params: ConflictParams | None = None
) -> ConflictReport:
    params = params or ConflictParams()
    pairs = neighbour_pairs(sections, vectors, params.min_similarity, params.neighbours)
    facts = [extract_facts(s.text, s.heading_path[-1]) for s in sections]
    stats = FactStats.of(facts) if params.judge_named_facts else None
    idf = _idf([s.text for s in sections])
    report = ConflictReport(len(sections), len(pairs))
    for i, j, similarity in pairs:
        a, b = sections[i], sections[j]
        overlap = trigram_overlap(a.text, b.text)
        pointers = _mostly_links(a.text) or _mostly_links(b.text)  # two "Related" lists are alike by nature
        if similarity >= params.duplicate_similarity and overlap >= params.duplicate_overlap and not pointers:
            report.duplicates.append(SectionPair(a, b, similarity, overlap))
        clashes = fact_clashes(facts[i], facts[j], params.min_context, idf, params.max_ratio, stats, params)
        if clashes:
            report.contradictions.append(SectionPair(a, b, similarity, overlap, tuple(clashes)))
    report.contradictions.sort(key=lambda p: (-len(p.clashes), -p.similarity))
    return report


def _mostly_links(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return bool(lines) and sum("](" in line for line in lines) >= 0.5 * len(lines)


def trigram_overlap(a: str, b: str) -> float:
    """Share of the smaller text's word trigrams that the other text has too."""
    ga, gb = _trigrams(a), _trigrams(b)
    if not ga or not gb:
        return 0.0
    return len(ga & gb) / min(len(ga), len(gb))


def _trigrams(text: str) -> set[tuple[str, ...]]:
    words = _TOKEN.findall(text.lower())
    return {tuple(words[k : k + 3]) for k in range(len(words) - 2)}


def _idf(texts: list[str]) -> dict[str, float]:
    """Inverse document frequency of context words over the sections: rare shared words weigh more."""
    df: dict[str, int] = {}
    for text in texts:
        for word in words_of(text):
            df[word] = df.get(word, 0) + 1
    n = max(len(texts), 1)
    return {word: float(np.log((n + 1) / (count + 0.5))) for word, count in df.items()}


def fact_clashes(
    fa: list[Fact],
    fb: list[Fact],
    min_context: float,
    idf: dict[str, float] | None = None,
    max_ratio: float = 3.0,
    stats: FactStats | None = None,
    params: ConflictParams | None = None,
) -> list[FactClash]:
    """Facts of one kind and unit about the same thing with values the other section does not state about it.

    "The same thing": each is the other's closest fact of that kind and unit by context words (IDF-weighted
    Jaccard of at least ``min_context``), and in tables the rows have a label in common. A value the other
    section states in a similar context (the 600 of "600 requests/min" beside a "600 requests") is no clash.
    Named facts (URLs, channels, teams, commands) must also pass ``_same_named_fact`` when ``stats`` of the
    whole KB are given."""
    weights = idf or {}
    params = params or ConflictParams()
    best_b = {id(x): _closest(x, fb, weights) for x in fa}
    best_a = {id(y): _closest(y, fa, weights) for y in fb}
    clashes: list[FactClash] = []
    seen: set[tuple[str, str, str, str]] = set()
    for x in fa:
        found = best_b[id(x)]
        if found is None or found[1] < min_context:
            continue
        y, _ = found
        back = best_a[id(y)]
        if back is None or back[0] is not x or x.value == y.value:
            continue
        if x.kind in ("duration", "quantity") and not _comparable(float(x.value), float(y.value), max_ratio):
            continue
        if x.row_key and y.row_key and not x.row_key & y.row_key:
            continue  # different rows of a table: different things
        if _stated(x, fb, min_context, weights) or _stated(y, fa, min_context, weights):
            continue
        if stats is not None and x.kind in NAMED_KINDS and not _same_named_fact(x, y, stats, params):
            continue
        signature = (x.kind, x.unit, x.value, y.value)
        if signature not in seen:
            seen.add(signature)
            clashes.append(FactClash(x.kind, x.unit, x, y))
    return clashes


def _same_named_fact(x: Fact, y: Fact, stats: FactStats, params: ConflictParams) -> bool:
    """Two named facts are one fact stated with two values only when the KB does not show them as two things:
    URLs not one inside the other, linked with like texts that the KB does not use for many pages (when both
    are links), never stated side by side in one section, and in words that the KB does not use with many
    values of that kind (a frame such as "Slack channel: #spt_pod_X")."""
    if x.kind == "url":
        if _deeper(x.value, y.value) or _deeper(y.value, x.value):
            return False  # a project and a page inside it: the same place at two depths
        if x.label and y.label:
            if _jaccard(x.label, y.label) < params.min_label_overlap:
                return False
            if stats.values_linked_as(x.label & y.label) > params.max_frame_values:
                return False
    if stats.stated_together(x.kind, x.value, y.value):
        return False
    shared = (x.context & y.context) | (x.label & y.label)
    return stats.values_in_frame(x.kind, frozenset(shared)) <= params.max_frame_values


def _deeper(url: str, other: str) -> bool:
    """``other`` is ``url`` or a page under it (path, query or fragment added)."""
    return other.startswith(url) and (len(other) == len(url) or other[len(url)] in "/?#")


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def _comparable(a: float, b: float, max_ratio: float) -> bool:
    low, high = sorted((abs(a), abs(b)))
    return low > 0 and high / low <= max_ratio


def _stated(x: Fact, others: list[Fact], min_context: float, idf: dict[str, float]) -> bool:
    """The other section states x's value too, of the same kind, in a context like x's."""
    return any(y.kind == x.kind and y.value == x.value and _similarity(x, y, idf) >= min_context for y in others)


def _similarity(x: Fact, y: Fact, idf: dict[str, float]) -> float:
    union = sum(idf.get(w, 1.0) for w in x.context | y.context)
    return sum(idf.get(w, 1.0) for w in x.context & y.context) / union if union else 0.0


def _closest(x: Fact, others: list[Fact], idf: dict[str, float]) -> tuple[Fact, float] | None:
    """The fact of ``others`` of the same kind and unit whose context is most like ``x``'s (IDF-weighted Jaccard)."""
    best: tuple[Fact, float] | None = None
    for y in others:
        if (y.kind, y.unit) != (x.kind, x.unit):
            continue
        score = _similarity(x, y, idf)
        if best is None or score > best[1]:
            best = (y, score)
    return best
