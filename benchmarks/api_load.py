"""Load on the HTTP API over loopback: p50/p95 of /v1/search and /v1/answer at 1, 8 and 32 concurrent clients.

Run: .venv/bin/python benchmarks/api_load.py [--index DIR] [--workers 2] [--clients 1,8,32]
                                             [--requests 200] [--seconds 60] [--query-threads N]
                                             [--query-cache N] [--result-cache N] [--spy CLIENTS]
                                             [--precision fp32|int8] [--profile]
Starts `sopilot serve` (uvicorn, ``--workers`` processes) on a free 127.0.0.1 port over the index (built from
kb/ when the folder holds none), with an agent key (so key checks and the rate limiter run, the limit set
out of reach), then for each route and client count sends at most ``--requests`` requests or runs
``--seconds``, whichever ends first: each client is one keep-alive connection sending the test set's questions
(eval/testsets/kb.jsonl) one after another. Prints a table of p50, p95, max latency, throughput, errors (any
status but 200, or a failed connection), the CPU time the server's workers and this client spent per request
(from /proc), and the machine's 1-minute load average while it ran.
``--query-cache 0 --result-cache 0`` embeds and searches every question (no cache): the cost of questions
never seen before. With the caches on (the default), the test set's 162 questions repeat: after a worker's
first round every search is answered from its result cache (``--warm 1500``, answers sent before measuring,
lets both workers see every question first: the figures of questions asked again).
``--precision int8`` serves with SOPILOT_QUERY_PRECISION=int8; the run prints what embeds the questions of each
worker (``GET /readyz``'s question_encoder), so a fallback to fp32 is seen.
``--spy 8`` also records both workers with py-spy during the 8-client steps and prints where their CPU went,
stage by stage (``STAGES``). ``--profile`` instead times one request's stages in process (no HTTP).
``--json FILE --label NAME`` keeps a run's rows; ``--plot PNG FILE...`` draws runs' p50 and p95 by clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TESTSET = ROOT / "eval" / "testsets" / "kb.jsonl"


def questions() -> list[str]:
    return [json.loads(line)["question"] for line in TESTSET.read_text().splitlines() if line.strip()]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_index(index: Path) -> None:
    if (index / "manifest.sqlite3").is_file():
        return
    print(f"building the index of kb/ in {index} ...", file=sys.stderr)
    run = [sys.executable, "-m", "sopilot.cli.main", "ingest", "--kb", str(ROOT / "kb"), "--index", str(index), "-q"]
    subprocess.run(run, check=True)


def agent_key(index: Path) -> str:
    from sopilot.api.keys import KeyStore, keys_path

    store = KeyStore(keys_path(index))
    try:
        return store.create("load benchmark", "agent")[1]
    finally:
        store.close()


def start_server(
    index: Path, workers: int, port: int, query_threads: int | None, extra_env: dict[str, str] | None = None
) -> subprocess.Popen:
    env = {**os.environ, "SOPILOT_RATE_LIMIT": "100000000", "SOPILOT_RATE_BURST": "100000000", **(extra_env or {})}
    if query_threads:
        env["SOPILOT_QUERY_THREADS"] = str(query_threads)
    command = [sys.executable, "-m", "sopilot.cli.main", "serve", "--index", str(index), "--kb", str(ROOT / "kb")]
    command += ["--port", str(port), "--workers", str(workers), "-q"]
    return subprocess.Popen(command, env=env)


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 300, log: Path | None = None) -> None:
    """Wait for the server's /readyz; on failure stop it and exit, with the end of its ``log`` when given."""
    tail = (lambda: ":\n" + log.read_text()[-3000:]) if log is not None else (lambda: "")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}{tail()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit(f"the server did not become ready{tail()}")


def worker_pids(parent: int) -> list[int]:
    """uvicorn's worker processes: the server's children that run the app (not multiprocessing's helpers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and "resource_tracker" not in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes have used so far (from /proc/PID/stat)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


async def level(
    url: str,
    key: str,
    route: str,
    clients: int,
    limit: int,
    seconds: float,
    qs: list[str],
    workers: list[int] | None = None,
) -> dict:
    """One step: ``clients`` keep-alive connections sending questions back to back. The client is aiohttp (its
    HTTP parser is C): it shares the 2 cores with the server, and httpx cost about 3 ms of CPU per request."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    sent = 0
    stop = time.perf_counter() + seconds

    async def client(n: int) -> None:
        nonlocal errors, sent
        connector = aiohttp.TCPConnector(limit=1)
        headers = {"Authorization": f"Bearer {key}"}
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(url, connector=connector, headers=headers, timeout=timeout) as http:
            i = n
            while sent < limit and time.perf_counter() < stop:
                sent += 1
                body = {"query": qs[i % len(qs)]}
                i += clients
                start = time.perf_counter()
                try:
                    async with http.post(route, json=body) as response:
                        await response.read()
                        ok = response.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

    workers = workers or []
    cpu_before, own_before = cpu_seconds(workers), time.process_time()
    begin = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    wall = time.perf_counter() - begin
    server_cpu, own_cpu = cpu_seconds(workers) - cpu_before, time.process_time() - own_before
    return {
        "route": route,
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * percentile(latencies, 0.95),
        "max_ms": 1000 * max(latencies),
        "rps": len(latencies) / wall,
        "server_cpu_ms": 1000 * server_cpu / len(latencies),
        "client_cpu_ms": 1000 * own_cpu / len(latencies),
        "load1": os.getloadavg()[0],
    }


HEADER = (
    f"{'route':<11} {'clients':>7} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
    f"{'req/s':>7} {'srv cpu':>7} {'cli cpu':>7} {'load1':>6}"
)


def row(r: dict) -> str:
    return (
        f"{r['route']:<11} {r['clients']:>7} {r['requests']:>8} {r['errors']:>6} {r['p50_ms']:>8.1f} "
        f"{r['p95_ms']:>8.1f} {r['max_ms']:>8.1f} {r['rps']:>7.1f} {r['server_cpu_ms']:>7.1f} "
        f"{r['client_cpu_ms']:>7.1f} {r['load1']:>6.2f}"
    )


# Stages of a request, each named by the frames that belong to it; a sample goes to the stage of its innermost
# frame that matches (so a sample in the retriever is the retriever's even though middleware frames wrap it).
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("question embedding (ONNX Runtime, tokenizer)", ("OnnxEncoder.encode", "embed_query", "QueryCache")),
    ("Chroma nearest", ("VectorStore.nearest", "_filtered_nearest")),
    ("Chroma get (passage text)", ("VectorStore.get", "Retriever._read ")),
    ("lexical facts (SQLite)", ("LexicalIndex.facts", "keep_passing")),
    ("lexical BM25 (in-memory postings / FTS5)", ("LexicalIndex.search", "MemoryBm25", "LexicalIndex.ranked")),
    ("unknown question terms (FTS5)", ("unknown_terms",)),
    ("fusion (RRF)", ("rrf (sopilot",)),
    ("section-role and descriptive weighting", ("_demote_descriptive", "_weigh_roles", "_weigh_overdue")),
    ("outlines, section merge, per-SOP limit", ("_outlines", "_read_head", "_merge_sections", "_limit_per_sop",
                                                "to_passage", "overdue_from_metadata", "_head_ids")),
    ("coverage / answerability", ("coverage.py", "answerability.py", "query_terms")),
    ("query cleanup and filters", ("focus_query", "clean_query", "normalize_filters")),
    ("search, the rest", ("Retriever.search",)),
    ("result cache lookup", ("result_cache.py",)),
    ("drafting (extractive)", ("sopilot/draft/",)),
    ("query log write (SQLite)", ("record_search", "record_answer", "querylog.py")),
    ("rate limiter (SQLite)", ("RateLimiter.take",)),
    ("key check", ("authenticate", "KeyStore.verify")),
    ("engine / generation marker", ("get_engine", "AppState.engine", "read_generation")),
    ("response model build", ("Response.of", "schemas.py")),
    ("response validation and JSON", ("serialize_response", "jsonable_encoder", "render (", "model_dump")),
    ("request body, pydantic, dependencies", ("request_body_to_args", "solve_dependencies", "Request.json",
                                              "Request.body", "HTTPBearer")),
    ("metrics middleware (prometheus)", ("metrics.py", "prometheus_client")),
    ("other middleware (limits, security headers)", ("hardening.py", "api/app.py", "api/errors.py")),
    ("uvicorn HTTP (httptools)", ("uvicorn/protocols", "httptools", "h11")),
    ("threadpool hand-offs (anyio)", ("anyio", "to_thread", "run_in_threadpool", "concurrency.py")),
    ("event loop (uvloop / asyncio)", ("asyncio", "uvloop")),
    ("starlette / fastapi routing", ("starlette", "fastapi")),
)  # fmt: skip


def stage_shares(raw_files: list[Path]) -> tuple[int, dict[str, int]]:
    """py-spy's raw (collapsed) stacks summed by stage: the samples' count and each stage's share of them."""
    counts: dict[str, int] = {}
    total = 0
    for file in raw_files:
        for line in file.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frames = stack.split(";")
            stage = next(
                (name for frame in reversed(frames) for name, marks in STAGES if any(m in frame for m in marks)),
                "other",
            )
            counts[stage] = counts.get(stage, 0) + int(count)
            total += int(count)
    return total, counts


def spy(pids: list[int], seconds: float, folder: Path) -> list[subprocess.Popen]:
    """``py-spy record`` (raw stacks, 250 Hz, idle threads left out) on each worker for ``seconds``."""
    spy_bin = Path(sys.executable).with_name("py-spy")
    return [
        subprocess.Popen(
            [
                str(spy_bin),
                "record",
                "-p",
                str(pid),
                "-d",
                str(int(seconds)),
                "-r",
                "250",
                "--threads",
                "--nonblocking",
                "-f",
                "raw",
                "-o",
                str(folder / f"{pid}.raw"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for pid in pids
    ]


def print_stages(route: str, r: dict, raw_files: list[Path]) -> None:
    total, counts = stage_shares(raw_files)
    if not total:
        print(f"py-spy recorded nothing for {route} (is py-spy installed, may it trace the workers?)")
        return
    print(f"\nwhere {route}'s server CPU went at {r['clients']} clients ({total} py-spy samples of both workers; "
          f"{r['server_cpu_ms']:.1f} ms of server CPU per request):")  # fmt: skip
    print(f"{'stage':<48} {'share':>6} {'ms/req':>7}")
    for name, count in sorted(counts.items(), key=lambda item: -item[1]):
        share = count / total
        print(f"{name:<48} {100 * share:>5.1f}% {share * r['server_cpu_ms']:>7.2f}")


def load(args: argparse.Namespace) -> None:
    index = args.index or Path(tempfile.mkdtemp(prefix="sopilot-load-")) / "index"
    ensure_index(index)
    key = agent_key(index)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"SOPILOT_QUERY_CACHE": str(args.query_cache)} if args.query_cache is not None else {}
    if args.result_cache is not None:
        env["SOPILOT_RESULT_CACHE"] = str(args.result_cache)
    if args.precision:
        env["SOPILOT_QUERY_PRECISION"] = args.precision
    server = start_server(index, args.workers, port, args.query_threads, env)
    try:
        wait_ready(url, server)
        qs = questions()
        workers = worker_pids(server.pid)
        asyncio.run(level(url, key, "/v1/answer", 4, args.warm, 300, qs))  # warm both workers
        print(f"questions embedded by: {question_encoders(url, len(workers))}")
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores")
        print(HEADER + "   (srv cpu, cli cpu: ms of CPU per request, the server's workers and this client)")
        spied: list[tuple[str, dict, list[Path]]] = []
        rows: list[dict] = []
        for route in ("/v1/search", "/v1/answer"):
            for clients in args.clients:
                spying = args.spy and clients == args.spy
                folder = Path(tempfile.mkdtemp(prefix="sopilot-spy-"))
                spies = spy(workers, args.seconds, folder) if spying else []
                r = asyncio.run(level(url, key, route, clients, args.requests, args.seconds, qs, workers))
                print(row(r), flush=True)
                rows.append(r)
                for process in spies:
                    process.wait()
                if spying:
                    spied.append((route, r, sorted(folder.glob("*.raw"))))
        for route, r, files in spied:
            print_stages(route, r, files)
        if args.json:
            args.json.write_text(json.dumps({"label": args.label or "", "rows": rows}, indent=1))
    finally:
        server.terminate()
        server.wait(timeout=60)


def question_encoders(url: str, workers: int) -> str:
    """What embeds the questions, as the workers that answer ``GET /readyz`` (asked on fresh connections) say."""
    seen: set[str] = set()
    for _ in range(8 * max(1, workers)):
        said = httpx.get(f"{url}/readyz", timeout=10).json().get("question_encoder") or {}
        fallback = f"; fell back: {said['fallback']}" if said.get("fallback") else ""
        seen.add(f"{said.get('encoder', '?')} ({said.get('model', '?')}, asked {said.get('requested', '?')}{fallback})")
    return " | ".join(sorted(seen))


TARGETS = {"/v1/search": 50.0, "/v1/answer": 100.0}  # issue 14: p95 at 8 clients


def plot(runs: list[Path], out: Path) -> None:
    """p50 and p95 by client count of the runs' JSON files (``--json``), one panel per route, the targets marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 6))
    for ax, route in zip(axes, TARGETS, strict=True):
        for n, path in enumerate(runs):
            run = json.loads(path.read_text())
            rows = [r for r in run["rows"] if r["route"] == route]
            clients = [r["clients"] for r in rows]
            colour = f"C{n}"
            ax.plot(clients, [r["p95_ms"] for r in rows], "-o", color=colour, label=f"{run['label'] or path.stem} p95")
            ax.plot(clients, [r["p50_ms"] for r in rows], ":", color=colour, marker=".", label="p50")
        ax.axhline(TARGETS[route], color="grey", linewidth=0.8)
        ax.plot([8], [TARGETS[route]], "k*", markersize=10, label=f"target: p95 ≤ {TARGETS[route]:.0f} ms at 8 clients")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        counts = sorted({r["clients"] for path in runs for r in json.loads(path.read_text())["rows"]})
        ax.set_xticks(counts, [str(c) for c in counts])
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"{route}, 2 workers, shipped KB")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def profile(args: argparse.Namespace) -> None:
    """One request's stages, in process, median over the test set's questions."""
    from fastapi.testclient import TestClient

    from sopilot.api.app import create_app
    from sopilot.api.recording import record_answer
    from sopilot.api.schemas import AnswerResponse
    from sopilot.api.state import AppState
    from sopilot.core.settings import Settings

    index = args.index or ROOT / ".sopilot"
    ensure_index(index)
    update = {"index_dir": index, "kb_dir": ROOT / "kb", "rate_limit": 0, "query_cache": 0, "result_cache": 0}
    if args.query_threads:
        update["query_threads"] = args.query_threads
    settings = Settings().model_copy(update=update)
    state = AppState.open(settings)
    engine = state.engine()
    stages: dict[str, list[float]] = {k: [] for k in ("embed", "search", "draft", "response", "log", "http")}
    qs = questions()
    with TestClient(create_app(state=state), headers={"Authorization": f"Bearer {agent_key(index)}"}) as http:
        for q in qs[:5]:
            http.post("/v1/answer", json={"query": q}).raise_for_status()
        for q in qs:
            t0 = time.perf_counter()
            state.embedder.embed_query(q)
            t1 = time.perf_counter()
            result = engine.retriever.search(q, k=5)
            t2 = time.perf_counter()
            draft = engine.drafters["user"].draft(q, result)
            t3 = time.perf_counter()
            AnswerResponse.of("x", "user", draft, result, engine.generation).model_dump_json()
            t4 = time.perf_counter()
            record_answer(state.querylog, os.urandom(8).hex(), q, "user", result, draft, ms=0, key_id="")
            t5 = time.perf_counter()
            http.post("/v1/answer", json={"query": q}).raise_for_status()
            t6 = time.perf_counter()
            for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5), strict=True):
                stages[name].append(seconds * 1000)
    print(f"{len(qs)} questions, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    labels = {
        "embed": "embed the question (ONNX Runtime), alone",
        "search": "search, whole (embeds again)",
        "draft": "draft (extractive)",
        "response": "build and serialize the response",
        "log": "write the query log row",
        "http": "whole POST /v1/answer in process (TestClient)",
    }
    for name, values in stages.items():
        print(f"{labels[name]:<48} median {statistics.median(values):7.2f} ms   p95 {percentile(values, 0.95):7.2f} ms")
    state.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, help="index folder (built from kb/ when empty; default: a temp one)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=200, help="most requests per route and client count")
    parser.add_argument("--seconds", type=float, default=60, help="most seconds per route and client count")
    parser.add_argument("--warm", type=int, default=40, help="answers sent before measuring (default 40)")
    parser.add_argument("--query-threads", type=int, help="SOPILOT_QUERY_THREADS for the server")
    parser.add_argument(
        "--query-cache", type=int, help="SOPILOT_QUERY_CACHE for the server (0: every question embedded)"
    )
    parser.add_argument("--result-cache", type=int, help="SOPILOT_RESULT_CACHE for the server (0: every one searched)")
    parser.add_argument("--precision", choices=["fp32", "int8"], help="SOPILOT_QUERY_PRECISION for the server")
    parser.add_argument("--spy", type=int, metavar="CLIENTS", help="py-spy the workers at this client count: stages")
    parser.add_argument("--profile", action="store_true", help="time one request's stages in process instead")
    parser.add_argument("--json", type=Path, help="write the table's rows to this file")
    parser.add_argument("--label", help="the run's name in --json (and in the plot)")
    parser.add_argument("--plot", type=Path, help="instead, draw the runs (--json files given as arguments) here")
    parser.add_argument("runs", type=Path, nargs="*", help="with --plot: --json files of earlier runs")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.plot:
        plot(args.runs, args.plot)
    else:
        profile(args) if args.profile else load(args)


if __name__ == "__main__":
    main()
