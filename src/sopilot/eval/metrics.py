"""Scores of an evaluation run: retrieval at SOP, section and focused level, abstention, citations, drafts.

Section level counts any line overlap with the relevant section, which rewards long passages; the focused
level, reported beside it, counts a passage only when at least ``FOCUS_SHARE`` of its lines lie inside the
relevant section, so systems that show passages of different lengths compare fairly.

Pure functions over run records (plain dicts read from ``run.jsonl``). A ratio whose denominator is zero
is ``None`` ("undefined"), never a made-up 0.0 or 1.0, so that a run without, say, any unanswerable
question cannot look perfect or broken on that metric.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

Level = Literal["sop", "section", "focused"]
Record = Mapping[str, Any]
# A passage or citation (path, start_line, end_line), or a relevant entry (path, start, end).
Span = Mapping[str, Any]
Spans = Sequence[Span]
LEVELS: tuple[Level, ...] = ("sop", "section", "focused")
# Focused level: at least this share of a passage's lines lies inside the relevant section.
FOCUS_SHARE = 0.5
DEFAULT_KS = (1, 3, 5, 10)
RETRIEVAL_METRICS = ("hit", "recall", "mrr", "ndcg")

# Dotted paths into ``compute_metrics`` output gated by ``compare``: all of them are higher-is-better.
HEADLINE_METRICS = (
    "retrieval.section.hit@5",
    "retrieval.section.mrr@10",
    "retrieval.section.ndcg@10",
    "retrieval.sop.hit@5",
    "abstention.recall",
    "citation_precision",  # None (ungated) for runs without drafts
    "faithfulness",
)

# Small on purpose: only words that carry no SOP content. Negations stay content words ("do not restart").
_STOP_TEXT = """
    a an the and or but if then than so of to in on at by for with from into onto about as is are was were
    be been being am it its this that these those there here do does did has have had will would can could
    should shall may might i me my we us our you your he him his she her they them their what which who whom
    when where why how all any each some such also just very too up out over via per"""
STOP_WORDS = frozenset(_STOP_TEXT.split())
_WORD = re.compile(r"[^\W_]+")


# --- relevance ---------------------------------------------------------------------------------------------


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")


def _overlaps(passage: Span, entry: Span) -> bool:
    """Closed line ranges [start_line, end_line] and [start, end] share at least one line."""
    start, end = passage.get("start_line"), passage.get("end_line")
    if start is None or end is None:
        return False
    return bool(start <= entry["end"] and entry["start"] <= end)


def _inside_share(passage: Span, entry: Span) -> float:
    """Share of the passage's lines [start_line, end_line] that lie inside the section [start, end]."""
    start, end = passage.get("start_line"), passage.get("end_line")
    if start is None or end is None or end < start:
        return 0.0
    inside = min(end, entry["end"]) - max(start, entry["start"]) + 1
    return max(inside, 0) / (end - start + 1)


def _matches(passage: Span, entry: Span, level: Level) -> bool:
    if passage.get("path") != entry["path"]:
        return False
    if level == "focused":
        return _inside_share(passage, entry) >= FOCUS_SHARE
    return level == "sop" or _overlaps(passage, entry)


def passage_relevance(passage: Span, relevant: Spans, level: Level) -> int | None:
    """Index of the first relevant entry the passage matches, or None; at SOP level the path alone matches.

    Section level: the line ranges overlap; focused level: at least ``FOCUS_SHARE`` of the passage is inside.
    """
    _check_level(level)
    return next((i for i, entry in enumerate(relevant) if _matches(passage, entry, level)), None)


def _items_matched(passage: Span, relevant: Spans, level: Level) -> set[Any]:
    """The relevant items a passage matches: entry indexes at section level, paths at SOP level."""
    _check_level(level)
    if level == "sop":
        return {entry["path"] for entry in relevant if entry["path"] == passage.get("path")}
    return {i for i, entry in enumerate(relevant) if _matches(passage, entry, level)}


def _item_count(relevant: Spans, level: Level) -> int:
    """Relevant items: entries at section level, distinct paths at SOP level."""
    return len({entry["path"] for entry in relevant}) if level == "sop" else len(relevant)


# --- per-question retrieval --------------------------------------------------------------------------------


def _first_relevant_rank(passages: Spans, relevant: Spans, level: Level) -> int | None:
    """1-based position (list order is the ranking) of the first relevant passage, or None."""
    return next(
        (rank for rank, p in enumerate(passages, 1) if passage_relevance(p, relevant, level) is not None),
        None,
    )


def hit_at_k(passages: Spans, relevant: Spans, k: int, level: Level) -> float:
    """1.0 when any of the top k passages is relevant, else 0.0."""
    return 1.0 if _first_relevant_rank(passages[:k], relevant, level) is not None else 0.0


def recall_at_k(passages: Spans, relevant: Spans, k: int, level: Level) -> float:
    """Share of relevant items (entries; distinct paths at SOP level) matched in the top k; 0.0 with none."""
    total = _item_count(relevant, level)
    if total == 0:
        return 0.0
    found: set[Any] = set()
    for passage in passages[:k]:
        found |= _items_matched(passage, relevant, level)
    return len(found) / total


def mrr_at_k(passages: Spans, relevant: Spans, k: int, level: Level) -> float:
    """Reciprocal rank of the first relevant passage within the top k, else 0.0."""
    rank = _first_relevant_rank(passages[:k], relevant, level)
    return 0.0 if rank is None else 1.0 / rank


def ndcg_at_k(passages: Spans, relevant: Spans, k: int, level: Level) -> float:
    """Binary nDCG@k where only new relevant items gain: more chunks of a found section score 0.

    A passage gains 1 when it matches a relevant item no earlier passage matched; the ideal ranking puts
    min(k, items) gains on top, so a list of duplicates of one section cannot score like full coverage.
    """
    total = _item_count(relevant, level)
    if total == 0:
        return 0.0
    found: set[Any] = set()
    dcg = 0.0
    for rank, passage in enumerate(passages[:k], 1):
        items = _items_matched(passage, relevant, level)
        if items - found:
            dcg += 1.0 / math.log2(rank + 1)
        found |= items
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, total) + 1))
    return dcg / ideal


_METRIC_FNS = {"hit": hit_at_k, "recall": recall_at_k, "mrr": mrr_at_k, "ndcg": ndcg_at_k}


def _level_scores(record: Record, ks: Sequence[int], level: Level) -> dict[str, float]:
    passages, relevant = record.get("passages") or [], record.get("relevant") or []
    return {f"{name}@{k}": fn(passages, relevant, k, level) for name, fn in _METRIC_FNS.items() for k in ks}


def per_question(record: Record, ks: Sequence[int] = DEFAULT_KS) -> dict[str, Any]:
    """One question's retrieval scores at each level, for failure tables and hit/miss flips between runs."""
    passages, relevant = record.get("passages") or [], record.get("relevant") or []
    return {
        "id": record.get("id"),
        "answerable": bool(record.get("answerable")),
        "section": _level_scores(record, ks, "section"),
        "sop": _level_scores(record, ks, "sop"),
        "focused": _level_scores(record, ks, "focused"),
        "first_relevant_rank_section": _first_relevant_rank(passages, relevant, "section"),
        "first_relevant_rank_sop": _first_relevant_rank(passages, relevant, "sop"),
    }


# --- abstention --------------------------------------------------------------------------------------------


def _ratio(numerator: int | float, denominator: int | float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def _abstained(record: Record) -> bool:
    """Only an explicit ``covered: false`` is an abstention; a missing or null decision counts as covered."""
    return record.get("covered") is False


def abstention(records: Iterable[Record]) -> dict[str, Any]:
    """Abstention as a detector of unanswerable questions (positive class = unanswerable).

    precision = flagged unanswerable / flagged; recall = flagged unanswerable / unanswerable;
    false_abstention_rate = flagged answerable / answerable. Each is None when its denominator is 0.
    """
    tp = fp = fn = answerable = 0
    for record in records:
        flagged, positive = _abstained(record), not record.get("answerable")
        tp += flagged and positive
        fp += flagged and not positive
        fn += positive and not flagged
        answerable += not positive
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "false_abstention_rate": _ratio(fp, answerable),
        "unanswerable": tp + fn,
        "answerable": answerable,
        "flagged": tp + fp,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
    }


# --- drafts: citations, faithfulness, similarity -----------------------------------------------------------


def _draft(record: Record) -> Mapping[str, Any] | None:
    draft = record.get("draft")
    return draft if isinstance(draft, Mapping) else None


def citation_precision(records: Iterable[Record], level: Level = "section") -> float | None:
    """Share of the citations of answering drafts that point at a relevant span.

    An unanswerable question's citations are never relevant. A draft that abstains (``covered: false``)
    cites the escalation process, not an answer: its citations are left out here, and whether abstaining
    was right is what the abstention metrics score. So are citations whose role is ``escalation`` (the
    escalation path an SOP prescribes in its text). None when no answering draft cites anything.
    """
    _check_level(level)
    good = total = 0
    for record in records:
        draft = _draft(record)
        if draft is None or draft.get("covered") is False:
            continue
        relevant = (record.get("relevant") or []) if record.get("answerable") else []
        for citation in draft.get("citations") or []:
            if citation.get("role", "answer") != "answer":
                continue  # an escalation path the SOP prescribes: not an answer, as in an abstention
            total += 1
            good += passage_relevance(citation, relevant, level) is not None
    return _ratio(good, total)


AGENT_ONLY = frozenset({"internal", "escalate"})


def agent_only_quotes(records: Iterable[Record]) -> int | None:
    """User-tone drafts with a sentence that quotes a section meant for the agent only (an escalation or
    ticket-note section). The target is zero; None when the run holds no user-tone draft."""
    drafts = [d for d in (_draft(r) for r in records) if d is not None]
    user = [d for d in drafts if (d.get("provenance") or {}).get("tone") == "user"]
    if not user:
        return None
    bad = 0
    for draft in user:
        roles = {c.get("n"): c.get("section_role", "") for c in draft.get("citations") or []}
        if any(roles.get(n) in AGENT_ONLY for s in draft.get("sentences") or [] for n in s.get("citations") or []):
            bad += 1
    return bad


def tokens(text: str) -> list[str]:
    """Lowercased word tokens (letters and digits, no underscores or punctuation)."""
    return _WORD.findall(text.lower())


def content_tokens(text: str) -> list[str]:
    """Word tokens of length >= 2 that are not stop words."""
    return [t for t in tokens(text) if len(t) >= 2 and t not in STOP_WORDS]


def sentence_support(sentence: str, cited_texts: Iterable[str]) -> float:
    """Share of the sentence's content tokens found in the cited texts; 1.0 when it has none to check."""
    wanted = content_tokens(sentence)
    if not wanted:
        return 1.0
    available = {t for text in cited_texts for t in tokens(text)}
    return sum(t in available for t in wanted) / len(wanted)


def _cited_texts(record: Record, draft: Mapping[str, Any], numbers: Iterable[int]) -> list[str]:
    """The quotes of the cited citations plus the full texts of their passages when the run kept them."""
    by_n = {c.get("n"): c for c in draft.get("citations") or []}
    by_chunk = {p.get("chunk_id"): p.get("text") or "" for p in record.get("passages") or []}
    texts = []
    for n in numbers:
        citation = by_n.get(n)
        if citation is None:
            continue
        texts.append(citation.get("quote") or "")
        if citation.get("chunk_id") in by_chunk:
            texts.append(by_chunk[citation["chunk_id"]])
    return texts


def faithfulness(records: Iterable[Record], threshold: float = 0.6) -> float | None:
    """Share of draft sentences lexically supported (>= threshold) by what they cite; uncited ones fail.

    None when no draft has a sentence.
    """
    supported = total = 0
    for record in records:
        draft = _draft(record)
        if draft is None:
            continue
        for sentence in draft.get("sentences") or []:
            total += 1
            numbers = sentence.get("citations") or []
            if numbers:
                texts = _cited_texts(record, draft, numbers)
                supported += sentence_support(sentence.get("text") or "", texts) >= threshold
    return _ratio(supported, total)


def _f1(overlap: int, len_a: int, len_b: int) -> float:
    """F1 from an overlap size; two empty texts agree (1.0), one empty text matches nothing (0.0)."""
    if len_a == 0 or len_b == 0:
        return 1.0 if len_a == len_b else 0.0
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len_a, overlap / len_b
    return 2 * precision * recall / (precision + recall)


def token_f1(a: str, b: str) -> float:
    """Bag-of-words F1 (SQuAD style) over all word tokens, stop words included; symmetric."""
    ta, tb = tokens(a), tokens(b)
    return _f1(sum((Counter(ta) & Counter(tb)).values()), len(ta), len(tb))


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l_f1(a: str, b: str) -> float:
    """ROUGE-L F1 (beta = 1): longest common token subsequence, on the same tokens as ``token_f1``."""
    ta, tb = tokens(a), tokens(b)
    return _f1(_lcs_length(ta, tb), len(ta), len(tb))


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def answer_similarity(records: Iterable[Record]) -> dict[str, Any]:
    """Mean token F1 and ROUGE-L of drafts against reference answers, over answerable questions with both."""
    pairs = []
    for record in records:
        draft, reference = _draft(record), record.get("reference_answer") or ""
        if record.get("answerable") and draft is not None and reference.strip():
            pairs.append((draft.get("text") or "", reference))
    return {
        "token_f1": _mean([token_f1(d, r) for d, r in pairs]),
        "rouge_l": _mean([rouge_l_f1(d, r) for d, r in pairs]),
        "scored": len(pairs),
    }


# --- latency -----------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """q-th percentile by linear interpolation between closest ranks (numpy.percentile's default)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency(records: Iterable[Record]) -> dict[str, float | None]:
    """p50, p95, max and mean of per-question latency in ms; all None for no timed question."""
    values = [float(r["latency_ms"]) for r in records if r.get("latency_ms") is not None]
    if not values:
        return {"p50": None, "p95": None, "max": None, "mean": None}
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values),
        "mean": sum(values) / len(values),
    }


# --- the whole metrics.json --------------------------------------------------------------------------------


def _round(value: Any, digits: int = 4) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {key: _round(item, digits) for key, item in value.items()}
    return value


def _means(scores: Sequence[Mapping[str, float]]) -> dict[str, float | None]:
    """Key-wise means of per-question score dicts sharing the same keys."""
    keys = list(scores[0]) if scores else []
    return {key: _mean([s[key] for s in scores]) for key in keys}


def _empty_level(ks: Sequence[int]) -> dict[str, float | None]:
    return {f"{name}@{k}": None for name in RETRIEVAL_METRICS for k in ks}


def _retrieval(scored: Sequence[Mapping[str, Any]], ks: Sequence[int]) -> dict[str, dict[str, float | None]]:
    return {level: _means([s[level] for s in scored]) if scored else _empty_level(ks) for level in LEVELS}


def _by_tag(records: Sequence[Record], scored: Sequence[Mapping[str, Any]], ks: Sequence[int]) -> dict[str, Any]:
    """Retrieval means per tag, over the answerable questions carrying it."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record, scores in zip(records, scored, strict=True):
        for tag in dict.fromkeys(record.get("tags") or []):
            groups.setdefault(tag, []).append(scores)
    return {tag: {"questions": len(group), **_retrieval(group, ks)} for tag, group in sorted(groups.items())}


def compute_metrics(records: Sequence[Record], ks: Sequence[int] = DEFAULT_KS) -> dict[str, Any]:
    """Everything written to metrics.json; retrieval means are over answerable questions, floats at 4 dp."""
    answerable = [r for r in records if r.get("answerable")]
    scored = [per_question(r, ks) for r in answerable]
    metrics = {
        "questions": len(records),
        "answerable": len(answerable),
        "retrieval": _retrieval(scored, ks),
        "abstention": abstention(records),
        "citation_precision": citation_precision(records),
        "agent_only_quotes": agent_only_quotes(records),
        "faithfulness": faithfulness(records),
        "answer_similarity": answer_similarity(records),
        "latency_ms": latency(records),
        "passage_lines": passage_lines(records),
        "by_tag": _by_tag(answerable, scored, ks),
    }
    return _round(metrics)


def passage_lines(records: Sequence[Record], k: int = 5) -> float | None:
    """Mean line span of the top-k passages: overlap-based section hits reward long passages, so show it."""
    spans = [p["end_line"] - p["start_line"] + 1 for r in records for p in r.get("passages", [])[:k] if "end_line" in p]
    return sum(spans) / len(spans) if spans else None


def get_metric(metrics: Mapping[str, Any], dotted: str) -> float | None:
    """The number at a dotted path such as ``retrieval.section.hit@5``; None when absent or not a number."""
    node: Any = metrics
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    return float(node)
