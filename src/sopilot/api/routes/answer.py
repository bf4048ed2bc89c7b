"""POST /v1/answer: a drafted reply with citations, as JSON or as server-sent events while it is written."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.sse import EventSourceResponse

from sopilot.api.deps import Agent, EngineDep, StateDep
from sopilot.api.errors import ApiError, ErrorBody, ErrorDetail, error_responses
from sopilot.api.limits import check_query_length
from sopilot.api.recording import new_id, record_answer
from sopilot.api.schemas import AnswerRequest, AnswerResponse, PassagePublic
from sopilot.api.state import AppState
from sopilot.core.errors import SopilotError
from sopilot.core.types import Draft
from sopilot.draft.base import Drafter
from sopilot.retrieval.search import SearchResult

router = APIRouter(prefix="/v1", tags=["agents"])

_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer (JSON), or with `stream: true` server-sent events: first one `passages` "
        'event (`{"answer_id", "covered", "coverage_reason", "passages"}`: the search, before any draft), then '
        '`delta` events (`{"text": ...}`) as the draft is written, then one `answer` event holding the '
        "AnswerResponse, or an `error` event holding an error body.",
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "event": {"enum": ["passages", "delta", "answer", "error"]},
                        "data": {"type": "string"},
                    },
                    "required": ["event", "data"],
                }
            }
        },
    }
}


@router.post(
    "/answer",
    response_model=AnswerResponse,
    responses={**_STREAM_DOC, **error_responses(400, 401, 403, 413, 422, 429, 503)},
    summary="A drafted reply with citations, for the agent to review",
)
def answer(body: AnswerRequest, state: StateDep, engine: EngineDep, who: Agent) -> AnswerResponse | EventSourceResponse:
    check_query_length(body.query, state.settings.max_query_chars)
    start = time.perf_counter()
    k = body.k or state.settings.search_k
    result = state.results.search(engine.generation, engine.retriever.search, body.query, k, body.filters.as_dict())
    drafter = engine.drafters[body.tone]
    answer_id = new_id()
    if body.stream:
        return EventSourceResponse(
            _events(state, drafter, body, result, answer_id, who.key_id, start, engine.generation)
        )
    draft = drafter.draft(body.query, result)
    _record(state, answer_id, body, result, draft, start, who.key_id)
    return AnswerResponse.of(answer_id, body.tone, draft, result, engine.generation)


def _record(
    state: AppState, answer_id: str, body: AnswerRequest, result: SearchResult, draft: Draft, start: float, key: str
) -> None:
    ms = (time.perf_counter() - start) * 1000
    state.metrics.covered("answer", draft.covered)
    record_answer(state.querylog, answer_id, body.query, body.tone, result, draft, ms=ms, key_id=key)


def sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _events(
    state: AppState,
    drafter: Drafter,
    body: AnswerRequest,
    result: SearchResult,
    answer_id: str,
    key: str,
    start: float,
    generation: str,
) -> Iterator[str]:
    passages = [PassagePublic.of(p).model_dump(mode="json") for p in result.passages]
    yield sse(
        "passages",
        {"answer_id": answer_id, "covered": result.covered, "coverage_reason": result.reason, "passages": passages},
    )
    try:
        for piece in drafter.stream(body.query, result):
            if isinstance(piece, Draft):
                _record(state, answer_id, body, result, piece, start, key)
                yield sse(
                    "answer", AnswerResponse.of(answer_id, body.tone, piece, result, generation).model_dump(mode="json")
                )
                return
            yield sse("delta", {"text": piece})
        raise ApiError(500, "no_draft", "the drafter stopped without a draft", "retry without stream")
    except (ApiError, SopilotError) as exc:
        code = exc.code if isinstance(exc, ApiError) else type(exc).__name__
        error = ErrorBody(error=ErrorDetail(code=code, message=str(exc), fix=getattr(exc, "fix", "")))
        yield sse("error", error.model_dump(exclude_none=True))
