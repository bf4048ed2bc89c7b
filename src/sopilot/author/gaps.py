"""Gaps in the KB: logged questions SOPilot could not answer well, grouped by meaning.

A question is a gap when the search abstained, when it was covered only by shared words (its nearest SOP
section is less similar than the coverage threshold), or when the agent rejected the draft. The gap questions
are embedded with the index's own embedder and clustered (agglomerative, average linkage over cosine distance,
cut at a distance threshold: the number of topics is not known in advance). Each cluster gets its nearest SOP
section from the index and a suggestion: extend that section when it is close, else write a new SOP, with a
front-matter stub to start from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal, Protocol

import numpy as np

from sopilot.core.types import HEADING_SEPARATOR
from sopilot.index.querylog import QueryRecord

GapReason = Literal["abstained", "weak", "rejected"]


class QueryEmbedder(Protocol):
    def embed_query(self, text: str) -> np.ndarray: ...


class SectionIndex(Protocol):
    """What gap finding needs of the vector store: nearest ids and their metadata."""

    def nearest(
        self, embedding: np.ndarray, n: int, where: dict[str, Any] | None = None
    ) -> list[tuple[str, float]]: ...

    def get(self, ids: Sequence[str]) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class GapQuestion:
    answer_id: str
    ts: float
    question: str
    reasons: tuple[GapReason, ...]
    similarity: float  # to the nearest SOP chunk


@dataclass(frozen=True, slots=True)
class NearestSection:
    path: str
    anchor: str
    heading_path: tuple[str, ...]
    similarity: float  # of the cluster's centroid to the section
    owner: str = ""
    tags: tuple[str, ...] = ()

    @property
    def link(self) -> str:
        return f"{self.path}#{self.anchor}" if self.anchor else self.path


@dataclass(frozen=True, slots=True)
class GapCluster:
    size: int
    representatives: tuple[str, ...]  # the questions nearest the cluster's centre first
    reasons: dict[str, int]
    nearest: NearestSection | None
    suggestion: Literal["extend", "new"]
    stub: str = ""  # front matter of the new SOP, when the suggestion is "new"
    questions: tuple[GapQuestion, ...] = field(default=(), repr=False)
    centre: np.ndarray | None = field(default=None, repr=False, compare=False)  # unit mean of its questions
    new: bool | None = None  # None: not judged; True: none of its questions was a gap in the days before

    def to_dict(self) -> dict[str, Any]:
        nearest = self.nearest
        return {
            "size": self.size,
            "representatives": list(self.representatives),
            "reasons": self.reasons,
            "nearest": None
            if nearest is None
            else {
                "path": nearest.path,
                "anchor": nearest.anchor,
                "heading_path": list(nearest.heading_path),
                "similarity": round(nearest.similarity, 4),
            },
            "suggestion": self.suggestion,
            "stub": self.stub,
            "new": self.new,
            "answer_ids": [q.answer_id for q in self.questions],
        }


@dataclass(frozen=True, slots=True)
class GapParams:
    distance_threshold: float = 0.45  # cosine distance at which two groups stop merging
    weak_below: float = 0.515  # covered, but the nearest chunk is less similar than this: weak coverage
    extend_from: float = 0.55  # the nearest section is this similar to the cluster: extend it
    borrow_from: float = 0.4  # a new SOP's stub takes owner and tags from the nearest SOP when this similar
    representatives: int = 3
    min_size: int = 1


def find_gaps(
    records: Iterable[QueryRecord],
    verdicts: Mapping[str, str],
    embedder: QueryEmbedder,
    index: SectionIndex,
    params: GapParams | None = None,
    today: date | None = None,
) -> list[GapCluster]:
    """The gap clusters of the logged questions, largest first."""
    params = params or GapParams()
    questions, vectors = gap_questions(records, verdicts, embedder, index, params.weak_below)
    if not questions:
        return []
    labels = cluster_labels(vectors, params.distance_threshold)
    clusters = []
    for label in sorted(set(labels)):
        members = [i for i, lab in enumerate(labels) if lab == label]
        if len(members) < params.min_size:
            continue
        clusters.append(_cluster(members, questions, vectors, index, params, today or date.today()))
    return sorted(clusters, key=lambda c: (-c.size, c.representatives[0]))


def gap_questions(
    records: Iterable[QueryRecord],
    verdicts: Mapping[str, str],
    embedder: QueryEmbedder,
    index: SectionIndex,
    weak_below: float,
) -> tuple[list[GapQuestion], np.ndarray]:
    """Each logged question that is a gap, with why, and its embedding (one row per question)."""
    cache: dict[str, tuple[np.ndarray, float]] = {}
    out: list[GapQuestion] = []
    rows: list[np.ndarray] = []
    for record in records:
        text = record.question.strip()
        if not text:
            continue
        if text not in cache:
            vector = np.asarray(embedder.embed_query(text), dtype=np.float32)
            hits = index.nearest(vector, 1)
            cache[text] = (vector, 1.0 - hits[0][1] if hits else 0.0)
        vector, similarity = cache[text]
        reasons: list[GapReason] = []
        if record.covered is False:
            reasons.append("abstained")
        elif record.covered and similarity < weak_below:
            reasons.append("weak")
        if verdicts.get(record.id) == "rejected":
            reasons.append("rejected")
        if reasons:
            out.append(GapQuestion(record.id, record.ts, text, tuple(reasons), similarity))
            rows.append(vector)
    return out, (np.vstack(rows) if rows else np.zeros((0, 0), dtype=np.float32))


def cluster_labels(vectors: np.ndarray, distance_threshold: float) -> list[int]:
    """Agglomerative clusters of unit vectors, cut where the average cosine distance passes the threshold."""
    if len(vectors) < 2:
        return [0] * len(vectors)
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(
        n_clusters=None, distance_threshold=distance_threshold, metric="cosine", linkage="average"
    )
    return [int(label) for label in model.fit_predict(vectors)]


def _cluster(
    members: list[int],
    questions: list[GapQuestion],
    vectors: np.ndarray,
    index: SectionIndex,
    params: GapParams,
    today: date,
) -> GapCluster:
    block = vectors[members]
    centre = block.mean(axis=0)
    centre = centre / (np.linalg.norm(centre) or 1.0)
    order = np.argsort(-(block @ centre))
    ranked = [questions[members[i]] for i in order]
    representatives: list[str] = []
    for q in ranked:
        if q.question not in representatives:
            representatives.append(q.question)
        if len(representatives) == params.representatives:
            break
    reasons = Counter(reason for q in ranked for reason in q.reasons)
    nearest = nearest_section(centre, index)
    if nearest is not None and nearest.similarity >= params.extend_from:
        return GapCluster(
            len(members), tuple(representatives), dict(reasons), nearest, "extend", "", tuple(ranked), centre
        )
    related = nearest if nearest is not None and nearest.similarity >= params.borrow_from else None
    stub = front_matter_stub(representatives[0], related, today)
    return GapCluster(len(members), tuple(representatives), dict(reasons), nearest, "new", stub, tuple(ranked), centre)


def mark_new(
    clusters: Sequence[GapCluster],
    earlier: Iterable[QueryRecord],
    verdicts: Mapping[str, str],
    embedder: QueryEmbedder,
    index: SectionIndex,
    params: GapParams | None = None,
) -> list[GapCluster]:
    """The clusters with ``new`` set: True when none of the ``earlier`` gap questions (the days before) belongs
    to the cluster, i.e. lies within the clustering's distance threshold of its centre."""
    params = params or GapParams()
    _, before = gap_questions(earlier, verdicts, embedder, index, params.weak_below)
    if len(before):
        before = before / np.maximum(np.linalg.norm(before, axis=1, keepdims=True), 1e-12)
    marked = []
    for cluster in clusters:
        seen = False
        if cluster.centre is not None and len(before):
            seen = float(np.min(1.0 - before @ cluster.centre)) <= params.distance_threshold
        marked.append(replace(cluster, new=not seen))
    return marked


def nearest_section(vector: np.ndarray, index: SectionIndex) -> NearestSection | None:
    hits = index.nearest(vector, 1)
    if not hits:
        return None
    chunk_id, distance = hits[0]
    chunk = index.get([chunk_id]).get(chunk_id)
    meta: Mapping[str, Any] = getattr(chunk, "metadata", {}) or {}
    heading = str(meta.get("heading_path", ""))
    tags = meta.get("tags") or []
    return NearestSection(
        path=str(meta.get("path", "")),
        anchor=str(meta.get("anchor", "")),
        heading_path=tuple(part for part in heading.split(HEADING_SEPARATOR) if part),
        similarity=1.0 - distance,
        owner=str(meta.get("owner", "")),
        tags=tuple(str(t) for t in (tags if isinstance(tags, list | tuple) else str(tags).split(","))),
    )


def front_matter_stub(question: str, nearest: NearestSection | None, today: date) -> str:
    """Front matter for a new SOP answering ``question``: owner and tags borrowed from a related SOP, if any."""
    title = " ".join(question.rstrip("?!. ").split())[:120]
    title = title[:1].upper() + title[1:]
    owner = nearest.owner if nearest and nearest.owner else "TODO-team"
    tags = ", ".join(nearest.tags[:4]) if nearest and nearest.tags else "TODO"
    return (
        "---\n"
        "id: TODO-NEW-001\n"
        f'title: "{title.replace(chr(34), chr(39))}"\n'
        f"owner: {owner}\n"
        f"tags: [{tags}]\n"
        "status: draft\n"
        f"last_reviewed: {today.isoformat()}\n"
        "review_every_days: 90\n"
        "---\n"
    )
