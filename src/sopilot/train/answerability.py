"""Train the answerability model from the KB itself, by leaving SOPs out.

For each SOP a few questions are mined from its own text (its title, its resolving and diagnosing headings,
the first sentence of its sections). Searched as they are, they are questions the SOPs cover. Searched with
that SOP taken out (its passages dropped from the ranking, its words no longer counted as known), they are
questions next to what the SOPs cover, as users' near-misses are. A logistic regression over the search's
evidence (``sopilot.retrieval.answerability.FEATURES``) learns to tell the two apart. No test set question is
ever used; the threshold it ships with leaves 10% of the covered examples below it, and ``sopilot eval
calibrate`` sets it from runs.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from sopilot.core.settings import Settings
from sopilot.core.types import Sop
from sopilot.index.embedder import Embedder
from sopilot.index.lexical import query_terms
from sopilot.ingest.chunker import Chunker
from sopilot.ingest.discover import discover
from sopilot.ingest.run import current_kb_version
from sopilot.ingest.sop import load_sop
from sopilot.retrieval.answerability import FEATURES, AnswerabilityModel, answerability_path, evidence_of
from sopilot.retrieval.query import focus_query
from sopilot.retrieval.search import Retriever, open_retriever

log = logging.getLogger(__name__)
QUESTIONS_PER_SOP = 6
MAX_QUESTIONS = 1200  # mined questions at most (each is searched twice): about 2 minutes on 2 cores
COVERED_BELOW_THRESHOLD = 0.10  # share of covered examples the shipped threshold leaves below it
_SENTENCE_END = re.compile(r"(?<=[.?!])\s")


@dataclass(frozen=True, slots=True)
class Mined:
    path: str
    question: str


def mine_questions(sop: Sop, per_sop: int = QUESTIONS_PER_SOP, seed: int = 0) -> list[Mined]:
    """Questions an SOP answers, in its own words: its title, "title: heading" of its resolving and
    diagnosing sections, and the first sentence (up to 18 words) of its sections."""
    found = [sop.meta.title]
    for chunk in sop.chunks:
        role = str(chunk.metadata.get("role", ""))
        heading = chunk.heading_path[-1] if chunk.heading_path else ""
        if role in ("resolve", "diagnose") and len(chunk.heading_path) > 1:
            found.append(f"{sop.meta.title}: {heading.split(':')[-1].strip()}")
        if role in ("resolve", "diagnose", "reference"):
            opening = opening_sentence(chunk.text)
            if opening:
                found.append(opening)
    unique = list(dict.fromkeys(q for q in found if q.strip()))
    random.Random(f"{seed}:{sop.path}").shuffle(unique)
    return [Mined(sop.path, q) for q in unique[:per_sop]]


def opening_sentence(text: str, max_words: int = 18) -> str:
    """The first sentence (up to ``max_words`` words) of the first prose or list line of six words or more."""
    lines = [
        line.strip("-*> ").strip()
        for line in text.splitlines()
        if len(line.split()) >= 6 and not line.lstrip().startswith(("#", "|", "```"))
    ]
    return " ".join(_SENTENCE_END.split(lines[0])[0].split()[:max_words]) if lines else ""


def active_sops(settings: Settings, embedder: Embedder) -> list[Sop]:
    """Every active SOP of the KB, parsed and chunked as the index holds it."""
    chunker = Chunker(embedder.count_tokens, embedder.max_tokens)
    sops = []
    for rel in discover(settings.kb_dir, tuple(settings.ignore)).files:
        loaded = load_sop(settings.kb_dir, rel, chunker, settings.max_file_bytes)
        if loaded.sop is not None and loaded.sop.meta.status == "active":
            sops.append(loaded.sop)
    return sops


def roughen(mined: Sequence[Mined], vocabulary: Sequence[str], keep: float = 0.6, seed: int = 0) -> list[Mined]:
    """Questions in users' words share fewer words with the SOP than its own sentences do: keep a part of each
    mined question's words and mix in words from elsewhere in the KB, so that the evidence of the examples
    looks like the evidence of real questions (half of a real question's terms are in the passage that
    answers it; nine in ten of a sentence copied from the SOP are)."""
    rng = random.Random(seed)
    out = []
    for item in mined:
        words = item.question.split()
        kept = [w for w in words if rng.random() < keep] or words[:1]
        extra = [rng.choice(vocabulary) for _ in range(max(1, len(kept) // 3))] if vocabulary else []
        mixed = kept + extra
        rng.shuffle(mixed)
        out.append(Mined(item.path, " ".join(mixed)))
    return out


def evidence_for(retriever: Retriever, question: str, leave_out: str | None = None) -> list[float]:
    """The search's evidence for ``question``, as if the SOP at ``leave_out`` were not indexed."""
    result = retriever.search(question, k=20)
    passages = [p for p in result.passages if p.path != leave_out][:5]
    focus = focus_query(question)
    terms = query_terms(focus)
    lexical = retriever.lexical
    unknown = len(lexical.unknown_terms(terms, except_path=leave_out)) if lexical is not None else 0
    values = evidence_of(focus, passages, len(terms), unknown)
    return [values[name] for name in FEATURES]


def leave_out_examples(
    retriever: Retriever, mined: Sequence[Mined], progress: bool = True
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features and labels (1 covered, 0 left out) of every mined question, and the SOP each came from."""
    rows, labels, groups = [], [], []
    for item in tqdm(mined, desc="leaving SOPs out", unit="question", disable=not progress):
        rows.append(evidence_for(retriever, item.question))
        labels.append(1)
        rows.append(evidence_for(retriever, item.question, leave_out=item.path))
        labels.append(0)
        groups += [item.path, item.path]
    return np.array(rows, dtype=np.float64), np.array(labels), groups


def fit(x: np.ndarray, y: np.ndarray, trained_on: dict[str, object]) -> AnswerabilityModel:
    """Standardised logistic regression (scikit-learn), with the threshold that leaves 10% of covered below."""
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / scale, y)
    weights = dict(zip(FEATURES, (float(w) for w in model.coef_[0]), strict=True))
    built = AnswerabilityModel(
        weights=weights,
        mean=dict(zip(FEATURES, (float(v) for v in mean), strict=True)),
        scale=dict(zip(FEATURES, (float(v) for v in scale), strict=True)),
        bias=float(model.intercept_[0]),
        threshold=0.5,
        trained_on=trained_on,
    )
    covered = sorted(built.probability(dict(zip(FEATURES, row, strict=True))) for row in x[y == 1])
    threshold = covered[int(COVERED_BELOW_THRESHOLD * len(covered))] if covered else 0.5
    return AnswerabilityModel(built.weights, built.mean, built.scale, built.bias, round(threshold, 4), trained_on)


def held_out_auc(x: np.ndarray, y: np.ndarray, groups: list[str], seed: int = 0) -> float | None:
    """AUC on a fifth of the SOPs, the model fitted on the rest: how well the leave-out task is learned."""
    from sklearn.metrics import roc_auc_score

    paths = sorted(set(groups))
    random.Random(seed).shuffle(paths)
    test = set(paths[: max(1, len(paths) // 5)])
    mask = np.array([g in test for g in groups])
    if mask.all() or not mask.any() or len(set(y[mask])) < 2:
        return None
    model = fit(x[~mask], y[~mask], {})
    scores = [model.probability(dict(zip(FEATURES, row, strict=True))) for row in x[mask]]
    return round(float(roc_auc_score(y[mask], scores)), 4)


def train_answerability(settings: Settings, embedder: Embedder, *, progress: bool = True) -> AnswerabilityModel:
    """Mine, leave out, fit, and write ``answerability.json`` in the index folder; returns the model."""
    started = time.perf_counter()
    retriever = open_retriever(settings.model_copy(update={"coverage": "rule"}), embedder)  # evidence only
    mined = [m for sop in active_sops(settings, embedder) for m in mine_questions(sop)]
    if len(mined) > MAX_QUESTIONS:
        mined = random.Random(0).sample(mined, MAX_QUESTIONS)
    vocabulary = sorted({w for m in mined for w in m.question.split() if len(w) > 3 and w.isalpha()})
    mined = roughen(mined, vocabulary)
    if len({m.path for m in mined}) < 5:
        raise ValueError("the answerability model needs at least 5 active SOPs to leave out; index more SOPs first")
    x, y, groups = leave_out_examples(retriever, mined, progress)
    trained_on = {
        "kb_version": current_kb_version(settings),
        "embedder": embedder.name,
        "sops": len({m.path for m in mined}),
        "questions": len(mined),
        "examples": len(y),
        "held_out_auc": held_out_auc(x, y, groups),
        "seconds": 0.0,
    }
    model = fit(x, y, trained_on)
    trained_on["seconds"] = round(time.perf_counter() - started, 1)
    path = answerability_path(settings.index_dir)
    path.write_text(model.to_json(), encoding="utf-8")
    log.info("answerability model written to %s", path)
    return model
