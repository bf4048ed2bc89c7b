"""Liveness and readiness: for load balancers and orchestrators, no key needed."""

from __future__ import annotations

from fastapi import APIRouter

from sopilot.api.deps import EngineDep, StateDep
from sopilot.api.errors import error_responses
from sopilot.api.schemas import Health, QuestionEncoderInfo, Readiness
from sopilot.index.embedder import question_encoder_of

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is up")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses=error_responses(503),
    summary="The index is open and answering; which drafter and question encoder serve",
)
def readyz(state: StateDep, engine: EngineDep) -> Readiness:
    encoder = question_encoder_of(state.embedder)
    state.metrics.encoder_in_use(encoder)
    return Readiness(
        status="ready",
        chunks=engine.chunks,
        kb_version=engine.kb_version,
        generation=engine.generation,
        drafter=state.settings.drafter,
        keys_required=state.keys.required(),
        question_encoder=QuestionEncoderInfo.of(encoder) if encoder is not None else None,
    )
