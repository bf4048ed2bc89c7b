"""POST /v1/feedback: the agent's verdict on an answer, the text actually sent, and a comment."""

from __future__ import annotations

from fastapi import APIRouter

from sopilot.api.deps import FeedbackGiver, StateDep
from sopilot.api.errors import ApiError, error_responses
from sopilot.api.schemas import FeedbackRequest, FeedbackResponse
from sopilot.index.querylog import UnknownAnswerError

router = APIRouter(prefix="/v1", tags=["agents"])


@router.post(
    "/feedback",
    status_code=201,
    response_model=FeedbackResponse,
    responses=error_responses(400, 401, 403, 404, 409, 413, 422, 429),
    summary="Record the agent's verdict on an answer (accepted, edited, rejected)",
)
def feedback(body: FeedbackRequest, state: StateDep, who: FeedbackGiver) -> FeedbackResponse:
    if state.querylog is None:
        raise ApiError(
            409,
            "querylog_off",
            "this server keeps no query log, so it cannot record feedback",
            "set SOPILOT_QUERYLOG=true",
        )
    try:
        feedback_id = state.querylog.record_feedback(
            body.answer_id, body.verdict, sent_text=body.sent_text, comment=body.comment, key_id=who.key_id
        )
    except UnknownAnswerError as exc:
        raise ApiError(
            404, "unknown_answer", str(exc), "send the answer_id that POST /v1/answer (or /v1/search) returned"
        ) from exc
    return FeedbackResponse(feedback_id=feedback_id, answer_id=body.answer_id, verdict=body.verdict)
