"""``sopilot ask``: a drafted reply with citations, for the agent to review, edit and send."""

from __future__ import annotations

import argparse
import sys

from sopilot.cli.common import add_common, load_embedder, load_settings, print_json, quiet_libraries
from sopilot.cli.search_cmd import add_filter_args, add_server_arg, filters_from, request_body
from sopilot.core.settings import Settings
from sopilot.core.types import Draft


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="draft a reply to a user's question, citing the SOP sections it uses")
    p.add_argument("query", help="the user's question, as they wrote it")
    p.add_argument(
        "--drafter",
        choices=["extractive", "llm"],
        default=None,
        help="extractive (offline, the default) or llm (SOPILOT_LLM_* settings; checked after, falls back)",
    )
    p.add_argument("--tone", choices=["user", "internal"], default="user", help="reply to the user or a note")
    p.add_argument("--stream", action="store_true", help="print the model's words as they come, then the draft")
    p.add_argument("-k", type=int, default=None, help="passages to draft from and show (default 5)")
    add_filter_args(p)
    add_server_arg(p)
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sopilot.draft.factory import open_drafter
    from sopilot.ingest.run import current_kb_version
    from sopilot.retrieval.search import open_retriever

    settings = load_settings(args)
    if args.server:
        return run_remote(args, settings)
    if args.drafter:
        settings = settings.model_copy(update={"drafter": args.drafter})
    quiet_libraries()
    embedder = load_embedder(settings)
    from sopilot.draft.rewrite import open_rewriter

    retriever = open_retriever(settings, embedder, rewriter=open_rewriter(settings))
    result = retriever.search(args.query, k=args.k or settings.search_k, filters=filters_from(args))
    drafter = open_drafter(
        settings, retriever.store, tone=args.tone, kb_version=current_kb_version(settings), embedder=embedder
    )
    draft: Draft | None = None
    streaming = args.stream and not args.json
    for event in drafter.stream(args.query, result):
        if isinstance(event, Draft):
            draft = event
        elif streaming:
            sys.stderr.write(event)
            sys.stderr.flush()
    assert draft is not None
    if streaming:
        sys.stderr.write("\n\n")
    if args.json:
        print_json({"draft": draft.to_dict(), "search": result.to_dict()})
        return 0
    print_draft(draft)
    print("\nPassages:")
    for rank, p in enumerate(result.passages, 1):
        role = f" ({p.role})" if p.role else ""
        overdue = "  REVIEW OVERDUE" if p.review_overdue else ""
        heading = " > ".join(p.heading_path[1:]) or "(top)"
        print(f"  {rank}. {p.title} > {heading}{role}  {p.link}  [{p.score:.4f}]{overdue}")
    return 0


def run_remote(args: argparse.Namespace, settings: Settings) -> int:
    """The question asked of a running server; its drafter is the server's (``--drafter`` is refused)."""
    from sopilot.cli.remote import Remote, ServerError, draft_of, result_of, stream_answer

    if args.drafter:
        raise ServerError("--drafter cannot be chosen with --server: the server drafts with its own SOPILOT_DRAFTER")
    remote = Remote(args.server, settings)
    body = {**request_body(args), "tone": args.tone}
    if args.stream:
        data = stream_answer(remote, body, echo=not args.json)
        if not args.json:
            sys.stderr.write("\n\n")
    else:
        data = remote.post("/v1/answer", body)
    if args.json:
        print_json(data)
        return 0
    print_draft(draft_of(data))
    print(f"Answer id (for feedback): {data['answer_id']}")
    print("\nPassages:")
    for rank, p in enumerate(result_of(data).passages, 1):
        role = f" ({p.role})" if p.role else ""
        print(f"  {rank}. {p.title} > {' > '.join(p.heading_path[1:]) or '(top)'}{role}  {p.link}  [{p.score:.4f}]")
    return 0


def print_draft(draft: Draft) -> None:
    """The draft as an agent reads it: verdict, text, flagged sentences, citations, escalation, who drafted."""
    print("DRAFT (review before sending)" if draft.covered else f"NOT COVERED: {draft.abstention_reason}")
    print("-" * 72)
    print(draft.text)
    print("-" * 72)
    for sentence in draft.sentences:
        if sentence.supported is False:
            print(f"UNSUPPORTED (check before sending): {sentence.text}")
    for c in draft.citations:
        role = "  (escalation path)" if c.role == "escalation" else ""
        role += "  REVIEW OVERDUE" if c.review_overdue else ""
        print(f"[{c.n}] {' > '.join(c.heading_path)}  {c.path}#{c.anchor}  lines {c.start_line}-{c.end_line}{role}")
    if draft.review_overdue:
        print(f"Check first: {', '.join(draft.review_overdue)} is past its review date (sopilot report stale)")
    if draft.escalation is not None:
        e = draft.escalation
        parts = [e.team, f"in {e.channel}" if e.channel else "", f"when {e.when}" if e.when else ""]
        print("Escalation: " + " ".join(part for part in parts if part))
    provenance = draft.provenance
    by = str(provenance.get("drafter", ""))
    if provenance.get("fallback_reason"):
        by += f", in place of the draft of {provenance.get('model')}: {provenance['fallback_reason']}"
    elif provenance.get("model"):
        by += f" ({provenance['model']})"
    print(f"Drafted by: {by}")
