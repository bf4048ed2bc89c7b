"""The daily report: one UTC day of the query log for the people who keep the SOPs.

Question volume by hour, the coverage rate (by hour too), the verdicts agents gave, the top topics (the
SOPs whose sections answered most), the gaps found among that day's questions (``author/gaps.py``), the
SOPs overdue for review (``author/stale.py``), the worst sections of the day (``author/health.py``) and the
slowest answers. Written as ``report.md`` (with its PNG plots beside it) and a self-contained
``report.html`` (the plots inlined).
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from sopilot.author.gaps import GapCluster, GapParams, QueryEmbedder, SectionIndex, find_gaps, mark_new
from sopilot.author.health import SectionHealth, section_health
from sopilot.author.kb_files import load_kb
from sopilot.author.stale import StaleSop, stale_sops
from sopilot.index.querylog import QueryLog, QueryRecord

PLOTS = ("volume.png", "topics.png", "latency.png")

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def _text(value: object) -> str:
    """Logged or SOP text as literal Markdown: every ASCII punctuation mark backslash-escaped (CommonMark shows
    an escaped mark as itself) and line breaks folded, so a question holding ``![x](http://…)``, a link, a
    heading mark or a table bar stays words in the report, including the saved file no Content-Security-Policy
    protects."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(str(value).split()))


def _path(value: str) -> str:
    """A path as inline code, unless it holds a backtick (it could close the code span): then as text."""
    return f"`{value}`" if "`" not in value and "\n" not in value else _text(value)


def day_bounds(day: date) -> tuple[float, float]:
    """Seconds since the epoch of the day's first instant and of the next day's (UTC)."""
    start = datetime.combine(day, datetime.min.time(), UTC)
    return start.timestamp(), (start + timedelta(days=1)).timestamp()


@dataclass(frozen=True, slots=True)
class SlowAnswer:
    answer_id: str
    at: str  # HH:MM UTC
    latency_ms: float
    question: str


@dataclass(slots=True)
class DailyReport:
    day: date
    questions: int = 0
    covered: int = 0
    abstained: int = 0
    by_hour: list[int] = field(default_factory=lambda: [0] * 24)
    covered_by_hour: list[int] = field(default_factory=lambda: [0] * 24)
    verdicts: dict[str, int] = field(default_factory=dict)
    topics: list[tuple[str, str, int]] = field(default_factory=list)  # (path, title, answers)
    gaps: list[GapCluster] = field(default_factory=list)
    stale: list[StaleSop] = field(default_factory=list)
    worst: list[SectionHealth] = field(default_factory=list)
    slowest: list[SlowAnswer] = field(default_factory=list)
    latency_p50: float = 0.0
    latency_p95: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)
    new_days: int = 0  # a gap is new when none of its questions was a gap in this many days before (0: not judged)

    @property
    def new_gaps(self) -> list[GapCluster]:
        """The day's gap clusters none of whose questions was a gap in the days before."""
        return [g for g in self.gaps if g.new]

    @property
    def coverage_rate(self) -> float:
        decided = self.covered + self.abstained
        return self.covered / decided if decided else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "date": self.day.isoformat(),
            "questions": self.questions,
            "covered": self.covered,
            "abstained": self.abstained,
            "coverage_rate": round(self.coverage_rate, 4),
            "by_hour": self.by_hour,
            "covered_by_hour": self.covered_by_hour,
            "verdicts": self.verdicts,
            "topics": [{"path": p, "title": t, "answers": n} for p, t, n in self.topics],
            "gaps": [g.to_dict() for g in self.gaps],
            "new_gaps": len(self.new_gaps),
            "new_gap_days": self.new_days,
            "stale": [s.to_dict() for s in self.stale],
            "worst_sections": [h.to_dict() for h in self.worst],
            "slowest": [
                {"id": s.answer_id, "at": s.at, "latency_ms": round(s.latency_ms, 1), "question": s.question}
                for s in self.slowest
            ],
            "latency_ms": {"p50": round(self.latency_p50, 1), "p95": round(self.latency_p95, 1)},
        }


def build_daily(
    log: QueryLog,
    day: date,
    *,
    gaps: Sequence[GapCluster] = (),
    stale: Sequence[StaleSop] = (),
    min_judged: int = 2,
    top: int = 8,
) -> DailyReport:
    """The day's figures from the log; ``gaps`` (of the day's questions) and ``stale`` come from their modules."""
    since, until = day_bounds(day)
    records = list(log.queries(since, until))
    verdicts = log.latest_verdicts()
    report = DailyReport(day, gaps=list(gaps), stale=list(stale))
    topics: Counter[tuple[str, str]] = Counter()
    for r in records:
        hour = datetime.fromtimestamp(r.ts, UTC).hour
        report.questions += 1
        report.by_hour[hour] += 1
        if r.covered:
            report.covered += 1
            report.covered_by_hour[hour] += 1
            if r.top is not None:
                topics[(r.top.path, r.top.heading_path[0] if r.top.heading_path else r.top.path)] += 1
        elif r.covered is False:
            report.abstained += 1
    day_ids = {r.id for r in records}
    report.verdicts = dict(Counter(v for aid, v in verdicts.items() if aid in day_ids))
    report.topics = [(path, title, n) for (path, title), n in topics.most_common(top)]
    report.worst = [h for h in section_health(records, verdicts, min_judged=min_judged) if h.rejected or h.edited]
    report.worst = report.worst[:top]
    report.latencies = [r.latency_ms for r in records if r.latency_ms > 0]
    if report.latencies:
        report.latency_p50 = float(np.percentile(report.latencies, 50))
        report.latency_p95 = float(np.percentile(report.latencies, 95))
    report.slowest = [_slow(r) for r in sorted(records, key=lambda r: -r.latency_ms)[:5] if r.latency_ms > 0]
    return report


def _slow(r: QueryRecord) -> SlowAnswer:
    return SlowAnswer(r.id, datetime.fromtimestamp(r.ts, UTC).strftime("%H:%M"), r.latency_ms, r.question)


def plots(report: DailyReport) -> dict[str, bytes]:
    """The report's pictures as PNG bytes, by file name (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images: dict[str, bytes] = {}
    hours = np.arange(24)
    covered = np.array(report.covered_by_hour)
    other = np.array(report.by_hour) - covered
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.bar(hours, covered, color="#4c8c4a", label="covered")
    ax.bar(hours, other, bottom=covered, color="#d08c3c", label="not covered")
    ax.set_xlabel("hour (UTC)")
    ax.set_ylabel("questions")
    ax.set_xticks(hours[::2])
    rate_ax = ax.twinx()
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(np.array(report.by_hour) > 0, covered / np.maximum(report.by_hour, 1), np.nan)
    rate_ax.plot(hours, rate, color="#1f4e79", marker="o", markersize=3, label="coverage rate")
    rate_ax.set_ylim(0, 1.05)
    rate_ax.set_ylabel("coverage rate")
    ax.set_title(f"{report.day}: {report.questions} questions, {report.coverage_rate:.0%} covered")
    handles = ax.get_legend_handles_labels()[0] + rate_ax.get_legend_handles_labels()[0]
    ax.legend(handles, [str(h.get_label()) for h in handles], loc="upper left", fontsize=8)
    images["volume.png"] = _png(fig, plt)

    fig, ax = plt.subplots(figsize=(9, 3.6))
    titles = [t if len(t) <= 48 else t[:45] + "..." for _, t, _ in report.topics][::-1]
    ax.barh(titles, [n for _, _, n in report.topics][::-1], color="#4c72b0")
    ax.set_xlabel("covered answers whose top passage is in this SOP")
    ax.set_title("top topics")
    fig.tight_layout()
    images["topics.png"] = _png(fig, plt)

    fig, ax = plt.subplots(figsize=(9, 3.2))
    if report.latencies:
        ax.hist(report.latencies, bins=30, color="#8172b2")
        for value, name in ((report.latency_p50, "p50"), (report.latency_p95, "p95")):
            ax.axvline(value, color="black", linestyle="--", linewidth=1)
            ax.text(value, ax.get_ylim()[1] * 0.9, f" {name} {value:.0f} ms", fontsize=8)
    ax.set_xlabel("answer latency (ms)")
    ax.set_ylabel("answers")
    ax.set_title("latency")
    images["latency.png"] = _png(fig, plt)
    return images


def _png(fig: Any, plt: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def to_markdown(report: DailyReport, image_dir: str = ".") -> str:
    """The report in Markdown; the plots are linked from ``image_dir``."""
    r = report
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(r.verdicts.items())) or "none"
    lines = [
        f"# SOPilot daily report, {r.day.isoformat()} (UTC)",
        "",
        f"- Questions: **{r.questions}**; covered {r.covered}, not covered {r.abstained}: "
        f"coverage rate **{r.coverage_rate:.0%}**",
        f"- Verdicts: {verdicts}",
        f"- Answer latency: p50 {r.latency_p50:.0f} ms, p95 {r.latency_p95:.0f} ms",
        "",
        f"![questions by hour and coverage rate]({image_dir}/volume.png)",
        "",
        "## Top topics",
        "",
        "| SOP | answers |",
        "|---|---|",
        *[f"| {_text(title)} ({_path(path)}) | {n} |" for path, title, n in r.topics],
        "",
        f"![top topics]({image_dir}/topics.png)",
        "",
        f"## Gaps ({len(r.gaps)} cluster(s) among today's questions, {len(r.new_gaps)} new)",
        "",
    ]
    if r.new_days:
        lines += [f"NEW: none of the cluster's questions was a gap in the {r.new_days} day(s) before.", ""]
    for n, g in enumerate(r.gaps, 1):
        why = ", ".join(f"{k} {v}" for k, v in sorted(g.reasons.items()))
        near = g.nearest
        todo = (
            f"extend {_path(near.link)}"
            if g.suggestion == "extend" and near is not None
            else "write a new SOP" + (f" (nearest: {_path(near.link)}, {near.similarity:.2f})" if near else "")
        )
        mark = "NEW " if g.new else ""
        lines.append(f"{n}. {mark}**{_text(g.representatives[0])}** ({g.size}: {_text(why)}); {todo}")
        lines += [f"   - {_text(q)}" for q in g.representatives[1:]]
    if not r.gaps:
        lines.append("None.")
    lines += ["", f"## Stale SOPs ({len(r.stale)} overdue for review)", ""]
    if r.stale:
        lines += ["| SOP | owner | due | days overdue |", "|---|---|---|---|"]
        lines += [
            f"| {_text(s.title)} ({_path(s.path)}) | {_text(s.owner)} | {s.due} | {s.days_overdue} |"
            for s in r.stale[:10]
        ]
        if len(r.stale) > 10:
            lines.append(f"\n... and {len(r.stale) - 10} more (`sopilot report stale`).")
    else:
        lines.append("None.")
    lines += ["", "## Worst sections (edited or rejected drafts that cited them)", ""]
    if r.worst:
        lines += ["| section | cited | judged | reject | edit | accept |", "|---|---|---|---|---|---|"]
        lines += [
            f"| {_text(' > '.join(h.heading_path))} ({_path(h.link)}) | {h.cited} | {h.judged} "
            f"| {h.rate('rejected'):.0%} | {h.rate('edited'):.0%} | {h.rate('accepted'):.0%} |"
            for h in r.worst
        ]
    else:
        lines.append("None.")
    lines += ["", "## Slowest answers", "", "| at | ms | question |", "|---|---|---|"]
    lines += [f"| {s.at} | {s.latency_ms:.0f} | {_text(s.question[:100])} |" for s in r.slowest]
    lines += ["", f"![latency]({image_dir}/latency.png)", ""]
    return "\n".join(lines)


def to_html(report: DailyReport, images: dict[str, bytes]) -> str:
    """A self-contained HTML page: the Markdown's content, the plots inlined."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(to_markdown(report, "img"))
    for name, data in images.items():
        body = body.replace(f'src="img/{name}"', f'src="data:image/png;base64,{base64.b64encode(data).decode()}"')
    title = html.escape(f"SOPilot daily report, {report.day.isoformat()}")
    style = (
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}"
        "img{max-width:100%}code{background:#f3f3f3;padding:0 .2rem}"
    )
    head = f'<meta charset="utf-8"><title>{title}</title><style>{style}</style>'
    return f'<!doctype html><html lang="en"><head>{head}</head><body>{body}</body></html>\n'


def write_daily(report: DailyReport, out_dir: Path) -> dict[str, Path]:
    """``report.md``, ``report.html`` and the PNG plots in ``out_dir``; returns the paths by name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images = plots(report)
    written: dict[str, Path] = {}
    for name, data in images.items():
        (out_dir / name).write_bytes(data)
        written[name] = out_dir / name
    written["report.md"] = out_dir / "report.md"
    written["report.md"].write_text(to_markdown(report), encoding="utf-8")
    written["report.html"] = out_dir / "report.html"
    written["report.html"].write_text(to_html(report, images), encoding="utf-8")
    return written


def daily_report(
    log: QueryLog,
    day: date,
    embedder: QueryEmbedder,
    index: SectionIndex,
    kb_dir: Path,
    *,
    ignore: tuple[str, ...] = (),
    max_file_bytes: int = 1_000_000,
    gap_params: GapParams | None = None,
    new_gap_days: int = 7,
) -> DailyReport:
    """The whole report: the log's figures, the gaps among the day's questions (each marked new when none of
    its questions was a gap in the ``new_gap_days`` before), the SOPs overdue on that day."""
    since, until = day_bounds(day)
    verdicts = log.latest_verdicts()
    gaps = find_gaps(log.queries(since, until), verdicts, embedder, index, gap_params, today=day)
    if new_gap_days > 0 and gaps:
        earlier = log.queries(since - new_gap_days * 86400, since)
        gaps = mark_new(gaps, earlier, verdicts, embedder, index, gap_params)
    stale: list[StaleSop] = []
    if kb_dir.is_dir():
        files, _ = load_kb(kb_dir, ignore, max_file_bytes)
        stale = stale_sops(files, day)
    report = build_daily(log, day, gaps=gaps, stale=stale)
    report.new_days = new_gap_days if gaps else 0
    return report
