"""``sopilot eval run``: ingest when needed, answer every question, score, report, with peers beside."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from sopilot.core.settings import Settings
from sopilot.eval.metrics import compute_metrics
from sopilot.eval.report import write_reports
from sopilot.eval.runner import Answer, RunInfo, SearchFn, resolve_relevant, run_questions, write_run
from sopilot.eval.testset import load_testset, select_half
from sopilot.index.embedder import Embedder
from sopilot.ingest.run import run_ingest
from sopilot.retrieval.search import open_retriever

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.json"
DEFAULT_K = 10


def sopilot_search(
    settings: Settings, embedder: Embedder, *, draft: bool = True, tone: Literal["user", "internal"] = "user"
) -> SearchFn:
    """The agents' path, as a plain function of (question, k, filters): search, then the draft."""
    from sopilot.draft.factory import open_drafter
    from sopilot.draft.rewrite import open_rewriter
    from sopilot.ingest.run import current_kb_version

    retriever = open_retriever(settings, embedder, rewriter=open_rewriter(settings))
    drafter = (
        open_drafter(settings, retriever.store, tone=tone, kb_version=current_kb_version(settings), embedder=embedder)
        if draft
        else None
    )

    def search(question: str, k: int, filters: dict[str, Any]) -> Answer:
        result = retriever.search(question, k=k, filters=filters or None)
        reply = drafter.draft(question, result).to_dict() if drafter is not None else None
        return result.passages, result.covered, result.reason, reply

    return search


def evaluate(
    settings: Settings,
    embedder: Embedder,
    testset: Path,
    out_dir: Path,
    *,
    k: int = DEFAULT_K,
    peers: tuple[str, ...] = (),
    tone: Literal["user", "internal"] = "user",
    judge: bool = False,
    progress: bool = True,
    half: str = "all",
) -> dict[str, Any]:
    """Run the test set; write run.jsonl, metrics.json and the reports; return the metrics.

    ``judge`` adds llama-index's language-model judges of the drafts (``sopilot.eval.judges``), with the model of the
    ``SOPILOT_LLM_*`` settings. ``half`` keeps the dev or the test half of the questions (``half_of``).
    """
    questions = select_half(load_testset(testset), half)  # a malformed line stops here, before any work
    relevant = resolve_relevant(questions, settings.kb_dir)
    report = run_ingest(settings, embedder, progress=progress)
    if report.problems:
        log.warning("ingest reported %d problem(s); evaluating what was indexed", len(report.problems))
    records = run_questions(
        questions, relevant, sopilot_search(settings, embedder, tone=tone), k, progress=progress, desc="sopilot"
    )
    extra: dict[str, Any] = {"embedder": embedder.name, "kb_version": report.kb_version, "chunks": report.chunks}
    extra["drafter"] = settings.drafter
    extra["half"] = half
    if judge:
        from sopilot.draft.llm import describe_llm, load_llm
        from sopilot.eval.judges import judge_records

        judge_records(records, load_llm(settings), progress=progress)
        extra["judge_model"] = describe_llm(settings)
    write_run(out_dir, records, RunInfo("sopilot", str(testset), str(settings.kb_dir), k, extra))
    metrics = compute_metrics(records)
    if judge:
        from sopilot.eval.judges import judge_metrics

        metrics["judges"] = judge_metrics(records)
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    systems = {"sopilot": metrics}
    for name in peers:
        systems[name] = _run_peer(name, settings, embedder, questions, relevant, out_dir, k, progress)
    write_reports(out_dir, records, systems, f"SOPilot evaluation: {testset.name}")
    return metrics


def _run_peer(
    name: str,
    settings: Settings,
    embedder: Embedder,
    questions: list[Any],
    relevant: dict[str, Any],
    out_dir: Path,
    k: int,
    progress: bool,
) -> dict[str, Any]:
    from sopilot.eval.peers import build_peer

    peer_dir = out_dir / "peers" / name
    peer = build_peer(
        name, settings.kb_dir, peer_dir / "index", embedder_name=embedder.name, ignore=tuple(settings.ignore)
    )
    records = run_questions(questions, relevant, peer.search, k, progress=progress, desc=name)
    write_run(peer_dir, records, RunInfo(name, "", str(settings.kb_dir), k, {}))
    metrics = compute_metrics(records)
    (peer_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return metrics
