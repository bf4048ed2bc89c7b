"""``sopilot reindex --lexical``: rebuild the lexical index from what the vector store holds."""

from __future__ import annotations

import argparse

from sopilot.cli.common import add_common, load_embedder, load_settings, print_json, quiet_libraries


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reindex", help="rebuild derived indexes from the vector store")
    p.add_argument("--lexical", action="store_true", required=True, help="rebuild the FTS5 lexical index")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sopilot.index.folder import lexical_path
    from sopilot.ingest.run import rebuild_lexical

    settings = load_settings(args)
    quiet_libraries()
    embedder = load_embedder(settings)
    count = rebuild_lexical(settings, embedder.name, embedder.dimension)
    if args.json:
        print_json({"lexical_chunks": count, "path": str(lexical_path(settings))})
    else:
        print(f"lexical index rebuilt from the store: {count} chunks in {lexical_path(settings)}")
    return 0
