"""Search: a question in, ranked SOP passages out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from retrieval.embedder import Embedder
from retrieval.store import StoredChunk, VectorStore, make_client
from sopilot.errors import InvalidQueryError
from sopilot.settings import Settings
from sopilot.types import HEADING_SEPARATOR, Passage

MAX_QUERY_CHARS = 20_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class SearchResult:
    query: str
    passages: list[Passage]
    covered: bool | None = None  # None: no coverage decision is made yet
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "covered": self.covered,
            "reason": self.reason,
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


class DenseRetriever:
    """Nearest chunks by cosine similarity of the embedder's vectors."""

    def __init__(self, store: VectorStore, embedder: Embedder, max_k: int = 100) -> None:
        self._store = store
        self._embedder = embedder
        self._max_k = max_k

    def search(self, query: str, k: int = 5, where: dict[str, Any] | None = None) -> SearchResult:
        text = clean_query(query)
        k = check_k(k, self._max_k)
        hits = self._store.query(self._embedder.embed_query(text), k, where)
        passages = []
        for hit in hits:
            similarity = round(1.0 - hit.distance, 6)
            passages.append(to_passage(hit, {"dense": similarity}, similarity))
        return SearchResult(text, passages)


def open_retriever(settings: Settings, embedder: Embedder) -> DenseRetriever:
    """The retriever agents use, over the index the settings name (which must exist)."""
    store = VectorStore.open(
        make_client(settings), settings.collection, embedder.name, embedder.dimension, create=False
    )
    return DenseRetriever(store, embedder, max_k=settings.max_k)
