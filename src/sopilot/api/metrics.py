"""Prometheus metrics: requests and their latency by route, the index's size, how often the SOPs covered a
question, what embeds the questions. Each app has its own registry (no global state); with several workers,
``sopilot serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` and every worker's figures are summed at scrape time
(prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sopilot.index.embedder import QuestionEncoder

BUCKETS = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """The metrics of one app, and their exposition."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sopilot_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sopilot_request_seconds", "Time to answer, by route", ["route"], buckets=BUCKETS, registry=self.registry
        )
        self.chunks = Gauge(
            "sopilot_index_chunks",
            "Chunks in the index being served",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.coverage = Counter(
            "sopilot_coverage",
            "Searches and answers by coverage decision (covered / all = coverage rate)",
            ["kind", "covered"],
            registry=self.registry,
        )

        self.question_encoder = Gauge(
            "sopilot_question_encoder",
            "1 for what embeds this server's questions: encoder (onnx, onnx-int8, torch, torch-int8), the one "
            "asked for, and whether it fell back from it",
            ["model", "encoder", "requested", "fallback"],
            registry=self.registry,
            multiprocess_mode="max",
        )

    def encoder_in_use(self, encoder: QuestionEncoder | None) -> None:
        """Publish what embeds the questions (nothing until it is known)."""
        if encoder is not None:
            fallback = "true" if encoder.fallback else "false"
            self.question_encoder.labels(encoder.model, encoder.label, encoder.requested, fallback).set(1)

    def covered(self, kind: str, covered: bool | None) -> None:
        self.coverage.labels(kind, "true" if covered else "false").inc()

    def exposition(self) -> bytes:
        if multiprocess():
            from prometheus_client import multiprocess as mp

            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every request and times it, labelled by the route's path template (not the raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            label = str(getattr(route, "path", "")) or "unmatched"
            self.metrics.requests.labels(label, scope.get("method", ""), str(status)).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - start)
