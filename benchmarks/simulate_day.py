"""Simulate one day of support questions through the real search and draft path, then write the daily report.

Paraphrased user questions about the shipped KB's topics (written for this script, not taken from the test
sets) and off-topic ones (billing, the mobile app, office IT, payroll: what the KB does not cover) are
asked through the agents' own retriever and extractive drafter, with their measured latency, at times
spread over a UTC day with the shift peaks of a 24/7 team. Agents' verdicts are simulated: a draft whose
top passage is in the SOP the question is about is mostly accepted, else mostly rejected. Everything is
written to the query log of the index folder, then ``sopilot report daily`` is built from it.

    PYTHONPATH=src HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python benchmarks/simulate_day.py \\
        --index /tmp/sim-index --date 2026-12-02 --days-before 1 --out docs/img/daily-example

With ``--days-before N`` the N days before are simulated too, without the questions of ``NEW_TODAY``, so the
day's report marks those gaps new and the others seen before.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sopilot.core.settings import Settings
from sopilot.index.embedder import covered_min_dense_for
from sopilot.index.querylog import LoggedCitation, LoggedPassage, QueryLog, querylog_path

# (question, the SOP it is about, how many agents ask it that day)
ON_TOPIC = [
    ("reviewer keeps getting SAML response not valid when she opens the console", "access/sso-login-failures.md", 6),
    ("sso login loops back to the okta page forever", "access/sso-login-failures.md", 4),
    ("lost my phone and can't do 2FA anymore, how do I get back in", "access/2fa-reset-lost-phone.md", 5),
    ("got a new phone, how do I move okta verify to it", "access/okta-verify-new-phone.md", 4),
    ("okta verify push notifications never show up on my phone", "access/okta-verify-push-not-arriving.md", 5),
    ("new reviewer approved in accesshub but sees no queues", "access/review-console-access.md", 5),
    ("console logs me out every few minutes", "access/review-console-session-expiry.md", 3),
    ("vendor account locked after too many password attempts", "access/vendor-account-lockout.md", 4),
    ("vendor office needs their IP added to the allowlist", "access/vendor-ip-allowlist.md", 2),
    ("someone left the company, how do we remove their access", "access/access-revocation-leavers.md", 2),
    ("need temporary admin access for tonight's migration", "access/emergency-temporary-access.md", 2),
    ("appeal has been stuck in pending review for a week", "appeals/stuck-appeals.md", 5),
    ("what is the SLA for answering an appeal", "appeals/appeal-slas.md", 3),
    ("export center job has been queued for hours", "data/export-center-failures.md", 4),
    ("the CSV export shows weird characters instead of accents", "data/export-file-encoding.md", 3),
    ("insights dashboard numbers differ from my SQL query", "data/dashboard-vs-sql.md", 3),
    ("who do I escalate to when nobody answers in the channel", "incidents/escalation-process.md", 3),
    ("how do I decide if this is a sev1 or sev2", "incidents/severity-levels.md", 3),
    ("how do I page engineering at night", "incidents/paging-duty-phone-bridge.md", 2),
    ("user threatens to hurt someone in a message", "operations/abusive-or-threatening-users.md", 2),
    ("what goes into the shift handover notes", "operations/shift-handover.md", 2),
    ("partner api returns 401 unauthorized with a new key", "partner-api/401-unauthorized.md", 5),
    ("partner getting 403 forbidden on the items endpoint", "partner-api/403-forbidden.md", 3),
    ("partner hitting 429 too many requests, what do we tell them", "partner-api/429-troubleshooting.md", 6),
    ("partner wants a higher rate limit", "partner-api/rate-limits.md", 3),
    ("partner api keeps returning 503 errors", "partner-api/5xx-errors.md", 3),
    ("how does a partner rotate their api key", "partner-api/api-keys.md", 3),
    ("webhooks stopped arriving at the partner's endpoint", "partner-api/webhooks-not-delivered.md", 4),
    ("user asks us to delete all their data", "privacy/deletion-requests.md", 3),
    ("partner asks for a copy of the data we hold about them", "privacy/data-access-requests.md", 2),
    (
        "approve and reject buttons are greyed out in review console",
        "review-tools/console-decision-buttons-disabled.md",
        5,
    ),
    ("review console items never load, spinner forever", "review-tools/console-items-not-loading.md", 4),
    ("videos don't play in the review console", "review-tools/console-media-not-rendering.md", 3),
    ("the policy tag I need is missing from the labeler picker", "review-tools/labeler-tag-missing-from-picker.md", 3),
    ("labeler tags disappear after I save", "review-tools/labeler-tags-not-saving.md", 3),
    ("priority queue backlog is breaching SLA", "review-tools/queue-backlog-sla-breach.md", 4),
    (
        "queue shows zero items but insights says there is a backlog",
        "review-tools/queue-zero-items-vs-insights-backlog.md",
        3,
    ),
    ("same item shows up twice in my queue", "review-tools/console-duplicate-items.md", 2),
]
# Off-topic questions asked only on the day itself with --days-before: the report's new gaps.
NEW_TODAY = {"the office printer on floor 3 is jammed again", "printer keeps jamming paper in the office"}
NEW_TODAY |= {"when is payroll paid this month", "my payslip is missing the overtime hours"}
OFF_TOPIC = [
    ("how do I get a refund for a double charge on my invoice", 3),
    ("I was billed twice this month, can I get my money back", 2),
    ("refund request for a duplicate card payment", 2),
    ("how do I turn on dark mode in the mobile app", 2),
    ("the mobile app has no dark theme setting", 2),
    ("the office printer on floor 3 is jammed again", 2),
    ("printer keeps jamming paper in the office", 1),
    ("when is payroll paid this month", 2),
    ("my payslip is missing the overtime hours", 1),
]
PREFIXES = ["", "", "hi, ", "hello team, ", "urgent: ", "quick question: "]
# Questions per hour of a 24/7 team: the night shift is quiet, EU and US office hours are the peaks.
HOUR_WEIGHTS = [2, 1, 1, 1, 1, 2, 3, 5, 8, 9, 9, 8, 6, 7, 9, 10, 9, 7, 5, 4, 3, 3, 2, 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kb", type=Path, default=Path("kb"))
    parser.add_argument("--index", type=Path, required=True, help="index folder (ingested if needed)")
    parser.add_argument("--date", type=date.fromisoformat, default=date(2026, 12, 2))
    parser.add_argument("--out", type=Path, default=Path("docs/img/daily-example"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--days-before",
        type=int,
        default=0,
        help="also simulate this many days before, without the NEW_TODAY questions (so the report has new gaps)",
    )
    args = parser.parse_args()

    from sopilot.author.daily import daily_report, write_daily
    from sopilot.author.gaps import GapParams
    from sopilot.draft.factory import open_drafter
    from sopilot.index.embedder import load_embedder, set_offline
    from sopilot.ingest.run import current_kb_version, run_ingest
    from sopilot.retrieval.search import open_retriever

    set_offline()
    settings = Settings(kb_dir=args.kb, index_dir=args.index)
    embedder = load_embedder(
        settings.embedder, runtime=settings.runtime, onnx_cache=settings.index_dir / "models", query_threads=1
    )
    print("ingesting the KB (incremental)...", file=sys.stderr)
    run_ingest(settings, embedder, progress=False)
    retriever = open_retriever(settings, embedder)
    drafter = open_drafter(settings, retriever.store, tone="user", kb_version=current_kb_version(settings))

    log_file = querylog_path(settings.index_dir)
    log_file.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(str(log_file) + suffix).unlink(missing_ok=True)
    log = QueryLog(log_file)
    rng = random.Random(args.seed)
    for before in range(args.days_before, -1, -1):
        day = args.date - timedelta(days=before)
        verdicts = simulate(log, retriever, drafter, settings.search_k, rng, day, new_today=before == 0)
        print(f"{day}: {sum(verdicts.values())} questions logged; verdicts {verdicts}", file=sys.stderr)

    report = daily_report(
        log,
        args.date,
        embedder,
        retriever.store,
        settings.kb_dir,
        ignore=tuple(settings.ignore),
        gap_params=GapParams(weak_below=covered_min_dense_for(settings)),
        new_gap_days=settings.new_gap_days,
    )
    written = write_daily(report, args.out)
    d = report.to_dict()
    print(
        f"{d['questions']} questions, coverage rate {d['coverage_rate']:.1%}, {len(d['gaps'])} gap clusters "
        f"({d['new_gaps']} new), "
        f"{len(d['stale'])} stale SOPs, {len(d['worst_sections'])} worst sections, "
        f"latency p50 {d['latency_ms']['p50']} ms p95 {d['latency_ms']['p95']} ms"
    )
    for path in written.values():
        print(f"wrote {path}", file=sys.stderr)
    return 0


def simulate(log, retriever, drafter, k: int, rng: random.Random, day: date, *, new_today: bool) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """One day of questions answered through the retriever and drafter, logged with simulated verdicts."""
    asks: list[tuple[str, str | None]] = []
    for question, path, times in ON_TOPIC:
        asks += [(rng.choice(PREFIXES) + question, path)] * times
    for question, times in OFF_TOPIC:
        if new_today or question not in NEW_TODAY:
            asks += [(rng.choice(PREFIXES) + question, None)] * times
    rng.shuffle(asks)
    start = datetime.combine(day, datetime.min.time(), UTC).timestamp()
    hours = rng.choices(range(24), weights=HOUR_WEIGHTS, k=len(asks))
    verdicts = {"accepted": 0, "edited": 0, "rejected": 0, "none": 0}
    for n, ((question, target), hour) in enumerate(zip(asks, sorted(hours), strict=True), 1):
        t0 = time.perf_counter()
        result = retriever.search(question, k=k)
        draft = drafter.draft(question, result)
        ms = (time.perf_counter() - t0) * 1000
        ts = start + hour * 3600 + rng.uniform(0, 3599)
        aid = log.record_query(
            kind="answer",
            question=question,
            covered=draft.covered,
            reason=draft.abstention_reason or result.reason,
            tone="user",
            passages=[
                LoggedPassage(p.chunk_id, p.path, p.anchor, p.heading_path, p.score, p.role) for p in result.passages
            ],
            citations=[
                LoggedCitation(c.n, c.chunk_id, c.path, c.anchor, c.heading_path, c.role) for c in draft.citations
            ],
            draft=draft.text,
            drafter=str(draft.provenance.get("drafter", "")),
            latency_ms=ms,
            ts=ts,
        )
        verdict = simulated_verdict(rng, draft.covered, result.passages[0].path if result.passages else "", target)
        verdicts[verdict or "none"] += 1
        if verdict:
            log.record_feedback(aid, verdict, ts=ts + rng.uniform(20, 300))
        if n % 25 == 0:
            print(f"  {day}: {n}/{len(asks)} questions answered", file=sys.stderr)
    return verdicts


def simulated_verdict(rng: random.Random, covered: bool, top_path: str, target: str | None) -> str | None:
    """What an agent does with the draft: a right-topic draft is mostly sent, a wrong one mostly rejected;
    an abstention is escalated without a verdict, unless the question was one the KB answers."""
    if not covered:
        return "rejected" if target is not None and rng.random() < 0.5 else None
    if target is not None and top_path == target:
        return rng.choices(["accepted", "edited", "rejected"], weights=[75, 20, 5])[0]
    return rng.choices(["accepted", "edited", "rejected"], weights=[10, 30, 60])[0]


if __name__ == "__main__":
    sys.exit(main())
