"""Entry point of the ``sopilot`` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from sopilot import __version__
from sopilot.cli import (
    ask_cmd,
    eval_cmd,
    ingest_cmd,
    keys_cmd,
    lint_cmd,
    reindex_cmd,
    report_cmd,
    search_cmd,
    serve_cmd,
    train_cmd,
)
from sopilot.core.errors import SopilotError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sopilot", description="SOP knowledge base with AI-assisted answering for support teams."
    )
    parser.add_argument("--version", action="version", version=f"sopilot {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (
        ingest_cmd,
        search_cmd,
        ask_cmd,
        serve_cmd,
        keys_cmd,
        reindex_cmd,
        eval_cmd,
        train_cmd,
        lint_cmd,
        report_cmd,
    ):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args))
    except SopilotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the next run repairs a partial index", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
