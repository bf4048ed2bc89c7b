"""Fine-tune the question side of the embedder on questions mined from the KB (domain adaptation).

The documents keep the vectors the index already holds; a copy of the embedder is trained to embed questions
close to the section that answers them, with every chunk of the index as a negative (a softmax over the whole
KB: the in-batch negatives of ``MultipleNegativesRankingLoss`` and the hybrid search's confusers are among
them). Only short questions go through the model, so a step costs a fraction of a second on 2 cores and
nothing is embedded again; training both sides (documents at 192 tokens through forward and backward) took
88 s per batch of 32 on the same machine. A plain PyTorch loop: ``SentenceTransformer.fit`` and
``SentenceTransformerTrainer`` need ``datasets`` and ``accelerate`` and have no loss over fixed vectors.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from sopilot.core.settings import Settings
from sopilot.core.types import Sop
from sopilot.index.embedder import QUERY_MODEL_FOLDER, TRAINED_FILE, Embedder, resolve_model_path, set_offline
from sopilot.index.store import VectorStore, make_client
from sopilot.train.answerability import Mined, active_sops, roughen
from sopilot.train.asked import SectionFinder, feedback_pairs, file_pairs
from sopilot.train.pairs import Pair, mine_pairs
from sopilot.train.written import written_pairs

log = logging.getLogger(__name__)
WRITTEN_MAX_TOKENS = 64  # a written question is one line
ASKED_KINDS = frozenset({"asked", "feedback"})


@dataclass(frozen=True)
class EmbedderTraining:
    """How the fine-tune runs: minutes on 2 cores for a KB of a thousand sections."""

    max_pairs: int = 4000
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 3e-5
    warmup: float = 0.1
    scale: float = 20.0  # cosine similarities times this are the logits (MultipleNegativesRankingLoss's 20)
    roughened: bool = True  # add each question again with words dropped and others mixed in, as users write
    max_seq_length: int = 64
    held_out: float = 0.1  # share of sections whose questions are kept out of training and scored
    map_questions: int = 1500  # roughened questions whose best similarities map the coverage threshold
    threads: int = 2
    seed: int = 0
    written: int = 0  # sections whose question the configured language model writes (``sopilot.train.written``)
    questions: str | None = None  # a JSONL file of graded questions in users' words (``sopilot.train.asked``)
    feedback: bool = False  # add the answers agents accepted or sent edited, from the query log


def model_folder(index_dir: Path) -> Path:
    return (index_dir / QUERY_MODEL_FOLDER).resolve()


def train_query_embedder(
    settings: Settings, embedder: Embedder, plan: EmbedderTraining | None = None, *, progress: bool = True
) -> tuple[Path, dict[str, Any]]:
    """Mine questions, fine-tune a copy of the embedder on them against the index's own vectors, score the
    held-out sections before and after, save. Returns the model folder and its figures."""
    import torch
    from sentence_transformers import SentenceTransformer

    plan = plan or EmbedderTraining()
    started = time.perf_counter()
    set_offline()
    sops = active_sops(settings, embedder)
    pairs = mine_pairs(sops, plan.max_pairs, plan.seed)
    written: dict[str, int] | None = None
    if plan.written:
        from sopilot.draft.llm import describe_llm, load_llm

        short = settings.model_copy(update={"llm_max_tokens": WRITTEN_MAX_TOKENS})
        extra, written = written_pairs(
            sops, load_llm(short), describe_llm(short), settings.index_dir, plan.written, progress=progress
        )
        pairs += extra
    asked = _asked_pairs(settings, sops, plan)
    pairs += [p for found in asked.values() for p in found[0]]
    store = VectorStore.open(make_client(settings), settings.collection, embedder.name, embedder.dimension)
    _, metas, vectors = store.all_vectors()
    links = [f"{m.get('path', '')}#{m.get('anchor', '')}" for m in metas]
    pairs = [p for p in pairs if p.section in set(links)]
    sections = sorted({p.section for p in pairs})
    if len(sections) < 10:
        raise ValueError(
            f"the embedder needs questions about at least 10 sections to learn from, the KB gave {len(sections)}; "
            "index more SOPs first or leave the embedder step out (--steps answerability)"
        )
    held = set(random.Random(plan.seed).sample(sections, max(1, int(plan.held_out * len(sections)))))
    train_pairs = [p for p in pairs if p.section not in held]
    held_pairs = [p for p in pairs if p.section in held]
    vocabulary = sorted({w for p in train_pairs for w in p.question.split() if len(w) > 3 and w.isalpha()})
    mapping = [m.question for m in roughen([_as_mined(p) for p in pairs], vocabulary, 0.7, plan.seed + 1)]
    mapping = mapping[: plan.map_questions]
    if plan.roughened:  # questions people asked are in users' words already
        mined = [p for p in train_pairs if p.kind not in ASKED_KINDS]
        rough = roughen([_as_mined(p) for p in mined], vocabulary, keep=0.7, seed=plan.seed)
        train_pairs += [Pair(r.question, p.section, p.kind + "-rough") for r, p in zip(rough, mined, strict=True)]

    torch.manual_seed(plan.seed)
    before_threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    try:
        model = SentenceTransformer(str(resolve_model_path(embedder.name)), device="cpu", local_files_only=True)
        model.max_seq_length = plan.max_seq_length
        docs = torch.from_numpy(vectors)
        owner = _Owners(links)
        before = held_out_mrr(model, held_pairs, docs, owner)
        best_before = best_similarities(model, mapping, docs)
        losses = _fit(model, train_pairs, docs, owner, plan, progress)
        after = held_out_mrr(model, held_pairs, docs, owner)
        best_after = best_similarities(model, mapping, docs)
        folder = model_folder(settings.index_dir)
        model.max_seq_length = embedder.max_tokens
        model.save(str(folder))
    finally:
        torch.set_num_threads(before_threads)
    figures: dict[str, Any] = {
        "documents": embedder.name,
        "folder": str(folder),
        "questions": len(train_pairs),
        "kinds": _count(p.kind for p in train_pairs),
        **({"written": written} if written is not None else {}),
        **{name: counts for name, (_, counts) in asked.items()},
        "sections": len(sections) - len(held),
        "chunks": len(links),
        "held_out_sections": len(held),
        "held_out_questions": len(held_pairs),
        "held_out_mrr@10_before": before,
        "held_out_mrr@10_after": after,
        "similarity_map": {
            "questions": len(mapping),
            "embedder": _quantiles(best_before),
            "trained": _quantiles(best_after),
        },
        "plan": asdict(plan),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        **_loss_trend(losses),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (folder / TRAINED_FILE).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return folder, figures


def _asked_pairs(
    settings: Settings, sops: Sequence[Sop], plan: EmbedderTraining
) -> dict[str, tuple[list[Pair], dict[str, int]]]:
    """The questions people asked, by source (``questions_file``, ``feedback``), with their counts."""
    if not plan.questions and not plan.feedback:
        return {}
    finder = SectionFinder(sops)
    asked = {}
    if plan.questions:
        asked["questions_file"] = file_pairs(Path(plan.questions), finder)
    if plan.feedback:
        asked["feedback"] = feedback_pairs(settings.index_dir, finder)
    return asked


def _loss_trend(losses: Sequence[float]) -> dict[str, float]:
    """Mean loss over the first and the last third of the batches (one batch's loss is noisy)."""
    if not losses:
        return {}
    third = max(1, len(losses) // 3)
    return {
        "loss_first_third": round(float(np.mean(losses[:third])), 4),
        "loss_last_third": round(float(np.mean(losses[-third:])), 4),
    }


def _as_mined(pair: Pair) -> Mined:
    return Mined(pair.section, pair.question)


class _Owners:
    """Which chunks belong to which section: a chunk-to-section index and each section's row."""

    def __init__(self, links: Sequence[str]) -> None:
        self.sections = sorted(set(links))
        self.row = {link: i for i, link in enumerate(self.sections)}
        self.of_chunk = np.array([self.row[link] for link in links])


def _fit(
    model: Any, pairs: Sequence[Pair], docs: Any, owner: _Owners, plan: EmbedderTraining, progress: bool
) -> list[float]:
    """Softmax over every chunk, the answer being any chunk of the question's section."""
    import torch

    steps_per_epoch = (len(pairs) + plan.batch_size - 1) // plan.batch_size
    total = steps_per_epoch * plan.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.learning_rate, weight_decay=0.01)
    warm = max(1, int(plan.warmup * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm)))
    )
    chunk_section = torch.from_numpy(owner.of_chunk)
    rng = random.Random(plan.seed)
    model.train()
    losses: list[float] = []
    bar = tqdm(total=total, desc="fine-tuning the question embedder", unit="batch", disable=not progress)
    for _ in range(plan.epochs):
        order = list(pairs)
        rng.shuffle(order)
        for start in range(0, len(order), plan.batch_size):
            batch = order[start : start + plan.batch_size]
            features = model.preprocess([p.question for p in batch])
            queries = torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)
            logits = plan.scale * queries @ docs.T
            target = torch.tensor([owner.row[p.section] for p in batch])
            positive = chunk_section.unsqueeze(0) == target.unsqueeze(1)
            answer = torch.logsumexp(logits.masked_fill(~positive, -1e4), dim=1)
            value = (torch.logsumexp(logits, dim=1) - answer).mean()
            optimizer.zero_grad()
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(round(float(value.detach()), 4))
            bar.update(1)
            bar.set_postfix(loss=losses[-1])
    bar.close()
    model.eval()
    return losses


def _similarities(model: Any, questions: Sequence[str], docs: Any) -> np.ndarray:
    """Cosine similarity of each question (embedded by ``model``) to every chunk of the index."""
    import torch

    with torch.no_grad():
        vectors = model.encode_query(list(questions), batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(vectors) @ docs.numpy().T


def best_similarities(model: Any, questions: Sequence[str], docs: Any) -> np.ndarray:
    """Each question's best cosine similarity to any chunk of the index."""
    return _similarities(model, questions, docs).max(axis=1) if questions else np.zeros(0)


def _quantiles(values: np.ndarray) -> list[float]:
    """The 0th to 100th percentiles: the two models' lists map a similarity on one scale onto the other, the
    value that keeps the same share of the KB's own questions at or above it (``covered_min_dense_for``)."""
    if not len(values):
        return []
    return [round(float(v), 4) for v in np.percentile(values, np.arange(101))]


def held_out_mrr(model: Any, pairs: Sequence[Pair], docs: Any, owner: _Owners) -> float | None:
    """Section MRR@10 of held-out questions against every chunk of the index, dense ranking alone, a section
    scored by its best chunk."""
    if not pairs:
        return None
    scores = _similarities(model, [p.question for p in pairs], docs)
    total = 0.0
    for row, pair in zip(scores, pairs, strict=True):
        best = np.full(len(owner.sections), -np.inf)
        np.maximum.at(best, owner.of_chunk, row)
        rank = int((best > best[owner.row[pair.section]]).sum())
        total += 1.0 / (rank + 1) if rank < 10 else 0.0
    return round(total / len(pairs), 4)


def _count(kinds: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for kind in kinds:
        out[kind] = out.get(kind, 0) + 1
    return out
