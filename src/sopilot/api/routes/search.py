"""POST /v1/search: ranked SOP passages for a question, with the coverage decision."""

from __future__ import annotations

import time

from fastapi import APIRouter

from sopilot.api.deps import Agent, EngineDep, StateDep
from sopilot.api.errors import error_responses
from sopilot.api.limits import check_query_length
from sopilot.api.recording import new_id, record_search
from sopilot.api.schemas import SearchRequest, SearchResponse

router = APIRouter(prefix="/v1", tags=["agents"])


@router.post(
    "/search",
    response_model=SearchResponse,
    responses=error_responses(400, 401, 403, 413, 422, 429, 503),
    summary="Ranked SOP passages for a question",
)
def search(body: SearchRequest, state: StateDep, engine: EngineDep, who: Agent) -> SearchResponse:
    check_query_length(body.query, state.settings.max_query_chars)
    start = time.perf_counter()
    k = body.k or state.settings.search_k
    result = state.results.search(engine.generation, engine.retriever.search, body.query, k, body.filters.as_dict())
    ms = (time.perf_counter() - start) * 1000
    query_id = new_id()
    state.metrics.covered("search", result.covered)
    record_search(state.querylog, query_id, body.query, result, ms=ms, kb=engine.kb_version, key_id=who.key_id)
    return SearchResponse.of(query_id, result, engine.kb_version, engine.generation)
