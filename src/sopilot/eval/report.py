"""Reports of a run: Markdown and a self-contained HTML page with plots, peers side by side, failures."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from sopilot.eval.metrics import get_metric, per_question

KS = (1, 3, 5, 10)
HEADLINE_COLUMNS = (
    ("section hit@1", "retrieval.section.hit@1"),
    ("section hit@5", "retrieval.section.hit@5"),
    ("section MRR@10", "retrieval.section.mrr@10"),
    ("section nDCG@10", "retrieval.section.ndcg@10"),
    ("SOP hit@5", "retrieval.sop.hit@5"),
    ("focused hit@5", "retrieval.focused.hit@5"),
    ("abstention recall", "abstention.recall"),
    ("false abstention", "abstention.false_abstention_rate"),
    ("lines per passage", "passage_lines"),
    ("latency p50 ms", "latency_ms.p50"),
    ("latency p95 ms", "latency_ms.p95"),
)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


def _plots(systems: dict[str, dict[str, Any]], records: list[dict[str, Any]]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images: dict[str, bytes] = {}

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, level in zip(axes, ("section", "sop"), strict=True):
        for name, metrics in systems.items():
            ys = [get_metric(metrics, f"retrieval.{level}.hit@{k}") or 0.0 for k in KS]
            ax.plot(KS, ys, marker="o", label=name)
        ax.set_title(f"{level}-level hit@k")
        ax.set_xlabel("k")
        ax.set_xticks(KS)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of answerable questions")
    axes[1].legend(loc="lower right", fontsize=8)
    images["hit_at_k.png"] = _png(fig, plt)

    latencies = [r["latency_ms"] for r in records]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.hist(latencies, bins=30, color="#4c72b0")
    ax.set_xlabel("latency per question (ms)")
    ax.set_ylabel("questions")
    ax.set_title("search latency")
    images["latency.png"] = _png(fig, plt)

    main = next(iter(systems.values()))
    tags = sorted(main.get("by_tag", {}).items(), key=lambda kv: -kv[1]["questions"])
    if tags:
        fig, ax = plt.subplots(figsize=(8, 0.35 * len(tags) + 1.2))
        names = [f"{t} ({v['questions']})" for t, v in tags]
        ax.barh(names, [v["section"]["hit@5"] for _, v in tags], color="#55a868", label="section hit@5")
        ax.barh(
            names,
            [v["section"]["mrr@10"] for _, v in tags],
            color="#c44e52",
            height=0.4,
            label="section MRR@10",
        )
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title("by tag (answerable questions)")
        images["by_tag.png"] = _png(fig, plt)
    return images


def _png(fig: Any, plt: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def failures(records: list[dict[str, Any]], k: int = 5) -> list[dict[str, Any]]:
    """Answerable questions with no relevant section in the top k, and unanswerable ones not flagged."""
    rows = []
    for record in records:
        if record["answerable"]:
            scores = per_question(record, KS)
            if scores["section"][f"hit@{k}"] >= 1.0:
                continue
            expected = "; ".join(f"{r['path']} § {r['heading']}" for r in record["relevant"])
            kind = "missed"
        else:
            if record.get("covered") is False:
                continue
            expected = "(abstain: the KB does not answer this)"
            kind = "not flagged"
        got = "; ".join(f"{p['path']} § {' > '.join(p['heading_path'][1:]) or '(top)'}" for p in record["passages"][:3])
        rows.append(
            {
                "id": record["id"],
                "kind": kind,
                "question": record["question"],
                "expected": expected,
                "got": got or "(nothing)",
            }
        )
    return rows


def write_reports(run_dir: Path, records: list[dict[str, Any]], systems: dict[str, dict[str, Any]], title: str) -> None:
    """``systems`` maps a system name to its metrics; the first is this run's, the others are peers."""
    images = _plots(systems, records)
    for name, data in images.items():
        (run_dir / name).write_bytes(data)
    fails = failures(records)
    (run_dir / "report.md").write_text(_markdown(title, systems, fails, list(images)), encoding="utf-8")
    (run_dir / "report.html").write_text(_html(title, systems, fails, images), encoding="utf-8")


def _judge_lines(metrics: dict[str, Any]) -> dict[str, Any]:
    """Pass rates of the language-model judges, when the run had them."""
    judges = metrics.get("judges") or {}
    if not judges:
        return {}
    return {
        f"judge {name} (language model, {judges['judged']} drafts)": judges.get(name)
        for name in ("faithfulness", "relevancy")
    }


def _table_rows(systems: dict[str, dict[str, Any]]) -> list[list[str]]:
    return [[name] + [_fmt(get_metric(m, path)) for _, path in HEADLINE_COLUMNS] for name, m in systems.items()]


def _markdown(title: str, systems: dict[str, dict[str, Any]], fails: list[dict[str, Any]], images: list[str]) -> str:
    main = next(iter(systems.values()))
    lines = [f"# {title}", "", f"{main['questions']} questions, {main['answerable']} answerable.", ""]
    header = ["system"] + [label for label, _ in HEADLINE_COLUMNS]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in _table_rows(systems)]
    lines += ["", *[f"![{name}]({name})" for name in images], ""]
    extra = {
        "citation precision": main.get("citation_precision"),
        "faithfulness": main.get("faithfulness"),
        "abstention precision": get_metric(main, "abstention.precision"),
        **_judge_lines(main),
    }
    lines += [f"- {key}: {_fmt(value)}" for key, value in extra.items()] + [""]
    lines += [
        f"## Failures ({len(fails)})",
        "",
        "| id | kind | question | expected | top 3 returned |",
        "|---|---|---|---|---|",
    ]
    for f in fails:
        cells = [f["id"], f["kind"], f["question"], f["expected"], f["got"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _html(title: str, systems: dict[str, dict[str, Any]], fails: list[dict[str, Any]], images: dict[str, bytes]) -> str:
    e = html.escape
    main = next(iter(systems.values()))
    header = "".join(f"<th>{e(label)}</th>" for label, _ in HEADLINE_COLUMNS)
    rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in _table_rows(systems))
    pictures = "".join(
        f'<img alt="{e(name)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
        for name, data in images.items()
    )
    fail_rows = "".join(
        f"<tr class='{e(f['kind'].replace(' ', '-'))}'><td>{e(f['id'])}</td><td>{e(f['kind'])}</td>"
        f"<td>{e(f['question'])}</td><td>{e(f['expected'])}</td><td>{e(f['got'])}</td></tr>"
        for f in fails
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem;max-width:1200px;color:#222}}
table{{border-collapse:collapse;margin:1rem 0;font-size:0.9rem}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}
th{{background:#f3f3f3}} tr:first-child td{{font-weight:600}}
img{{max-width:100%;margin:0.5rem 0;display:block}}
tr.missed td:nth-child(2){{color:#b00}} tr.not-flagged td:nth-child(2){{color:#a60}}
</style></head><body>
<h1>{e(title)}</h1>
<p>{main["questions"]} questions, {main["answerable"]} answerable.</p>
<table><tr><th>system</th>{header}</tr>{rows}</table>
<p>citation precision {e(_fmt(main.get("citation_precision")))} ·
faithfulness {e(_fmt(main.get("faithfulness")))} ·
abstention precision {e(_fmt(get_metric(main, "abstention.precision")))}
{"".join(f" · {e(key)} {e(_fmt(value))}" for key, value in _judge_lines(main).items())}</p>
{pictures}
<h2>Failures ({len(fails)})</h2>
<table><tr><th>id</th><th>kind</th><th>question</th><th>expected</th><th>top 3 returned</th></tr>
{fail_rows}</table>
</body></html>
"""
