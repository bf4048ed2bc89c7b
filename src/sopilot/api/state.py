"""What the app's lifespan opens once per worker: settings, the embedder, the index, the drafters, the logs.

``AppState.engine()`` returns what answers questions for the index's current generation. After an ingest (in
this worker, another, or with a Chroma server another replica) rewrites the generation marker
(``index/generation.py``), the next request opens the index again and swaps the whole ``Engine`` at once: a
request holds one engine from start to end, so it never mixes two generations. A replica of a shared Chroma
server serves each generation with a lexical index in step with it (``ingest/replica.py``), and opens a new
generation in a thread while the previous engine keeps serving (its rebuild reads every chunk of the store).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sopilot.api.keys import KeyStore, keys_path
from sopilot.api.limits import RATELIMIT_FILE, RateLimiter
from sopilot.api.metrics import Metrics
from sopilot.api.result_cache import ResultCache
from sopilot.core.errors import SopilotError
from sopilot.core.settings import Settings
from sopilot.draft.base import Drafter, Tone
from sopilot.index.embedder import Embedder
from sopilot.index.generation import Generation, GenerationMarker, marker_for
from sopilot.index.querylog import QueryLog, Redactor, querylog_path
from sopilot.retrieval.search import Retriever

if TYPE_CHECKING:
    from llama_index.core.llms import LLM

    from sopilot.retrieval.search import QueryRewriter

log = logging.getLogger(__name__)
TONES: tuple[Tone, ...] = ("user", "internal")


@dataclass(frozen=True, slots=True)
class Engine:
    """One generation of the index, opened: the retriever and a drafter per tone."""

    generation: str
    retriever: Retriever
    drafters: dict[str, Drafter]
    kb_version: str
    chunks: int


def open_engine(settings: Settings, embedder: Embedder, llm: LLM | None, generation: Generation) -> Engine:
    from sopilot.draft.factory import open_drafter
    from sopilot.draft.rewrite import LLMQueryRewriter
    from sopilot.ingest.run import current_kb_version

    rewriter = LLMQueryRewriter(llm) if settings.query_rewrite and llm is not None else None
    retriever = _open_in_step(settings, embedder, rewriter, generation)
    retriever.warm()
    kb_version = generation.kb_version or current_kb_version(settings)
    drafters: dict[str, Drafter] = {
        tone: open_drafter(settings, retriever.store, tone=tone, kb_version=kb_version, embedder=embedder, llm=llm)
        for tone in TONES
    }
    return Engine(generation.value, retriever, drafters, kb_version, retriever.store.count())


def _open_in_step(
    settings: Settings, embedder: Embedder, rewriter: QueryRewriter | None, generation: Generation
) -> Retriever:
    """A retriever whose store view holds the last ingest's probe chunk. Chroma's embedded store is shared by
    the workers' processes; one that opens it while another has just written may see the new rows without
    their vectors, and would serve that view until the next ingest. So it opens again, a moment later, until
    the probe is found (``SOPILOT_REOPEN_WAIT_SECONDS`` at most, then it serves what it has and says so)."""
    from sopilot.ingest.replica import serving_lexical
    from sopilot.retrieval.search import open_retriever

    probe = generation.probe
    lexical = None
    if settings.chroma_url:
        lexical = serving_lexical(settings, embedder.name, embedder.dimension, generation.value)
    deadline = time.monotonic() + settings.reopen_wait_seconds
    tries = 0
    while True:
        retriever = open_retriever(settings, embedder, rewriter=rewriter, fresh=True, lexical_file=lexical)
        tries += 1
        if not probe or retriever.store.holds(probe):
            if tries > 1:
                log.warning("the vector store caught up with the last ingest after %d opens", tries)
            return retriever
        if time.monotonic() >= deadline:
            log.error(
                "the vector store still misses chunk %s of the last ingest after %d opens: serving it as it is; "
                "with several workers, a Chroma server (SOPILOT_CHROMA_URL) avoids this",
                probe,
                tries,
            )
            return retriever
        time.sleep(0.2)


class AppState:
    """Opened once per worker by the lifespan; routes reach it through ``sopilot.api.deps``."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        llm: LLM | None = None,
        metrics: Metrics | None = None,
        keys: KeyStore | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.llm = llm
        self.querylog = (
            QueryLog(querylog_path(settings.index_dir), Redactor(settings.redact)) if settings.querylog else None
        )
        self.keys = keys or KeyStore(keys_path(settings.index_dir))
        self.limiter = RateLimiter(settings.index_dir / RATELIMIT_FILE, settings.rate_limit, settings.rate_burst)
        self.metrics = metrics or Metrics()
        self.results = ResultCache(settings.result_cache)
        self.marker: GenerationMarker = marker_for(settings)
        self._engine: Engine | None = None
        self._error: SopilotError | None = None
        self._lock = threading.Lock()
        self._opening_lock = threading.Lock()  # a replica's engine opening in the background (``_open_behind``)
        self._opening = ""
        self._opening_since = 0.0
        self._opening_alive = False

    @classmethod
    def open(cls, settings: Settings, embedder: Embedder | None = None, metrics: Metrics | None = None) -> AppState:
        """Load the models (unless ``embedder`` is given, e.g. shared by tests) and open the index."""
        if embedder is None:
            from sopilot.index.embedder import embedder_for

            embedder = embedder_for(settings)
        llm = None
        if settings.drafter == "llm" or settings.query_rewrite:
            from sopilot.draft.llm import load_llm

            llm = load_llm(settings)
        state = cls(settings, embedder, llm, metrics)
        try:
            state.engine()
            embedder.embed_query("warm up")  # the first question should not pay for the model's first run
        except SopilotError as exc:  # served as 503 by readiness and the routes until an ingest fixes it
            log.warning("the index is not ready: %s", exc)
        return state

    def engine(self, *, fresh: bool = False) -> Engine:
        """The engine for the index's current generation, opened again when an ingest changed it; ``fresh``
        reads the marker past its poll interval (after this worker's own ingest)."""
        generation = self.marker.read(fresh=fresh)
        engine = self._engine
        if engine is not None and engine.generation == generation.value:
            return engine
        if engine is not None and self.settings.chroma_url and not fresh:
            # A replica of a shared server: the new generation may need its lexical index rebuilt from the
            # store first; the previous engine (pinned to its own chunks) serves meanwhile.
            self._open_behind(generation)
            return engine
        with self._lock:
            engine = self._engine
            if engine is not None and engine.generation == generation.value:
                return engine
            try:
                engine = open_engine(self.settings, self.embedder, self.llm, generation)
            except SopilotError as exc:
                self._error = exc
                raise
            self._swap(engine, generation)
            return engine

    def _swap(self, engine: Engine, generation: Generation) -> None:
        previous = self._engine.generation if self._engine is not None else None
        self._engine, self._error = engine, None
        log.info(
            "index generation %s opened: %d chunks (replacing %s)",
            generation.value or "(first)",
            engine.chunks,
            previous or "nothing",
        )

    def _open_behind(self, generation: Generation) -> None:
        """Open ``generation``'s engine in a thread, unless one is opening it or failed to less than
        ``SOPILOT_MARKER_POLL_SECONDS`` ago."""
        with self._opening_lock:
            recent = time.monotonic() - self._opening_since < self.settings.marker_poll_seconds
            if self._opening == generation.value and (self._opening_alive or recent):
                return
            self._opening, self._opening_since, self._opening_alive = generation.value, time.monotonic(), True
        threading.Thread(target=self._open_now, args=(generation,), name="engine-reopen", daemon=True).start()

    def _open_now(self, generation: Generation) -> None:
        try:
            with self._lock:
                if self._engine is None or self._engine.generation != generation.value:
                    self._swap(open_engine(self.settings, self.embedder, self.llm, generation), generation)
        except Exception:  # the previous engine keeps serving; the next request after the wait tries again
            log.exception("opening index generation %s failed; serving the previous one", generation.value)
        finally:
            with self._opening_lock:
                self._opening_alive = False
                self._opening_since = time.monotonic()

    def describe(self) -> dict[str, Any]:
        return {"keys_required": self.keys.required(), "drafter": self.settings.drafter}

    def close(self) -> None:
        if self.querylog is not None:
            self.querylog.close()
        self.keys.close()
        self.limiter.close()
