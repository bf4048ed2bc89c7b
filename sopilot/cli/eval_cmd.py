"""``sopilot eval``: work with test sets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sopilot.cli.common import load_settings, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="test sets, evaluation runs and reports")
    group = p.add_subparsers(dest="eval_command", metavar="EVAL_COMMAND", required=True)
    check = group.add_parser("check", help="check every question's path and heading against the KB files")
    check.add_argument("testset", type=Path, help="test set (JSONL)")
    check.add_argument("--kb", type=Path, metavar="DIR", help="KB folder (default: SOPILOT_KB_DIR or kb/)")
    check.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    from eval.testset import check_mapping, load_testset

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
