"""Search: a question in, ranked SOP passages and a coverage decision out.

validate -> dense top-N (Chroma) and lexical top-N (FTS5), same filters -> reciprocal rank fusion ->
optional reranker -> merge chunks of one section, at most N passages per SOP -> coverage decision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

from retrieval.coverage import UNKNOWN_SCORE, decide
from retrieval.embedder import Embedder
from retrieval.filters import chroma_where, normalize_filters
from retrieval.fusion import rrf
from retrieval.lexical import LexicalIndex, query_terms
from retrieval.query import focus_query
from retrieval.store import StoredChunk, VectorStore, make_client
from sopilot.errors import InvalidQueryError
from sopilot.settings import Settings
from sopilot.types import HEADING_SEPARATOR, Passage

MAX_QUERY_CHARS = 20_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Reranker(Protocol):
    """Re-scores (question, passage text) pairs; higher is better."""

    name: str

    def score(self, query: str, texts: list[str]) -> list[float]: ...


@dataclass(frozen=True, slots=True)
class SearchParams:
    candidate_depth: int = 50  # candidates taken from each list
    rrf_k: int = 60
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    max_per_sop: int = 0
    rerank_depth: int = 30
    descriptive_weight: float = 0.7  # score factor for sections that describe rather than solve
    descriptive_headings: str = ""  # regex on the last heading of such sections
    covered_min_dense: float = 0.515  # coverage thresholds, calibrated (docs/retrieval.md)
    covered_min_terms: float = 0.55
    covered_min_unknown: int = 2  # flagged only with this many question terms in no SOP (0: not used)
    query_cleanup: str = "both"  # greeting, sign-off, log noise out before: off | lexical | both (and dense)

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchParams:
        """Every field has the name of its setting."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class SearchResult:
    query: str
    passages: list[Passage]
    covered: bool | None = None
    reason: str = ""
    filters: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "covered": self.covered,
            "reason": self.reason,
            "filters": self.filters,
            "passages": [p.to_dict() for p in self.passages],
        }


def clean_query(query: str, max_chars: int = MAX_QUERY_CHARS) -> str:
    """Control characters out, whitespace folded, length capped; an empty result is refused."""
    if not isinstance(query, str):
        raise InvalidQueryError(f"query must be text, got {type(query).__name__}")
    text = " ".join(_CONTROL.sub(" ", query).split())[:max_chars]
    if not text:
        raise InvalidQueryError("query is empty: type the user's question")
    return text


def check_k(k: int, max_k: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= max_k:
        raise InvalidQueryError(f"k must be a whole number from 1 to {max_k}, got {k!r}")
    return k


def to_passage(chunk: StoredChunk, scores: dict[str, float], score: float) -> Passage:
    meta = chunk.metadata
    heading = str(meta.get("heading_path", ""))
    return Passage(
        chunk_id=chunk.id,
        path=str(meta.get("path", "")),
        title=str(meta.get("title", "")),
        heading_path=tuple(heading.split(HEADING_SEPARATOR)) if heading else (),
        anchor=str(meta.get("anchor", "")),
        start_line=int(meta.get("start_line", 0)),
        end_line=int(meta.get("end_line", 0)),
        text=chunk.text,
        score=score,
        scores=scores,
        metadata=meta,
    )


class Retriever:
    """Hybrid retrieval over one index: what agents, the API and evaluation all call."""

    def __init__(
        self,
        store: VectorStore,
        lexical: LexicalIndex | None,
        embedder: Embedder,
        params: SearchParams | None = None,
        *,
        reranker: Reranker | None = None,
        max_k: int = 100,
    ) -> None:
        self._store = store
        self._lexical = lexical
        self._embedder = embedder
        self._params = params or SearchParams()
        self._reranker = reranker
        self._max_k = max_k

    @property
    def store(self) -> VectorStore:
        return self._store

    def search(self, query: str, k: int = 5, filters: dict[str, Any] | None = None) -> SearchResult:
        text = clean_query(query)
        k = check_k(k, self._max_k)
        active = normalize_filters(filters)
        p = self._params
        focus = clean_query(focus_query(query)) if p.query_cleanup != "off" else text
        depth = max(p.candidate_depth, k * 3)
        dense_text = focus if p.query_cleanup == "both" else text
        dense = self._store.query(self._embedder.embed_query(dense_text), depth, chroma_where(active))
        lexical = self._lexical.search(focus, depth, active) if self._lexical is not None else []
        fused = rrf(
            {"dense": [c.id for c in dense], "lexical": [cid for cid, _ in lexical]},
            {"dense": p.dense_weight, "lexical": p.lexical_weight},
            k=p.rrf_k,
        )
        chunks = {c.id: c for c in dense}
        missing = [f.id for f in fused[:depth] if f.id not in chunks]
        chunks.update(self._store.get(missing) if missing else {})
        similarity = {c.id: round(1.0 - c.distance, 6) for c in dense}
        bm25 = dict(lexical)
        passages = []
        for f in fused:
            chunk = chunks.get(f.id)
            if chunk is None:
                continue
            scores: dict[str, float] = {"fused": round(f.score, 6)}
            if f.id in similarity:
                scores["dense"] = similarity[f.id]
            if f.id in bm25:
                scores["lexical"] = round(bm25[f.id], 4)
            scores.update({f"{name}_rank": float(rank) for name, rank in f.ranks.items()})
            passages.append(to_passage(chunk, scores, round(f.score, 6)))
        if p.descriptive_weight != 1.0 and p.descriptive_headings:
            passages = _demote_descriptive(passages, p.descriptive_headings, p.descriptive_weight)
        if self._reranker is not None and passages:
            passages = self._rerank(text, passages)
        passages = _limit_per_sop(_merge_sections(passages), p.max_per_sop)[:k]
        unknown = self._lexical.unknown_terms(query_terms(focus)) if self._lexical is not None else []
        covered, reason = decide(
            focus, passages, p.covered_min_dense, p.covered_min_terms, unknown, p.covered_min_unknown
        )
        if passages:  # the evidence travels with the result, for calibration
            passages[0] = _replace_score(
                passages[0], passages[0].score, {**passages[0].scores, UNKNOWN_SCORE: float(len(unknown))}
            )
        return SearchResult(text, passages, covered, reason, active)

    def _rerank(self, query: str, passages: list[Passage]) -> list[Passage]:
        assert self._reranker is not None
        head = passages[: self._params.rerank_depth]
        scores = self._reranker.score(query, [p.text for p in head])
        rescored = [
            _replace_score(p, float(s), {**p.scores, "rerank": round(float(s), 6)})
            for p, s in zip(head, scores, strict=True)
        ]
        rescored.sort(key=lambda p: -p.score)
        return rescored + passages[self._params.rerank_depth :]


def _demote_descriptive(passages: list[Passage], pattern: str, weight: float) -> list[Passage]:
    """Users describe symptoms; answers live in the steps. Sections that only describe rank lower."""
    matcher = re.compile(pattern, re.IGNORECASE)
    out = []
    for p in passages:
        if p.heading_path and len(p.heading_path) > 1 and matcher.search(p.heading_path[-1]):
            p = _replace_score(p, p.score * weight, {**p.scores, "descriptive": weight})
        out.append(p)
    return sorted(out, key=lambda p: -p.score)


def _replace_score(p: Passage, score: float, scores: dict[str, float]) -> Passage:
    return replace(p, score=score, scores=scores)


def _merge_sections(passages: list[Passage]) -> list[Passage]:
    """Chunks of one section become one passage, at the rank of its best chunk, text in file order."""
    groups: dict[tuple[str, str, str], list[Passage]] = {}
    order: list[tuple[str, str, str]] = []
    for p in passages:
        key = (p.path, p.anchor, HEADING_SEPARATOR.join(p.heading_path))
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(p)
    merged = []
    for key in order:
        parts = groups[key]
        if len(parts) == 1:
            merged.append(parts[0])
            continue
        best = parts[0]
        ordered = sorted(parts, key=lambda p: p.start_line)
        scores = dict(best.scores)
        scores["merged_chunks"] = float(len(parts))
        merged.append(
            replace(
                best,
                start_line=ordered[0].start_line,
                end_line=max(p.end_line for p in parts),
                text="\n\n".join(p.text for p in ordered),
                scores=scores,
            )
        )
    return merged


def _limit_per_sop(passages: list[Passage], limit: int) -> list[Passage]:
    if limit <= 0:
        return passages
    seen: dict[str, int] = {}
    kept = []
    for p in passages:
        seen[p.path] = seen.get(p.path, 0) + 1
        if seen[p.path] <= limit:
            kept.append(p)
    return kept


def open_retriever(settings: Settings, embedder: Embedder, reranker: Reranker | None = None) -> Retriever:
    """The retriever agents use, over the index the settings name (which must exist)."""
    from ingest.run import lexical_path, open_lexical
    from retrieval.reranker import load_reranker

    reranker = reranker or load_reranker(settings.reranker, settings.device)

    store = VectorStore.open(
        make_client(settings), settings.collection, embedder.name, embedder.dimension, create=False
    )
    lexical = open_lexical(settings) if lexical_path(settings).is_file() else None
    return Retriever(
        store, lexical, embedder, SearchParams.from_settings(settings), reranker=reranker, max_k=settings.max_k
    )
