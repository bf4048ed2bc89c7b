"""``sopilot train``: learn from the KB what ranking and coverage need, and record it in the index folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from sopilot.cli.common import add_common, load_embedder, load_settings, print_json, quiet_libraries
from sopilot.core.errors import ConfigError
from sopilot.train.record import STEPS, parse_steps


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="learn from the KB (embedder, answerability model); record it in train.json")
    p.add_argument(
        "--steps",
        default=",".join(STEPS),
        help=f"comma-separated steps to run, in their fixed order (default and all: {','.join(STEPS)})",
    )
    p.add_argument("--epochs", type=int, default=2, help="passes over the mined questions (embedder step)")
    p.add_argument("--max-pairs", type=int, default=4000, help="mined questions at most (embedder step)")
    p.add_argument(
        "--written",
        type=int,
        default=0,
        metavar="N",
        help="the configured language model (SOPILOT_LLM_*) writes a question for each of N sections, cached in "
        "the index folder (embedder step; default 0: none)",
    )
    p.add_argument(
        "--questions",
        type=Path,
        metavar="FILE",
        help="also learn from a JSONL file of graded questions in users' words (the test-set format: question, "
        "relevant); never one you evaluate on (embedder step)",
    )
    p.add_argument(
        "--from-feedback",
        action="store_true",
        help="also learn from the answers agents accepted or sent edited, by the query log (embedder step)",
    )
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sopilot.train.embedder import EmbedderTraining
    from sopilot.train.pipeline import run_training

    steps = parse_steps(args.steps)  # before any model loads
    if args.questions is not None and not args.questions.is_file():
        raise ConfigError(
            f"--questions {args.questions}: no such file; give a JSONL file of questions and their sections"
        )
    settings = load_settings(args)
    quiet_libraries()
    record, path = run_training(
        settings,
        load_embedder(settings),
        steps,
        open_embedder=load_embedder,
        plan=EmbedderTraining(
            max_pairs=args.max_pairs,
            epochs=args.epochs,
            written=args.written,
            questions=str(args.questions) if args.questions else None,
            feedback=args.from_feedback,
        ),
        progress=not args.quiet,
    )
    if args.json:
        print_json({"record": str(path), **record.__dict__})
        return 0
    for name, figures in record.steps.items():
        shown = ", ".join(f"{k} {v}" for k, v in figures.items() if not isinstance(v, dict | list))
        print(f"{name}: {shown}")
    print(f"trained in {record.seconds:.0f}s (load average {record.load_average}); record: {path}")
    if record.use:
        print(f"{record.use}; a running `sopilot serve` uses it after a restart")
    return 0
