"""``sopilot ingest``: sync the KB folder into the index."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sopilot.cli.common import add_common, load_embedder, load_settings, print_json, quiet_libraries


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="index the KB: embed what changed, remove what vanished")
    p.add_argument("kb_dir", nargs="?", type=Path, help="KB folder (same as --kb)")
    p.add_argument("--rebuild", action="store_true", help="drop the index and build it again (new embedder)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sopilot.ingest.run import run_ingest

    if args.kb_dir is not None:
        args.kb = args.kb_dir
    settings = load_settings(args)
    quiet_libraries()
    embedder = load_embedder(settings)
    report = run_ingest(settings, embedder, rebuild=args.rebuild, progress=not args.quiet)
    for problem in report.problems:
        print(problem, file=sys.stderr)
    if args.json:
        print_json(report.to_dict())
    else:
        print(
            f"{report.files} files, {report.sections} sections, {report.chunks} chunks: "
            f"{report.added} added, {report.updated} updated, {report.removed} removed, "
            f"{report.unchanged} unchanged in {report.seconds:.2f}s"
            + (f"; {len(report.problems)} problem(s) reported above" if report.problems else "")
        )
    return 0 if report.ok else 1
