"""Contradicting section pairs per kind of clashing fact, with and without the named-fact rule.

Reads the section vectors of an index (``sopilot ingest KB --index DIR`` first; nothing is embedded) and runs
``find_conflicts`` twice: judging URLs, channels, teams and commands by the whole KB's statistics (the
default), and as before that rule, when they clashed like numbers. Prints the counts docs/authoring.md quotes.

    PYTHONPATH=src HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python benchmarks/conflicts_kinds.py --index /tmp/gl/index
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from sopilot.core.settings import Settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True, help="an index folder")
    args = parser.parse_args()

    from sopilot.author.conflicts import ConflictParams, find_conflicts
    from sopilot.author.similar import sections_from
    from sopilot.index.embedder import load_embedder, set_offline
    from sopilot.index.store import VectorStore, make_client

    set_offline()
    settings = Settings(index_dir=args.index)
    embedder = load_embedder(settings.embedder)  # name and dimension only
    store = VectorStore.open(
        make_client(settings), settings.collection, embedder.name, embedder.dimension, create=False
    )
    sections, vectors = sections_from(store.iter_vectors())
    rows = {}
    for label, judge in (("before (named facts clash like numbers)", False), ("after (judged with the KB)", True)):
        t0 = time.perf_counter()
        report = find_conflicts(sections, vectors, ConflictParams(judge_named_facts=judge))
        seconds = time.perf_counter() - t0
        pairs = Counter(kind for p in report.contradictions for kind in {c.kind for c in p.clashes})
        rows[label] = (len(report.contradictions), pairs, seconds)
    print(f"{len(sections)} sections, {report.compared} pairs compared")
    kinds = sorted({k for _, pairs, _ in rows.values() for k in pairs})
    print(f"{'':42} {'pairs':>6} " + " ".join(f"{k:>9}" for k in kinds) + "   seconds")
    for label, (total, pairs, seconds) in rows.items():
        print(f"{label:42} {total:>6} " + " ".join(f"{pairs.get(k, 0):>9}" for k in kinds) + f"   {seconds:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
