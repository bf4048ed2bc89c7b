"""Compare two runs: metric deltas, questions that flipped between hit and miss, and a regression verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sopilot.eval.metrics import HEADLINE_METRICS, compute_metrics, get_metric, per_question

FLIP_METRIC = ("section", "hit@5")
DETAIL_METRICS = (
    "retrieval.section.hit@1",
    "retrieval.section.hit@3",
    "retrieval.section.hit@5",
    "retrieval.section.hit@10",
    "retrieval.section.recall@10",
    "retrieval.section.mrr@10",
    "retrieval.section.ndcg@10",
    "retrieval.sop.hit@1",
    "retrieval.sop.hit@5",
    "retrieval.sop.mrr@10",
    "retrieval.sop.ndcg@10",
    "abstention.precision",
    "abstention.recall",
    "abstention.false_abstention_rate",
    "citation_precision",
    "faithfulness",
    "latency_ms.p50",
    "latency_ms.p95",
)


@dataclass(slots=True)
class Comparison:
    deltas: list[tuple[str, float | None, float | None, float | None]] = field(default_factory=list)
    gained: list[str] = field(default_factory=list)  # miss in A, hit in B
    lost: list[str] = field(default_factory=list)  # hit in A, miss in B
    regressions: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # question ids in only one run

    @property
    def ok(self) -> bool:
        return not self.regressions


def compare_runs(
    records_a: list[dict[str, Any]], records_b: list[dict[str, Any]], max_drop: float = 0.02
) -> Comparison:
    """B against A: a headline metric of B lower than A's by more than ``max_drop`` is a regression."""
    metrics_a, metrics_b = compute_metrics(records_a), compute_metrics(records_b)
    result = Comparison()
    for name in dict.fromkeys((*HEADLINE_METRICS, *DETAIL_METRICS)):
        a, b = get_metric(metrics_a, name), get_metric(metrics_b, name)
        delta = None if a is None or b is None else round(b - a, 4)
        result.deltas.append((name, a, b, delta))
        if name in HEADLINE_METRICS and delta is not None and delta < -max_drop:
            result.regressions.append(f"{name} dropped by {-delta:.4f} ({a:.4f} -> {b:.4f}), over {max_drop}")
    by_id_a = {r["id"]: r for r in records_a}
    by_id_b = {r["id"]: r for r in records_b}
    result.missing = sorted(set(by_id_a) ^ set(by_id_b))
    level, metric = FLIP_METRIC
    for qid in sorted(set(by_id_a) & set(by_id_b)):
        if not by_id_a[qid]["answerable"]:
            continue
        hit_a = per_question(by_id_a[qid])[level][metric] >= 1.0
        hit_b = per_question(by_id_b[qid])[level][metric] >= 1.0
        if hit_a and not hit_b:
            result.lost.append(qid)
        elif hit_b and not hit_a:
            result.gained.append(qid)
    return result


def format_comparison(c: Comparison, name_a: str, name_b: str) -> str:
    lines = [f"{'metric':<36} {name_a[:14]:>14} {name_b[:14]:>14} {'delta':>8}"]
    for name, a, b, delta in c.deltas:
        mark = " *" if name in HEADLINE_METRICS else ""
        lines.append(f"{name + mark:<36} {_f(a):>14} {_f(b):>14} {_f(delta, signed=True):>8}")
    lines.append("(* headline metrics, gated)")
    lines.append(f"section hit@5 lost ({len(c.lost)}): {', '.join(c.lost) or '-'}")
    lines.append(f"section hit@5 gained ({len(c.gained)}): {', '.join(c.gained) or '-'}")
    if c.missing:
        lines.append(f"questions in only one run ({len(c.missing)}): {', '.join(c.missing)}")
    lines.append("REGRESSION: " + "; ".join(c.regressions) if c.regressions else "no regression beyond tolerance")
    return "\n".join(lines)


def _f(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"
