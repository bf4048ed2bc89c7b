"""``sopilot report stale``: SOPs past their review date, most overdue first (read from the files)."""

from __future__ import annotations

import argparse
import sys
from datetime import date

from sopilot.cli.common import add_common, load_settings, print_json


def register(reports: argparse._SubParsersAction) -> None:
    p = reports.add_parser("stale", help="SOPs whose last_reviewed + review_every_days is before today")
    p.add_argument("--today", type=date.fromisoformat, help="the date to measure against (YYYY-MM-DD)")
    p.add_argument("--fail", action="store_true", help="exit 1 when any SOP is overdue (for CI)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sopilot.author.kb_files import load_kb
    from sopilot.author.stale import stale_sops, without_dates
    from sopilot.core.errors import ConfigError

    settings = load_settings(args)
    if not settings.kb_dir.is_dir():
        raise ConfigError(f"KB folder {settings.kb_dir} does not exist: pass --kb DIR or set SOPILOT_KB_DIR")
    today = args.today or date.today()
    files, _ = load_kb(settings.kb_dir, tuple(settings.ignore), settings.max_file_bytes)
    stale = stale_sops(files, today)
    undated = without_dates(files)
    if args.json:
        print_json({"today": today.isoformat(), "overdue": [s.to_dict() for s in stale], "no_review_dates": undated})
    else:
        if stale:
            print(f"{'days over':>9}  {'due':10}  {'owner':22} path")
        for s in stale:
            print(f"{s.days_overdue:>9}  {s.due.isoformat()}  {s.owner[:22]:22} {s.path}  ({s.sop_id}, {s.status})")
        print(
            f"{len(stale)} of {len(files)} SOPs overdue on {today}; {len(undated)} give no review date or period",
            file=sys.stderr,
        )
    return 1 if args.fail and stale else 0
