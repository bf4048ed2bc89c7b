"""``sopilot lint [KB_DIR]``: structure and front matter checks for SOP authors, CI and pre-commit hooks.

Exit codes: 0 no finding at or above ``--fail-on`` (default: error), 1 there are such findings, 2 the KB folder or
the lint config cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from sopilot.cli.common import print_json

FAIL_ON = ("error", "warning", "info", "never")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lint", help="check SOPs: front matter, sections, steps, links, duplicates")
    p.add_argument("kb_dir", nargs="?", type=Path, help="KB folder (default: SOPILOT_KB_DIR or kb/)")
    p.add_argument("--config", type=Path, help="lint config (default: KB_DIR/.sopilot-lint.toml when it exists)")
    p.add_argument(
        "--fail-on", choices=FAIL_ON, default="error", help="exit 1 at findings this severe (default: error)"
    )
    p.add_argument("--today", type=date.fromisoformat, help="the date to check review dates against (YYYY-MM-DD)")
    p.add_argument("--rules", action="store_true", help="list the rules and exit")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sopilot.author.findings import RULES, Level
    from sopilot.author.lint import lint_kb
    from sopilot.author.lint_config import load_lint_config
    from sopilot.cli.common import load_settings
    from sopilot.core.errors import ConfigError

    if args.rules:
        for rule in RULES.values():
            print(f"{rule.id:28} {rule.level.value:8} {rule.checks}")
        return 0
    kb_dir = args.kb_dir or load_settings(args).kb_dir
    if not kb_dir.is_dir():
        raise ConfigError(f"KB folder {kb_dir} does not exist: give the folder of your SOPs (sopilot lint DIR)")
    config = load_lint_config(kb_dir, args.config)
    report = lint_kb(kb_dir, config, args.today or date.today())
    failing = [] if args.fail_on == "never" else report.at_least(Level(args.fail_on))
    if args.json:
        print_json({**report.to_dict(), "config": config.source, "fail_on": args.fail_on, "failed": bool(failing)})
    else:
        for finding in report.findings:
            print(finding)
        counts = ", ".join(f"{rule} {n}" for rule, n in report.counts().items()) or "no findings"
        print(
            f"{report.files} files, {len(report.findings)} findings ({counts}); config: {config.source}",
            file=sys.stderr,
        )
    return 1 if failing else 0
