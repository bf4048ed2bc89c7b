"""Load on the HTTP API over loopback: p50/p95 of /v1/search and /v1/answer at 1, 8 and 32 concurrent clients.

Run: .venv/bin/python benchmarks/api_load.py [--index DIR] [--workers 2] [--clients 1,8,32]
                                             [--requests 200] [--seconds 60] [--query-threads N] [--profile]
Starts `sopilot serve` (uvicorn, ``--workers`` processes) on a free 127.0.0.1 port over the index (built from
kb/ when the folder holds none), with an agent key (so key checks and the rate limiter run, the limit set
out of reach), then for each route and client count sends at most ``--requests`` requests or runs
``--seconds``, whichever ends first: each client is one keep-alive connection sending the test set's questions
(eval/testsets/kb.jsonl) one after another. Prints a table of p50, p95, max latency, throughput, errors (any
status but 200, or a failed connection) and the machine's 1-minute load average while it ran.
``--profile`` instead times one request's stages in process (no HTTP): where the time goes.
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


def start_server(index: Path, workers: int, port: int, query_threads: int | None) -> subprocess.Popen:
    env = {**os.environ, "SOPILOT_RATE_LIMIT": "100000000", "SOPILOT_RATE_BURST": "100000000"}
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


async def level(url: str, key: str, route: str, clients: int, limit: int, seconds: float, qs: list[str]) -> dict:
    latencies: list[float] = []
    errors = 0
    sent = 0
    stop = time.perf_counter() + seconds

    async def client(n: int) -> None:
        nonlocal errors, sent
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            i = n
            while sent < limit and time.perf_counter() < stop:
                sent += 1
                body = {"query": qs[i % len(qs)]}
                i += clients
                start = time.perf_counter()
                try:
                    response = await http.post(route, json=body)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

    begin = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    wall = time.perf_counter() - begin
    return {
        "route": route,
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * percentile(latencies, 0.95),
        "max_ms": 1000 * max(latencies),
        "rps": len(latencies) / wall,
        "load1": os.getloadavg()[0],
    }


def row(r: dict) -> str:
    return (
        f"{r['route']:<11} {r['clients']:>7} {r['requests']:>8} {r['errors']:>6} {r['p50_ms']:>8.1f} "
        f"{r['p95_ms']:>8.1f} {r['max_ms']:>8.1f} {r['rps']:>7.1f} {r['load1']:>6.2f}"
    )


def load(args: argparse.Namespace) -> None:
    index = args.index or Path(tempfile.mkdtemp(prefix="sopilot-load-")) / "index"
    ensure_index(index)
    key = agent_key(index)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(index, args.workers, port, args.query_threads)
    try:
        wait_ready(url, server)
        qs = questions()
        asyncio.run(level(url, key, "/v1/answer", 4, 40, 30, qs))  # warm both workers
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores")
        print(f"{'route':<11} {'clients':>7} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} "
              f"{'max ms':>8} {'req/s':>7} {'load1':>6}")  # fmt: skip
        for route in ("/v1/search", "/v1/answer"):
            for clients in args.clients:
                r = asyncio.run(level(url, key, route, clients, args.requests, args.seconds, qs))
                print(row(r), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=60)


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
    update = {"index_dir": index, "kb_dir": ROOT / "kb", "rate_limit": 0}
    if args.query_threads:
        update["query_threads"] = args.query_threads
    settings = Settings().model_copy(update=update)
    state = AppState.open(settings)
    engine = state.engine()
    stages: dict[str, list[float]] = {k: [] for k in ("embed", "search", "draft", "response", "log", "http")}
    qs = questions()
    with TestClient(create_app(state=state)) as http:
        for q in qs[:5]:
            http.post("/v1/answer", json={"query": q})
        for q in qs:
            t0 = time.perf_counter()
            state.embedder.embed_query(q)
            t1 = time.perf_counter()
            result = engine.retriever.search(q, k=5)
            t2 = time.perf_counter()
            draft = engine.drafters["user"].draft(q, result)
            t3 = time.perf_counter()
            AnswerResponse.of("x", "user", draft, result).model_dump_json()
            t4 = time.perf_counter()
            record_answer(state.querylog, os.urandom(8).hex(), q, "user", result, draft, ms=0, key_id="")
            t5 = time.perf_counter()
            http.post("/v1/answer", json={"query": q})
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
    parser.add_argument("--query-threads", type=int, help="SOPILOT_QUERY_THREADS for the server")
    parser.add_argument("--profile", action="store_true", help="time one request's stages in process instead")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    profile(args) if args.profile else load(args)


if __name__ == "__main__":
    main()
