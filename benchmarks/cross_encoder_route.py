"""A cross-encoder trained on the KB through sentence-transformers' ``CrossEncoderTrainer``, then measured as a
re-scorer of the search's top passages.

Run: .venv/bin/python benchmarks/cross_encoder_route.py TESTSET --kb KB --index INDEX --out DIR
                      [--negatives 3] [--lr 4e-5] [--epochs 1] [--max-length 128] [--limit N] [--skip-training]
Needs ``pip install datasets accelerate`` (the trainer's own requirements; SOPilot does not depend on them).

Questions are mined from the KB's active SOPs as the question embedder's training mines them
(``train/pairs.py``), every other one roughened as users write. Each is searched, and the first ``--negatives``
returned sections that are not its answer are its hard negatives. A ``CrossEncoder`` initialised from the
packaged MiniLM (a new one-logit head) is trained on (question, "title > heading path" + text) pairs with
``BinaryCrossEntropyLoss`` (``pos_weight`` = negatives per positive), the recipe of sentence-transformers'
reranker examples. Then both halves of TESTSET are searched (10 sections) and the top ``depth`` re-ordered by
``score / best score + w * sigmoid(logit)``, for depths 3, 5, 10 and weights 0 (the search) to 1000 (the
cross-encoder alone); section hit@1, hit@5 and MRR@10 of the answerable questions are printed, with the
cross-encoder's cost per passage. Training never sees the test set's questions.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sopilot.core.settings import Settings  # noqa: E402
from sopilot.eval.metrics import passage_relevance  # noqa: E402
from sopilot.eval.runner import resolve_relevant  # noqa: E402
from sopilot.eval.testset import load_testset, select_half  # noqa: E402
from sopilot.index.embedder import embedder_for, resolve_model_path, set_offline  # noqa: E402
from sopilot.retrieval.search import Retriever, open_retriever  # noqa: E402
from sopilot.train.answerability import Mined, active_sops, roughen  # noqa: E402
from sopilot.train.pairs import Pair, mine_pairs  # noqa: E402

DEPTHS = (3, 5, 10)
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 1000.0)


def passage_text(title: str, heading_path: list[str] | tuple[str, ...], text: str) -> str:
    """What the cross-encoder reads of a section: where it sits, then its text."""
    return f"{title} > {' > '.join(heading_path)}\n{text}"


def training_rows(settings: Settings, retriever: Retriever, negatives: int) -> tuple[dict[str, list[Any]], int]:
    embedder = embedder_for(settings)
    sops = active_sops(settings, embedder)
    pairs = mine_pairs(sops, 4000, 0)
    vocabulary = sorted({w for p in pairs for w in p.question.split() if len(w) > 3 and w.isalpha()})
    rough = roughen([Mined(p.section, p.question) for p in pairs], vocabulary, keep=0.7, seed=0)
    pairs = [
        Pair(r.question if i % 2 else p.question, p.section, p.kind)
        for i, (r, p) in enumerate(zip(rough, pairs, strict=True))
    ]
    sections: dict[str, str] = {}
    for sop in sops:
        for chunk in sop.chunks:
            link = f"{chunk.path}#{chunk.anchor}"
            head = sections.get(link) or passage_text(sop.meta.title, chunk.heading_path, "")
            sections[link] = f"{head}\n{chunk.text}" if link in sections else head + chunk.text
    rows: dict[str, list[Any]] = {"query": [], "passage": [], "label": []}
    for i, pair in enumerate(pairs):
        if pair.section not in sections:
            continue
        found = [p for p in retriever.search(pair.question, k=10).passages if p.link != pair.section][:negatives]
        for text, label in [(sections[pair.section], 1.0)] + [
            (passage_text(p.title, p.heading_path, p.text), 0.0) for p in found
        ]:
            rows["query"].append(pair.question)
            rows["passage"].append(text)
            rows["label"].append(label)
        if i % 250 == 0:
            print(f"mined {i}/{len(pairs)} questions", file=sys.stderr, flush=True)
    return rows, len(pairs)


def train(args: argparse.Namespace, settings: Settings, retriever: Retriever) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    rows, questions = training_rows(settings, retriever, args.negatives)
    torch.manual_seed(0)
    base = str(resolve_model_path(settings.embedder))
    model = CrossEncoder(base, num_labels=1, max_length=args.max_length, device="cpu", local_files_only=True)
    data = Dataset.from_dict(rows).shuffle(seed=0)
    if args.limit:
        data = data.select(range(min(args.limit, len(data))))
    training = CrossEncoderTrainingArguments(
        output_dir=str(args.out / "checkpoints"),
        num_train_epochs=args.epochs,
        per_device_train_batch_size=16,
        learning_rate=args.lr,
        warmup_steps=0.1,
        save_strategy="no",
        report_to="none",
        logging_steps=25,
        use_cpu=True,
        seed=0,
    )
    loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(args.negatives)))
    started = time.perf_counter()
    trainer = CrossEncoderTrainer(model=model, args=training, train_dataset=data, loss=loss)
    trainer.train()
    losses = [round(e["loss"], 4) for e in trainer.state.log_history if "loss" in e]
    model.save_pretrained(str(args.out))
    record = {
        "questions": questions,
        "pairs": len(data),
        "negatives": args.negatives,
        "lr": args.lr,
        "epochs": args.epochs,
        "max_length": args.max_length,
        "losses": losses,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (args.out / "cross_encoder_route.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def measure(args: argparse.Namespace, settings: Settings, retriever: Retriever, half: str) -> None:
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    questions = [q for q in select_half(load_testset(args.testset), half) if q.answerable]
    relevant = resolve_relevant(questions, settings.kb_dir)
    found = []
    for q in questions:
        passages = [p.to_dict() for p in retriever.search(q.question, k=10, filters=q.filters or None).passages]
        flags = [passage_relevance(p, relevant[q.id], "section") is not None for p in passages]
        found.append((q.question, passages, flags))
    model = CrossEncoder(str(args.out), device="cpu", local_files_only=True, max_length=args.max_length)
    started = time.perf_counter()
    logits = [
        model.predict(
            [(question, passage_text(p["title"], p["heading_path"], p["text"])) for p in passages],
            activation_fn=torch.nn.Identity(),
        )
        if passages
        else []
        for question, passages, _ in found
    ]
    per_passage = (time.perf_counter() - started) * 1000 / max(1, sum(len(p) for _, p, _ in found))
    print(f"{half} half, {len(found)} answerable questions; cross-encoder {per_passage:.1f} ms a passage")
    print(f"  search alone: {_metrics([flags for _, _, flags in found])}")
    for depth in DEPTHS:
        for weight in WEIGHTS[1:]:
            orders = []
            for (_, passages, flags), scores in zip(found, logits, strict=True):
                if not passages:
                    orders.append(flags)
                    continue
                head = min(depth, len(passages))
                best = passages[0]["score"] or 1.0
                blend = [passages[i]["score"] / best + weight / (1 + math.exp(-float(scores[i]))) for i in range(head)]
                order = sorted(range(head), key=lambda i: -blend[i]) + list(range(head, len(passages)))
                orders.append([flags[i] for i in order])
            print(f"  depth {depth:2d}, weight {weight:7.2f}: {_metrics(orders)}")


def _metrics(rankings: list[list[bool]]) -> str:
    """Section hit@1 / hit@5 / MRR@10 over the questions' relevance flags in ranked order."""
    ranks = [next((i for i, hit in enumerate(flags[:10]) if hit), None) for flags in rankings]
    n = max(1, len(ranks))
    hit1 = sum(r == 0 for r in ranks) / n
    hit5 = sum(r is not None and r < 5 for r in ranks) / n
    mrr = sum(1 / (r + 1) for r in ranks if r is not None) / n
    return f"{hit1:.3f} / {hit5:.3f} / {mrr:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("testset", type=Path)
    parser.add_argument("--kb", type=Path, default=ROOT / "kb")
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="the trained cross-encoder's folder")
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--lr", type=float, default=4e-5)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--limit", type=int, default=0, help="train on the first N shuffled pairs only")
    parser.add_argument("--skip-training", action="store_true", help="measure the model already in --out")
    args = parser.parse_args()
    set_offline()
    settings = Settings(kb_dir=args.kb, index_dir=args.index)
    retriever = open_retriever(settings, embedder_for(settings))
    if not args.skip_training:
        record = train(args, settings, retriever)
        print(f"trained on {record['pairs']} pairs in {record['seconds']} s; loss {record['losses']}")
    for half in ("dev", "test"):
        measure(args, settings, retriever, half)


if __name__ == "__main__":
    main()
