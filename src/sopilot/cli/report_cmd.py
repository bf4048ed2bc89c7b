"""``sopilot report``: what the query log says about the KB (gaps, section health, the daily report), and
reports read from the KB itself (stale reviews, conflicting sections), each registered from its own module."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sopilot.cli import report_conflicts, report_stale
from sopilot.cli.common import add_common, load_embedder, load_settings, print_json, quiet_libraries

# Reports in their own modules: each has ``register(group)``; add one by writing cli/report_<name>.py.
REPORTS = (report_stale, report_conflicts)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="reports for SOP authors from the query log: gaps, section health, daily")
    group = p.add_subparsers(dest="report_command", metavar="REPORT_COMMAND", required=True)

    gaps = group.add_parser("gaps", help="questions answered badly or not at all, clustered, with what to write")
    _add_window(gaps)
    gaps.add_argument(
        "--threshold", type=float, default=0.45, help="cosine distance at which clusters stop merging (0.45)"
    )
    gaps.add_argument("--min-size", type=int, default=1, help="smallest cluster shown (default 1)")
    add_common(gaps)
    gaps.set_defaults(func=run_gaps)

    health = group.add_parser("health", help="per SOP section: times cited, accept/edit/reject rates, worst first")
    _add_window(health)
    health.add_argument("--min-judged", type=int, default=3, help="verdicts a section needs to be ranked (3)")
    health.add_argument("--limit", type=int, default=20, help="sections shown (default 20)")
    add_common(health)
    health.set_defaults(func=run_health)

    daily = group.add_parser("daily", help="one day of questions: volume, coverage, topics, gaps, stale, worst, slow")
    daily.add_argument("--date", type=_date, metavar="YYYY-MM-DD", help="the day (UTC; default today)")
    daily.add_argument("--out", type=Path, metavar="DIR", help="folder for report.md, report.html and plots")
    daily.add_argument("--threshold", type=float, default=0.45, help="gap clusters' distance threshold (0.45)")
    daily.add_argument(
        "--new-days",
        type=int,
        metavar="N",
        help="a gap is new when none of its questions was a gap in the N days before (SOPILOT_NEW_GAP_DAYS, 7)",
    )
    add_common(daily)
    daily.set_defaults(func=run_daily)

    for module in REPORTS:
        module.register(group)


def _add_window(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", type=_date, metavar="YYYY-MM-DD", help="first day (UTC) of the log to read")
    p.add_argument("--until", type=_date, metavar="YYYY-MM-DD", help="last day (UTC) of the log to read")
    p.add_argument("--days", type=int, default=None, help="the last N days (default: the whole log)")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; write it as YYYY-MM-DD") from None


def window(args: argparse.Namespace) -> tuple[float | None, float | None]:
    """Seconds since the epoch: the start of ``--since`` (or ``--days`` ago) and the end of ``--until``."""
    since = until = None
    if args.since:
        since = datetime.combine(args.since, datetime.min.time(), UTC).timestamp()
    elif args.days:
        since = (datetime.now(UTC) - timedelta(days=args.days)).timestamp()
    if args.until:
        until = datetime.combine(args.until + timedelta(days=1), datetime.min.time(), UTC).timestamp()
    return since, until


def _open_log(settings: Any) -> Any:
    from sopilot.core.errors import IndexNotFoundError
    from sopilot.index.querylog import QueryLog, querylog_path

    path = querylog_path(settings.index_dir)
    if not path.is_file():
        raise IndexNotFoundError(
            f"no query log at {path}; it is written by the API's /v1/answer (or run benchmarks/simulate_day.py)"
        )
    return QueryLog(path)


def run_gaps(args: argparse.Namespace) -> int:
    from sopilot.author.gaps import GapParams, find_gaps
    from sopilot.index.embedder import covered_min_dense_for
    from sopilot.index.store import VectorStore, make_client

    settings = load_settings(args)
    log = _open_log(settings)
    since, until = window(args)
    quiet_libraries()
    embedder = load_embedder(settings)
    store = VectorStore.open(
        make_client(settings), settings.collection, embedder.name, embedder.dimension, create=False
    )
    params = GapParams(
        distance_threshold=args.threshold, weak_below=covered_min_dense_for(settings), min_size=args.min_size
    )
    clusters = find_gaps(log.queries(since, until), log.latest_verdicts(), embedder, store, params)
    if args.json:
        print_json({"clusters": [c.to_dict() for c in clusters]})
        return 0
    print(gaps_markdown(clusters))
    return 0


def gaps_markdown(clusters: list[Any]) -> str:
    if not clusters:
        return "No gaps: every logged question was covered and no draft was rejected."
    lines = [f"{len(clusters)} gap cluster(s), {sum(c.size for c in clusters)} question(s)", ""]
    for n, c in enumerate(clusters, 1):
        why = ", ".join(f"{k} {v}" for k, v in sorted(c.reasons.items()))
        lines.append(f"## {n}. {c.representatives[0]}  ({c.size} question(s): {why})")
        lines += [f"- {q}" for q in c.representatives]
        near = c.nearest
        if near is not None:
            lines.append(
                f"Nearest section: {' > '.join(near.heading_path)} ({near.link}, similarity {near.similarity:.2f})"
            )
        if c.suggestion == "extend" and near is not None:
            lines.append(f"Suggestion: extend {near.link} to answer these questions.")
        else:
            lines += ["Suggestion: write a new SOP. Front matter to start from:", "", "```yaml", c.stub.rstrip(), "```"]
        lines.append("")
    return "\n".join(lines).rstrip()


def run_health(args: argparse.Namespace) -> int:
    from sopilot.author.health import section_health

    settings = load_settings(args)
    log = _open_log(settings)
    since, until = window(args)
    sections = section_health(log.queries(since, until), log.latest_verdicts(), min_judged=args.min_judged)
    shown = sections[: args.limit]
    if args.json:
        print_json({"sections": [s.to_dict() for s in shown], "ranked": len(sections)})
        return 0
    if not shown:
        print(f"No section has {args.min_judged} or more verdicts in this window.", file=sys.stderr)
        return 0
    print(f"{'reject':>6} {'edit':>5} {'accept':>6} {'judged':>6} {'cited':>5}  section")
    for s in shown:
        print(
            f"{s.rate('rejected'):>6.0%} {s.rate('edited'):>5.0%} {s.rate('accepted'):>6.0%} "
            f"{s.judged:>6} {s.cited:>5}  {' > '.join(s.heading_path) or s.path}  ({s.link})"
        )
    return 0


def run_daily(args: argparse.Namespace) -> int:
    from sopilot.author.daily import daily_report, write_daily
    from sopilot.author.gaps import GapParams
    from sopilot.index.embedder import covered_min_dense_for
    from sopilot.index.store import VectorStore, make_client

    settings = load_settings(args)
    log = _open_log(settings)
    day = args.date or datetime.now(UTC).date()
    quiet_libraries()
    embedder = load_embedder(settings)
    store = VectorStore.open(
        make_client(settings), settings.collection, embedder.name, embedder.dimension, create=False
    )
    params = GapParams(distance_threshold=args.threshold, weak_below=covered_min_dense_for(settings))
    report = daily_report(
        log,
        day,
        embedder,
        store,
        settings.kb_dir,
        ignore=tuple(settings.ignore),
        max_file_bytes=settings.max_file_bytes,
        gap_params=params,
        new_gap_days=settings.new_gap_days if args.new_days is None else max(args.new_days, 0),
    )
    out = args.out or settings.index_dir / "reports" / f"daily-{day.isoformat()}"
    written = write_daily(report, out)
    if args.json:
        print_json({**report.to_dict(), "files": {k: str(v) for k, v in written.items()}})
        return 0
    print(
        f"{report.questions} questions on {day}: written to {written['report.md']} and {written['report.html']}",
        file=sys.stderr,
    )
    print((out / "report.md").read_text(encoding="utf-8"))
    return 0
