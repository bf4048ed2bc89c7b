"""``sopilot search``: ranked SOP passages for a question."""

from __future__ import annotations

import argparse
import textwrap

from sopilot.cli.common import add_common, load_embedder, load_settings, print_json, quiet_libraries


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="find the SOP sections that answer a question")
    p.add_argument("query", help="the user's question, as they wrote it")
    p.add_argument("-k", type=int, default=None, help="number of passages (1-100, default 5)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from retrieval.search import open_retriever

    settings = load_settings(args)
    quiet_libraries()
    retriever = open_retriever(settings, load_embedder(settings))
    result = retriever.search(args.query, k=args.k or settings.search_k)
    if args.json:
        print_json(result.to_dict())
        return 0
    if not result.passages:
        print("No passages: the index is empty. Run `sopilot ingest` first.")
    for rank, p in enumerate(result.passages, 1):
        print(f"{rank}. {p.title}  [{p.score:.3f}]")
        print(f"   {' > '.join(p.heading_path[1:]) or '(top)'}")
        print(f"   {p.link}  lines {p.start_line}-{p.end_line}")
        snippet = " ".join(p.text.split())
        print(textwrap.indent(textwrap.shorten(snippet, 300, placeholder=" …"), "   "))
        print()
    return 0
