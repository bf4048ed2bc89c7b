"""``sopilot ingest``: sync the KB folder into the index."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sopilot.cli.common import add_common, load_embedder, load_settings, print_json, quiet_libraries

if TYPE_CHECKING:
    from sopilot.core.settings import Settings
    from sopilot.ingest.sync import IngestReport


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="index the KB: embed what changed, remove what vanished")
    p.add_argument("kb_dir", nargs="?", type=Path, help="KB folder (same as --kb)")
    p.add_argument("--rebuild", action="store_true", help="drop the index and build it again (new embedder)")
    p.add_argument(
        "--watch",
        action="store_true",
        help="keep running: re-index each SOP file seconds after it is saved (Ctrl-C stops)",
    )
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sopilot.ingest.run import run_ingest

    if args.kb_dir is not None:
        args.kb = args.kb_dir
    settings = load_settings(args)
    quiet_libraries()
    embedder = load_embedder(settings)
    if args.watch:
        if args.rebuild:
            run_ingest(settings, embedder, rebuild=True, progress=not args.quiet)
        return watch(settings, embedder, as_json=args.json)
    report = run_ingest(settings, embedder, rebuild=args.rebuild, progress=not args.quiet)
    print_report(report, as_json=args.json)
    return 0 if report.ok else 1


def print_report(
    report: IngestReport, *, as_json: bool, changes: Sequence[tuple[str, str]] = (), one_line: bool = False
) -> None:
    for problem in report.problems:
        print(problem, file=sys.stderr)
    if as_json:
        data = report.to_dict()
        if changes:
            data["changes"] = [{"change": verb, "path": path} for verb, path in changes]
        if one_line:  # watch mode: one line per sync, a stream to read
            print(json.dumps(data, default=str), flush=True)
        else:
            print_json(data)
        return
    for verb, path in changes:
        print(f"{verb}: {path}")
    print(
        f"{report.files} files, {report.sections} sections, {report.chunks} chunks: "
        f"{report.added} added, {report.updated} updated, {report.removed} removed, "
        f"{report.unchanged} unchanged in {report.seconds:.2f}s"
        + (f"; {len(report.problems)} problem(s) reported above" if report.problems else ""),
        flush=True,
    )


def watch(settings: Settings, embedder: Any, *, as_json: bool) -> int:
    """Sync, then sync again after every batch of saved files until interrupted."""
    from sopilot.ingest.watch import watch_kb

    def ready(report: IngestReport) -> None:
        print_report(report, as_json=as_json, one_line=True)
        print(f"watching {settings.kb_dir} for saved SOP files (Ctrl-C stops)", file=sys.stderr, flush=True)

    batches = watch_kb(settings, embedder, ready=ready)
    try:
        for batch in batches:
            if not as_json:
                print(time.strftime("%H:%M:%S"), end=" ")
            print_report(batch.report, as_json=as_json, changes=batch.changes, one_line=True)
    except KeyboardInterrupt:  # the way to stop watching; a sync cut short is repaired by the next run
        print("stopped watching", file=sys.stderr)
    finally:
        batches.close()
    return 0
