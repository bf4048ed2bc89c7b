"""``sopilot report conflicts``: near-duplicate and contradicting sections across SOPs, side by side.

Reads the section vectors the index already holds (``sopilot ingest`` first); embeds nothing.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any

from sopilot.cli.common import add_common, load_embedder, load_settings, print_json, quiet_libraries

COLUMN = 58


def register(reports: argparse._SubParsersAction) -> None:
    p = reports.add_parser("conflicts", help="near-duplicate and contradicting sections across SOPs")
    p.add_argument("--show", choices=("all", "duplicates", "contradictions"), default="all")
    p.add_argument("--min-similarity", type=float, default=None, help="cosine below which sections are not compared")
    p.add_argument("--limit", type=int, default=50, help="pairs shown per list (default 50)")
    p.add_argument("--fail", action="store_true", help="exit 1 when a contradiction is found (for CI)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sopilot.author.conflicts import ConflictParams, find_conflicts
    from sopilot.author.similar import sections_from
    from sopilot.index.store import VectorStore, make_client

    settings = load_settings(args)
    quiet_libraries()
    embedder = load_embedder(settings)  # its name and dimension only: no weights are loaded
    store = VectorStore.open(
        make_client(settings), settings.collection, embedder.name, embedder.dimension, create=False
    )
    params = ConflictParams()
    if args.min_similarity is not None:
        params = ConflictParams(min_similarity=args.min_similarity)
    sections, vectors = sections_from(store.iter_vectors())
    report = find_conflicts(sections, vectors, params)
    if args.show == "duplicates":
        report.contradictions = []
    if args.show == "contradictions":
        report.duplicates = []
    if args.json:
        print_json(report.to_dict())
    else:
        _print(report, args.limit)
    return 1 if args.fail and report.contradictions else 0


def _print(report: Any, limit: int) -> None:
    for title, pairs in (("NEAR-DUPLICATE", report.duplicates), ("CONTRADICTION", report.contradictions)):
        for n, pair in enumerate(pairs[:limit], 1):
            print(f"{title} {n}: similarity {pair.similarity:.2f}, shared wording {pair.overlap:.0%}")
            for clash in pair.clashes:
                print(f"  {clash.kind}: {clash.a.text!r} vs {clash.b.text!r}")
            print(_side_by_side(pair))
            print()
    print(
        f"{report.sections} sections, {report.compared} similar pairs compared: "
        f"{len(report.duplicates)} near-duplicate, {len(report.contradictions)} contradicting",
        file=sys.stderr,
    )


def _side_by_side(pair: Any) -> str:
    """Both passages in two columns, their locations on top, the lines with clashing facts marked with >."""

    def column(section: Any, lines: set[int]) -> list[str]:
        out = [f"{section.path}:{section.start_line}", f"#{section.anchor}" if section.anchor else "", "-" * COLUMN]
        for number, line in enumerate(section.text.splitlines()[:40]):
            mark = "> " if number in lines else "  "
            out.extend(textwrap.wrap(line, COLUMN - 2, initial_indent=mark, subsequent_indent="  ") or [""])
        return out

    left = column(pair.a, {c.a.line for c in pair.clashes})
    right = column(pair.b, {c.b.line for c in pair.clashes})
    rows = max(len(left), len(right))
    left += [""] * (rows - len(left))
    right += [""] * (rows - len(right))
    return "\n".join(f"{a:<{COLUMN}} | {b}" for a, b in zip(left, right, strict=True))
