"""The steps of ``sopilot train``, in order, and the record they leave in the index folder."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from sopilot.core.settings import Settings
from sopilot.index.embedder import Embedder
from sopilot.ingest.run import current_kb_version, run_ingest
from sopilot.train.answerability import train_answerability
from sopilot.train.embedder import EmbedderTraining, train_query_embedder
from sopilot.train.record import STEPS, TrainRecord, parse_steps

log = logging.getLogger(__name__)


def run_training(
    settings: Settings,
    embedder: Embedder,
    steps: Sequence[str] = STEPS,
    *,
    open_embedder: Callable[[Settings], Embedder] | None = None,
    plan: EmbedderTraining | None = None,
    progress: bool = True,
) -> tuple[TrainRecord, Path]:
    """Bring the index up to date with the KB, run each step asked for, and write ``train.json``.

    The embedder step fine-tunes a copy of the embedder for questions into the index folder; the steps after
    it, and every search on this index (``SOPILOT_QUERY_EMBEDDER=auto``, the default), embed questions with it
    (``open_embedder`` opens the embedder the settings name)."""
    steps = parse_steps(",".join(steps))
    started = time.perf_counter()
    say = _announcer(progress)
    record = TrainRecord.start(settings)
    say("syncing the index with the KB")
    report = run_ingest(settings, embedder, progress=progress)
    record.kb_version = current_kb_version(settings)
    record.steps["index"] = {"files": report.files, "sections": report.sections, "chunks": report.chunks}
    if "embedder" in steps:
        say("embedder: mining questions from the KB and fine-tuning the question side")
        folder, figures = train_query_embedder(settings, embedder, plan, progress=progress)
        record.steps["embedder"] = figures
        settings = settings.model_copy(update={"query_embedder": str(folder)})
        embedder = (open_embedder or _default_open)(settings)
        record.use = f"questions on this index are embedded by {folder} (SOPILOT_QUERY_EMBEDDER=off: not)"
    if "answerability" in steps:
        say("answerability: mining questions and leaving SOPs out")
        model = train_answerability(settings, embedder, progress=progress)
        record.steps["answerability"] = dict(model.trained_on)
    record.finish(started)
    return record, record.write(settings.index_dir)


def _default_open(settings: Settings) -> Embedder:
    from sopilot.index.embedder import load_embedder, query_model_for

    return load_embedder(
        settings.embedder,
        device=settings.device,
        batch_size=settings.embed_batch_size,
        query_model=query_model_for(settings),
    )


def _announcer(progress: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if progress:
            tqdm.write(f"train: {message}", file=sys.stderr)
        log.info(message)

    return say
