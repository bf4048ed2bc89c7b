"""Reciprocal rank fusion of ranked id lists: a small pure function, ranks in, fused order out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Fused:
    id: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)  # list name -> 1-based rank in that list


def rrf(rankings: Mapping[str, Sequence[str]], weights: Mapping[str, float] | None = None, k: int = 60) -> list[Fused]:
    """Sum of ``weight / (k + rank)`` over the lists that hold an id, best first (ties by id)."""
    scores: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    for name, ids in rankings.items():
        weight = 1.0 if weights is None else weights.get(name, 1.0)
        for rank, item in enumerate(dict.fromkeys(ids), 1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
            ranks.setdefault(item, {})[name] = rank
    ordered = sorted(scores, key=lambda i: (-scores[i], i))
    return [Fused(i, scores[i], ranks[i]) for i in ordered]
