"""``sopilot search``: ranked SOP passages for a question, with a coverage decision."""

from __future__ import annotations

import argparse
import re
import textwrap
from typing import Any

from sopilot.cli.common import add_common, load_embedder, load_settings, print_json, quiet_libraries

BOLD, RESET = "\033[1m", "\033[0m"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="find the SOP sections that answer a question")
    p.add_argument("query", help="the user's question, as they wrote it")
    p.add_argument("-k", type=int, default=None, help="number of passages (1-100, default 5)")
    add_filter_args(p)
    add_server_arg(p)
    add_common(p)
    p.set_defaults(func=run)


def add_server_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--server", metavar="URL", help="ask a running `sopilot serve` instead (key from SOPILOT_SERVER_KEY)"
    )


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    """The API request for these arguments (filters under the API's names)."""
    body: dict[str, Any] = {"query": args.query, "filters": filters_from(args)}
    if args.k is not None:
        body["k"] = args.k
    return body


def add_filter_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--team", action="append", help="only SOPs owned by this team (repeatable)")
    p.add_argument("--tag", action="append", help="only SOPs with this tag (repeatable: any of them)")
    p.add_argument("--product", action="append", help="only SOPs about this product (repeatable)")
    p.add_argument("--status", action="append", help="active (default), draft, deprecated or all (repeatable)")


def filters_from(args: argparse.Namespace) -> dict[str, Any]:
    raw = {"team": args.team, "tags": args.tag, "product": args.product, "status": args.status}
    return {name: values for name, values in raw.items() if values}


def highlight(text: str, terms: list[str], on: str, off: str) -> str:
    """Mark the question's words (and their stems) in a snippet."""
    if not terms:
        return text
    pattern = re.compile(r"\b(" + "|".join(re.escape(t[:5]) for t in terms) + r")\w*", re.IGNORECASE)
    return pattern.sub(lambda m: f"{on}{m.group(0)}{off}", text)


def snippet(text: str, terms: list[str], width: int = 320) -> str:
    """The part of a passage around the first question word, on one line."""
    flat = " ".join(text.split())
    lower = flat.lower()
    hits = [lower.find(t[:5]) for t in terms if lower.find(t[:5]) >= 0]
    start = max(min(hits) - 60, 0) if hits else 0
    cut = flat[start : start + width]
    return ("… " if start else "") + cut + (" …" if start + width < len(flat) else "")


def run(args: argparse.Namespace) -> int:
    import sys

    from sopilot.index.lexical import query_terms
    from sopilot.retrieval.search import open_retriever

    settings = load_settings(args)
    quiet_libraries()
    if args.server:
        from sopilot.cli.remote import Remote, result_of

        data = Remote(args.server, settings).post("/v1/search", request_body(args))
        if args.json:
            print_json(data)
            return 0
        result = result_of(data)
    else:
        from sopilot.draft.rewrite import open_rewriter

        retriever = open_retriever(settings, load_embedder(settings), rewriter=open_rewriter(settings))
        result = retriever.search(args.query, k=args.k or settings.search_k, filters=filters_from(args))
        if args.json:
            print_json(result.to_dict())
            return 0
    on, off = (BOLD, RESET) if sys.stdout.isatty() else ("**", "**")
    terms = query_terms(result.query)
    verdict = "covered" if result.covered else "NOT COVERED"
    print(f"{verdict}: {result.reason}")
    if not result.covered:
        print("The SOPs may not answer this: follow the escalation process (incidents/escalation-process.md).")
    print()
    for rank, p in enumerate(result.passages, 1):
        found_by = "+".join(name for name in ("dense", "lexical") if f"{name}_rank" in p.scores)
        print(f"{rank}. {p.title}  [{p.score:.4f} · {found_by}]")
        role = f"  ({p.role})" if p.role else ""
        print(f"   {' > '.join(p.heading_path[1:]) or '(top)'}{role}")
        overdue = "  REVIEW OVERDUE" if p.review_overdue else ""
        print(f"   {p.link}  lines {p.start_line}-{p.end_line}{overdue}")
        text = highlight(snippet(p.text, terms), terms, on, off)
        print(textwrap.indent(textwrap.fill(text, 100), "   "))
        print()
    return 0
