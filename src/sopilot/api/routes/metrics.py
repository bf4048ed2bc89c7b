"""GET /metrics: Prometheus exposition (evaluator or admin key; Prometheus sends it as a bearer token)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from sopilot.api.deps import Observer, StateDep
from sopilot.api.errors import error_responses
from sopilot.core.errors import SopilotError
from sopilot.index.embedder import question_encoder_of

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **error_responses(401, 403, 429)},
    summary="Request counts and latencies, index size, coverage, question encoder (Prometheus text format)",
)
def metrics(state: StateDep, who: Observer) -> Response:
    try:
        state.metrics.chunks.set(state.engine().chunks)
    except SopilotError:
        state.metrics.chunks.set(0)
    state.metrics.encoder_in_use(question_encoder_of(state.embedder, open=False))
    return Response(state.metrics.exposition(), media_type=state.metrics.content_type)
