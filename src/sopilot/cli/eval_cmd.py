"""``sopilot eval``: check test sets, run evaluations, compare runs, run BEIR benchmarks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sopilot.cli.common import add_common, load_embedder, load_settings, print_json, quiet_libraries

PEERS = ("llamaindex", "bm25")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="test sets, evaluation runs, comparisons and benchmarks")
    group = p.add_subparsers(dest="eval_command", metavar="EVAL_COMMAND", required=True)

    check = group.add_parser("check", help="check every question's path and heading against the KB files")
    check.add_argument("testset", type=Path, help="test set (JSONL)")
    check.add_argument("--kb", type=Path, metavar="DIR", help="KB folder (default: SOPILOT_KB_DIR or kb/)")
    check.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    check.set_defaults(func=run_check)

    run = group.add_parser("run", help="answer every question of a test set; write run, metrics, reports")
    run.add_argument("testset", type=Path, help="test set (JSONL)")
    run.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="folder for the run's files")
    run.add_argument("-k", type=int, default=10, help="passages kept per question (default 10)")
    run.add_argument(
        "--peers",
        default="",
        metavar="NAMES",
        help=f"comma-separated peer pipelines to run beside SOPilot: {', '.join(PEERS)} (or 'all')",
    )
    run.add_argument("--tone", choices=["user", "internal"], default="user", help="tone of the drafted replies")
    run.add_argument(
        "--half",
        choices=["all", "dev", "test"],
        default="all",
        help="questions of one half only: dev (study and debug on it) or test (only score it); fixed by question id",
    )
    run.add_argument(
        "--drafter", choices=["extractive", "llm"], default=None, help="drafter of the replies (default: settings)"
    )
    run.add_argument(
        "--judge",
        action="store_true",
        help="also score drafts with llama-index's language-model judges (faithfulness, relevancy; SOPILOT_LLM_*)",
    )
    add_common(run)
    run.set_defaults(func=run_eval)

    comp = group.add_parser("compare", help="metric deltas and flipped questions of run B against run A")
    comp.add_argument("run_a", type=Path, help="baseline run folder")
    comp.add_argument("run_b", type=Path, help="new run folder")
    comp.add_argument("--max-drop", type=float, default=0.02, help="tolerated drop of a headline metric")
    comp.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    comp.set_defaults(func=run_compare)

    cal = group.add_parser("calibrate", help="coverage thresholds from runs that hold unanswerable questions")
    cal.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR", help="run folders (coverage decision off)")
    cal.add_argument("--max-false", type=float, default=0.10, help="tolerated share of answerable flagged")
    cal.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    cal.set_defaults(func=run_calibrate)

    impact = group.add_parser(
        "impact", help="answers that change between the KB at a git ref and the working tree (for SOP PRs)"
    )
    impact.add_argument("testset", type=Path, help="test set (JSONL): the questions to answer on both")
    impact.add_argument("--base", required=True, metavar="REF", help="git ref of the KB to compare with, e.g. main")
    impact.add_argument("-k", type=int, default=5, help="passages searched per question (default 5)")
    impact.add_argument("--fail-on-change", action="store_true", help="exit 1 when any answer changes (for CI)")
    add_common(impact)
    impact.set_defaults(func=run_impact)

    beir = group.add_parser("beir", help="score retrieval on a BEIR data set (corpus, queries, qrels/test.tsv)")
    beir.add_argument("folder", type=Path, help="BEIR data set folder")
    add_common(beir)
    beir.set_defaults(func=run_beir_cmd)


def run_check(args: argparse.Namespace) -> int:
    from sopilot.eval.testset import check_mapping, load_testset

    settings = load_settings(args)
    questions = load_testset(args.testset)
    problems = check_mapping(questions, settings.kb_dir)
    answerable = sum(q.answerable for q in questions)
    if args.json:
        print_json({"questions": len(questions), "answerable": answerable, "problems": problems})
    else:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(
            f"{len(questions)} questions ({answerable} answerable, {len(questions) - answerable} not): "
            + ("every path and heading found" if not problems else f"{len(problems)} mapping problem(s)")
        )
    return 1 if problems else 0


def run_eval(args: argparse.Namespace) -> int:
    from sopilot.eval.evaluate import evaluate
    from sopilot.eval.testset import load_testset

    load_testset(args.testset)  # malformed lines stop the run before the model loads
    peers = PEERS if args.peers == "all" else tuple(p for p in args.peers.split(",") if p)
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        print(f"error: unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}", file=sys.stderr)
        return 2
    settings = load_settings(args)
    if args.drafter:
        settings = settings.model_copy(update={"drafter": args.drafter})
    quiet_libraries()
    metrics = evaluate(
        settings,
        load_embedder(settings),
        args.testset,
        args.out,
        k=args.k,
        peers=peers,
        tone=args.tone,
        judge=args.judge,
        progress=not args.quiet,
        half=args.half,
    )
    if args.json:
        print_json(metrics)
    else:
        section, sop = metrics["retrieval"]["section"], metrics["retrieval"]["sop"]
        print(
            f"{metrics['questions']} questions: section hit@1 {section['hit@1']:.3f}, "
            f"hit@5 {section['hit@5']:.3f}, "
            f"MRR@10 {section['mrr@10']:.3f}; SOP hit@5 {sop['hit@5']:.3f}; "
            f"latency p50 {metrics['latency_ms']['p50']:.1f} ms\nreport: {args.out / 'report.html'}"
        )
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from sopilot.eval.compare import compare_runs, format_comparison
    from sopilot.eval.runner import read_run

    records_a, _ = read_run(args.run_a)
    records_b, _ = read_run(args.run_b)
    result = compare_runs(records_a, records_b, max_drop=args.max_drop)
    if args.json:
        print_json(
            {
                "deltas": [dict(zip(("metric", "a", "b", "delta"), d, strict=True)) for d in result.deltas],
                "lost": result.lost,
                "gained": result.gained,
                "regressions": result.regressions,
                "ok": result.ok,
            }
        )
    else:
        print(format_comparison(result, str(args.run_a), str(args.run_b)))
    return 0 if result.ok else 1


def run_calibrate(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from sopilot.eval.calibrate import calibrate, calibrate_probability
    from sopilot.eval.runner import read_run

    records = [r for run in args.runs for r in read_run(run)[0]]
    model = calibrate_probability(records, max_false=args.max_false)
    if model is not None:  # runs made with the answerability model: its threshold is what to set
        if args.json:
            print_json(asdict(model))
        else:
            print(
                f"{model.unanswerable} unanswerable, {model.answerable} answerable questions (answerability "
                f"model): {model.abstention_recall:.0%} flagged, {model.false_abstention_rate:.0%} of answerable "
                f"flagged\nSOPILOT_COVERED_MIN_PROBABILITY={model.min_probability}"
            )
        return 0
    result = calibrate(records, max_false=args.max_false)
    if args.json:
        print_json(asdict(result))
    else:
        print(
            f"{result.unanswerable} unanswerable, {result.answerable} answerable questions: "
            f"{result.abstention_recall:.0%} flagged, {result.false_abstention_rate:.0%} of answerable flagged\n"
            f"SOPILOT_COVERED_MIN_DENSE={result.min_dense}\nSOPILOT_COVERED_MIN_TERMS={result.min_terms}\n"
            f"SOPILOT_COVERED_MIN_UNKNOWN={result.min_unknown}"
        )
    return 0


def run_beir_cmd(args: argparse.Namespace) -> int:
    from sopilot.eval.beir import beir_settings, run_beir

    bench = beir_settings(args.folder, load_settings(args))
    quiet_libraries()
    scores = run_beir(args.folder, bench, load_embedder(bench), progress=not args.quiet)
    if args.json:
        print_json(scores)
    else:
        print(json.dumps(scores, indent=2))
    return 0


def run_impact(args: argparse.Namespace) -> int:
    from sopilot.eval.impact import impact_markdown, preview_impact
    from sopilot.eval.testset import load_testset

    settings = load_settings(args)
    questions = load_testset(args.testset)
    quiet_libraries()
    embedder = load_embedder(settings)

    def progress(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    impact = preview_impact(settings, embedder, questions, args.base, k=args.k, progress=progress)
    if args.json:
        print_json(impact.to_dict())
    else:
        print(impact_markdown(impact))
    return 1 if args.fail_on_change and impact.changed else 0
