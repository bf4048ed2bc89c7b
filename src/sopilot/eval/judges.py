"""Language-model judges for drafts, optional: llama-index's ``FaithfulnessEvaluator`` and
``RelevancyEvaluator`` score each covered draft with the configured model (``sopilot eval run --judge``).

They complement, never replace, the model-free metrics in ``sopilot.eval.metrics``: a judge is only as good as its
model, so its verdicts sit in their own ``judges`` block of ``metrics.json`` and of each run record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

if TYPE_CHECKING:
    from llama_index.core.llms import LLM

JUDGES = ("faithfulness", "relevancy")


def cited_contexts(record: Mapping[str, Any]) -> list[str]:
    """The texts a record's draft cites: its passages' full text when the run kept them, else the quotes."""
    draft = record.get("draft") or {}
    texts = {p.get("chunk_id"): p.get("text") or "" for p in record.get("passages") or []}
    out: list[str] = []
    for citation in draft.get("citations") or []:
        text = texts.get(citation.get("chunk_id")) or citation.get("quote") or ""
        if text and text not in out:
            out.append(text)
    return out


def judge_records(records: Sequence[dict[str, Any]], llm: LLM, *, progress: bool = True) -> int:
    """Add ``record["judges"]`` to each record with a covered, cited draft; return how many were judged."""
    from llama_index.core.evaluation import FaithfulnessEvaluator, RelevancyEvaluator

    evaluators = {"faithfulness": FaithfulnessEvaluator(llm=llm), "relevancy": RelevancyEvaluator(llm=llm)}
    covered = [r for r in records if (r.get("draft") or {}).get("covered")]
    todo = [(r, contexts) for r in covered if (contexts := cited_contexts(r))]
    for record, contexts in tqdm(todo, desc="judges", unit="q", disable=not progress):
        question, reply = record["question"], record["draft"]["text"]
        verdicts: dict[str, Any] = {}
        for name, evaluator in evaluators.items():
            try:
                result = evaluator.evaluate(query=question, response=reply, contexts=contexts)
                verdicts[name] = {"passing": bool(result.passing), "feedback": (result.feedback or "")[:500]}
            except Exception as exc:  # a judge that fails is recorded, not fatal to the run
                verdicts[name] = {"passing": None, "error": " ".join(str(exc).split())[:300]}
        record["judges"] = verdicts
    return len(todo)


def judge_metrics(records: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Pass rate of each judge over the drafts it could judge; None when nothing was judged."""
    judged = [r["judges"] for r in records if isinstance(r.get("judges"), Mapping)]
    if not judged:
        return None
    out: dict[str, Any] = {"judged": len(judged)}
    for name in JUDGES:
        verdicts = [j[name]["passing"] for j in judged if name in j and j[name].get("passing") is not None]
        out[name] = round(sum(verdicts) / len(verdicts), 4) if verdicts else None
        out[f"{name}_errors"] = sum(1 for j in judged if name in j and j[name].get("passing") is None)
    return out
