"""Search: a question in, ranked SOP passages and a coverage decision out.

validate -> dense top-N (Chroma) and lexical top-N (FTS5), same filters -> reciprocal rank fusion ->
optional reranker -> merge chunks of one section, at most N passages per SOP -> coverage decision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

from sopilot.core.errors import InvalidQueryError
from sopilot.core.review import overdue_from_metadata
from sopilot.core.settings import Settings
from sopilot.core.types import HEADING_SEPARATOR, Passage
from sopilot.index.embedder import Embedder
from sopilot.index.lexical import FILTER_OVERFETCH, ChunkFacts, LexicalIndex, keep_passing, query_terms
from sopilot.index.store import StoredChunk, VectorStore, make_client
from sopilot.retrieval.answerability import PROBABILITY_SCORE, AnswerabilityModel, evidence_of, load_answerability
from sopilot.retrieval.coverage import UNKNOWN_SCORE, decide
from sopilot.retrieval.filters import chroma_where, normalize_filters
from sopilot.retrieval.fusion import rrf
from sopilot.retrieval.query import focus_query

if TYPE_CHECKING:
    from pathlib import Path

MAX_QUERY_CHARS = 20_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
WIDER_OVERFETCH = 8  # the second, deeper unfiltered query when too few of the first pass the filters


class Reranker(Protocol):
    """Re-scores (question, passage text) pairs; higher is better."""

    name: str

    def score(self, query: str, texts: list[str]) -> list[float]: ...


class QueryRewriter(Protocol):
    """Restates a question in the KB's vocabulary; "" leaves it as it is."""

    def rewrite(self, question: str) -> str: ...


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
    role_weights: dict[str, float] = field(default_factory=dict)  # score factor by section role (1 when absent)
    covered_min_dense: float = 0.515  # coverage thresholds, calibrated (docs/retrieval.md)
    covered_min_terms: float = 0.55
    covered_min_unknown: int = 2  # flagged only with this many question terms in no SOP (0: not used)
    query_cleanup: str = "both"  # greeting, sign-off, log noise out before: off | lexical | both (and dense)
    covered_min_probability: float | None = None  # answerability threshold; the model's own when None
    overdue_weight: float = 1.0  # score factor for passages of SOPs past their review date (1: not used)
    today: date | None = None  # the date review dates are measured against; the system date when None

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchParams:
        """Every field has the name of its setting; the dense coverage threshold is the one for the questions'
        embedder (``covered_min_dense_for``)."""
        from sopilot.index.embedder import covered_min_dense_for

        values = {f.name: getattr(settings, f.name) for f in fields(cls)}
        return cls(**{**values, "covered_min_dense": covered_min_dense_for(settings)})


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
        answerability: AnswerabilityModel | None = None,
        rewriter: QueryRewriter | None = None,
    ) -> None:
        self._answerability = answerability
        self._rewriter = rewriter
        self._store = store
        self._lexical = lexical
        self._embedder = embedder
        self._params = params or SearchParams()
        self._reranker = reranker
        self._max_k = max_k

    @property
    def store(self) -> VectorStore:
        return self._store

    @property
    def lexical(self) -> LexicalIndex | None:
        return self._lexical

    @property
    def params(self) -> SearchParams:
        """What shapes its ranking and coverage decision (the dense threshold already moved onto a trained
        question model's scale)."""
        return self._params

    def warm(self) -> dict[str, int]:
        """Load what the first questions would otherwise wait for (the lexical postings); for a serving process
        at start, before its first question. Returns what was loaded."""
        return {"lexical_tokens": self._lexical.warm() if self._lexical is not None else 0}

    def search(self, query: str, k: int = 5, filters: dict[str, Any] | None = None) -> SearchResult:
        text = clean_query(query)
        k = check_k(k, self._max_k)
        active = normalize_filters(filters)
        p = self._params
        focus = clean_query(focus_query(query)) if p.query_cleanup != "off" else text
        depth = max(p.candidate_depth, k * 3)
        dense_text = focus if p.query_cleanup == "both" else text
        searched = focus
        if self._rewriter is not None:  # the restatement searched beside the question, never instead of it
            restated = self._rewriter.rewrite(focus)
            if restated:
                searched = f"{focus}\n{restated}"
                dense_text = f"{dense_text}\n{restated}"
        lexical = self._lexical.search(searched, depth, active) if self._lexical is not None else []
        vector = self._embedder.embed_query(dense_text)
        dense, facts = self._dense(vector, depth, active, [cid for cid, _ in lexical])
        fused = rrf(
            {"dense": [cid for cid, _ in dense], "lexical": [cid for cid, _ in lexical]},
            {"dense": p.dense_weight, "lexical": p.lexical_weight},
            k=p.rrf_k,
        )
        read: dict[str, StoredChunk] = {}  # chunks read from the store in this search, by id
        candidates = {cid for cid, _ in dense} | {f.id for f in fused[:depth]}
        chunks = self._outlines(candidates, facts, read)
        similarity = {cid: round(1.0 - distance, 6) for cid, distance in dense}
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
        if any(w != 1.0 for w in p.role_weights.values()):
            passages = _weigh_roles(passages, p.role_weights)
        today = p.today or date.today()
        if p.overdue_weight != 1.0:  # the review dates are in the chunks' metadata: read the candidates
            passages = _weigh_overdue(self._read(passages[:depth], read), today, p.overdue_weight) + passages[depth:]
        if self._reranker is not None and passages:
            head = self._read(passages[: p.rerank_depth], read)
            passages = self._rerank(text, head + passages[p.rerank_depth :])
        passages = self._read_head(passages, k, read)
        passages = [replace(x, review_overdue=overdue_from_metadata(x.metadata, today)) for x in passages]
        passages = _limit_per_sop(_merge_sections(passages), p.max_per_sop)[:k]
        terms = query_terms(focus)
        unknown = self._lexical.unknown_terms(terms) if self._lexical is not None else []
        evidence: dict[str, float] = {UNKNOWN_SCORE: float(len(unknown))}
        if self._answerability is not None and passages:
            features = evidence_of(focus, passages, len(terms), len(unknown))
            covered, probability, reason = self._answerability.decide(features, p.covered_min_probability)
            evidence[PROBABILITY_SCORE] = round(probability, 6)
        else:
            covered, reason = decide(
                focus, passages, p.covered_min_dense, p.covered_min_terms, unknown, p.covered_min_unknown
            )
        if passages:  # the evidence travels with the result, for calibration
            passages[0] = _replace_score(passages[0], passages[0].score, {**passages[0].scores, **evidence})
        return SearchResult(text, passages, covered, reason, active)

    def _dense(
        self, vector: Any, depth: int, active: dict[str, list[str]], also: list[str]
    ) -> tuple[list[tuple[str, float]], dict[str, ChunkFacts]]:
        """The ``depth`` nearest ids under the filters, and the facts of those ids and of ``also``.

        With a status filter alone (the default: active SOPs only), the store is asked for ``FILTER_OVERFETCH`` times
        the depth without a filter and the lexical index's facts filter the ids: a filtered store query reads
        the metadata of every chunk that matches, which grows with the index (1-2 s at 100,000 chunks). When
        too few ids pass, it asks once more, ``WIDER_OVERFETCH`` times deeper (a nearest-neighbour query of a
        few hundred ids costs milliseconds at any size); when that is still too few, or the facts miss an id,
        the store's own filtered query answers.
        """
        where = chroma_where(active)
        if self._lexical is None:
            return self._store.nearest(vector, depth, where), {}
        post = where is not None and set(active) == {"status"}
        n = depth * FILTER_OVERFETCH if post else depth
        nearest = self._filtered_nearest(vector, n, None if post else where, active)
        facts = self._lexical.facts([cid for cid, _ in nearest] + also, active)
        if not post:
            return nearest, facts
        kept = keep_passing(nearest, facts, depth, n)
        if kept is None and len(nearest) == n and all(cid in facts for cid, _ in nearest):
            n *= WIDER_OVERFETCH
            nearest = self._filtered_nearest(vector, n, None, active)
            facts.update(self._lexical.facts([cid for cid, _ in nearest if cid not in facts], active))
            kept = keep_passing(nearest, facts, depth, n)
        if kept is not None:
            return kept, facts
        nearest = self._filtered_nearest(vector, depth, where, active)
        facts.update(self._lexical.facts([cid for cid, _ in nearest if cid not in facts], active))
        return nearest, facts

    def _filtered_nearest(
        self, vector: Any, n: int, where: dict[str, Any] | None, active: dict[str, list[str]]
    ) -> list[tuple[str, float]]:
        """The store's nearest ids under ``where``. While another process ingests, this process's copy of Chroma's
        vector index lags the metadata it shares on disk, and a filtered query fails ("Error finding id") until
        the ingest's new generation reopens the index. Then the unfiltered ranking, checked against the lexical
        facts, answers: ids the facts do not know (chunks that ingest is writing or has deleted) are left out."""
        try:
            return self._store.nearest(vector, n, where)
        except Exception as exc:
            if where is None or self._lexical is None or not _lagging_store(exc):
                raise
        ranked = self._store.nearest(vector, n * FILTER_OVERFETCH, None)
        facts = self._lexical.facts([cid for cid, _ in ranked], active)
        return [(cid, d) for cid, d in ranked if cid in facts and facts[cid].passes][:n]

    def _outlines(
        self, ids: set[str], facts: dict[str, ChunkFacts], read: dict[str, StoredChunk]
    ) -> dict[str, StoredChunk]:
        """Candidates without their text: section fields from the facts; chunks the facts miss are read."""
        missing = [cid for cid in ids if cid not in facts]
        read.update(self._store.get(missing) if missing else {})
        outlines = {
            cid: StoredChunk(
                cid, "", {"path": f.path, "anchor": f.anchor, "heading_path": f.heading_path, "role": f.role}
            )
            for cid, f in facts.items()
            if cid in ids
        }
        return outlines | {cid: read[cid] for cid in missing if cid in read}

    def _read(self, passages: list[Passage], read: dict[str, StoredChunk]) -> list[Passage]:
        """The passages with their text and metadata from the store; chunks the store no longer holds drop out."""
        missing = [p.chunk_id for p in passages if p.chunk_id not in read]
        read.update(self._store.get(missing) if missing else {})
        return [to_passage(read[p.chunk_id], p.scores, p.score) for p in passages if p.chunk_id in read]

    def _read_head(self, passages: list[Passage], k: int, read: dict[str, StoredChunk]) -> list[Passage]:
        """Read only the chunks of the sections the first ``k`` passages will hold, in rank order."""
        while True:
            head = _head_ids(passages, k, self._params.max_per_sop)
            wanted = [p for p in passages if p.chunk_id in head]
            got = self._read(wanted, read)
            if len(got) == len(wanted):
                return got
            passages = [p for p in passages if p.chunk_id in read or p.chunk_id not in head]

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


def _lagging_store(exc: Exception) -> bool:
    """Chroma's error for a vector index that names a record its metadata no longer holds (see _filtered_nearest)."""
    return type(exc).__module__.startswith("chromadb") and "error finding id" in str(exc).lower()


def _demote_descriptive(passages: list[Passage], pattern: str, weight: float) -> list[Passage]:
    """Users describe symptoms; answers live in the steps. Sections that only describe rank lower."""
    matcher = re.compile(pattern, re.IGNORECASE)
    out = []
    for p in passages:
        if p.heading_path and len(p.heading_path) > 1 and matcher.search(p.heading_path[-1]):
            p = _replace_score(p, p.score * weight, {**p.scores, "descriptive": weight})
        out.append(p)
    return sorted(out, key=lambda p: -p.score)


def _weigh_roles(passages: list[Passage], weights: dict[str, float]) -> list[Passage]:
    """A user's question is answered by a section that resolves or diagnoses; sections for the agent
    (escalation, ticket notes), background and templates of the same problem rank below them."""
    out = []
    for p in passages:
        weight = weights.get(p.role, 1.0)
        if weight != 1.0:
            p = _replace_score(p, p.score * weight, {**p.scores, "role_weight": weight})
        out.append(p)
    return sorted(out, key=lambda p: -p.score)


def _weigh_overdue(passages: list[Passage], today: date, weight: float) -> list[Passage]:
    """Passages of SOPs past their review date rank lower (off by default: they are flagged either way)."""
    out = []
    for p in passages:
        if overdue_from_metadata(p.metadata, today):
            p = _replace_score(p, p.score * weight, {**p.scores, "overdue_weight": weight})
        out.append(p)
    return sorted(out, key=lambda p: -p.score)


def _replace_score(p: Passage, score: float, scores: dict[str, float]) -> Passage:
    return replace(p, score=score, scores=scores)


def _section_key(p: Passage) -> tuple[str, str, str]:
    return (p.path, p.anchor, HEADING_SEPARATOR.join(p.heading_path))


def _head_ids(passages: list[Passage], k: int, limit: int) -> set[str]:
    """Chunk ids of the first ``k`` sections that merging and the per-SOP limit will keep, in rank order."""
    sections: dict[tuple[str, str, str], list[str]] = {}
    for p in passages:
        sections.setdefault(_section_key(p), []).append(p.chunk_id)
    per_sop: dict[str, int] = {}
    ids: set[str] = set()
    taken = 0
    for (path, _, _), members in sections.items():
        per_sop[path] = per_sop.get(path, 0) + 1
        if limit > 0 and per_sop[path] > limit:
            continue
        ids.update(members)
        taken += 1
        if taken == k:
            break
    return ids


def _merge_sections(passages: list[Passage]) -> list[Passage]:
    """Chunks of one section become one passage, at the rank of its best chunk, text in file order."""
    groups: dict[tuple[str, str, str], list[Passage]] = {}
    order: list[tuple[str, str, str]] = []
    for p in passages:
        key = _section_key(p)
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


def open_retriever(
    settings: Settings,
    embedder: Embedder,
    reranker: Reranker | None = None,
    rewriter: QueryRewriter | None = None,
    *,
    fresh: bool = False,
    lexical_file: Path | None = None,
) -> Retriever:
    """The retriever agents use, over the index the settings name (which must exist). The entry points pass
    a ``rewriter`` when ``SOPILOT_QUERY_REWRITE`` is on (the language model lives in the draft stage);
    ``fresh`` opens a new store client, to see another process's ingest (``make_client``); ``lexical_file``
    replaces the folder's lexical index, and pins the store to that index's chunks (one generation of a
    shared Chroma server, which an ingest writes live: ``PinnedStore``)."""
    from sopilot.index.folder import lexical_path, open_lexical
    from sopilot.retrieval.reranker import load_reranker

    reranker = reranker or load_reranker(settings.reranker, settings.device)

    store = VectorStore.open(
        make_client(settings, fresh=fresh), settings.collection, embedder.name, embedder.dimension, create=False
    )
    pinned = lexical_file is not None
    lexical_file = lexical_file or lexical_path(settings)
    lexical = open_lexical(settings, lexical_file) if lexical_file.is_file() else None
    if pinned and lexical is not None:
        store = store.pinned(lexical.ids())
    model = load_answerability(settings.index_dir) if settings.coverage == "model" else None
    return Retriever(
        store,
        lexical,
        embedder,
        SearchParams.from_settings(settings),
        reranker=reranker,
        max_k=settings.max_k,
        answerability=model,
        rewriter=rewriter,
    )
