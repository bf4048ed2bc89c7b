"""POST /v1/ingest: re-index what changed in the KB folder (authors); one ingest at a time per index folder."""

from __future__ import annotations

from fastapi import APIRouter

from sopilot.api.deps import Author, StateDep
from sopilot.api.errors import error_responses
from sopilot.api.schemas import IngestRequest, IngestResponse

router = APIRouter(prefix="/v1", tags=["authors"])


@router.post(
    "/ingest",
    response_model=IngestResponse,
    responses=error_responses(400, 401, 403, 409, 413, 422, 429, 507),
    summary="Sync the KB folder into the index (incremental); the server answers from the new index after",
)
def ingest(body: IngestRequest, state: StateDep, who: Author) -> IngestResponse:
    from sopilot.ingest.run import run_ingest

    report = run_ingest(state.settings, state.embedder, rebuild=body.rebuild, progress=False)
    engine = state.engine(fresh=True)  # this worker reopens now; the others (and replicas) at their next request
    return IngestResponse.of(report, engine.generation, engine.chunks)
