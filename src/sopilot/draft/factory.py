"""The drafter the settings name, wired to the index it quotes from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sopilot.core.types import Passage
from sopilot.draft.base import Drafter, Tone
from sopilot.draft.extractive import ExtractiveDrafter

if TYPE_CHECKING:
    from llama_index.core.llms import LLM

    from sopilot.core.settings import Settings
    from sopilot.index.embedder import Embedder
    from sopilot.index.store import VectorStore


def open_drafter(
    settings: Settings,
    store: VectorStore,
    *,
    tone: Tone = "user",
    kb_version: str = "",
    embedder: Embedder | None = None,
    llm: LLM | None = None,
) -> Drafter:
    """The drafter the settings name, with the KB's escalation SOP at hand for abstentions.

    ``settings.drafter == "llm"`` wraps the extractive drafter (its fallback) in the language-model one; the
    model comes from ``llm`` or from the settings, and ``embedder`` serves the after-generation check.
    """
    from sopilot.retrieval.search import to_passage

    chunks = store.by_path(settings.escalation_sop)
    escalation = to_passage(chunks[0], {}, 0.0) if chunks else None
    provenance = {"kb_version": kb_version, "embedder": store.embedder_name}

    def sop_passages(path: str) -> list[Passage]:
        return [to_passage(c, {}, 0.0) for c in store.by_path(path)]

    extractive = ExtractiveDrafter(
        tone=tone,
        escalation_passage=escalation,
        sop_passages=sop_passages,
        provenance=provenance,
        template_min_overlap=settings.template_min_overlap,
    )
    if settings.drafter == "extractive":
        return extractive
    from sopilot.draft.grounding import SupportChecker
    from sopilot.draft.llm import describe_llm, load_llm
    from sopilot.draft.llm_drafter import LLMDrafter

    checker = SupportChecker(
        embedder, min_lexical=settings.draft_min_lexical, min_similarity=settings.draft_min_similarity
    )
    return LLMDrafter(
        llm or load_llm(settings),
        checker,
        extractive,
        model=describe_llm(settings),
        tone=tone,
        passages=settings.llm_passages,
        passage_chars=settings.llm_passage_chars,
        min_supported=settings.draft_min_supported,
        provenance=provenance,
    )
