"""Soak load: many concurrent clients for minutes against `sopilot serve --workers 2` on loopback.

Run: nice -n 10 .venv/bin/python benchmarks/soak.py [--seconds 300] [--clients 32] [--index DIR] [--workers 2]
                                                   [--sample 5] [--json OUT] [--plot docs/img/soak.png]

Starts the server over the index (built from kb/ when the folder holds none) with an agent key (key checks and
the rate limiter run, the limit out of reach), then ``--clients`` clients, each one keep-alive connection,
send requests back to back for ``--seconds`` (then stop by themselves): a mix of /v1/search (55 %) and
/v1/answer (45 %; a third of them streamed as server-sent events, both tones), questions from the test set
varied the way agents paste them (a greeting, a ticket number, a pasted log line, lower case, a filter, k from
3 to 10). Every ``--sample`` seconds each worker's resident memory (RSS, from /proc) is read.

Prints per minute: requests, errors, p50 and p95 of each route; then each worker's RSS in the first and the
last minute and its slope over the run (least squares, MB per minute), the number of errors (any status but
200, a failed connection, a stream without its answer event) and the machine's load. Exits 1 on any error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from api_load import (
    agent_key,
    ensure_index,
    free_port,
    percentile,
    questions,
    start_server,
    wait_ready,
    worker_pids,
)

ROOT = Path(__file__).resolve().parent.parent
GREETINGS = ("", "", "hi team, ", "hello, quick one: ", "urgent!! ")
NOISE = ("", "", " (ticket #48213)", "\n2026-11-30T10:02:11Z ERROR request failed status=500", " thanks!")
FILTERS: tuple[dict[str, list[str]], ...] = ({}, {}, {}, {"status": ["all"]}, {"team": ["uops-access"]})


def varied(rng: random.Random, question: str) -> str:
    text = rng.choice(GREETINGS) + question + rng.choice(NOISE)
    return text.lower() if rng.random() < 0.2 else text


def request_body(rng: random.Random, qs: list[str]) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {"query": varied(rng, rng.choice(qs)), "k": rng.randint(3, 10)}
    filters = rng.choice(FILTERS)
    if filters:
        body["filters"] = filters
    if rng.random() < 0.55:
        return "/v1/search", body
    body["tone"] = rng.choice(("user", "internal"))
    body["stream"] = rng.random() < 1 / 3
    return "/v1/answer", body


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB), in MB per minute."""
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


async def soak(url: str, key: str, clients: int, seconds: float, pids: list[int], sample: float, seed: int) -> dict:
    qs = questions()
    records: list[tuple[float, str, float, bool]] = []  # (seconds since start, route, latency s, ok)
    errors: list[str] = []
    memory: dict[int, list[tuple[float, float]]] = {pid: [] for pid in pids}
    begin = time.perf_counter()
    stop = begin + seconds

    async def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http:
            while time.perf_counter() < stop:
                route, body = request_body(rng, qs)
                start = time.perf_counter()
                try:
                    response = await http.post(route, json=body)
                    ok = response.status_code == 200
                    if ok and body.get("stream"):
                        ok = "event: answer" in response.text
                    if not ok:
                        errors.append(f"{route} {response.status_code} {response.text[:200]}")
                except httpx.HTTPError as exc:
                    ok = False
                    errors.append(f"{route} {exc!r}")
                records.append((start - begin, route, time.perf_counter() - start, ok))

    async def sampler() -> None:
        while time.perf_counter() < stop:
            at = time.perf_counter() - begin
            for pid in pids:
                mb = rss_mb(pid)
                if mb is not None:
                    memory[pid].append((at, mb))
            await asyncio.sleep(sample)

    loads: list[float] = []

    async def load_sampler() -> None:
        while time.perf_counter() < stop:
            await asyncio.sleep(30)
            loads.append(os.getloadavg()[0])

    await asyncio.gather(sampler(), load_sampler(), *(client(n) for n in range(clients)))
    return {"records": records, "errors": errors, "memory": memory, "wall": time.perf_counter() - begin, "loads": loads}


def summarize(run: dict, seconds: float) -> dict[str, Any]:
    minutes = max(1, int(-(-seconds // 60)))
    per_minute = []
    for m in range(minutes):
        row: dict[str, Any] = {"minute": m + 1}
        in_minute = [r for r in run["records"] if m * 60 <= r[0] < (m + 1) * 60]
        row["requests"] = len(in_minute)
        row["errors"] = sum(not r[3] for r in in_minute)
        for route in ("/v1/search", "/v1/answer"):
            lat = [r[2] * 1000 for r in in_minute if r[1] == route]
            name = route.rsplit("/", 1)[1]
            row[f"{name}_n"] = len(lat)
            row[f"{name}_p50"] = round(statistics.median(lat), 1) if lat else None
            row[f"{name}_p95"] = round(percentile(lat, 0.95), 1) if lat else None
        per_minute.append(row)
    workers = {}
    last_start = max(0.0, seconds - 60)
    for pid, points in run["memory"].items():
        first = [mb for t, mb in points if t < 60]
        last = [mb for t, mb in points if t >= last_start]
        workers[str(pid)] = {
            "first_minute_mb": round(statistics.fmean(first), 1) if first else None,
            "last_minute_mb": round(statistics.fmean(last), 1) if last else None,
            "slope_mb_per_min": round(slope(points), 2),
            "after_first_minute_slope_mb_per_min": round(slope([p for p in points if p[0] >= 60]), 2),
            "max_mb": round(max((mb for _, mb in points), default=0.0), 1),
        }
    overall = {}
    for route in ("/v1/search", "/v1/answer"):
        lat = [r[2] * 1000 for r in run["records"] if r[1] == route]
        overall[route] = {"requests": len(lat), "p50_ms": round(statistics.median(lat), 1) if lat else None,
                          "p95_ms": round(percentile(lat, 0.95), 1) if lat else None}  # fmt: skip
    return {
        "requests": len(run["records"]),
        "errors": len(run["errors"]),
        "error_examples": run["errors"][:10],
        "rps": round(len(run["records"]) / run["wall"], 1),
        "overall": overall,
        "per_minute": per_minute,
        "workers": workers,
        "load1": run["loads"],
    }


def plot(run: dict, summary: dict, path: Path, clients: int, workers: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat_ax, mem_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    minutes = [r["minute"] for r in summary["per_minute"]]
    for name, colour in (("search", "tab:blue"), ("answer", "tab:orange")):
        for q, style in (("p50", "-"), ("p95", "--")):
            values = [r[f"{name}_{q}"] for r in summary["per_minute"]]
            lat_ax.plot(minutes, values, style, color=colour, marker="o", label=f"/v1/{name} {q}")
    lat_ax.set_xlabel("minute of the run")
    lat_ax.set_ylabel("latency (ms)")
    lat_ax.set_ylim(bottom=0)
    lat_ax.set_title(
        f"{clients} clients, {workers} workers: {summary['requests']} requests, {summary['errors']} errors"
    )
    lat_ax.legend(fontsize=8)
    for n, (pid, points) in enumerate(run["memory"].items()):
        w = summary["workers"][str(pid)]
        label = (
            f"worker {n + 1}: {w['first_minute_mb']:.0f} -> {w['last_minute_mb']:.0f} MB "
            f"({w['slope_mb_per_min']:+.2f} MB/min)"
        )
        mem_ax.plot([t / 60 for t, _ in points], [mb for _, mb in points], label=label)
    mem_ax.set_xlabel("minute of the run")
    mem_ax.set_ylabel("resident memory (MB)")
    mem_ax.set_ylim(bottom=0)
    mem_ax.set_title("each worker's RSS")
    mem_ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sample", type=float, default=5, help="seconds between RSS samples")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--index", type=Path, help="index folder (built from kb/ when empty; default: a temp one)")
    parser.add_argument("--json", type=Path, help="write the summary here too")
    parser.add_argument("--plot", type=Path, help="draw latency per minute and RSS over time here (PNG)")
    args = parser.parse_args()
    index = args.index or Path(tempfile.mkdtemp(prefix="sopilot-soak-")) / "index"
    ensure_index(index)
    key = agent_key(index)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(index, args.workers, port, None)
    try:
        wait_ready(url, server)
        deadline = time.monotonic() + 60
        pids = worker_pids(server.pid)
        while len(pids) < args.workers and time.monotonic() < deadline:
            time.sleep(0.5)
            pids = worker_pids(server.pid)
        asyncio.run(soak(url, key, 4, 10, [], args.sample, args.seed + 1))  # warm both workers
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; workers {pids}", file=sys.stderr)
        run = asyncio.run(soak(url, key, args.clients, args.seconds, pids, args.sample, args.seed))
    finally:
        server.terminate()
        server.wait(timeout=60)
    summary = summarize(run, args.seconds)
    print(f"{summary['requests']} requests in {args.seconds:.0f} s ({summary['rps']} req/s), "
          f"{summary['errors']} errors, {args.clients} clients, {args.workers} workers")  # fmt: skip
    print(f"{'minute':>6} {'requests':>8} {'errors':>6} {'search n':>8} {'p50':>7} {'p95':>7} "
          f"{'answer n':>8} {'p50':>7} {'p95':>7}")  # fmt: skip
    for r in summary["per_minute"]:
        figures = [r[f"{route}_{q}"] or 0.0 for route in ("search", "answer") for q in ("p50", "p95")]
        print(f"{r['minute']:>6} {r['requests']:>8} {r['errors']:>6} {r['search_n']:>8} {figures[0]:>7.1f} "
              f"{figures[1]:>7.1f} {r['answer_n']:>8} {figures[2]:>7.1f} {figures[3]:>7.1f}")  # fmt: skip
    for route, o in summary["overall"].items():
        print(f"whole run {route}: {o['requests']} requests, p50 {o['p50_ms']} ms, p95 {o['p95_ms']} ms")
    for pid, w in summary["workers"].items():
        later = w["after_first_minute_slope_mb_per_min"]
        print(f"worker {pid}: RSS first minute {w['first_minute_mb']} MB, last minute {w['last_minute_mb']} MB, "
              f"slope {w['slope_mb_per_min']:+.2f} MB/min (after the first minute {later:+.2f}), "
              f"max {w['max_mb']} MB")  # fmt: skip
    print(f"load average (1 min) every 30 s: {summary['load1']}")
    for example in summary["error_examples"]:
        print("error:", example, file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if args.plot:
        plot(run, summary, args.plot, args.clients, args.workers)
        print(f"plot: {args.plot}")
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
